"""ReviewSession: one open project as a person reviews it, without Qt.

It owns the store (every write on its owner thread, see store_owner.py), the run being shown (run_state.py)
and the label history (undo / redo as new audited changes). It decides what the threshold panel counts (the
judged images only, core.project's rules) and builds the work functions that train and score, which a view
runs in a worker thread; their chunks go into the store through the owner as they are scored.

Events (core.session.events), emitted on the owner thread or a job thread:
  opened(session)                     a project is open (store, images, the latest run)
  failed(message)                     a request failed; the message names the file; the session goes on
  labels_saved(records)               LabelRecords now on disk
  training_saved(ids, use, n_train)   images now used for training (use=True) or judged; training set size
  threshold_saved(run_id, t1, t2, method)
  run_grew(run_id)                    a job committed a chunk of run_id (follow_run reads what is new)
  drift_warning(run_id, message)      the images a job scores lie outside the training images' lighting (once
                                      per run, with the figures)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.data.folders import FolderError
from core.detectors.base import Detector, DetectorError, ProgressFn, StopFn
from core.detectors.registry import detector_class
from core.detectors.results import MapGeometry, geometry_from_layout
from core.evaluate import StoredRun, save_beside_store, score_keeping_extras, train_into_store
from core.label_history import LabelHistory, LabelState, LabelStep
from core.modelio import load_detector
from core.project import ImageSets, role, sets_from_store, store_items
from core.project.labeled_split import require_for, sets_for, trained_ids
from core.project.opening import open_project
from core.session.events import Events
from core.session.run_state import RunState
from core.session.store_owner import OwnedStore, StoreOwner
from core.store import LabelRecord, RunInfo, StoreError

Work = Callable[[ProgressFn, StopFn], StoredRun]


class SessionError(ValueError):
    """A request the session cannot do as asked; the message says why in the user's terms."""


@dataclass
class ThresholdData:
    """What the threshold panel counts: the shown run's scores with training images left out (NaN: the model
    has fit them, so counting them would bias a threshold low) and the labels of judged images by image id
    (everything else "unlabeled")."""

    scores: np.ndarray
    labels: np.ndarray
    n_train: int
    n_judged: int


