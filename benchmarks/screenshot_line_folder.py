"""The window on a flat camera dump of 5 MP frames, as a line engineer would use it, with screenshots:

    python benchmarks/line_scale_bench.py --detectors padim   # generates /tmp/line-scale/frames-2000 first
    Xvfb :97 -screen 0 1920x1080x24 &  DISPLAY=:97 python benchmarks/screenshot_line_folder.py --frames 300

A flat folder of N test frames (symlinks into the line benchmark's MVTec-layout folder, renamed frame_00000.jpg
..., so their names say nothing) plus its 30 training frames is opened; the 30 good training frames are selected
in the gallery and marked for training (T), the defective frames among the first test frames are labeled defect
and a few good ones good; then padim is trained from the panel and the run is watched while it scores. Writes
docs/screenshots/line_folder_scoring.png (scores arriving) and line_folder_threshold.png (threshold on judged
images only), and prints the timings.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.screenshot_window import shoot, wait_until  # noqa: E402  (the same X-screen shots)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=Path("/tmp/line-scale/frames-2000"),
                    help="the line benchmark's generated folder (MVTec layout)")
    ap.add_argument("--frames", type=int, default=300, help="test frames in the flat folder")
    ap.add_argument("--label", type=int, default=60, help="test frames the engineer labels (the first ones)")
    args = ap.parse_args()

    import numpy as np
    from PySide6.QtCore import QItemSelection, QItemSelectionModel, QSettings
    from PySide6.QtWidgets import QApplication

    from inspector_gui.main_window import MainWindow

    work = Path(tempfile.mkdtemp(prefix="ai-line-"))
    dump = work / "camera3"
    dump.mkdir()
    train = sorted((args.source / "train" / "good").glob("*.jpg"))
    tests = sorted((args.source / "test").glob("*/*.jpg"), key=lambda p: p.name)[:args.frames]
    kinds = {}
    for k, src in enumerate(train + tests):
        dst = dump / f"frame_{k:05d}.jpg"
        os.symlink(src, dst)
        kinds[str(dst)] = "train" if k < len(train) else src.parent.name

    app = QApplication.instance() or QApplication([])
    win = MainWindow(QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat))
    win.setProperty("quiet_errors", True)
    win.resize(1880, 1020)
    win.move(0, 0)
    win.show()
    t0 = time.perf_counter()
    win.open_path(dump)
    wait_until(app, lambda: win.store is not None and win.gallery.model.rowCount() == len(kinds), 600)
    print(f"opened {len(kinds)} frames in {time.perf_counter() - t0:.1f} s")

    view, model = win.gallery.view, win.gallery.model
    selection = QItemSelection()
    for path, kind in kinds.items():
        if kind == "train":
            idx = view.model().mapFromSource(model.index(model.row_of(path), 0))
            selection.select(idx, idx)
    view.selectionModel().select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect)
    win.mark_for_training(True)
    wait_until(app, lambda: sum(im.split == "train" for im in win.store.images()) == len(train), 60)
    labeled = [p for p, k in kinds.items() if k != "train"][:args.label]
    win.label_bar.auto_advance.setChecked(False)
    for path in labeled:
        win.show_image(path)
        win.apply_label("good" if kinds[path] == "good" else "defect")
    wait_until(app, lambda: sum(lb.source == "human" for lb in win.store.labels()) == len(train) + len(labeled), 60)
    print(f"marked {len(train)} frames for training and labeled {len(labeled)}")

    win.training.set_settings("padim", {})
    # The event loop's responsiveness while the run is trained and scored (progressive refreshes included): a
    # 20 ms timer, and the gaps between its ticks.
    from PySide6.QtCore import QTimer

    ticks: list[float] = []
    heartbeat = QTimer()
    heartbeat.timeout.connect(lambda: ticks.append(time.perf_counter()))
    heartbeat.start(20)
    t1 = time.perf_counter()
    win.training.train_button.click()
    def share_scored() -> float:
        return float(np.isfinite(win.gallery.model.scores()).mean())

    wait_until(app, lambda: win.run is not None and 0.3 < share_scored() < 0.9, 900)
    win.tabs.setCurrentWidget(win.training)
    shoot(app, win, "line_folder_scoring.png")
    wait_until(app, lambda: win.job is not None and not win.job.running, 1800)
    print(f"trained and scored in {time.perf_counter() - t1:.1f} s")
    heartbeat.stop()
    gaps = np.diff(ticks) * 1000
    print(f"UI event loop during the run: {len(gaps)} ticks of 20 ms, gap p50 {np.percentile(gaps, 50):.0f} ms, "
          f"p99 {np.percentile(gaps, 99):.0f} ms, max {gaps.max():.0f} ms")
    win.tabs.setCurrentWidget(win.threshold)
    win.threshold.model.apply_preset("f1_max")
    win.show_image(labeled[0])
    shoot(app, win, "line_folder_threshold.png")
    win.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
