"""Export dialog over core.export: choose the target folder and filters, export in a worker."""

from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from core.export import ExportError, ExportFilter, export_labeled
from core.store import Store
from inspector_gui.workers import Job


class ExportDialog(QDialog):
    def __init__(self, store: Store, run_id: str | None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Export labeled images")
        self.store, self.run_id = store, run_id
        self.job: Job | None = None
        self.result = None
        self.target = QLineEdit(str(store.root.parent / f"{store.root.name}_export"))
        browse = QPushButton("…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.target, 1)
        row.addWidget(browse)
        self.labels = {name: QCheckBox(name) for name in ("good", "defect", "suspicious")}
        for box in self.labels.values():
            box.setChecked(True)
        labels_row = QHBoxLayout()
        for box in self.labels.values():
            labels_row.addWidget(box)
        self.defect_types = QLineEdit()
        self.defect_types.setPlaceholderText("all (or a comma-separated list)")
        self.use_band = QCheckBox("only images the current run scored between")
        self.use_band.setEnabled(run_id is not None)
        self.min_score, self.max_score = QDoubleSpinBox(), QDoubleSpinBox()
        for box in (self.min_score, self.max_score):
            box.setRange(-1e12, 1e12)
            box.setDecimals(4)
        self.max_score.setValue(1e6)
        band = QHBoxLayout()
        band.addWidget(self.use_band)
        band.addWidget(self.min_score)
        band.addWidget(QLabel("and"))
        band.addWidget(self.max_score)
        self.overwrite = QCheckBox("replace an earlier export in that folder")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.export_button = buttons.addButton("Export", QDialogButtonBox.ButtonRole.ActionRole)
        self.export_button.clicked.connect(self.start)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Folder", row)
        form.addRow("Labels", labels_row)
        form.addRow("Defect types", self.defect_types)
        form.addRow("Score band", band)
        form.addRow("", self.overwrite)
        form.addRow(self.status)
        form.addRow(buttons)

    @Slot()
    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export into", self.target.text())
        if folder:
            self.target.setText(folder)

    def export_filter(self) -> ExportFilter:
        types = tuple(t.strip() for t in self.defect_types.text().split(",") if t.strip()) or None
        band = self.use_band.isChecked()
        return ExportFilter(labels=tuple(n for n, box in self.labels.items() if box.isChecked()),
                            defect_types=types, run_id=self.run_id if band else None,
                            min_score=self.min_score.value() if band else None,
                            max_score=self.max_score.value() if band else None)

    @Slot()
    def start(self) -> None:
        store, target, filt = self.store, self.target.text(), self.export_filter()
        overwrite = self.overwrite.isChecked()

        def work(progress, should_stop):
            return export_labeled(store, target, filt, overwrite=overwrite,
                                  progress=lambda d, t: progress(d, t, {}), should_stop=should_stop)

        self.job = Job("export", work, self)
        self.job.finished.connect(self._done)
        self.job.failed.connect(self._failed)
        self.export_button.setEnabled(False)
        self.status.setText("Exporting …")
        self.job.start()

    @Slot(object)
    def _done(self, result: object) -> None:
        self.result = result
        counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
        skipped = f"; {len(result.skipped)} missing files skipped" if result.skipped else ""
        self.status.setText(f"Exported {result.n_images} images ({counts}) and {result.n_masks} masks to "
                            f"{result.out_dir}{skipped}.")
        self.export_button.setEnabled(True)

    @Slot(str, str)
    def _failed(self, message: str, tb: str) -> None:
        self.status.setText(f"Export failed: {message}")
        self.export_button.setEnabled(True)

    def done(self, code: int) -> None:  # closing waits for a running export (it is atomic and short)
        if self.job is not None and self.job.running:
            self.job.wait(30000)
        super().done(code)


__all__ = ["ExportDialog", "ExportError"]
