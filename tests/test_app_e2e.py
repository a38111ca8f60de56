"""End to end through the window (offscreen): open the demo folder, train a tiny detector in the worker, see
scores in the gallery, drag the threshold line and watch the confusion matrix change, label three images with
hotkeys and find them in the store, undo one, export.

Sized for a busy machine (other processes holding both cores, see benchmarks/suite_under_load.sh): every
wait polls for a condition with a generous limit (it returns as soon as the condition holds, so an idle
machine is not slowed), and no modal dialog can open: a test that fails mid-job still closes cleanly.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PySide6.QtCore import QPointF, QSettings, Qt
from PySide6.QtTest import QTest

from core.store import Store
from tests.conftest import TINY_VAE
from tests.test_threshold_panel import drag, table_counts

# Limits for waits on a loaded machine (ms). A wait ends as soon as its condition holds.
STORE_MS = 60_000  # the store thread opens a project or saves a write
JOB_MS = 240_000  # a tiny training + scoring job (seconds when idle)
STOP_MS = 60_000  # a cancelled job ends (one training step or scoring batch)


def quiet(win) -> list[tuple[str, str]]:
    """No modal box from this window: errors go to the status bar, the close confirmation answers yes.
    Returns the list of confirmations asked, for tests that check them."""
    asked: list[tuple[str, str]] = []
    win.setProperty("quiet_errors", True)

    def confirm(title: str, question: str) -> bool:
        asked.append((title, question))
        return True

    win.confirm = confirm
    return asked


@pytest.fixture
def window(qtbot, tmp_path, tiny_demo):
    from inspector_gui.main_window import MainWindow

    data = tmp_path / "parts"
    shutil.copytree(tiny_demo, data)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings)
    win.asked = quiet(win)
    qtbot.addWidget(win, before_close_func=stop_job)
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    win.open_path(data)
    qtbot.waitUntil(lambda: win.store is not None, timeout=STORE_MS)
    yield win
    if win.isVisible():
        win.close()


def stop_job(win) -> None:
    """A test that fails mid-training ends its job before pytest-qt closes the window."""
    if win.job is not None and win.job.running:
        win.job.stop(STOP_MS)


def training_under_way(win) -> bool:
    """The first training step was reported (the bar of a 100000-epoch run stays at 0 for a long time)."""
    return win.training.status.text().startswith("Training:")


def train_tiny(qtbot, win) -> None:
    win.training.set_settings("vae", {**TINY_VAE, "epochs": 3})
    win.training.train_button.click()
    qtbot.waitUntil(lambda: win.run is not None and win.run.model is not None, timeout=JOB_MS)
    qtbot.waitUntil(lambda: win.run.run_id is not None, timeout=STORE_MS)  # scores saved to the store


def test_open_train_threshold_label_undo_export(qtbot, window, tmp_path):
    win = window
    assert win.gallery.model.rowCount() == 22
    assert win.current_id is not None  # the first image is shown

    # -- train through the worker; the gallery gets every score ----------------------------------------
    train_tiny(qtbot, win)
    scores = win.gallery.model.scores()
    assert len(scores) == 22 and np.isfinite(scores).all()
    stored = win.store.scores(win.run.run_id)
    np.testing.assert_allclose(np.sort(stored), np.sort(scores), rtol=1e-6)
    assert win.viewer.component() == "M"

    # -- drag the histogram's threshold line: the confusion matrix follows, the release is stored ------
    win.tabs.setCurrentWidget(win.threshold)
    qtbot.waitExposed(win.threshold)
    panel = win.threshold
    model = panel.model
    lo, hi = model.score_range()
    model.set_thresholds(lo + 0.1 * (hi - lo))
    before = table_counts(panel)
    y_mid = panel.histogram.getPlotItem().getViewBox().viewRange()[1][1] / 2
    drag(qtbot, panel.histogram, QPointF(model.t1, y_mid), QPointF(lo + 0.9 * (hi - lo), y_mid))
    qtbot.waitUntil(lambda: table_counts(panel) != before, timeout=STORE_MS)
    def stored_t1():
        rec = win.store.threshold(win.run.run_id)
        return rec.t1 if rec else None

    qtbot.waitUntil(lambda: stored_t1() == pytest.approx(model.t1), timeout=STORE_MS)
    assert win.store.threshold(win.run.run_id).method == "manual"
    assert model.t1 > lo + 0.5 * (hi - lo)  # the line moved where it was dragged

    # -- label three images with hotkeys (auto-advance moves on), undo the last ---------------------------
    win.activateWindow()
    # From the gallery's first row, so that auto-advance has rows to move on to (after training the gallery is in
    # score order and the shown image may be the last one).
    win.step_image(-10_000)
    first = win.current_id
    labeled = []
    for key in (Qt.Key.Key_G, Qt.Key.Key_D, Qt.Key.Key_S):
        labeled.append(win.current_id)
        QTest.keyClick(win, key)
        qtbot.waitUntil(lambda i=labeled[-1]: win.store.label(i).source == "human", timeout=STORE_MS)
    assert labeled[0] == first and len(set(labeled)) == 3
    assert [win.store.label(i).label for i in labeled] == ["good", "defect", "suspicious"]
    qtbot.waitUntil(lambda: win.statusBar().currentMessage().startswith("Saved:"), timeout=STORE_MS)
    previous = win.store.history(labeled[2])[-2].new_label if len(win.store.history(labeled[2])) > 1 else "unlabeled"
    QTest.keyClick(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: win.store.label(labeled[2]).label == previous, timeout=STORE_MS)
    # the gallery shows the saved labels
    rows = [win.gallery.model.row_of(str(win.store.absolute_path(i))) for i in labeled]
    assert [win.gallery.model.label(r) for r in rows[:2]] == ["good", "defect"]

    # -- export through the dialog ------------------------------------------------------------------------
    from inspector_gui.export_dialog import ExportDialog

    dialog = ExportDialog(win.store, win.run.run_id, win)
    qtbot.addWidget(dialog)
    out = tmp_path / "export"
    dialog.target.setText(str(out))
    dialog.start()
    qtbot.waitUntil(lambda: dialog.result is not None, timeout=JOB_MS)
    assert (out / "good").is_dir() and any((out / "good").iterdir())
    assert (out / "manifest.csv").is_file()
    store_path = win.store.path
    live_ranges = dict(win.run.ranges)
    assert live_ranges and all(hi > lo for lo, hi in live_ranges.values())

    # -- close; every acknowledged label is on disk --------------------------------------------------------
    win.close()
    with Store.open(store_path, readonly=True) as store:
        assert store.label(labeled[0]).label == "good" and store.label(labeled[1]).label == "defect"
        assert store.label(labeled[2]).label == previous
        assert store.threshold(store.latest_run()) is not None
        # a reopened run colours its maps with the same shared ranges as the live one
        stored_ranges = store.run_info(store.latest_run()).metadata["map_ranges"]
        assert set(stored_ranges) == set(live_ranges)
        for name, (lo, hi) in live_ranges.items():
            assert stored_ranges[name] == pytest.approx([lo, hi])


def test_cancel_training_from_the_panel(qtbot, window):
    win = window
    win.training.set_settings("vae", {**TINY_VAE, "epochs": 100000})
    win.training.train_button.click()
    qtbot.waitUntil(lambda: training_under_way(win), timeout=JOB_MS)
    win.training.cancel_button.click()
    qtbot.waitUntil(lambda: win.job is not None and not win.job.running, timeout=STOP_MS)
    assert "Cancelled" in win.training.status.text() and win.run is None


def test_closing_during_training_asks_then_ends_the_job_without_a_dialog(qtbot, window):
    win = window
    win.training.set_settings("vae", {**TINY_VAE, "epochs": 100000})
    win.training.train_button.click()
    qtbot.waitUntil(lambda: training_under_way(win), timeout=JOB_MS)
    job = win.job
    win.confirm = lambda title, question: win.asked.append(title) or False  # "no": keep working
    win.close()
    assert win.isVisible() and job.running and win.asked == ["Training is running"]
    win.confirm = lambda title, question: True
    win.close()  # "yes": cancel, wait (bounded) and close; the job's last signals are delivered
    assert not win.isVisible() and not job.running
    assert "Cancelled" in win.training.status.text() and win.run is None


def test_corrupt_image_in_the_folder_is_reported_not_fatal(qtbot, tmp_path, tiny_demo):
    from inspector_gui.main_window import MainWindow

    data = tmp_path / "parts"
    shutil.copytree(tiny_demo, data)
    (data / "test" / "good" / "broken.png").write_bytes(b"not a png")
    win = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    quiet(win)
    qtbot.addWidget(win, before_close_func=stop_job)
    win.open_path(data)
    qtbot.waitUntil(lambda: win.store is not None, timeout=STORE_MS)
    broken = win.store.image_id(data / "test" / "good" / "broken.png")
    win.show_image_id(broken)
    assert "broken.png" in win.statusBar().currentMessage()
    train_tiny(qtbot, win)  # the rest of the folder trains and scores
    assert np.isfinite(win.gallery.model.scores()).sum() == 22
    win.close()


def test_viewer_preferences_persist_in_settings(qtbot, tmp_path):
    from inspector_gui.main_window import MainWindow

    settings = QSettings(str(tmp_path / "prefs.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings)
    quiet(win)
    qtbot.addWidget(win)
    win.viewer.set_colormap("viridis")
    win.viewer.set_opacity(0.3)
    win.close()
    again = MainWindow(QSettings(str(tmp_path / "prefs.ini"), QSettings.Format.IniFormat))
    quiet(again)
    qtbot.addWidget(again)
    assert again.viewer.colormap() == "viridis" and again.viewer.opacity() == pytest.approx(0.3, abs=0.01)
    again.close()
