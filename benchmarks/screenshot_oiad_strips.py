"""Screenshots of OIAD's morph strips on a real category, rendered offscreen at 1366 x 768 (QWidget.grab()):

    QT_QPA_PLATFORM=offscreen python benchmarks/screenshot_oiad_strips.py --data ../shared/data/mvtec_bottle \\
        --model /tmp/oiad-models/mvtec_bottle.pt --image test/broken_large/000.png --out oiad_strips_bottle.png

The model is one trained with the defaults by benchmarks/oiad_strips_bench.py --save-models DIR. The window
opens a small copy of the category (a few good images and the chosen image: the window scores every image of
its folder, at about a second each), selects the image, clicks the patch at the centre of its defect mask (or
the worst patch when there is no mask), and writes docs/screenshots/<out>.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "screenshots"


def small_copy(src: Path, dst: Path, image: str, n_good: int) -> None:
    """train/good (n_good images), test/good (2) and the chosen image with its mask, MVTec layout."""
    for sub, n in (("train/good", n_good), ("test/good", 2)):
        (dst / sub).mkdir(parents=True, exist_ok=True)
        for p in sorted((src / sub).iterdir())[:n]:
            shutil.copy2(p, dst / sub / p.name)
    target = src / image
    (dst / image).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(target, dst / image)
    parts = Path(image).parts
    if len(parts) == 3 and parts[1] != "good":
        mask = src / "ground_truth" / parts[1] / f"{Path(parts[2]).stem}_mask.png"
        if mask.is_file():
            (dst / "ground_truth" / parts[1]).mkdir(parents=True, exist_ok=True)
            shutil.copy2(mask, dst / "ground_truth" / parts[1] / mask.name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--image", required=True, help="relative to --data")
    ap.add_argument("--out", required=True)
    ap.add_argument("--good", type=int, default=6, help="good training images copied (they are scored too)")
    args = ap.parse_args()

    import numpy as np

    from benchmarks.screenshot_window import open_scored_window, settle
    from core.data.images import decode_mask
    from core.modelio import load_detector

    work = Path(tempfile.mkdtemp(prefix="ai-oiad-strips-"))
    data = work / args.data.name
    small_copy(args.data, data, args.image, args.good)
    detector = load_detector(args.model)
    app, win = open_scored_window(data, detector, ("oiad", {}), work, args.image, timeout=900)
    win.resize(1366, 768)
    win.move(0, 0)
    win.viewer.set_opacity(0.45)
    settle(app, 1.0)
    from PySide6.QtCore import Qt

    win.resizeDocks([win.morph_dock], [330], Qt.Orientation.Vertical)
    record = win.store.image(win.current_id)
    if record.mask_path:
        ys, xs = np.nonzero(decode_mask(win.store.root / record.mask_path))
        win.show_strips_at(float(xs.mean()), float(ys.mean()))
    settle(app, 1.0)
    OUT.mkdir(parents=True, exist_ok=True)
    pixmap = win.grab()
    pixmap.save(str(OUT / args.out))
    strips = win.morphs.rows
    print("wrote", OUT / args.out, f"{pixmap.width()} x {pixmap.height()}", "rows", len(strips),
          "outline", win.viewer.outline())
    win.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
