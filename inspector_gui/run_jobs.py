"""The window's jobs that make runs: train on the project's training set and score into the store, score a
folder with a saved model, resume an interrupted run, cancel. Each runs in a worker (inspector_gui.workers.Job);
chunks land in the store as they are scored and the window shows them as they arrive. The window (`win`) keeps
the state the rest of it reads: the open store, the current run and the running job."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QFileDialog

from core.detectors.base import DetectorError
from core.detectors.registry import detector_class
from core.evaluate import StoredRun, score_keeping_extras, train_into_store
from core.modelio import load_detector
from core.project import TooFewTrainingImages, sets_from_store, store_items
from inspector_gui.run_view import RunView
from inspector_gui.workers import Job


class RunJobs:
    def __init__(self, win: Any) -> None:
        self.win = win  # the MainWindow
        self._last_partial_refresh = 0.0

    def start_training(self, name: str, settings: dict) -> None:
        """Train on the project's training set (good images marked for training), then score every image.
        Too few training images is said plainly, with how to mark more, before anything starts."""
        if self.win.store is None:
            self.win.error("Open an image folder first.")
            return
        sets, items = sets_from_store(self.win.store), store_items(self.win.store)
        try:
            sets.require_training(detector_class(name).min_train_images, name)
        except TooFewTrainingImages as exc:
            self.win.error(str(exc))
            return

        store = self.win.store

        def work(progress, should_stop):
            return train_into_store(store, sets, name, settings, items, progress=progress, should_stop=should_stop,
                                    log=lambda m: None)

        self._run_job(f"train {name}", work)

    def score_with(self, detector: Any) -> None:
        """Score every image of the open project with an already trained detector (the demo hands its model
        over this way), in a worker, then show it like a fresh training run."""
        if self.win.store is None:
            self.win.after_open.append(lambda: self.score_with(detector))
            return
        self._score_into_project(detector)

    def choose_model_and_folder(self) -> None:
        """File > Score folder with model: a saved model, then a folder inside the project (a new day's frames)."""
        if self.win.store is None:
            self.win.error("Open a project first: the scores go into its store.")
            return
        start = str(self.win.settings.value("paths/last_model", str(self.win.store.root)))
        model, _ = QFileDialog.getOpenFileName(self.win, "Model to score with", start,
                                                "Models (*.ai *.pt);;All files (*)")
        if not model:
            return
        folder = QFileDialog.getExistingDirectory(self.win, "Folder to score (inside the project)",
                                                  str(self.win.store.root))
        if folder:
            self.win.settings.setValue("paths/last_model", model)
            self.score_folder(model, folder)

    def score_folder(self, model_path: str | Path, folder: str | Path | None = None,
                     resume: str | None = None) -> None:
        """Score a folder (default: the whole project) with a saved model into a new run of the project, a
        chunk at a time: scores appear in the gallery and the threshold panel as chunks land, a cancel keeps
        what was scored, and `resume` (a run id) continues an interrupted run. New images are added first."""
        if self.win.store is None:
            self.win.error("Open a project first.")
            return
        try:
            detector = load_detector(model_path)
        except (DetectorError, OSError, ValueError) as exc:
            self.win.error(f"{model_path}: {exc}")
            return
        self._score_into_project(detector, Path(folder).resolve() if folder else None, resume)

    def _score_into_project(self, detector: Any, root: Path | None = None, resume: str | None = None) -> None:
        store = self.win.store

        def work(progress, should_stop):
            if root is not None and root != store.root.resolve():
                store.add_folder(root)
            items = [it for it in store_items(store)
                     if root is None or Path(it.path).resolve().is_relative_to(root)]
            return score_keeping_extras(store, detector, items, run_id=resume, progress=progress,
                                        should_stop=should_stop, log=lambda m: None)

        self._run_job(f"score {detector.name}", work)

    def resume_interrupted_run(self) -> None:
        """File > Resume interrupted run: the newest incomplete run, with the model saved when it was trained."""
        if self.win.store is None:
            self.win.error("Open a project first.")
            return
        incomplete = [r for r in self.win.store.list_runs() if not r.complete]
        if not incomplete:
            self.win.statusBar().showMessage("No interrupted run in this project.")
            return
        run = incomplete[-1]
        model = run.metadata.get("model_file")
        if not model or not (self.win.store.path.parent / model).is_file():
            self.win.error(f"{run.run_id} cannot be resumed: its model file ({model or 'not recorded'}) is missing. "
                        "Use File > Score folder with model.")
            return
        self.score_folder(self.win.store.path.parent / model, resume=run.run_id)

    def _on_scoring_progress(self, done: int, total: int, info: dict) -> None:
        """Scores that have landed in the store show at once (at most twice a second: a reload reads them all)."""
        run_id = info.get("run")
        now = time.monotonic()
        if run_id and self.win.store is not None and now - self._last_partial_refresh > 0.5:
            self._last_partial_refresh = now
            self.win.refresh_view_of_run(run_id)

    def _run_job(self, name: str, work: Any, on_done: Any = None) -> None:
        if self.win.job is not None and self.win.job.running:
            self.win.error("A job is already running.")
            return
        self.win.job = Job(name, work, self.win)
        self.win.job.progress.connect(self.win.training.job_progress)
        self._last_partial_refresh = 0.0
        self.win.job.progress.connect(self._on_scoring_progress)
        self.win.job.finished.connect(on_done or self._on_trained)
        self.win.job.failed.connect(self._on_job_failed)
        self.win.job.cancelled.connect(self._on_job_cancelled)
        self.win.training.job_started()
        self.win.tabs.setCurrentWidget(self.win.training)
        self.win.job.start()

    def cancel_job(self) -> None:
        if self.win.job is not None and self.win.job.running:
            self.win.job.cancel()
            self.win.statusBar().showMessage("Cancelling …")

    def _on_trained(self, done: StoredRun) -> None:
        """A training or scoring job ended: its run is complete in the store; show it with the live model."""
        self.win.run = RunView(done.run_id, done.detector.name, "", {}, model=done.detector, extras=done.extras)
        self.win.refresh_view_of_run(done.run_id)
        info = self.win.store.run_info(done.run_id)
        rep = done.detector.fit_report if done.n_train else None
        self.win.training.job_ended(
            f"Trained {info.detector} in {rep.seconds:.1f} s ({rep.epochs} epochs, stopped by {rep.stopped_by}); "
            f"scored {info.n_images} images ({done.run_id})." if rep else
            f"Scored {info.n_images} images with {info.detector} into the project ({done.run_id}).")
        self.win.statusBar().showMessage(f"Scores saved to the project ({done.run_id}).")
        t1, t2 = self.win.threshold_model.t1, self.win.threshold_model.t2
        if math.isfinite(t1) and math.isfinite(t2):  # the threshold the panel chose goes with the run
            self.win.requestThreshold.emit(done.run_id, t1, t2, self.win.threshold_model.method)
        self.win.tabs.setCurrentWidget(self.win.threshold)
        if self.win.current_id is not None:
            self.win.show_image_id(self.win.current_id)

    def _on_job_failed(self, message: str, tb: str) -> None:
        self.win.training.job_ended(f"Failed: {message}")
        self.win.error(message)

    def _on_job_cancelled(self) -> None:
        latest = self.win.store.list_runs()[-1] if self.win.store is not None and self.win.store.list_runs() else None
        if latest is not None and not latest.complete:  # what was scored is kept; show it
            self.win.refresh_view_of_run(latest.run_id)
            self.win.training.job_ended(f"Cancelled; {latest.n_images} scored images are kept ({latest.run_id}); "
                                    "File > Resume interrupted run continues it.")
        else:
            self.win.training.job_ended("Cancelled.")
        self.win.statusBar().showMessage("Cancelled.")
