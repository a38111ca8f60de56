"""Screenshot of the lighting-drift warning: a model trained on the demo parts scores a "night shift" copy of
them whose images are 20 % darker; the warning appears once, in the training panel and the status bar.

    Xvfb :97 -screen 0 1366x768x24 &  DISPLAY=:97 QT_QPA_PLATFORM=xcb python benchmarks/screenshot_drift.py

Writes docs/screenshots/window_drift_warning_1366x768.png.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.screenshot_window import open_scored_window, shoot, wait_until  # noqa: E402

SETTINGS = {"image_size": 64}


def darker_copy(src: Path, dest: Path, gain: float) -> Path:
    for path in sorted(src.rglob("*.png")):
        out = dest / path.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        if "ground_truth" in path.parts:
            shutil.copy(path, out)
            continue
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(out), np.clip(img * gain, 0, 255).astype(np.uint8))
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gain", type=float, default=0.8)
    ap.add_argument("--image", default="test/blowhole/002.png")
    args = ap.parse_args()

    from core.data.synthetic import demo_dataset
    from core.evaluate import train_detector
    from core.project import image_sets

    work = Path(tempfile.mkdtemp(prefix="ai-drift-"))
    day = work / "day_shift"
    shutil.copytree(demo_dataset(), day)
    detector, _ = train_detector(image_sets(day), "gmm", SETTINGS, log=lambda m: None)
    night = darker_copy(day, work / "night_shift", args.gain)
    app, win = open_scored_window(night, detector, ("gmm", SETTINGS), work, args.image, timeout=300,
                                  first_start=True)
    wait_until(app, lambda: bool(win.training.drift.text()), 120)
    win.tabs.setCurrentWidget(win.training)
    print("warning:", win.training.drift.text())
    print("status bar:", win.statusBar().currentMessage())
    shoot(app, win, "window_drift_warning_1366x768.png")
    win.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
