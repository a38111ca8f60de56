"""Training panel: pick a detector, edit its settings (a form built from the detector's parameter schema),
start, watch progress / ETA / the live loss curve, cancel. The panel only collects settings and shows
progress; the main window owns the job."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.detectors.base import DetectorError, Param
from core.detectors.registry import RECOMMENDED, available, detector_class
from core.progress_text import budget_fraction, eta_seconds

# Settings a person rarely changes are still shown, but the form lists these first.
_FIRST = ("epochs", "time_budget", "patch_size", "stride", "image_size", "latent", "base_channels", "n_conv")


def _editor(param: Param) -> QWidget:
    """A widget for one parameter, chosen by the type of its default."""
    value = param.default
    if param.choices is not None:
        w = QComboBox()
        w.addItems([str(c) for c in param.choices])
        w.setCurrentText(str(value))
    elif isinstance(value, bool):
        w = QCheckBox()
        w.setChecked(value)
    elif isinstance(value, int):
        w = QSpinBox()
        w.setRange(int(param.minimum) if param.minimum is not None else -10**9,
                   int(param.maximum) if param.maximum is not None else 10**9)
        w.setValue(value)
    elif isinstance(value, float):
        w = QDoubleSpinBox()
        w.setDecimals(6 if 0 < abs(value) < 0.01 else 3)
        w.setRange(param.minimum if param.minimum is not None else -1e12,
                   param.maximum if param.maximum is not None else 1e12)
        w.setValue(value)
    else:  # None or text: free text, parsed by the schema
        w = QLineEdit("" if value is None else str(value))
        w.setPlaceholderText("none" if value is None else "")
    w.setToolTip(param.help)
    return w


def _read(param: Param, w: QWidget) -> Any:
    if isinstance(w, QComboBox):
        return param.parse(w.currentText()) if not isinstance(param.default, str) else w.currentText()
    if isinstance(w, QCheckBox):
        return w.isChecked()
    if isinstance(w, (QSpinBox, QDoubleSpinBox)):
        return w.value()
    return param.parse(w.text())


class TrainingPanel(QWidget):
    """Emits trainRequested(detector name, settings) and cancelRequested(); shows a job's progress."""

    trainRequested = Signal(str, dict)
    cancelRequested = Signal()

    def __init__(self, parent: QWidget | None = None, default_detector: str = RECOMMENDED):
        super().__init__(parent)
        self._editors: dict[str, tuple[Param, QWidget]] = {}
        self._losses: list[float] = []
        self._loss_x: list[float] = []
        self._started = 0.0

        self.detector = QComboBox()
        self.detector.addItems(available())
        self.detector.setCurrentText(default_detector)
        self.detector.currentTextChanged.connect(self._build_form)
        # What the chosen detector is for (its class's `summary`, when it has one): shown under the choice.
        self.detector_help = QLabel("")
        self.detector_help.setWordWrap(True)
        self.detector_help.setStyleSheet("QLabel { color: palette(mid); }")
        self.form_host = QWidget()
        self.form = QFormLayout(self.form_host)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.form_host)

        self.train_button = QPushButton("Train and score")
        self.train_button.clicked.connect(self._on_train)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancelRequested)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status = QLabel("Not trained yet.")
        self.status.setWordWrap(True)
        # The lighting-drift warning of the shown run (core's figures, said once per run); hidden when none.
        self.drift = QLabel()
        self.drift.setWordWrap(True)
        self.drift.setStyleSheet("QLabel { color: #8a4b00; background: #fff3cd; padding: 4px; }")
        self.drift.hide()
        self.loss_plot = pg.PlotWidget()
        self.loss_plot.setLabel("left", "loss")
        self.loss_plot.setLabel("bottom", "epoch")
        self.loss_plot.setMinimumHeight(140)
        self.loss_curve = self.loss_plot.plot(pen=pg.mkPen("#1f77b4", width=1.5))

        top = QHBoxLayout()
        top.addWidget(QLabel("Detector"))
        top.addWidget(self.detector, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.detector_help)
        layout.addWidget(scroll, 2)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.drift)
        layout.addWidget(self.loss_plot, 1)
        self._build_form(default_detector)

    # ---------------------------------------------------------------- settings form
    @Slot(str)
    def _build_form(self, name: str) -> None:
        while self.form.rowCount():
            self.form.removeRow(0)
        self._editors.clear()
        summary = getattr(detector_class(name), "summary", "")
        self.detector_help.setText(summary)
        self.detector_help.setVisible(bool(summary))
        self.detector.setToolTip(summary)
        params = sorted(detector_class(name).PARAMS,
                        key=lambda p: (_FIRST.index(p.name) if p.name in _FIRST else len(_FIRST), p.name))
        for p in params:
            editor = _editor(p)
            self._editors[p.name] = (p, editor)
            self.form.addRow(p.name, editor)

    def set_settings(self, name: str, settings: dict[str, Any]) -> None:
        """Preset the form (e.g. the demo's CPU-sized settings)."""
        self.detector.setCurrentText(name)
        for key, value in settings.items():
            param, w = self._editors[key]
            if isinstance(w, QComboBox):
                w.setCurrentText(str(value))
            elif isinstance(w, QCheckBox):
                w.setChecked(bool(value))
            elif isinstance(w, (QSpinBox, QDoubleSpinBox)):
                w.setValue(value)
            else:
                w.setText("" if value is None else str(value))

    def settings(self) -> dict[str, Any]:
        """The form's values, checked by the detector's schema (DetectorError names the bad field)."""
        out = {}
        for name, (param, w) in self._editors.items():
            value = _read(param, w)
            param.check(value)
            out[name] = value
        return out

    @Slot()
    def _on_train(self) -> None:
        try:
            settings = self.settings()
        except DetectorError as exc:
            self.status.setText(f"Setting not valid: {exc}")
            return
        self.trainRequested.emit(self.detector.currentText(), settings)

    # ---------------------------------------------------------------- progress display
    def job_started(self) -> None:
        self._losses, self._loss_x = [], []
        self.loss_plot.setLabel("bottom", "epoch")
        self._started = time.perf_counter()
        self.loss_curve.setData([], [])
        self.progress.setValue(0)
        self.train_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("Loading images…")

    def job_progress(self, done: int, total: int, info: dict) -> None:
        stage = info.get("stage", "working")
        # ETA of the current stage from its own elapsed time ("elapsed" comes from the detector), bounded by
        # the time budget that will stop training early (the training loop reports it).
        stage_elapsed = info.get("elapsed", time.perf_counter() - self._started)
        budget = info.get("time_budget")
        frac = budget_fraction(done / total if total else 0.0, stage_elapsed, budget)
        self.progress.setValue(int(1000 * frac))
        text = f"{stage[:1].upper() + stage[1:]}: {done} / {total}"
        if "epoch" in info:
            text += f", epoch {info['epoch']}" + (f" / {info['epochs']}" if info.get("epochs") else "")
        losses = [f"{k[:-5].replace('_', ' ')} loss {v:.4g}" for k, v in info.items()  # e.g. a GAN's two losses
                  if k.endswith("_loss") and isinstance(v, float) and math.isfinite(v)]
        text += "".join(f", {t}" for t in losses)
        left = eta_seconds(frac, stage_elapsed, budget) if frac < 1 else None
        if left is not None and (frac > 0 or budget):
            bounded = bool(budget) and left == max(0.0, budget - stage_elapsed)
            text += f", ETA {self._fmt(left)}" + (" (time budget)" if bounded else "")
        self.status.setText(text)
        loss = info.get("loss")
        if loss is not None and math.isfinite(loss):
            self._losses.append(float(loss))
            self._loss_x.append(self._epoch_position(done, total, info))
            self.loss_curve.setData(np.asarray(self._loss_x), np.asarray(self._losses))

    def _epoch_position(self, done: int, total: int, info: dict) -> float:
        """Where on the x axis a loss reported at step `done` of `total` goes: fractional epochs when the
        training loop says how many epochs make the total, else the step itself (and the axis says so)."""
        epochs = info.get("epochs")
        if epochs and total:
            return done * epochs / total
        self.loss_plot.setLabel("bottom", "step")
        return float(done)

    def show_drift(self, message: str | None) -> None:
        """Show (or, with None, clear) the lighting-drift warning."""
        self.drift.setText(message or "")
        self.drift.setVisible(bool(message))
        self.drift.setToolTip(message or "")

    def job_ended(self, message: str) -> None:
        self.train_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.status.setText(message)

    @staticmethod
    def _fmt(seconds: float) -> str:
        seconds = max(0, int(seconds))
        return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"