class ReviewSession:
    def __init__(self, owner: StoreOwner | None = None) -> None:
        self.owner = owner or StoreOwner()
        self.events = Events(on_error=lambda name, tb: None)
        self.store: OwnedStore | None = None
        self.run: RunState | None = None
        self.history = LabelHistory()
        self._lock = threading.RLock()
        self._shut_down = False
        self._trained_cache: tuple[str, np.ndarray | None] | None = None  # (run id, its supervised training ids)

    # ================================================================== opening and closing
    def open(self, target: str | Path) -> Future:
        """Open a store file, or the project store of an image folder (created and filled from its layout on
        first use; images added since are added). Emits `opened`, or `failed` with the reason."""
        return self.owner.submit(self._open, Path(target))

    def _open(self, target: Path) -> ReviewSession | None:
        try:
            self._close()
            # Files that do not decode stay in the project: the gallery shows each as a broken tile with its
            # reason (and opening a big folder does not decode every file twice).
            store = open_project(target, check_images=False)
        except (StoreError, FolderError, OSError, ValueError) as exc:
            self.events.emit("failed", str(exc))
            return None
        with self._lock:
            self.store = OwnedStore(store, self.owner)
            self.history = LabelHistory()
            latest = store.latest_run()
            self.run = RunState.from_store(store, latest) if latest else None
        self.events.emit("opened", self)
        return self

    def close(self) -> Future:
        return self.owner.submit(self._close)

    def _close(self) -> None:
        with self._lock:
            if self.store is not None:
                self.store.plain.close()
            self.store, self.run = None, None

    def shutdown(self) -> None:
        """Close the store on its owner thread, then end the thread (a second call does nothing)."""
        if self._shut_down:
            return
        self._shut_down = True
        self.close().result()
        self.owner.shutdown()

    def require_store(self) -> OwnedStore:
        if self.store is None:
            raise SessionError("no project is open: open an image folder or a store first")
        return self.store

    # ================================================================== what trains, what is judged
    def sets(self) -> ImageSets:
        return sets_from_store(self.require_store())

    def threshold_data(self) -> ThresholdData | None:
        """The threshold panel's data for the shown run (None before the first run)."""
        if self.store is None or self.run is None:
            return None
        sets = self.sets()
        scores = np.array(self.run.scores, dtype=np.float64)
        labels = np.array([lb.label for lb in self.store.labels()], dtype=object)
        trained = self._supervised_trained_ids()
        if trained is not None:  # a supervised run: judged = labeled images its model did not train on
            train_ids = trained
            judged_ids = np.setdiff1d(np.flatnonzero(np.isin(labels, ("good", "defect"))), trained)
        else:
            train_ids, judged_ids = np.asarray(sets.train_ids, np.int64), np.asarray(sets.judged_ids, np.int64)
        scores[train_ids[train_ids < len(scores)]] = np.nan
        judged = np.full(len(labels), "unlabeled", dtype=object)
        judged[judged_ids] = labels[judged_ids]
        return ThresholdData(scores[:len(labels)], judged, len(train_ids), len(judged_ids))

    def judged_label(self, image_id: int, label: str) -> str:
        """The label the threshold panel counts for one image: its label if judged, else "unlabeled"."""
        store = self.require_store()
        trained = self._supervised_trained_ids()
        if trained is not None:
            return label if label in ("good", "defect") and image_id not in set(trained.tolist()) else "unlabeled"
        return label if role(label, store.image(image_id).split) == "judged" else "unlabeled"

    def _supervised_trained_ids(self) -> np.ndarray | None:
        """The images the shown run's supervised model trained on (labeled_split.trained_ids); None for an
        unsupervised run. Read once per run."""
        run = self.run
        if run is None or run.run_id is None or self.store is None:
            return None
        cached = self._trained_cache
        if cached is not None and cached[0] == run.run_id:
            return cached[1]
        ids = trained_ids(self.store, self.store.run_info(run.run_id).metadata)
        self._trained_cache = (run.run_id, ids)
        return ids

    # ================================================================== labels
    def label(self, image_id: int, label: str, defect_type: str = "", note: str = "") -> Future:
        """Label one image (an undoable step); the write happens on the owner thread."""
        store = self.require_store()
        before = store.label(image_id)
        step = LabelStep(image_id, LabelState(before.label, before.defect_type, before.note),
                         LabelState(label, defect_type, note))
        self.history.record(step)
        return self._write_label(image_id, step.after)

    def undo(self) -> Future | None:
        step = self.history.undo()
        return self._write_label(*step) if step else None

    def redo(self) -> Future | None:
        step = self.history.redo()
        return self._write_label(*step) if step else None

    def _write_label(self, image_id: int, state: LabelState) -> Future:
        store = self.require_store()

        def write() -> LabelRecord | None:
            try:
                rec = store.plain.set_label(image_id, state.label, defect_type=state.defect_type or None,
                                            note=state.note)
            except (StoreError, OSError, ValueError) as exc:
                self.events.emit("failed", f"label not saved: {exc}")
                return None
            self.events.emit("labels_saved", [rec])
            return rec

        return self.owner.submit(write)

    def mark_for_training(self, image_ids: list[int], use: bool) -> Future:
        """Use the images for training (labeled good first, by a person) or stop using them (they are judged
        then). One commit for the labels, one for the splits; both are on disk when the events leave."""
        store = self.require_store()
        ids = [int(i) for i in image_ids]

        def write() -> int | None:
            try:
                if use:
                    relabel = [i for i in ids if store.plain.label(i).label != "good"]
                    records = store.plain.set_labels([(i, "good", None, None) for i in relabel])
                    if records:
                        self.events.emit("labels_saved", list(records))
                store.plain.set_split(ids, "train" if use else "test")
            except (StoreError, OSError, ValueError) as exc:
                self.events.emit("failed", f"training set not saved: {exc}")
                return None
            n_train = len(sets_from_store(store.plain).train_ids)
            self.events.emit("training_saved", ids, use, n_train)
            return n_train

        return self.owner.submit(write)

    # ================================================================== runs and thresholds
    def follow_run(self, run_id: str, *, model: Any = None, extras: dict | None = None) -> tuple[RunState, np.ndarray]:
        """Show run `run_id`: the rows it committed since the last look when it is the shown run, else the
        whole run. Returns the run and the image ids read now."""
        store = self.require_store()
        with self._lock:
            run = self.run
            if run is not None and run.run_id == run_id:
                if model is not None:
                    run.model = model
                if extras is not None:
                    run.extras = extras
                return run, run.follow(store)
            keep = run if run is not None and run.run_id == run_id else None
            self.run = RunState.from_store(store, run_id, model=model or (keep.model if keep else None),
                                           extras=extras)
            return self.run, np.flatnonzero(np.isfinite(self.run.scores))

    def maps_for(self, image_id: int, shape: tuple[int, int]) -> tuple[dict | None, MapGeometry | None]:
        """The shown run's maps of one image and where they lie on it (None, None without a run)."""
        run = self.run
        if self.store is None or run is None or run.run_id is None:
            return None, None
        maps = self.store.maps(run.run_id, image_id)  # StoreError: not scored by this run (the view says so)
        return maps, geometry_from_layout(run.map_layout, run.params, tuple(shape))

    def extras_for(self, image_id: int, key: str) -> Any:
        run = self.run
        return None if run is None else run.extras.get(image_id, {}).get(key)

    def set_threshold(self, t1: float, t2: float, method: str, run_id: str | None = None) -> Future | None:
        """Record the pass / fail thresholds with the run (the shown one by default)."""
        run_id = run_id or (self.run.run_id if self.run is not None else None)
        if run_id is None or self.store is None:
            return None
        store = self.store

        def write() -> None:
            try:
                rec = store.plain.set_threshold(run_id, t1, t2, method)
            except (StoreError, OSError, ValueError) as exc:
                self.events.emit("failed", f"threshold not saved: {exc}")
                return
            self.events.emit("threshold_saved", run_id, rec.t1, rec.t2, rec.method)

        return self.owner.submit(write)

    def interrupted_run(self) -> RunInfo | None:
        """The newest run that was cancelled or cut off by a crash (resumable), if any."""
        if self.store is None:
            return None
        incomplete = [r for r in self.store.list_runs() if not r.complete]
        return incomplete[-1] if incomplete else None

    # ================================================================== jobs (run by a view in a worker thread)
    def training_job(self, name: str, settings: dict[str, Any]) -> Work:
        """Train `name` on the project's training set, save the model in the project, score every image into a
        growing run. Too few training images (TooFewTrainingImages) is raised now, before anything starts."""
        store = self.require_store()
        cls = detector_class(name)
        sets, items = sets_for(sets_from_store(store), cls), store_items(store)
        require_for(sets, cls, name)  # a supervised detector: enough good and defect labels

        def work(progress: ProgressFn, should_stop: StopFn) -> StoredRun:
            return train_into_store(store, sets, name, settings, items, progress=self._announcing(progress),
                                    should_stop=should_stop, log=lambda m: None)

        return work

    def scoring_job(self, detector: Detector, folder: str | Path | None = None, resume: str | None = None) -> Work:
        """Score the project (or a folder inside it: a new day's frames, added first) with a trained detector
        into a new run, or continue run `resume`."""
        store = self.require_store()
        root = Path(folder).resolve() if folder else None

        def work(progress: ProgressFn, should_stop: StopFn) -> StoredRun:
            recorded = detector.metadata.get("model_file")
            if not recorded or not (store.path.parent / recorded).is_file():
                save_beside_store(detector, store)  # a model only in memory (the demo's): saved, so a run resumes
            if root is not None and root != store.root.resolve():
                store.add_folder(root)
            items = [it for it in store_items(store) if root is None or Path(it.path).resolve().is_relative_to(root)]
            return score_keeping_extras(store, detector, items, run_id=resume, progress=self._announcing(progress),
                                        should_stop=should_stop, log=lambda m: None)

        return work

    def model_scoring_job(self, model_path: str | Path, folder: str | Path | None = None,
                          resume: str | None = None) -> Work:
        """scoring_job with a saved model; a model that does not load is a SessionError naming the file."""
        self.require_store()
        try:
            detector = load_detector(model_path)
        except (DetectorError, OSError, ValueError) as exc:
            raise SessionError(f"{model_path}: {exc}") from exc
        # The run records the file it was scored with (relative to the project when inside it), to resume with.
        model_path = Path(model_path).resolve()
        folder_of_store = self.require_store().path.parent.resolve()
        detector.metadata["model_file"] = (model_path.relative_to(folder_of_store).as_posix()
                                           if model_path.is_relative_to(folder_of_store) else str(model_path))
        return self.scoring_job(detector, folder, resume)

    def resume_job(self) -> tuple[Work, RunInfo]:
        """Continue the newest interrupted run with the model saved when it was trained."""
        store = self.require_store()
        run = self.interrupted_run()
        if run is None:
            raise SessionError("No interrupted run in this project.")
        model = run.metadata.get("model_file")
        if not model or not (store.path.parent / model).is_file():
            raise SessionError(f"{run.run_id} cannot be resumed: its model file ({model or 'not recorded'}) is "
                               "missing. Use File > Score folder with model.")
        return self.model_scoring_job(store.path.parent / model, resume=run.run_id), run

    def adopt(self, done: StoredRun) -> RunState:
        """A job ended: its run becomes the shown run, with the live model and the extras it kept."""
        run, _ = self.follow_run(done.run_id, model=done.detector, extras=done.extras)
        return run

    def _announcing(self, progress: ProgressFn) -> ProgressFn:
        """Progress that also says when a chunk of a run has landed (`run_grew`)."""
        seen: dict[str, int] = {}

        def report(done: int, total: int, info: dict) -> None:
            progress(done, total, info)
            run_id, chunks = info.get("run"), info.get("chunks")
            if run_id and chunks and seen.get(run_id) != chunks:  # a chunk was committed since the last report
                seen[run_id] = chunks
                self.events.emit("run_grew", run_id)
            drift = info.get("drift")
            if run_id and drift and seen.get(f"drift:{run_id}") is None:  # once per run
                seen[f"drift:{run_id}"] = 1
                self.events.emit("drift_warning", run_id, drift)

        return report
