"""The review window: gallery (left), viewer + labeling bar (centre), training and threshold panels
(right). It wires widgets to core calls and the store service; it computes nothing itself."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSettings, Qt, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
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
from core.detectors.results import MapGeometry, geometry_from_layout, map_layout
from core.evaluate import TrainScoreOutcome, train_and_score
from core.label_history import LabelHistory, LabelState, LabelStep
from core.store import Store
from core.threshold import ThresholdModel
from inspector_gui.about import app_icon, show_about, window_title
from inspector_gui.gallery import GalleryWidget
from inspector_gui.label_bar import LabelBar
from inspector_gui.morph_strip import STRIP_KEY, MorphStripPanel
from inspector_gui.shortcuts import SHORTCUTS, help_html
from inspector_gui.store_service import StoreService
from inspector_gui.threshold_panel import ThresholdPanel
from inspector_gui.training_panel import TrainingPanel
from inspector_gui.viewer import ImageViewer
from inspector_gui.workers import Job


@dataclass
class RunView:
    """The scores the window shows: one run, aligned to store image ids (NaN = not scored)."""

    run_id: str | None
    detector: str
    default_component: str
    components: dict[str, np.ndarray]  # name -> (n_images,) by store image id
    rows: dict[int, int] = field(default_factory=dict)  # image id -> row of the in-memory result
    outcome: TrainScoreOutcome | None = None
    params: dict[str, Any] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    map_layout: dict[str, Any] = field(default_factory=dict)  # see core.detectors.results.map_layout


class MainWindow(QMainWindow):
    # Requests to the store thread (queued connections: the service lives in another thread).
    requestOpen = Signal(str, str)
    requestLabel = Signal(int, str, str, str)
    requestRun = Signal(str, dict, dict, list, dict, str, dict)
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
        self.history = LabelHistory()
        self._pending_undo: dict[int, LabelStep] = {}
        self.current_id: int | None = None
        self._after_open: list = []  # callbacks waiting for the store (opening is asynchronous)
        self._build_widgets()
        self._build_actions()
        self._connect_service()
        self.restoreGeometry(self.settings.value("window/geometry", b""))
        self.restoreState(self.settings.value("window/state", b""))
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
        dock = QDockWidget("Images", self)
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
        right = QDockWidget("Model", self)
        right.setObjectName("model_dock")
        right.setWidget(self.tabs)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, right)
        # First-run proportions (a saved layout overrides them): room for two columns of tiles on the left
        # and for the histogram beside the ROC curve on the right.
        self.resizeDocks([dock, right], [330, 760], Qt.Orientation.Horizontal)
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
            "next_image": lambda: self.step_image(+1),
            "previous_image": lambda: self.step_image(-1),
            "undo": self.undo,
            "redo": self.redo,
            "toggle_overlay": self.toggle_overlay,
            "toggle_mask": self.toggle_mask,
            "open_folder": self.choose_folder,
            "export": self.open_export_dialog,
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
            target = menu if sc.action in ("open_folder", "export") else helpm if sc.action == "help" else edit
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
        self.requestRun.connect(self.service.add_run)
        self.requestThreshold.connect(self.service.set_threshold)
        self.service.opened.connect(self._on_store_opened)
        self.service.labelSaved.connect(self._on_label_saved)
        self.service.runSaved.connect(self._on_run_saved)
        self.service.thresholdSaved.connect(self._on_threshold_saved)
        self.service.failed.connect(self._on_store_failed)

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
            self._error(str(exc))
            return
        self.statusBar().showMessage(f"Opening {path} …")

    @Slot(object)
    def _on_store_opened(self, store: Store) -> None:
        self.store = store
        if self.folder is None:
            try:
                self.folder = scan_folder(store.root)
            except FolderError as exc:
                self._error(str(exc))
        images = store.images()
        labels = store.labels()
        self.gallery.model.set_items(
            [str(store.absolute_path(im.id)) for im in images], [im.split for im in images],
            [lb.label for lb in labels], [lb.defect_type for lb in labels])
        self.label_bar.set_defect_types([lb.defect_type for lb in labels] + [im.source_defect for im in images])
        self.setWindowTitle(f"{window_title()} — {store.root}")
        self.statusBar().showMessage(f"Opened {store.path} ({len(images)} images)")
        latest = store.latest_run()
        if latest:
            self._load_run_from_store(latest)
        self._refresh_threshold_model()
        if images:
            self._select_view_row(0)
        callbacks, self._after_open = self._after_open, []
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
        self.run = RunView(run_id, info.detector, info.default_component, comps, params=info.params, ranges=ranges,
                           map_layout=info.metadata.get("map_layout") or {})
        self._show_scores()
        rec = self.store.threshold(run_id)
        if rec:
            self.threshold_model.set_thresholds(rec.t1, rec.t2, rec.method)

    # ================================================================== training
    @Slot(str, dict)
    def start_training(self, name: str, settings: dict) -> None:
        if self.folder is None:
            self._error("Open an image folder first.")
            return
        folder = self.folder

        def work(progress, should_stop):
            return train_and_score(folder, name, settings, progress=progress, should_stop=should_stop,
                                   log=lambda m: None)

        self._run_job(f"train {name}", work)

    def score_with(self, detector: Any) -> None:
        """Score every image of the open folder with an already trained detector (the demo hands its model
        over this way), in a worker, then show it like a fresh training run."""
        if self.store is None:
            self._after_open.append(lambda: self.score_with(detector))
            return
        folder = self.folder

        def work(progress, should_stop):
            from core.evaluate import LoadedImages, load_items

            scored = load_items(folder.items, log=lambda m: None)
            result = detector.score(scored.images, progress=progress, should_stop=should_stop)
            return TrainScoreOutcome(detector, result, scored, LoadedImages([], []))

        self._run_job(f"score {detector.name}", work)

    def _run_job(self, name: str, work: Any) -> None:
        if self.job is not None and self.job.running:
            self._error("A job is already running.")
            return
        self.job = Job(name, work, self)
        self.job.progress.connect(self.training.job_progress)
        self.job.finished.connect(self._on_trained)
        self.job.failed.connect(self._on_job_failed)
        self.job.cancelled.connect(self._on_job_cancelled)
        self.training.job_started()
        self.tabs.setCurrentWidget(self.training)
        self.job.start()

    @Slot()
    def cancel_job(self) -> None:
        if self.job is not None and self.job.running:
            self.job.cancel()
            self.statusBar().showMessage("Cancelling …")

    @Slot(object)
    def _on_trained(self, outcome: TrainScoreOutcome) -> None:
        det, result = outcome.detector, outcome.result
        rep = det.fit_report
        self.training.job_ended(
            f"Trained {det.name} in {rep.seconds:.1f} s ({rep.epochs} epochs, stopped by {rep.stopped_by}); "
            f"scored {len(result)} images." if rep else f"Scored {len(result)} images.")
        n = self.store.n_images if self.store else 0
        comps = {k: np.full(n, np.nan) for k in result.components}
        rows = {}
        paths = []
        for row, item in enumerate(outcome.scored.items):
            image_id = self.store.image_id(item.path) if self.store else row
            rows[image_id] = row
            paths.append(item.path)
            for k, v in result.components.items():
                comps[k][image_id] = v[row]
        ranges = outcome.map_ranges
        layout = map_layout(result.geometry)
        self.run = RunView(None, det.name, result.default_component, comps, rows, outcome, det.params, ranges,
                           layout)
        self._show_scores()
        self._refresh_threshold_model()
        self.tabs.setCurrentWidget(self.threshold)
        if self.store is not None:
            # The run's colour ranges and map placement go with it, so a run reopened from the store shows its
            # maps the same way.
            meta = {**det.metadata, "map_ranges": ranges, "map_layout": layout}
            self.requestRun.emit(det.name, det.params, meta, paths,
                                 {k: np.asarray(v) for k, v in result.components.items()},
                                 result.default_component, dict(result.maps))
        if self.current_id is not None:
            self.show_image_id(self.current_id)

    @Slot(str, str)
    def _on_job_failed(self, message: str, tb: str) -> None:
        self.training.job_ended(f"Failed: {message}")
        self._error(message)

    @Slot()
    def _on_job_cancelled(self) -> None:
        self.training.job_ended("Cancelled.")
        self.statusBar().showMessage("Training cancelled.")

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
        if run.outcome is not None and image_id in run.rows:
            row = run.rows[image_id]
            res = run.outcome.result
            return {k: v[row] for k, v in res.maps.items()}, res.geometry[row]
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
        if run is None or run.outcome is None or image_id not in run.rows:
            return None
        strips = run.outcome.result.extras.get(STRIP_KEY)
        return strips[run.rows[image_id]] if strips else None

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
        self.threshold_model.set_label(image_id, label)
        name = Path(self.store.image(image_id).path).name
        self.statusBar().showMessage(f"Saved: {name} → {label}" + (f" ({defect_type})" if defect_type else ""))
        if image_id == self.current_id:
            self.label_bar.show_label(label, defect_type, note)

    # ================================================================== thresholds
    def _refresh_threshold_model(self) -> None:
        """Threshold panel data: the default component's scores and the review labels, by image id."""
        if self.store is None or self.run is None:
            return
        scores = self.run.components[self.run.default_component]
        labels = np.array([lb.label for lb in self.store.labels()], dtype=object)
        self.threshold_model.set_data(scores, labels)

    @Slot(float, float, str)
    def commit_threshold(self, t1: float, t2: float, method: str) -> None:
        self.gallery.model.set_review_band(t1, t2)
        if self.run is not None and self.run.run_id is not None:
            self.requestThreshold.emit(self.run.run_id, t1, t2, method)

    @Slot(str)
    def _on_run_saved(self, run_id: str) -> None:
        if self.run is not None:
            self.run.run_id = run_id
            t1, t2 = self.threshold_model.t1, self.threshold_model.t2
            if math.isfinite(t1) and math.isfinite(t2):
                self.requestThreshold.emit(run_id, t1, t2, self.threshold_model.method)
        self.statusBar().showMessage(f"Scores saved to the project ({run_id}).")

    @Slot(str, float, float, str)
    def _on_threshold_saved(self, run_id: str, t1: float, t2: float, method: str) -> None:
        self.statusBar().showMessage(f"Threshold saved: T1 {t1:.4g}, T2 {t2:.4g} ({method})")

    # ================================================================== dialogs, errors, closing
    @Slot()
    def open_export_dialog(self) -> None:
        if self.store is None:
            self._error("Open a project first.")
            return
        from inspector_gui.export_dialog import ExportDialog

        ExportDialog(self.store, self.run.run_id if self.run else None, self).exec()

    @Slot()
    def show_help(self) -> None:
        QMessageBox.information(self, "Shortcuts", help_html())

    @Slot(str)
    def _on_store_failed(self, message: str) -> None:
        self._error(message)

    def _error(self, message: str) -> None:
        self.statusBar().showMessage(message)
        if not self.property("quiet_errors"):
            QMessageBox.warning(self, "Anomaly Inspector", message)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt's name)
        if self.job is not None and self.job.running:
            answer = QMessageBox.question(self, "Training is running",
                                          "A job is still running. Cancel it and close?")
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            self.job.cancel()
            self.job.wait(10000)
        self.gallery.model.shutdown()
        self.settings.setValue("viewer/colormap", self.viewer.colormap())
        self.settings.setValue("viewer/opacity", self.viewer.opacity())
        self.settings.setValue("viewer/normalization", self.viewer.normalization())
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.service.shutdown()
        event.accept()
