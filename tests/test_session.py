"""The Qt-free review session (core.session): the window's state and store writes, tested without a display.

It opens a project, labels with undo, marks training images, decides what the threshold panel counts, runs
train / score jobs whose chunk writes go through the one store owner thread, and follows a growing run reading
only the rows that landed since it last looked."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from core.project import TooFewTrainingImages
from core.session import Events, ReviewSession
from core.session.review import SessionError
from tests.test_projects import FAST, flat_folder


class Recorder:
    """Every event of a session, in order (callbacks run on the owner or a job thread)."""

    def __init__(self, session: ReviewSession) -> None:
        self.seen: list[tuple[str, tuple]] = []
        self.threads: list[str] = []
        for name in ("opened", "failed", "labels_saved", "training_saved", "threshold_saved", "run_grew"):
            session.events.connect(name, lambda *args, n=name: self._add(n, args))

    def _add(self, name: str, args: tuple) -> None:
        self.seen.append((name, args))
        self.threads.append(threading.current_thread().name)

    def of(self, name: str) -> list[tuple]:
        return [args for n, args in self.seen if n == name]


@pytest.fixture
def session():
    s = ReviewSession()
    yield s
    s.shutdown()


@pytest.fixture
def flat(tiny_demo: Path, tmp_path: Path) -> Path:
    return flat_folder(tiny_demo, tmp_path / "dump")


def _frames(session: ReviewSession) -> list[int]:
    return [im.id for im in session.store.images()]


def _store_writes_on(session: ReviewSession, method: str) -> list[str]:
    """Wrap one Store write so each call records the thread it ran on."""
    plain = session.store.plain
    real = getattr(plain, method)
    threads: list[str] = []

    def spy(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    setattr(plain, method, spy)
    return threads


def test_open_label_undo_redo_on_the_owner_thread(session, flat):
    rec = Recorder(session)
    assert session.open(flat).result(30) is session
    assert rec.of("opened") == [(session,)] and session.store.n_images == len(list(flat.glob("*.png")))
    writes = _store_writes_on(session, "set_label")
    first = _frames(session)[0]
    saved = session.label(first, "defect", "scratch", "left edge").result(10)
    assert saved.label == "defect" and session.store.label(first).defect_type == "scratch"
    session.undo().result(10)
    assert session.store.label(first).label == "unlabeled"
    session.redo().result(10)
    assert session.store.label(first).label == "defect"
    last = session.undo()
    assert last is not None and session.undo() is None  # one step was recorded: undone, redone, undone
    last.result(10)
    # Every label write ran on the store's owner thread, none on the caller's (the window's) thread.
    assert len(writes) == 4 and all(t.startswith("store") for t in writes)
    assert threading.current_thread().name not in writes
    # The audit log keeps every change, the undo included (history is never rewritten).
    assert [e.new_label for e in session.store.history(first)] == ["defect", "unlabeled", "defect", "unlabeled"]
    assert [r[0][0].label for r in rec.of("labels_saved")] == ["defect", "unlabeled", "defect", "unlabeled"]


def test_a_failed_open_names_the_file_and_the_session_goes_on(session, flat, tmp_path):
    rec = Recorder(session)
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"not an hdf5 file at all")
    assert session.open(broken).result(30) is None
    (message,), = rec.of("failed")
    assert "broken.h5" in message and session.store is None
    with pytest.raises(SessionError, match="no project is open"):
        session.sets()
    assert session.open(flat).result(30) is session and session.store is not None


def test_training_marks_and_the_threshold_data_count_judged_images_only(session, flat):
    rec = Recorder(session)
    session.open(flat).result(30)
    ids = _frames(session)
    with pytest.raises(TooFewTrainingImages, match="0 images labeled good and marked for training; gmm needs"):
        session.training_job("gmm", FAST)  # refused before any work starts
    train, judged_good, judged_defect = ids[:8], ids[8:12], ids[12:15]
    assert session.mark_for_training(train, True).result(10) == 8
    assert rec.of("training_saved")[-1] == (train, True, 8)
    for i in judged_good:
        session.label(i, "good").result(10)
    for i in judged_defect:
        session.label(i, "defect").result(10)
    assert session.threshold_data() is None  # no run yet: the panel has nothing to count

    work = session.training_job("gmm", FAST)
    done = work(lambda *a: None, lambda: False)
    run = session.adopt(done)
    assert run.complete and np.isfinite(run.scores).all()
    data = session.threshold_data()
    # The 8 training images are out (NaN); 7 judged images carry their labels; the rest count as unlabeled.
    assert np.isnan(data.scores[train]).all() and np.isfinite(np.delete(data.scores, train)).all()
    assert data.n_train == 8 and data.n_judged == 7
    assert sorted(data.labels[judged_good]) == ["good"] * 4 and list(data.labels[judged_defect]) == ["defect"] * 3
    assert set(np.delete(data.labels, judged_good + judged_defect)) == {"unlabeled"}
    # A training image relabeled keeps out of the panel; stopping its training use makes it judged.
    assert session.judged_label(train[0], "good") == "unlabeled"
    session.mark_for_training(train[:1], False).result(10)
    assert session.judged_label(train[0], "good") == "good"


def test_job_chunks_are_written_by_the_owner_and_announced(session, flat):
    rec = Recorder(session)
    session.open(flat).result(30)
    ids = _frames(session)
    session.mark_for_training(ids[:8], True).result(10)
    appends = _store_writes_on(session, "append_to_run")
    work = session.training_job("gmm", FAST)
    # The job runs in its own thread, as the window's worker does.
    out: dict = {}
    worker = threading.Thread(target=lambda: out.setdefault("done", work(lambda *a: None, lambda: False)),
                              name="job")
    worker.start()
    worker.join(120)
    assert "done" in out
    assert appends and all(t.startswith("store") for t in appends)  # never the job thread
    grew = rec.of("run_grew")
    assert grew and all(args == (out["done"].run_id,) for args in grew)


def test_following_a_growing_run_reads_only_new_rows(session, flat):
    session.open(flat).result(30)
    store = session.store
    paths = [str(store.absolute_path(i)) for i in _frames(session)]
    run_id = store.begin_run("toy", {}, {}, "score", ["score"], [])
    store.append_to_run(run_id, paths[:5], {"score": np.arange(5.0)})
    starts: list[int] = []
    real = store.plain.run_rows_since

    def spy(rid, start):
        starts.append(start)
        return real(rid, start)

    store.plain.run_rows_since = spy
    run, new = session.follow_run(run_id)
    assert list(new) == [0, 1, 2, 3, 4] and not run.complete
    assert np.isnan(run.scores[5:]).all()
    store.append_to_run(run_id, paths[5:8], {"score": np.array([10.0, 11.0, 12.0])})
    store.finish_run(run_id)
    run, new = session.follow_run(run_id)
    assert list(new) == [5, 6, 7] and run.complete and starts == [0, 5]
    assert run.scores[:8].tolist() == [0, 1, 2, 3, 4, 10, 11, 12]
    assert session.follow_run(run_id)[1].size == 0  # nothing new: nothing read


def test_thresholds_resume_and_errors(session, flat, tmp_path):
    rec = Recorder(session)
    session.open(flat).result(30)
    assert session.set_threshold(1.0, 2.0, "manual") is None  # no run shown: nothing to attach it to
    with pytest.raises(SessionError, match="No interrupted run"):
        session.resume_job()
    bad = tmp_path / "model.ai"
    bad.write_bytes(b"garbage")
    with pytest.raises(SessionError, match="model.ai"):
        session.model_scoring_job(bad)
    ids = _frames(session)
    session.mark_for_training(ids[:8], True).result(10)
    done = session.training_job("gmm", FAST)(lambda *a: None, lambda: False)
    session.adopt(done)
    session.set_threshold(0.5, 0.7, "manual").result(10)
    assert rec.of("threshold_saved")[-1] == (done.run_id, 0.5, 0.7, "manual")
    assert session.store.threshold(done.run_id).t2 == 0.7
    # The saved model scores a new run of the project without retraining.
    model = session.store.path.parent / session.store.run_info(done.run_id).metadata["model_file"]
    again = session.model_scoring_job(model)(lambda *a: None, lambda: False)
    assert again.run_id != done.run_id and len(session.store.list_runs()) == 2


def test_a_broken_subscriber_does_not_stop_the_others():
    errors: list[str] = []
    events = Events(on_error=lambda name, tb: errors.append(name))
    got: list[int] = []
    events.connect("x", lambda v: 1 / 0)
    events.connect("x", got.append)
    events.emit("x", 7)
    assert got == [7] and errors == ["x"]


def test_a_model_only_in_memory_is_saved_so_its_run_can_resume(session, flat):
    """The demo hands the window a trained model that has no file: scoring saves it in the project's models/
    folder first, so a cancelled run of it resumes like any other."""
    from core.data.image_source import decode_for
    from core.detectors.errors import Cancelled
    from core.detectors.registry import create

    session.open(flat).result(30)
    det = create("gmm", **FAST)
    det.fit([decode_for(str(session.store.absolute_path(i)), 32) for i in _frames(session)[:8]])
    assert "model_file" not in det.metadata
    with pytest.raises(Cancelled):
        session.scoring_job(det)(lambda *a: None, lambda: True)  # cancelled before the first chunk
    assert (session.store.path.parent / det.metadata["model_file"]).is_file()


def test_a_run_under_other_lighting_warns_once_and_keeps_the_warning(session, flat):
    """Frames of a darker shift (x0.8) scored with a model trained on the day's frames: one drift_warning event
    naming the figures, kept in the run's metadata for whoever opens the project later; the day's own run has
    none."""
    import cv2

    warned: list[tuple] = []
    session.events.connect("drift_warning", lambda *args: warned.append(args))
    session.open(flat).result(30)
    session.mark_for_training(_frames(session)[:8], True).result(10)
    done = session.training_job("gmm", FAST)(lambda *a: None, lambda: False)
    assert warned == [] and "drift_warning" not in session.store.run_info(done.run_id).metadata
    night = flat / "night"
    night.mkdir()
    for img in sorted(flat.glob("*.png")):
        cv2.imwrite(str(night / img.name), (cv2.imread(str(img)) * 0.8).astype(np.uint8))
    dark = session.scoring_job(done.detector, folder=night)(lambda *a: None, lambda: False)
    assert len(warned) == 1 and warned[0][0] == dark.run_id
    assert "darker" in warned[0][1] and "training" in warned[0][1]
    saved = session.store.run_info(dark.run_id).metadata["drift_warning"]
    assert saved["darker"] >= 0.9 * saved["n_images"]
