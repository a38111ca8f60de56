"""Screenshot of the Samples tab: the window on a copy of the bottle category with an f-AnoGAN model's scores
and the grid of G(z) the model keeps, at 1366 x 768, rendered offscreen (widget.grab):

    QT_QPA_PLATFORM=offscreen python benchmarks/screenshot_samples.py --model MODEL.ai
    QT_QPA_PLATFORM=offscreen python benchmarks/screenshot_samples.py --budget 120     # trains one first

Writes docs/screenshots/window_fanogan_samples_1366x768.png. Without ../shared/data it uses the demo set.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.screenshot_window import OUT, settle, wait_until  # noqa: E402

BOTTLE = ROOT.parent / "shared" / "data" / "mvtec_bottle"
SETTINGS = {"image_size": 64, "base_channels": 32}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="a trained fanogan model (else one is trained)")
    ap.add_argument("--budget", type=float, default=120, help="training seconds when no model is given")
    ap.add_argument("--image", default="test/broken_large/000.png")
    args = ap.parse_args()

    import torch
    from PySide6.QtCore import QSettings

    from core.modelio import load_detector
    from inspector_gui.app import create_window

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="ai-samples-"))
    if BOTTLE.is_dir():
        data = shutil.copytree(BOTTLE, work / "bottle")  # the window writes its project store beside the images
    else:
        from core.data.synthetic import demo_dataset

        data = shutil.copytree(demo_dataset(), work / "demo")
        args.image = "test/blowhole/002.png"
    if args.model:
        detector = load_detector(args.model)
    else:
        from core.evaluate import train_detector
        from core.project import image_sets

        detector, _ = train_detector(image_sets(data), "fanogan", {**SETTINGS, "time_budget": args.budget},
                                     log=lambda m: None)
    settings = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
    app, win = create_window(data, detector, preset=("fanogan", dict(detector.params)), settings=settings)
    win.setProperty("quiet_errors", True)
    win.resize(1366, 768)
    win.show()
    wait_until(app, lambda: win.run is not None and win.run.model is not None, 600)
    wait_until(app, lambda: win.tabs.indexOf(win.samples) >= 0, 60)
    target = win.store.image_id(data / args.image)
    win.gallery.view.select_path(str(win.store.absolute_path(target)))
    win.show_image_id(target)
    win.tabs.setCurrentWidget(win.samples)
    settle(app, 1.0)
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / "window_fanogan_samples_1366x768.png"
    win.grab().save(str(out))
    print("wrote", out, win.size().width(), "x", win.size().height())
    win.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
