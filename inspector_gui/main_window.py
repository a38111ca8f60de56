"""The review window: gallery (left), viewer + labeling bar (centre), training and threshold panels
(right). It is a view of a core.session.ReviewSession: the session owns the open project, the shown run and
the label history and does every store write; the window turns user actions into session calls and the
session's events (queued to the UI thread by session_bridge.py) into widget updates. It computes nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QRect, QSettings, Qt, QTimer, Slot
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.data.images import ImageLoadError, decode_image, decode_mask
from core.detectors.gan.samples import SAMPLE_GRID_KEY
from core.detectors.results import MapGeometry
from core.label_history import LabelHistory
from core.session import ReviewSession, RunState
from core.session.store_owner import OwnedStore
from core.store import StoreError
from core.threshold import ThresholdModel
from inspector_gui.about import app_icon, show_about, window_title
from inspector_gui.gallery import GalleryWidget
from inspector_gui.label_bar import LabelBar
from inspector_gui.morph_strip import STRIP_KEY, MorphStripPanel
from inspector_gui.review_loop import ReviewLoop
from inspector_gui.run_jobs import RunJobs
from inspector_gui.samples_panel import SamplesPanel
from inspector_gui.session_bridge import SessionBridge
from inspector_gui.shortcuts import SHORTCUTS, help_html
from inspector_gui.threshold_panel import ThresholdPanel
from inspector_gui.training_panel import TrainingPanel
from inspector_gui.viewer import ImageViewer
from inspector_gui.window_geometry import clamp_geometry, dock_widths, first_start_geometry
from inspector_gui.workers import Job

# How long closing the window waits for a cancelled job to end (a training step, or a scoring batch).
CLOSE_WAIT_MS = 30000
# Scores arriving during a run are shown at most this often (each look reads only the newly landed rows).
PROGRESSIVE_REFRESH_MS = 500


def headless() -> bool:
    """No person can answer a dialog: offscreen / minimal platforms (tests, CI, screenshots)."""
    return QGuiApplication.platformName() in ("offscreen", "minimal")


def ask_user(parent: QWidget, title: str, question: str) -> bool:
    """The default `MainWindow.confirm`: a Yes/No box; yes without asking where nobody could answer."""
    if headless():
        return True
    return QMessageBox.question(parent, title, question) == QMessageBox.StandardButton.Yes


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None, session: ReviewSession | None = None):
        super().__init__()
        self.setWindowTitle(window_title())
        self.setWindowIcon(app_icon())
        self.settings = settings or QSettings("AnomalyInspector", "AnomalyInspector")
        self.session = session or ReviewSession()
        self.job: Job | None = None
        self.jobs = RunJobs(self)  # runs the session's train / score jobs in workers (run_jobs.py)
        self.current_id: int | None = None
        self._growing_run: str | None = None  # a run whose new chunks wait for the next progressive refresh
        self._drift_run: str | None = None  # the run whose lighting warning the training panel shows
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(PROGRESSIVE_REFRESH_MS)
        self._refresh_timer.timeout.connect(self._show_growing_run)
        self.after_open: list = []  # callbacks waiting for the store (opening is asynchronous)
        # Asked before closing with a job running: (title, question) -> yes. Tests replace it, so no modal
        # box can wait for an answer nobody gives.
        self.confirm: Callable[[str, str], bool] = lambda title, question: ask_user(self, title, question)
        self._build_widgets()
        self._build_actions()
        self._connect_session()
        self.loop = ReviewLoop(self)  # the train / retrain banner and the "review next" order (review_loop.py)
        self._restore_geometry()
        self._restore_viewer_settings()

    # ================================================================== construction
    def _build_widgets(self) -> None:
        self.viewer = ImageViewer()
        self.viewer.imageClicked.connect(self.show_strips_at)
        self._shown_image: np.ndarray | None = None
        self.label_bar = LabelBar()
        self.label_bar.labelRequested.connect(self.apply_label)
        centre = QWidget()
        layout = QVBoxLayout(centre)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.viewer, 1)
        layout.addWidget(self.label_bar)
        self.setCentralWidget(centre)

        self.gallery = GalleryWidget()
        self.gallery.currentImageChanged.connect(self.show_image)
        dock = self.gallery_dock = QDockWidget("Images", self)
        dock.setObjectName("gallery_dock")
        dock.setWidget(self.gallery)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)

        self.training = TrainingPanel()
        self.training.trainRequested.connect(self.start_training)
        self.training.cancelRequested.connect(self.cancel_job)
        self.threshold_model = ThresholdModel(np.zeros(0), np.zeros(0, dtype=object))
        self.threshold = ThresholdPanel(self.threshold_model)
        self.threshold.committed.connect(self.commit_threshold)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.training, "Training")
        self.tabs.addTab(self.threshold, "Threshold")
        self.samples = SamplesPanel()  # a tab only for runs of GAN-based models (_show_samples)
        right = self.model_dock = QDockWidget("Model", self)
        right.setObjectName("model_dock")
        right.setWidget(self.tabs)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, right)
        self.morphs = MorphStripPanel()
        self.morph_dock = QDockWidget("Morph strips", self)
        self.morph_dock.setObjectName("morph_dock")
        self.morph_dock.setWidget(self.morphs)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.morph_dock)
        self.morph_dock.hide()  # only detectors with latent traversals (OIAD) provide strips
        # The strips need the window's full width (source, reconstruction and 8 morphs of 96 px): the bottom
        # dock area takes both bottom corners, under the gallery and the Model dock too.
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.statusBar().showMessage("Open an image folder (Ctrl+O) or run `anomaly-inspector demo`.")

    def _build_actions(self) -> None:
        handlers = {
            "label_good": lambda: self.apply_label("good"),
            "label_defect": lambda: self.apply_label("defect"),
            "label_suspicious": lambda: self.apply_label("suspicious"),
            "label_clear": lambda: self.apply_label("unlabeled"),
            "use_for_training": lambda: self.mark_for_training(True),
            "stop_training_use": lambda: self.mark_for_training(False),
            "next_image": lambda: self.step_image(+1),
            "previous_image": lambda: self.step_image(-1),
            "undo": self.undo,
            "redo": self.redo,
            "toggle_overlay": self.toggle_overlay,
            "toggle_mask": self.toggle_mask,
            "open_folder": self.choose_folder,
            "export": self.open_export_dialog,
            "score_folder": self.jobs.choose_model_and_folder,
            "resume_run": self.resume_interrupted_run,
            "help": self.show_help,
        }
        self.actions_by_name: dict[str, QAction] = {}
        menu = self.menuBar().addMenu("&File")
        edit = self.menuBar().addMenu("&Label")
        helpm = self.menuBar().addMenu("&Help")
        for sc in SHORTCUTS:
            action = QAction(sc.text, self)
            action.setShortcuts([QKeySequence(k) for k in sc.keys])
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.triggered.connect(handlers[sc.action])
            self.addAction(action)
            self.actions_by_name[sc.action] = action
            file_actions = ("open_folder", "export", "score_folder", "resume_run")
            target = menu if sc.action in file_actions else helpm if sc.action == "help" else edit
            target.addAction(action)
        helpm.addAction("About Anomaly Inspector", lambda: show_about(self))
        quit_action = QAction("Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        menu.addAction(quit_action)

    def _connect_session(self) -> None:
        self.bridge = SessionBridge(self.session, self)
        queued = Qt.ConnectionType.QueuedConnection  # events come from the store thread or a job thread
        self.bridge.opened.connect(self._on_session_opened, queued)
        self.bridge.labelsSaved.connect(self._on_labels_saved, queued)
        self.bridge.trainingSaved.connect(self._on_training_saved, queued)
        self.bridge.thresholdSaved.connect(self._on_threshold_saved, queued)
        self.bridge.failed.connect(self._on_store_failed, queued)
        self.bridge.runGrew.connect(self._on_run_grew, queued)
        self.bridge.driftWarning.connect(self._on_drift_warning, queued)

    # The session's state, read by the panels and the tests (the window keeps none of its own).
    @property
    def store(self) -> OwnedStore | None:
        return self.session.store

    @property
    def run(self) -> RunState | None:
        return self.session.run

    @property
    def history(self) -> LabelHistory:
        return self.session.history

    def _restore_geometry(self) -> None:
        """The saved size and layout, kept within the screen it lands on; on first start (nothing saved) a
        size from the available screen area, centred, with the docks in proportion."""
        saved = self.settings.value("window/geometry", b"")
        if saved and self.restoreGeometry(saved):
            if not self.isMaximized() and not self.isFullScreen():
                self.setGeometry(clamp_geometry(self.geometry(), self._available(self.geometry())))
        else:
            self.setGeometry(first_start_geometry(self._available()))
        if not self.restoreState(self.settings.value("window/state", b"")):
            self.size_docks()

    def _available(self, near: QRect | None = None) -> QRect:
        """The available geometry (without task bars) of the screen `near` lies on, else the primary one."""
        screen = QGuiApplication.screenAt(near.center()) if near is not None else None
        screen = screen or self.screen() or QApplication.primaryScreen()
        return screen.availableGeometry()

    def size_docks(self) -> None:
        """First-start proportions (a saved layout overrides them): two or three columns of tiles on the
        left, the histogram beside the ROC curve on the right when there is room, the viewer between."""
        gallery, model = dock_widths(self.width(), self.gallery.minimumSizeHint().width(),
                                     self.model_dock.minimumSizeHint().width())
        self.resizeDocks([self.gallery_dock, self.model_dock], [gallery, model], Qt.Orientation.Horizontal)

    def _restore_viewer_settings(self) -> None:
        """Colour map, overlay opacity and normalisation as the user last left them (bad values: defaults)."""
        for key, setter, convert in (("viewer/colormap", self.viewer.set_colormap, str),
                                     ("viewer/opacity", self.viewer.set_opacity, float),
                                     ("viewer/normalization", self.viewer.set_normalization, str)):
            value = self.settings.value(key)
            if value is None:
                continue
            try:
                setter(convert(value))
            except (ValueError, TypeError):
                pass  # a settings file from another version: keep the default

    # ================================================================== opening
    @Slot()
    def choose_folder(self) -> None:
        start = str(self.settings.value("paths/last_folder", str(Path.home())))
        folder = QFileDialog.getExistingDirectory(self, "Open image folder", start)
        if folder:
            self.open_path(folder)

    def open_path(self, path: str | Path) -> None:
        """A folder of images (any layout) or a store file; the session opens it on its store thread."""
        path = Path(path)
        if path.is_dir():
            self.settings.setValue("paths/last_folder", str(path))
        self.session.open(path)
        self.statusBar().showMessage(f"Opening {path} …")

    @Slot(object)
    def _on_session_opened(self, _session: Any = None) -> None:
        """A project is open: fill the gallery, show its latest run (say so when it was interrupted)."""
        store = self.store
        if store is None:
            return
        self._fill_gallery()
        self.setWindowTitle(f"{window_title()} — {store.root}")
        self.statusBar().showMessage(f"Opened {store.path} ({store.n_images} images)")
        if self.run is not None:
            self._show_scores()
            self._show_samples(self.run.run_id)
            rec = store.threshold(self.run.run_id)
            if rec:
                self.threshold_model.set_thresholds(rec.t1, rec.t2, rec.method)
            if not self.run.complete:
                self.statusBar().showMessage(
                    f"Opened {store.path}: run {self.run.run_id} was interrupted after "
                    f"{store.run_info(self.run.run_id).n_images} images; File > Resume interrupted run "
                    "(Ctrl+Shift+R) continues it.")
        self._refresh_threshold_model()
        if store.n_images:
            self._select_view_row(0)
        callbacks, self.after_open = self.after_open, []
        for callback in callbacks:
            callback()

    def _fill_gallery(self) -> None:
        store = self.store
        images, labels = store.images(), store.labels()
        self.gallery.model.set_items(
            [str(store.absolute_path(im.id)) for im in images], [im.split for im in images],
            [lb.label for lb in labels], [lb.defect_type for lb in labels])
        self.label_bar.set_defect_types([lb.defect_type for lb in labels] + [im.source_defect for im in images])

    # ================================================================== training and scoring (run_jobs.py)
    def start_training(self, name: str, settings: dict) -> None:
        self.jobs.start_training(name, settings)

    def score_with(self, detector: Any) -> None:
        self.jobs.score_with(detector)

    def score_folder(self, model_path: str | Path, folder: str | Path | None = None,
                     resume: str | None = None) -> None:
        self.jobs.score_folder(model_path, folder, resume)

    def resume_interrupted_run(self) -> None:
        self.jobs.resume_interrupted_run()

    def cancel_job(self) -> None:
        self.jobs.cancel_job()

    def refresh_view_of_run(self, run_id: str, **adopt: Any) -> None:
        """Show run `run_id` as the store has it now: only the rows that landed since the last look are read
        (the gallery is rebuilt first when images were added to the project meanwhile)."""
        if self.store is None:
            return
        if self.gallery.model.rowCount() != self.store.n_images:
            self._fill_gallery()
        run, _new = self.session.follow_run(run_id, **adopt)
        # Another run shown, or the job that grew this one ended: the lighting warning kept with the run in the
        # store (a run's final figures replace the ones said while it was scored).
        if run_id != self._drift_run or adopt:
            self._drift_run = run_id
            saved = self.store.run_info(run_id).metadata.get("drift_warning")
            self.training.show_drift(saved["message"] if saved else None)
            self._show_samples(run_id)
        self._show_scores()
        rec = self.store.threshold(run_id)
        if rec:
            self.threshold_model.set_thresholds(rec.t1, rec.t2, rec.method)
        self._refresh_threshold_model()

    @Slot(str)
    def _on_run_grew(self, run_id: str) -> None:
        """A chunk landed: show it at the next refresh (at most every PROGRESSIVE_REFRESH_MS)."""
        self._growing_run = run_id
        if not self._refresh_timer.isActive():
            self._refresh_timer.start()

    @Slot(str, str)
    def _on_drift_warning(self, run_id: str, message: str) -> None:
        self._drift_run = run_id
        self.training.show_drift(message)
        self.statusBar().showMessage(message.split(". ")[0] + ".")

    def _show_samples(self, run_id: str) -> None:
        """The Samples tab with the generated images the run's model kept (GAN-based models), else no tab."""
        has = self.samples.set_grid(self.store.run_info(run_id).metadata.get(SAMPLE_GRID_KEY))
        index = self.tabs.indexOf(self.samples)
        if has and index < 0:
            self.tabs.addTab(self.samples, "Samples")
        elif not has and index >= 0:
            self.tabs.removeTab(index)

    def _show_growing_run(self) -> None:
        run_id, self._growing_run = self._growing_run, None
        if run_id is not None:
            self.refresh_view_of_run(run_id)

    def _show_scores(self) -> None:
        run = self.run
        self.gallery.model.set_scores(run.scores)
        self.viewer.set_components(list(run.components), run.default_component)

    # ================================================================== viewing
    @Slot(str)
    def show_image(self, path: str) -> None:
        if self.store is None:
            return
        self.show_image_id(self.store.image_id(path))

    def show_image_id(self, image_id: int) -> None:
        self.current_id = image_id
        path = self.store.absolute_path(image_id)
        try:
            image = decode_image(path)
        except ImageLoadError as exc:
            self.viewer.clear()
            self.statusBar().showMessage(str(exc))
            return
        record = self.store.image(image_id)
        mask = None
        if record.mask_path:
            try:
                mask = decode_mask(self.store.root / record.mask_path)
            except ImageLoadError:
                mask = None
        maps, geometry = self._maps_for(image_id, image.shape[:2])
        if self.run is not None:
            for comp, (lo, hi) in self.run.ranges.items():
                self.viewer.set_shared_range(comp, lo, hi)
        self.viewer.set_image(image, maps, geometry, mask, title=Path(path).name)
        self._shown_image = image
        strips = self._strips_for(image_id)
        self._show_strips(strips)
        lab = self.store.label(image_id)
        self.label_bar.show_label(lab.label, lab.defect_type, lab.note)

    def _maps_for(self, image_id: int, shape: tuple[int, int]) -> tuple[dict | None, MapGeometry | None]:
        try:
            return self.session.maps_for(image_id, shape)
        except (StoreError, OSError, ValueError) as exc:  # a run that did not score this image, or a damaged map
            self.statusBar().showMessage(str(exc))
            return None, None

    def _strips_for(self, image_id: int) -> list | None:
        return self.session.extras_for(image_id, STRIP_KEY)

    def _show_strips(self, strips: list | None) -> None:
        self.morphs.set_strips(strips)
        self.morph_dock.setVisible(bool(strips))
        # The outline comes from the viewer's own geometry: the detector may have seen a reduced decode.
        self.viewer.set_outline(self.viewer.cell_box(strips[0].get("cell")) if strips else None)

    @Slot(float, float)
    def show_strips_at(self, x: float, y: float) -> None:
        """A click on the image: the morph strips of the patch under (x, y), computed by the run's model (OIAD's
        strips_at) — a few hundred decodes, a fraction of a second."""
        model = self.run.model if self.run is not None else None
        if self._shown_image is None or model is None or not hasattr(model, "strips_at"):
            return
        if self.job is not None and self.job.running:
            self.statusBar().showMessage("Morph strips of another patch: wait until the running job ends.")
            return
        cell = self.viewer.cell_at(x, y)
        if cell is None and getattr(model, "mode", "image") != "image":
            return
        stored = self._strips_for(self.current_id) if self.current_id is not None else None
        if stored and stored[0].get("cell") is not None and tuple(stored[0]["cell"]) == cell:
            self._show_strips(stored)  # the scored patch itself: the strips (and SC) the run computed
            return
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            strips = model.strips_at(self._shown_image, cell)
        except Exception as exc:  # noqa: BLE001 - a failed look must not end the review
            self.statusBar().showMessage(f"Morph strips not computed: {exc}")
            return
        finally:
            QApplication.restoreOverrideCursor()
        self._show_strips(strips)

    def step_image(self, delta: int) -> None:
        """Next / previous image in the gallery's current order and filter."""
        current = self.gallery.view.currentIndex()
        row = current.row() + delta if current.isValid() else 0
        self._select_view_row(row)

    def _select_view_row(self, row: int) -> None:
        proxy = self.gallery.proxy
        if proxy.rowCount() == 0:
            return
        row = min(max(row, 0), proxy.rowCount() - 1)
        self.gallery.view.setCurrentIndex(proxy.index(row, 0))

    @Slot()
    def toggle_overlay(self) -> None:
        self.viewer.set_opacity(0.0 if self.viewer.opacity() > 0 else 0.5)

    @Slot()
    def toggle_mask(self) -> None:
        self.viewer.set_mask_visible(not self.viewer.mask_visible())

    # ================================================================== labeling
    @Slot(str)
    def apply_label(self, label: str) -> None:
        if self.store is None or self.current_id is None:
            self.statusBar().showMessage("Select an image to label.")
            return
        defect_type = self.label_bar.defect_type.currentText().strip() if label in ("defect", "suspicious") else ""
        self.session.label(self.current_id, label, defect_type, self.label_bar.note.text())
        if self.label_bar.auto_advance.isChecked():
            self.step_image(+1)

    def selected_image_ids(self) -> list[int]:
        """The gallery's selected images (the current one when nothing is selected), as store ids."""
        if self.store is None:
            return []
        paths = self.gallery.view.selected_paths()
        ids = [self.store.image_id(p) for p in paths] if paths else []
        if not ids and self.current_id is not None:
            ids = [self.current_id]
        return ids

    def mark_for_training(self, use: bool) -> None:
        """Use the selected images for training (they are labeled good) or stop using them (judged)."""
        ids = self.selected_image_ids()
        if not ids:
            self.statusBar().showMessage("Select images in the gallery first.")
            return
        self.session.mark_for_training(ids, use)

    @Slot(list, bool, int)
    def _on_training_saved(self, image_ids: list, use: bool, n_train: int) -> None:
        paths = [str(self.store.absolute_path(i)) for i in image_ids]
        self.gallery.model.set_split(paths, "train" if use else "test")
        self._refresh_threshold_model()
        what = "now used for training" if use else "no longer used for training (judged)"
        self.statusBar().showMessage(f"{len(image_ids)} image{'s' if len(image_ids) != 1 else ''} {what}; "
                                     f"the training set has {n_train} images.")

    @Slot()
    def undo(self) -> None:
        if self.store is not None and self.session.undo():
            self.statusBar().showMessage("Undo …")

    @Slot()
    def redo(self) -> None:
        if self.store is not None:
            self.session.redo()

    @Slot(list)
    def _on_labels_saved(self, records: list) -> None:
        if self.store is None:
            return
        for rec in records:
            row = self.gallery.model.row_of(str(self.store.absolute_path(rec.image_id)))
            self.gallery.model.set_label(row, rec.label, rec.defect_type)
            # The threshold panel counts judged images only: a good image used for training stays out of it.
            if self.run is not None:  # before the first run the panel holds no images
                self.threshold_model.set_label(rec.image_id, self.session.judged_label(rec.image_id, rec.label))
            if rec.image_id == self.current_id:
                self.label_bar.show_label(rec.label, rec.defect_type, rec.note)
        if len(records) == 1:
            rec = records[0]
            name = Path(self.store.image(rec.image_id).path).name
            self.statusBar().showMessage(f"Saved: {name} → {rec.label}" +
                                         (f" ({rec.defect_type})" if rec.defect_type else ""))

    # ================================================================== thresholds
    def _refresh_threshold_model(self) -> None:
        """Threshold panel data from the session: judged images only (training images are left out
        altogether, not drawn as "unlabeled": the model has fit them, so counting them biases a threshold low)."""
        data = self.session.threshold_data()
        if data is not None:
            self.threshold_model.set_data(data.scores, data.labels, left_out=data.n_train)

    @Slot(float, float, str)
    def commit_threshold(self, t1: float, t2: float, method: str) -> None:
        self.gallery.model.set_review_band(t1, t2)
        self.session.set_threshold(t1, t2, method)

    @Slot(str, float, float, str)
    def _on_threshold_saved(self, run_id: str, t1: float, t2: float, method: str) -> None:
        self.statusBar().showMessage(f"Threshold saved: T1 {t1:.4g}, T2 {t2:.4g} ({method})")

    # ================================================================== dialogs, errors, closing
    @Slot()
    def open_export_dialog(self) -> None:
        if self.store is None:
            self.error("Open a project first.")
            return
        from inspector_gui.export_dialog import ExportDialog

        ExportDialog(self.store, self.run.run_id if self.run else None, self).exec()

    @Slot()
    def show_help(self) -> None:
        QMessageBox.information(self, "Shortcuts", help_html())

    @Slot(str)
    def _on_store_failed(self, message: str) -> None:
        self.error(message)

    def error(self, message: str) -> None:
        self.statusBar().showMessage(message)
        if not self.property("quiet_errors") and not headless():
            QMessageBox.warning(self, "Anomaly Inspector", message)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt's name)
        if self.job is not None and self.job.running:
            if not self.confirm("Training is running", "A job is still running. Cancel it and close?"):
                event.ignore()
                return
            # Bounded: a job that does not stop in time is left to end on its own (workers.py keeps its
            # thread alive), so closing never hangs.
            self.job.stop(CLOSE_WAIT_MS)
        self.gallery.model.shutdown()
        self.settings.setValue("viewer/colormap", self.viewer.colormap())
        self.settings.setValue("viewer/opacity", self.viewer.opacity())
        self.settings.setValue("viewer/normalization", self.viewer.normalization())
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self._refresh_timer.stop()
        self.session.shutdown()
        event.accept()
