"""The window on a flat camera dump, from labeling to a threshold: nothing trains until the engineer marks
good images for training; after training, the threshold panel counts only judged images (labeled and not
used for training), and its confusion matrix follows a dragged threshold."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QItemSelection, QItemSelectionModel, QSettings, Qt
from PySide6.QtTest import QTest

from core.project import project_store_path, sets_from_store
from core.store import Store
from inspector_gui.gallery_model import GalleryRole
from tests.test_projects import flat_folder


@pytest.fixture
def flat_window(qtbot, tmp_path, tiny_demo):
    from inspector_gui.main_window import MainWindow

    data = flat_folder(tiny_demo, tmp_path / "dump")
    frames = sorted(tiny_demo.glob("t*/*/*.png"))
    kinds = {str(data / f"frame_{k:03d}.png"): ("good" if p.parent.name == "good" else "defect")
             for k, p in enumerate(frames)}
    win = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    win.setProperty("quiet_errors", True)  # errors go to the status bar, never a modal box
    qtbot.addWidget(win, before_close_func=_stop_job)
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    win.open_path(data)
    qtbot.waitUntil(lambda: win.store is not None, timeout=30000)
    yield win, data, kinds
    if win.isVisible():
        win.close()


def _stop_job(win) -> None:
    if win.job is not None and win.job.running:
        win.job.cancel()
        win.job.wait(60000)


def _select(win, paths: list[str]) -> None:
    view = win.gallery.view
    proxy, model = view.model(), win.gallery.model
    selection = QItemSelection()
    for p in paths:
        idx = proxy.mapFromSource(model.index(model.row_of(p), 0))
        selection.select(idx, idx)
    view.selectionModel().select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect)


def test_flat_folder_label_mark_train_and_threshold_on_judged_images(qtbot, flat_window):
    win, data, kinds = flat_window
    assert win.gallery.model.rowCount() == 22 and project_store_path(data).is_file()

    # Nothing marked for training: the Train button says so plainly and starts nothing.
    win.training.set_settings("gmm", {"image_size": 32})
    win.training.train_button.click()
    qtbot.waitUntil(lambda: "marked for training" in win.statusBar().currentMessage(), timeout=5000)
    assert win.job is None

    good = [p for p, k in kinds.items() if k == "good"]
    defect = [p for p, k in kinds.items() if k == "defect"]
    # Select twelve good frames in the gallery and press T: labeled good and used for training.
    _select(win, good[:12])
    win.activateWindow()
    QTest.keyClick(win, Qt.Key.Key_T)
    qtbot.waitUntil(lambda: len(sets_from_store(win.store).train) == 12, timeout=10000)
    assert all(win.store.label(p).label == "good" and win.store.label(p).source == "human" for p in good[:12])
    gallery = win.gallery.model
    qtbot.waitUntil(lambda: {gallery.data(gallery.index(gallery.row_of(p), 0), GalleryRole.SplitRole.value)
                             for p in good[:12]} == {"train"}, timeout=10000)  # the tiles show it

    # The other four good frames and the six defects are labeled one by one (judged).
    for path, label in [(p, "good") for p in good[12:]] + [(p, "defect") for p in defect]:
        win.show_image(path)
        win.apply_label(label)
    qtbot.waitUntil(lambda: len(sets_from_store(win.store).judged) == 10, timeout=10000)

    win.training.train_button.click()
    qtbot.waitUntil(lambda: win.run is not None and win.run.model is not None, timeout=120000)
    qtbot.waitUntil(lambda: win.run.run_id is not None, timeout=30000)
    assert win.run.model.metadata["n_train"] == 12
    assert np.isfinite(win.gallery.model.scores()).all()  # every frame scored, trained or not

    # The threshold panel counts the ten judged frames only, not the twelve it trained on.
    model = win.threshold_model
    assert len(model.group_scores("good")) == 4 and len(model.group_scores("defect")) == 6
    assert len(model.group_scores("unlabeled")) == 0  # the 12 training frames are not drawn at all
    before = model.stats()
    assert (before.n_left_out, before.n_unscored) == (12, 0)  # left out on purpose, not "waiting for scores"
    assert "12 training images left out" in win.threshold.auto_label.text()
    lo, hi = model.score_range()
    model.set_thresholds(lo + 0.9 * (hi - lo))
    after = model.stats()
    assert sum(before.counts["good"].values()) == sum(after.counts["good"].values()) == 4
    assert before.counts != after.counts  # a moved threshold changes the confusion matrix

    # Stop using one for training: it is judged from then on, in the store and in the panel.
    _select(win, [good[0]])
    QTest.keyClick(win, Qt.Key.Key_T, Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: len(sets_from_store(win.store).train) == 11, timeout=10000)
    qtbot.waitUntil(lambda: len(model.group_scores("good")) == 5, timeout=5000)
    store_path = win.store.path
    win.close()
    with Store.open(store_path, readonly=True) as store:
        assert store.image(Path(good[0])).split == "test" and store.image(Path(good[1])).split == "train"


def test_score_a_new_days_folder_with_a_saved_model_into_the_project(qtbot, flat_window, tmp_path):
    win, data, kinds = flat_window
    good = [p for p, k in kinds.items() if k == "good"]
    _select(win, good[:8])
    win.mark_for_training(True)
    qtbot.waitUntil(lambda: len(sets_from_store(win.store).train) == 8, timeout=10000)
    win.training.set_settings("gmm", {"image_size": 32})
    win.training.train_button.click()
    qtbot.waitUntil(lambda: win.run is not None and win.run.run_id is not None, timeout=120000)
    model = tmp_path / "gmm.ai"
    win.run.model.save(model)

    day2 = data / "day2"
    day2.mkdir()
    for k, src in enumerate(sorted(kinds)[:5]):
        shutil.copy(src, day2 / f"next_{k}.png")
    win.score_folder(model, day2)
    qtbot.waitUntil(lambda: win.job is not None and not win.job.running, timeout=120000)
    qtbot.waitUntil(lambda: win.gallery.model.rowCount() == 27, timeout=10000)  # the new frames joined
    runs = win.store.list_runs()
    assert len(runs) == 2 and runs[-1].complete and runs[-1].n_images == 5
    assert win.run.run_id == runs[-1].run_id
    scores = win.gallery.model.scores()
    assert np.isfinite(scores).sum() == 5  # this run scored the new day only
    assert "Scored 5 images" in win.training.status.text()


def test_a_cancelled_run_keeps_its_scores_and_resumes_from_the_window(qtbot, flat_window, monkeypatch):
    win, data, kinds = flat_window
    # Twice the frames, so scoring takes two chunks (32 + 12): the cancel lands between them.
    for src in sorted(kinds):
        shutil.copy(src, data / f"copy_{Path(src).name}")
    win.open_path(data)
    qtbot.waitUntil(lambda: win.store is not None and win.gallery.model.rowCount() == 44, timeout=30000)
    good = [p for p, k in kinds.items() if k == "good"]
    _select(win, good[:8])
    win.mark_for_training(True)
    qtbot.waitUntil(lambda: len(sets_from_store(win.store).train) == 8, timeout=10000)

    # The engineer presses Cancel once the first chunk is stored: done from the worker thread (where the job
    # reads its stop flag), because the window would see that progress only after the fast second chunk.
    import core.session.review as review

    real = review.train_into_store

    def cancelled_after_one_chunk(store, sets, name, params, items, *, progress, should_stop, log):
        stored = {"run": False}

        def watch(done, total, info):
            # The first chunk (32 frames) is scored; it is stored before the next chunk looks at the flag.
            stored["run"] = stored["run"] or (info.get("stage") == "scoring" and done >= 32)
            progress(done, total, info)

        return real(store, sets, name, params, items, progress=watch, log=log,
                    should_stop=lambda: should_stop() or stored["run"])

    monkeypatch.setattr(review, "train_into_store", cancelled_after_one_chunk)
    win.training.set_settings("gmm", {"image_size": 32})
    win.training.train_button.click()
    qtbot.waitUntil(lambda: win.job is not None and not win.job.running, timeout=120000)
    (run,) = win.store.list_runs()
    assert not run.complete and run.n_images == 32 and run.metadata["model_file"].startswith("models/")
    assert "32 scored images are kept" in win.training.status.text()
    assert np.isfinite(win.gallery.model.scores()).sum() == 32  # the gallery shows what was scored

    win.resume_interrupted_run()
    qtbot.waitUntil(lambda: win.job is not None and not win.job.running, timeout=120000)
    (run,) = win.store.list_runs()
    assert run.complete and run.n_images == 44
    qtbot.waitUntil(lambda: np.isfinite(win.gallery.model.scores()).sum() == 44, timeout=10000)
