"""The review window: gallery (left), viewer + labeling bar (centre), training and threshold panels
(right). It wires widgets to core calls and the store service; it computes nothing itself."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QRect, QSettings, Qt, Signal, Slot
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

from core.data.folders import FolderError, ImageFolder, scan_folder
from core.data.images import ImageLoadError, decode_image, decode_mask
from core.detectors.results import MapGeometry, geometry_from_layout
from core.label_history import LabelHistory, LabelState, LabelStep
from core.project import role, sets_from_store
from core.store import Store
from core.threshold import ThresholdModel
from inspector_gui.about import app_icon, show_about, window_title
from inspector_gui.gallery import GalleryWidget
from inspector_gui.label_bar import LabelBar
from inspector_gui.morph_strip import STRIP_KEY, MorphStripPanel
from inspector_gui.run_jobs import RunJobs
from inspector_gui.run_view import RunView
from inspector_gui.shortcuts import SHORTCUTS, help_html
from inspector_gui.store_service import StoreService
from inspector_gui.threshold_panel import ThresholdPanel
from inspector_gui.training_panel import TrainingPanel
from inspector_gui.viewer import ImageViewer
from inspector_gui.window_geometry import clamp_geometry, dock_widths, first_start_geometry
from inspector_gui.workers import Job

# How long closing the window waits for a cancelled job to end (a training step, or a scoring batch).
CLOSE_WAIT_MS = 30000


def headless() -> bool:
    """No person can answer a dialog: offscreen / minimal platforms (tests, CI, screenshots)."""
    return QGuiApplication.platformName() in ("offscreen", "minimal")


def ask_user(parent: QWidget, title: str, question: str) -> bool:
    """The default `MainWindow.confirm`: a Yes/No box; yes without asking where nobody could answer."""
    if headless():
        return True
    return QMessageBox.question(parent, title, question) == QMessageBox.StandardButton.Yes


class MainWindow(QMainWindow):
    # Requests to the store thread (queued connections: the service lives in another thread).
    requestOpen = Signal(str, str)
    requestLabel = Signal(int, str, str, str)
    requestTraining = Signal(list, bool)
    requestThreshold = Signal(str, float, float, str)

    def __init__(self, settings: QSettings | None = None):
        super().__init__()
        self.setWindowTitle(window_title())
        self.setWindowIcon(app_icon())
        self.settings = settings or QSettings("AnomalyInspector", "AnomalyInspector")
        self.store: Store | None = None
        self.folder: ImageFolder | None = None
        self.run: RunView | None = None
        self.job: Job | None = None
        self.jobs = RunJobs(self)  # the jobs that train and score (run_jobs.py)
        self.history = LabelHistory()
        self.current_id: int | None = None
        self.after_open: list = []  # callbacks waiting for the store (opening is asynchronous)
        # Asked before closing with a job running: (title, question) -> yes. Tests replace it, so no modal
        # box can wait for an answer nobody gives.
        self.confirm: Callable[[str, str], bool] = lambda title, question: ask_user(self, title, question)
        self._build_widgets()
        self._build_actions()
        self._connect_service()
        self._restore_geometry()
        self._restore_viewer_settings()

    # ================================================================== construction
    def _build_widgets(self) -> None:
        self.viewer = ImageViewer()
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

    def _connect_service(self) -> None:
        self.service = StoreService()
        self.requestOpen.connect(self.service.open_project)
        self.requestLabel.connect(self.service.set_label)
        self.requestTraining.connect(self.service.set_training)
        self.requestThreshold.connect(self.service.set_threshold)
        self.service.opened.connect(self._on_store_opened)
        self.service.labelSaved.connect(self._on_label_saved)
        self.service.trainingSaved.connect(self._on_training_saved)
        self.service.thresholdSaved.connect(self._on_threshold_saved)
        self.service.failed.connect(self._on_store_failed)

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
        """A folder of images (any layout) or a store file; the store is opened in the store thread."""
        path = Path(path)
        try:
            if path.is_dir():
                self.folder = scan_folder(path)
                self.settings.setValue("paths/last_folder", str(path))
                self.requestOpen.emit(str(path), self.folder.layout)
            else:
                self.requestOpen.emit(str(path), "")
        except FolderError as exc:
            self.error(str(exc))
            return
        self.statusBar().showMessage(f"Opening {path} …")

    @Slot(object)
    def _on_store_opened(self, store: Store, load_latest: bool = True) -> None:
        self.store = store
        if self.folder is None:
            try:
                self.folder = scan_folder(store.root)
            except FolderError as exc:
                self.error(str(exc))
        images = store.images()
        labels = store.labels()
        self.gallery.model.set_items(
            [str(store.absolute_path(im.id)) for im in images], [im.split for im in images],
            [lb.label for lb in labels], [lb.defect_type for lb in labels])
        self.label_bar.set_defect_types([lb.defect_type for lb in labels] + [im.source_defect for im in images])
        self.setWindowTitle(f"{window_title()} — {store.root}")
        self.statusBar().showMessage(f"Opened {store.path} ({len(images)} images)")
        latest = store.latest_run() if load_latest else None
        if latest:
            self._load_run_from_store(latest)
            if not self.run.complete:
                self.statusBar().showMessage(
                    f"Opened {store.path}: run {latest} was interrupted after {store.run_info(latest).n_images} "
                    f"images; File > Resume interrupted run (Ctrl+Shift+R) continues it.")
        self._refresh_threshold_model()
        if images:
            self._select_view_row(0)
        callbacks, self.after_open = self.after_open, []
        for callback in callbacks:
            callback()

    def _load_run_from_store(self, run_id: str) -> None:
        info = self.store.run_info(run_id)
        ids = self.store.run_image_ids(run_id)
        comps = {}
        for name, values in self.store.run_scores(run_id).items():
            full = np.full(self.store.n_images, np.nan)
            full[ids] = values
            comps[name] = full
        ranges = {k: (float(lo), float(hi)) for k, (lo, hi) in info.metadata.get("map_ranges", {}).items()}
        live = self.run if self.run is not None and self.run.run_id == run_id else None
        self.run = RunView(run_id, info.detector, info.default_component, comps, params=info.params, ranges=ranges,
                           map_layout=info.metadata.get("map_layout") or {}, complete=info.complete,
                           model=live.model if live else None, extras=live.extras if live else {})
        self._show_scores()
        rec = self.store.threshold(run_id)
        if rec:
            self.threshold_model.set_thresholds(rec.t1, rec.t2, rec.method)

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

    def refresh_view_of_run(self, run_id: str) -> None:
        """Show run `run_id` as the store has it now (the gallery rebuilt first if images were added)."""
        if self.gallery.model.rowCount() != self.store.n_images:
            self.run = None  # the shown run has fewer rows than the project now; the new one replaces it
            self._on_store_opened(self.store, load_latest=False)
        self._load_run_from_store(run_id)
        self._refresh_threshold_model()

    def _show_scores(self) -> None:
        run = self.run
        scores = run.components[run.default_component]
        self.gallery.model.set_scores(scores)
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
        strips = self._strips_for(image_id)
        self.morphs.set_strips(strips)
        self.morph_dock.setVisible(bool(strips))
        lab = self.store.label(image_id)
        self.label_bar.show_label(lab.label, lab.defect_type, lab.note)

    def _maps_for(self, image_id: int, shape: tuple[int, int]) -> tuple[dict | None, MapGeometry | None]:
        run = self.run
        if run is None:
            return None, None
        if run.run_id is None:
            return None, None
        try:
            maps = self.store.maps(run.run_id, image_id)
        except Exception as exc:  # a run that did not score this image, or a damaged map
            self.statusBar().showMessage(str(exc))
            return None, None
        return maps, geometry_from_layout(run.map_layout, run.params, tuple(shape))

    def _strips_for(self, image_id: int) -> list | None:
        run = self.run
        if run is None:
            return None
        return run.extras.get(image_id, {}).get(STRIP_KEY)

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
        before = self.store.label(self.current_id)
        defect_type = self.label_bar.defect_type.currentText().strip() if label in ("defect", "suspicious") else ""
        note = self.label_bar.note.text()
        step = LabelStep(self.current_id, LabelState(before.label, before.defect_type, before.note),
                         LabelState(label, defect_type, note))
        self.history.record(step)
        self._send_label(self.current_id, step.after)
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
        self.requestTraining.emit(ids, use)

    @Slot(list, bool)
    def _on_training_saved(self, image_ids: list, use: bool) -> None:
        paths = [str(self.store.absolute_path(i)) for i in image_ids]
        self.gallery.model.set_split(paths, "train" if use else "test")
        self._refresh_threshold_model()
        n_train = len(sets_from_store(self.store).train)
        what = "now used for training" if use else "no longer used for training (judged)"
        self.statusBar().showMessage(f"{len(image_ids)} image{'s' if len(image_ids) != 1 else ''} {what}; "
                                     f"the training set has {n_train} images.")

    def _send_label(self, image_id: int, state: LabelState) -> None:
        self.requestLabel.emit(image_id, state.label, state.defect_type, state.note)

    @Slot()
    def undo(self) -> None:
        step = self.history.undo()
        if step:
            self._send_label(*step)
            self.statusBar().showMessage("Undo …")

    @Slot()
    def redo(self) -> None:
        step = self.history.redo()
        if step:
            self._send_label(*step)

    @Slot(int, str, str, str)
    def _on_label_saved(self, image_id: int, label: str, defect_type: str, note: str) -> None:
        row = self.gallery.model.row_of(str(self.store.absolute_path(image_id)))
        self.gallery.model.set_label(row, label, defect_type)
        # The threshold panel counts judged images only: a good image used for training stays out of it.
        if self.run is not None:  # before the first run the panel holds no images
            judged = role(label, self.store.image(image_id).split) == "judged"
            self.threshold_model.set_label(image_id, label if judged else "unlabeled")
        name = Path(self.store.image(image_id).path).name
        self.statusBar().showMessage(f"Saved: {name} → {label}" + (f" ({defect_type})" if defect_type else ""))
        if image_id == self.current_id:
            self.label_bar.show_label(label, defect_type, note)

    # ================================================================== thresholds
    def _refresh_threshold_model(self) -> None:
        """Threshold panel data: the default component's scores and the review labels of the judged images
        only (labeled, not used for training: the model has fit its training images, so counting them would
        bias a threshold low), by image id. Training images are left out of the panel; other images count as
        unlabeled there."""
        if self.store is None or self.run is None:
            return
        sets = sets_from_store(self.store)
        # Training images are left out altogether (not drawn as "unlabeled"): the model has fit them.
        scores = np.array(self.run.components[self.run.default_component], dtype=np.float64)
        scores[sets.train_ids] = np.nan
        labels = np.array([lb.label for lb in self.store.labels()], dtype=object)
        judged = np.full(len(labels), "unlabeled", dtype=object)
        judged[sets.judged_ids] = labels[sets.judged_ids]
        self.threshold_model.set_data(scores, judged)

    @Slot(float, float, str)
    def commit_threshold(self, t1: float, t2: float, method: str) -> None:
        self.gallery.model.set_review_band(t1, t2)
        if self.run is not None and self.run.run_id is not None:
            self.requestThreshold.emit(self.run.run_id, t1, t2, method)

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
        self.service.shutdown()
        event.accept()
