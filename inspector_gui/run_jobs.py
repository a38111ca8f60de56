"""The window's jobs that make runs: train on the project's training set and score into the store, score a
folder with a saved model, resume an interrupted run, cancel. The session (core.session) builds each job's
work; this runs it in a worker (inspector_gui.workers.Job) and turns its outcome into panel updates. Chunks
land in the store as they are scored and the session's `run_grew` events show them as they arrive."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QFileDialog

from core.detectors.base import DetectorError
from core.evaluate import StoredRun
from core.project import TooFewTrainingImages
from core.session.review import SessionError
from inspector_gui.workers import Job


class RunJobs:
    def __init__(self, win: Any) -> None:
        self.win = win  # the MainWindow (its session, panels and status bar)

    @property
    def session(self) -> Any:
        return self.win.session

    def start_training(self, name: str, settings: dict) -> None:
        """Train on the project's training set (good images marked for training), then score every image.
        Too few training images is said plainly, with how to mark more, before anything starts."""
        if self.win.store is None:
            self.win.error("Open an image folder first.")
            return
        try:
            work = self.session.training_job(name, settings)
        except TooFewTrainingImages as exc:  # said in the panel and the status bar, never a blocking box
            self.win.training.status.setText(str(exc))
            self.win.statusBar().showMessage(str(exc))
            return
        except (DetectorError, SessionError) as exc:
            self.win.error(str(exc))
            return
        self._run_job(f"train {name}", work)

    def score_with(self, detector: Any) -> None:
        """Score every image of the open project with an already trained detector (the demo hands its model
        over this way), in a worker, then show it like a fresh training run."""
        if self.win.store is None:
            self.win.after_open.append(lambda: self.score_with(detector))
            return
        self._run_job(f"score {detector.name}", self.session.scoring_job(detector))

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
        chunk at a time: a cancel keeps what was scored, and `resume` (a run id) continues an interrupted run.
        New images are added first."""
        if self.win.store is None:
            self.win.error("Open a project first.")
            return
        try:
            work = self.session.model_scoring_job(model_path, folder, resume)
        except SessionError as exc:
            self.win.error(str(exc))
            return
        self._run_job(f"score {Path(model_path).name}", work)

    def resume_interrupted_run(self) -> None:
        """File > Resume interrupted run: the newest incomplete run, with the model saved when it was trained."""
        if self.win.store is None:
            self.win.error("Open a project first.")
            return
        if self.session.interrupted_run() is None:
            self.win.statusBar().showMessage("No interrupted run in this project.")
            return
        try:
            work, run = self.session.resume_job()
        except SessionError as exc:
            self.win.error(str(exc))
            return
        self._run_job(f"resume {run.run_id}", work)

    def _run_job(self, name: str, work: Any) -> None:
        if self.win.job is not None and self.win.job.running:
            self.win.error("A job is already running.")
            return
        self.win.job = Job(name, work, self.win)
        self.win.job.progress.connect(self.win.training.job_progress)
        self.win.job.finished.connect(self._on_done)
        self.win.job.failed.connect(self._on_job_failed)
        self.win.job.cancelled.connect(self._on_job_cancelled)
        self.win.training.job_started()
        self.win.tabs.setCurrentWidget(self.win.training)
        self.win.job.start()

    def cancel_job(self) -> None:
        if self.win.job is not None and self.win.job.running:
            self.win.job.cancel()
            self.win.statusBar().showMessage("Cancelling …")

    def _on_done(self, done: StoredRun) -> None:
        """A training or scoring job ended: its run is complete in the store; show it with the live model."""
        win = self.win
        win.refresh_view_of_run(done.run_id, model=done.detector, extras=done.extras)
        info = win.store.run_info(done.run_id)
        rep = done.detector.fit_report if done.n_train else None
        win.training.job_ended(
            f"Trained {info.detector} in {rep.seconds:.1f} s ({rep.epochs} epochs, stopped by {rep.stopped_by}); "
            f"scored {info.n_images} images ({done.run_id})." if rep else
            f"Scored {info.n_images} images with {info.detector} into the project ({done.run_id}).")
        win.statusBar().showMessage(f"Scores saved to the project ({done.run_id}).")
        t1, t2 = win.threshold_model.t1, win.threshold_model.t2
        if math.isfinite(t1) and math.isfinite(t2):  # the threshold the panel chose goes with the run
            self.session.set_threshold(t1, t2, win.threshold_model.method, done.run_id)
        win.tabs.setCurrentWidget(win.threshold)
        if win.current_id is not None:
            win.show_image_id(win.current_id)

    def _on_job_failed(self, message: str, tb: str) -> None:
        self.win.training.job_ended(f"Failed: {message}")
        self.win.error(message)

    def _on_job_cancelled(self) -> None:
        store = self.win.store
        runs = store.list_runs() if store is not None else []
        latest = runs[-1] if runs else None
        if latest is not None and not latest.complete:  # what was scored is kept; show it
            self.win.refresh_view_of_run(latest.run_id)
            self.win.training.job_ended(f"Cancelled; {latest.n_images} scored images are kept ({latest.run_id}); "
                                        "File > Resume interrupted run continues it.")
        else:
            self.win.training.job_ended("Cancelled.")
        self.win.statusBar().showMessage("Cancelled.")

