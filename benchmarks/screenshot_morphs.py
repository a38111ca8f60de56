"""Screenshot of the window with OIAD's morph strips on the demo data (run under Xvfb, like
screenshot_window.py):

    Xvfb :99 -screen 0 1920x1080x24 &  DISPLAY=:99 python benchmarks/screenshot_morphs.py

Trains OIAD with interactive settings (fewer epochs and morphs than the paper's m = 100; a few minutes on
2 cores), opens the window with it, selects a defect image and writes docs/screenshots/window_morphs.png
(`--data ../shared/data/mvtec_bottle --image test/broken_large/000.png --out window_morphs_bottle.png` for a
real category).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.screenshot_window import open_scored_window, shoot  # noqa: E402

OIAD_INTERACTIVE = {"epochs": 60, "n_morphs": 20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default="test/scratch/003.png", help="image to show, relative to the data folder")
    ap.add_argument("--data", help="an MVTec-layout folder to use instead of the demo set (copied first)")
    ap.add_argument("--out", default="window_morphs.png", help="file name under docs/screenshots")
    ap.add_argument("--detector", default="oiad", help="another detector shows its maps the same way (no strips)")
    args = ap.parse_args()

    from core.data.synthetic import demo_dataset
    from core.evaluate import train_detector
    from core.project import image_sets

    work = Path(tempfile.mkdtemp(prefix="ai-morphs-"))
    data = work / "demo_parts"
    shutil.copytree(args.data or demo_dataset(), data)
    settings_used = OIAD_INTERACTIVE if args.detector == "oiad" else {}
    detector, _ = train_detector(image_sets(data), args.detector, settings_used, log=lambda m: None)
    app, win = open_scored_window(data, detector, (args.detector, settings_used), work, args.image, timeout=900)
    win.viewer.set_opacity(0.5)
    shoot(app, win, args.out)
    win.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
