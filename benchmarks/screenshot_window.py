"""Screenshots of the whole window on the demo data, taken from the X screen (run under Xvfb):

    Xvfb :99 -screen 0 1920x1080x24 &  DISPLAY=:99 python benchmarks/screenshot_window.py [--model demo.ai]
    Xvfb :98 -screen 0 1366x768x24 &  DISPLAY=:98 python benchmarks/screenshot_window.py --screen 1366x768

Writes docs/screenshots/window_viewer.png (gallery + viewer with the M heat map), window_threshold.png (threshold
panel with ROC and confusion matrix) and window_training.png (training panel mid-run). With --screen WxH (the
X screen's size) the window opens at its first-start geometry for that screen, and the files are
window_WxH.png (threshold panel) and window_WxH_training.png; it prints where the frame lies and fails if any
part is off the screen. --suffix names the files otherwise. Without --model it trains the demo VAE first
(about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "screenshots"


def wait_until(app, condition, timeout: float) -> None:
    end = time.time() + timeout
    while not condition():
        if time.time() > end:
            raise TimeoutError("the window did not get there in time")
        app.processEvents()
        time.sleep(0.02)


def settle(app, seconds: float = 0.5) -> None:
    end = time.time() + seconds
    while time.time() < end:
        app.processEvents()
        time.sleep(0.02)


def shoot(app, window, name: str) -> None:
    settle(app)
    screen = app.primaryScreen()
    geo = window.frameGeometry()
    pixmap = screen.grabWindow(0, geo.x(), geo.y(), geo.width(), geo.height())
    OUT.mkdir(parents=True, exist_ok=True)
    pixmap.save(str(OUT / name))
    print("wrote", OUT / name)


def open_scored_window(data: Path, detector, preset: tuple[str, dict], work: Path, image: str,
                       timeout: float, first_start: bool = False):
    """The window on `data` with `detector`'s scores (run stored), at screenshot size, `image` selected."""
    from PySide6.QtCore import QSettings

    from inspector_gui.app import create_window

    # A fresh settings file: the first-run layout, not whatever the user last left.
    settings = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
    app, win = create_window(data, detector, preset=preset, settings=settings)
    win.setProperty("quiet_errors", True)
    if not first_start:  # the classic shots: a fixed size on a 1920 x 1080 screen
        win.resize(1880, 1020)
        win.move(0, 0)
    win.show()
    wait_until(app, lambda: win.run is not None and win.run.model is not None, timeout)
    wait_until(app, lambda: win.run.run_id is not None, 60)
    target = win.store.image_id(data / image)
    win.gallery.view.select_path(str(win.store.absolute_path(target)))
    win.show_image_id(target)
    return app, win


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a demo VAE saved by `anomaly-inspector demo --out`")
    ap.add_argument("--image", default="test/blowhole/002.png", help="demo image to show in the viewer")
    ap.add_argument("--screen", help="WxH of the X screen: first-start geometry, files window_WxH*.png")
    ap.add_argument("--suffix", help="appended to the file names (default: _WxH with --screen, else none)")
    args = ap.parse_args()
    suffix = args.suffix if args.suffix is not None else ""

    from core.cli.demo import DEMO_SETTINGS
    from core.data.synthetic import demo_dataset
    from core.evaluate import train_detector
    from core.modelio import load_detector

    work = Path(tempfile.mkdtemp(prefix="ai-shots-"))
    data = work / "demo_parts"
    shutil.copytree(demo_dataset(), data)
    if args.model:
        detector = load_detector(args.model)
    else:
        from core.project import image_sets

        detector, _ = train_detector(image_sets(data), "vae", DEMO_SETTINGS, log=lambda m: None)
    app, win = open_scored_window(data, detector, ("vae", DEMO_SETTINGS), work, args.image, timeout=300,
                                  first_start=bool(args.screen))
    win.viewer.set_opacity(0.55)
    win.tabs.setCurrentWidget(win.threshold)
    if args.screen:
        shoot_screen_size(app, win, args.screen, args.suffix)
        shutil.rmtree(work, ignore_errors=True)
        return
    shoot(app, win, f"window_viewer{suffix}.png")

    panel = win.threshold
    panel.model.apply_preset("f1_max")
    panel.model.set_review_band(True)
    shoot(app, win, f"window_threshold{suffix}.png")

    # Training mid-run: start a fresh demo training and shoot when it is well under way, then cancel.
    win.tabs.setCurrentWidget(win.training)
    win.training.set_settings("vae", DEMO_SETTINGS)
    win.training.train_button.click()
    wait_until(app, lambda: win.training.progress.value() > 350, 300)
    shoot(app, win, f"window_training{suffix}.png")
    win.cancel_job()
    wait_until(app, lambda: not win.job.running, 30)
    win.close()
    shutil.rmtree(work, ignore_errors=True)


def shoot_screen_size(app, win, screen: str, suffix: str | None) -> None:
    """The first-start window on a WxH screen: threshold panel with a review band, then training mid-run.
    Fails when the frame is not within the screen's available area."""
    from core.cli.demo import DEMO_SETTINGS

    name = f"window{suffix if suffix is not None else '_' + screen}"
    settle(app, 1.0)
    available = app.primaryScreen().availableGeometry()
    frame = win.frameGeometry()
    print(f"screen {screen}: available {available.getRect()}, window frame {frame.getRect()}, minimum "
          f"{win.minimumSizeHint().width()} x {win.minimumSizeHint().height()}, gallery {win.gallery_dock.width()}"
          f", viewer {win.centralWidget().width()}, Model dock {win.model_dock.width()} px wide")
    for part in (win.gallery_dock, win.centralWidget(), win.model_dock, win.training, win.threshold):
        print(f"  {part.objectName() or type(part).__name__}: minimum {part.minimumSizeHint().width()} x "
              f"{part.minimumSizeHint().height()}")
    if not available.contains(frame):
        raise SystemExit(f"the window's frame {frame.getRect()} is not within the screen {available.getRect()}")
    panel = win.threshold
    panel.model.apply_preset("f1_max")
    panel.model.set_review_band(True)
    shoot(app, win, f"{name}.png")
    win.tabs.setCurrentWidget(win.training)
    win.training.set_settings("vae", {**DEMO_SETTINGS, "time_budget": 60.0})
    win.training.train_button.click()
    wait_until(app, lambda: win.training.progress.value() > 250, 300)
    shoot(app, win, f"{name}_training.png")
    win.cancel_job()
    wait_until(app, lambda: not win.job.running, 60)
    win.close()


if __name__ == "__main__":
    main()
