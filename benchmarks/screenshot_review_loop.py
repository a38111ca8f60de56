"""Screenshot of the label - train - review loop at 1366 x 768 (offscreen): a flat folder of bottle frames
(../shared/data/mvtec_bottle, names hiding the labels), 30 labeled good and 12 labeled defect, the rest
unlabeled. The banner offers the supervised cnn; its button trains it; the gallery is put in "Review next"
order; five images are labeled from the top of that order, and the banner offers a retrain.

    QT_QPA_PLATFORM=offscreen python benchmarks/screenshot_review_loop.py [--budget 30]

Writes docs/screenshots/review_loop_offer_1366x768.png (before training) and
docs/screenshots/review_loop_1366x768.png (after: review order, Grad-CAM, retrain offer).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BOTTLE = ROOT.parent / "shared" / "data" / "mvtec_bottle"
OUT = ROOT / "docs" / "screenshots"


def wait_until(app, condition, timeout: float) -> None:
    end = time.time() + timeout
    while not condition():
        if time.time() > end:
            raise TimeoutError("the window did not get there in time")
        app.processEvents()
        time.sleep(0.02)


def settle(app, seconds: float = 0.8) -> None:
    end = time.time() + seconds
    while time.time() < end:
        app.processEvents()
        time.sleep(0.02)


def flat_frames(dest: Path) -> dict[str, str]:
    """40 good and 30 defect bottle images as frame_NNN.png in a shuffled order; returns path -> truth."""
    import numpy as np

    good = sorted((BOTTLE / "train" / "good").glob("*.png"))[:30]
    good += sorted((BOTTLE / "test" / "good").glob("*.png"))[:10]
    defect = sorted(p for p in (BOTTLE / "test").glob("*/*.png") if p.parent.name != "good")
    defect = defect[::2][:30]
    frames = [(p, "good") for p in good] + [(p, "defect") for p in defect]
    order = np.random.default_rng(4).permutation(len(frames))
    dest.mkdir(parents=True)
    truth = {}
    for k, i in enumerate(order):
        src, kind = frames[i]
        out = dest / f"frame_{k:03d}.png"
        shutil.copy(src, out)
        truth[str(out)] = kind
    return truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=30.0, help="cnn training seconds")
    args = ap.parse_args()
    if not BOTTLE.is_dir():
        raise SystemExit(f"{BOTTLE} not found")
    import torch
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from core.project.opening import open_project
    from inspector_gui.main_window import MainWindow

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="ai-loop-"))
    data = work / "line7"
    truth = flat_frames(data)
    goods = [p for p, k in truth.items() if k == "good"][:30]
    defects = [p for p, k in truth.items() if k == "defect"][:12]
    with open_project(data) as store:
        store.set_labels([(p, "good", None, None) for p in goods] + [(p, "defect", None, None) for p in defects])

    app = QApplication.instance() or QApplication(sys.argv)
    win = MainWindow(QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat))
    win.setProperty("quiet_errors", True)
    win.resize(1366, 768)
    win.show()
    win.open_path(data)
    wait_until(app, lambda: win.store is not None and win.gallery.model.rowCount() == len(truth), 60)
    wait_until(app, lambda: win.loop.banner.isVisible(), 30)
    win.training.set_settings("cnn", {"image_size": 128, "time_budget": args.budget, "epochs": 1000})
    settle(app)
    OUT.mkdir(parents=True, exist_ok=True)
    win.grab().save(str(OUT / "review_loop_offer_1366x768.png"))
    print("offer:", win.loop.banner.message.text())

    win.loop.banner.action_button.click()
    wait_until(app, lambda: win.run is not None and win.run.model is not None and win.run.detector == "cnn",
               args.budget + 240)
    wait_until(app, lambda: not win.job.running, 60)
    combo = win.gallery.sort_combo
    combo.setCurrentIndex(combo.findText("Review next"))
    settle(app)
    order = win.gallery.proxy.paths()
    for path in order[:5]:  # the engineer labels the five the model is least sure about
        win.show_image(path)
        win.apply_label(truth[path])
    wait_until(app, lambda: win.loop.banner.isVisible(), 30)
    win.gallery.view.select_path(order[5])
    win.show_image(order[5])
    win.tabs.setCurrentWidget(win.threshold)
    settle(app, 1.5)
    win.grab().save(str(OUT / "review_loop_1366x768.png"))
    print("retrain offer:", win.loop.banner.message.text())
    print("status:", win.training.status.text())
    print("first in review order:", [Path(p).name for p in order[:8]],
          [round(float(win.gallery.model.scores()[win.store.image_id(p)]), 3) for p in order[:8]])
    win.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
