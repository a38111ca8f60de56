"""Threshold panel: where the quality engineer chooses what passes, what goes to review and what fails.

Every control is a view of one `core.threshold.ThresholdModel` (napari's model/view pattern): the histogram
lines, the ROC target, the sliders and spin boxes write into the model, and the model's events redraw them
all, so no two views can disagree. Dragging is live (coalesced to at most one model update per frame) and
the release commits: `committed(t1, t2, method)` fires once per finished gesture and the main window writes
it to the store. All numbers come from the model; this file only lays out and wires widgets.
"""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QBrush, QColor, QFont, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QBoxLayout,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLayout,
    QPushButton,
    QSizePolicy,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.threshold import COLUMNS, PRESETS, ModelEvent, ThresholdModel
from core.vocabulary import LABEL_COLOURS
from inspector_gui.threshold_plots import HistogramView, RocView

SLIDER_STEPS = 1000
FRAME_MS = 16  # coalesce drag updates to one per frame (~60 Hz)
_ROWS = (("good", "actual good"), ("defect", "actual defect"), ("suspicious", "suspicious"),
         ("unlabeled", "unlabeled"))
_PRESET_TEXT = {"f1_max": "F1-max", "max_fpr": "Max FPR", "max_fnr": "Max FNR",
                "alpha_fractile": "α-fractile of normals"}


class _ThresholdControl(QWidget):
    """A slider (coarse, over the score range) and a spin box (exact) for one threshold."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.name = QLabel(name)
        self.name.setMinimumWidth(22)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, SLIDER_STEPS)
        self.spin = QDoubleSpinBox()
        # Only Enter, focus-out and the arrows change the value: each change is a deliberate, committed step.
        self.spin.setKeyboardTracking(False)
        self.spin.setMinimumWidth(90)
        layout.addWidget(self.name)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.spin)
        self.lo, self.hi = 0.0, 1.0

    def set_range(self, lo: float, hi: float) -> None:
        """Slider positions map linearly onto [lo, hi]; the spin box gets enough decimals for the span."""
        self.lo, self.hi = lo, hi
        span = hi - lo
        decimals = min(max(3 - math.floor(math.log10(span)), 2), 10) if span > 0 else 4
        self.spin.blockSignals(True)
        self.spin.setDecimals(decimals)
        # Outside the data range is allowed: "flag nothing" / "flag everything" are valid choices.
        self.spin.setRange(lo - span, hi + span)
        self.spin.setSingleStep(span / 100 if span > 0 else 0.01)
        self.spin.blockSignals(False)

    def slider_value(self) -> float:
        return self.lo + (self.hi - self.lo) * self.slider.value() / SLIDER_STEPS

    def show_value(self, value: float) -> None:
        """Display a model value without echoing it back (signals blocked)."""
        if not math.isfinite(value):
            return
        span = self.hi - self.lo
        pos = round((value - self.lo) / span * SLIDER_STEPS) if span > 0 else 0
        for w, v in ((self.slider, min(max(pos, 0), SLIDER_STEPS)), (self.spin, value)):
            w.blockSignals(True)
            w.setValue(v)
            w.blockSignals(False)


class ThresholdPanel(QWidget):
    """Histogram + ROC + sliders + confusion matrix + presets for one `ThresholdModel`.

    Signal `committed(t1, t2, method)`: a finished user action (line or target released, slider released,
    spin box value entered, preset applied, review band toggled). Programmatic model changes do not commit.
    """

    committed = Signal(float, float, str)

    def __init__(self, model: ThresholdModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self._syncing = False
        self._pending: tuple[str, float] | None = None  # ("t1" | "t2", value) waiting for the frame timer
        self._drag_timer = QTimer(self)
        self._drag_timer.setSingleShot(True)
        self._drag_timer.setInterval(FRAME_MS)
        self._drag_timer.timeout.connect(self.flush_pending)

        self.histogram = HistogramView()
        self.roc = RocView()
        self.t1 = _ThresholdControl("T1")
        self.t2 = _ThresholdControl("T2")
        self.band_check = QCheckBox("review band")
        self.band_check.setToolTip("Scores between T1 and T2 go to a person; at or above T2 they fail.")
        self.preset_combo = QComboBox()
        # Elide long preset names instead of making the panel (and the window) as wide as the longest one.
        self.preset_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.preset_combo.setMinimumContentsLength(8)
        for name in PRESETS:
            self.preset_combo.addItem(_PRESET_TEXT[name], name)
            self.preset_combo.setItemData(self.preset_combo.count() - 1, PRESETS[name][1],
                                          Qt.ItemDataRole.ToolTipRole)
        self.preset_param = QDoubleSpinBox()
        self.preset_param.setRange(0.0, 1.0)
        self.preset_param.setDecimals(3)
        self.preset_param.setSingleStep(0.005)
        self.apply_button = QPushButton("Apply")
        self.method_label = QLabel()
        self.message = QLabel()
        self.message.setStyleSheet("color: #b03a2e;")
        self.message.setWordWrap(True)
        self.table = self._make_table()
        self.metrics_label = QLabel()
        self.metrics_label.setWordWrap(True)
        self.metrics_label.setToolTip("Review counts as flagged: TPR, FPR, precision and F1 use score >= T1.")
        self.auto_label = QLabel()
        self.auto_label.setStyleSheet("color: #555;")
        self.auto_label.setWordWrap(True)
        self._layout()
        self._connect()
        self._on_preset_changed()
        self.model.events.connect(self._on_model_event)
        self._refresh_all()

    # ------------------------------------------------------------------ construction
    def _make_table(self) -> QTableWidget:
        table = QTableWidget(len(_ROWS), len(COLUMNS))
        table.setHorizontalHeaderLabels(list(COLUMNS))
        table.setVerticalHeaderLabels([text for _, text in _ROWS])
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        table.verticalHeader().setDefaultSectionSize(22)
        table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        for r, (label, _) in enumerate(_ROWS):
            header = table.verticalHeaderItem(r)
            header.setForeground(QBrush(QColor(LABEL_COLOURS[label])))
            if label in ("good", "defect"):  # the confusion matrix proper; the other rows are context
                bold = QFont(header.font())
                bold.setBold(True)
                header.setFont(bold)
            for c in range(len(COLUMNS)):
                item = QTableWidgetItem("0")
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if label not in ("good", "defect"):
                    item.setForeground(QBrush(QColor("#666")))
                table.setItem(r, c, item)
        height = table.horizontalHeader().sizeHint().height() + 22 * len(_ROWS) + 2 * table.frameWidth()
        table.setFixedHeight(height)
        # Every count column readable: the panel stacks controls above the table before it gets narrower.
        header_w = max(table.fontMetrics().horizontalAdvance(text) for _, text in _ROWS) + 16
        table.setMinimumWidth(header_w + len(COLUMNS) * (table.fontMetrics().horizontalAdvance("review") + 18)
                              + 2 * table.frameWidth())
        table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        return table

    def _layout(self) -> None:
        plots = QHBoxLayout()
        plots.addWidget(self.histogram, 3)
        plots.addWidget(self.roc, 2)

        controls = QGridLayout()
        controls.setVerticalSpacing(4)
        controls.addWidget(self.t1, 0, 0, 1, 3)
        controls.addWidget(self.band_check, 1, 0)
        controls.addWidget(self.t2, 1, 1, 1, 2)
        controls.addWidget(QLabel("Preset"), 2, 0)
        preset_row = QHBoxLayout()
        preset_row.addWidget(self.preset_combo, 1)
        preset_row.addWidget(self.preset_param)
        preset_row.addWidget(self.apply_button)
        controls.addLayout(preset_row, 2, 1, 1, 2)
        controls.addWidget(self.method_label, 3, 0, 1, 3)
        controls.addWidget(self.message, 4, 0, 1, 3)
        controls.setColumnStretch(2, 1)
        controls.setRowStretch(5, 1)

        results = QVBoxLayout()
        results.addWidget(self.table)
        results.addWidget(self.metrics_label)
        results.addWidget(self.auto_label)
        results.addStretch(1)

        # Controls beside the results when the panel is wide, above them when it is narrow (a side dock on a
        # 1366 px screen): the panel's minimum width is that of the stacked form.
        self._controls, self._results = controls, results
        self._bottom = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        self._bottom.addLayout(controls, 1)
        self._bottom.addSpacing(8)
        self._bottom.addLayout(results, 1)

        root = QVBoxLayout(self)
        root.setContentsMargins(6, 6, 6, 6)
        root.addLayout(plots, 1)
        root.addLayout(self._bottom, 0)
        root.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)  # minimumSizeHint below decides

    def _connect(self) -> None:
        for line in (self.histogram.t1_line, self.histogram.t2_line):
            line.sigPositionChanged.connect(self._on_line_moved)
            line.sigPositionChangeFinished.connect(self._on_drag_finished)
        self.roc.target.sigPositionChanged.connect(self._on_target_moved)
        self.roc.target.sigPositionChangeFinished.connect(self._on_drag_finished)
        for control in (self.t1, self.t2):
            control.slider.valueChanged.connect(self._on_slider_moved)
            control.slider.sliderReleased.connect(self._on_drag_finished)
            control.spin.valueChanged.connect(self._on_spin_changed)
        self.band_check.toggled.connect(self._on_band_toggled)
        self.preset_combo.currentIndexChanged.connect(self._on_preset_changed)
        self.apply_button.clicked.connect(self._on_apply_preset)

    def sizeHint(self) -> QSize:
        return QSize(900, 600)

    def _side_by_side_width(self) -> int:
        m = self.layout().contentsMargins()
        return (self._controls.minimumSize().width() + 8 + self._results.minimumSize().width()
                + 2 * self._bottom.spacing() + m.left() + m.right())

    def minimumSizeHint(self) -> QSize:
        """The stacked form's minimum (the layout flips to it before the width gets below side by side)."""
        m = self.layout().contentsMargins()
        width = max(self._controls.minimumSize().width(), self._results.minimumSize().width(),
                    self.histogram.minimumSizeHint().width() + self.roc.minimumSizeHint().width())
        height = (max(self.histogram.minimumSizeHint().height(), self.roc.minimumSizeHint().height())
                  + self._controls.minimumSize().height() + self._results.minimumSize().height() + 12)
        return QSize(width + m.left() + m.right(), height + m.top() + m.bottom())

    def resizeEvent(self, event: QResizeEvent) -> None:
        narrow = event.size().width() < self._side_by_side_width()
        direction = QBoxLayout.Direction.TopToBottom if narrow else QBoxLayout.Direction.LeftToRight
        if self._bottom.direction() != direction:
            self._bottom.setDirection(direction)
        super().resizeEvent(event)

    # ------------------------------------------------------------------ user -> model
    def _queue(self, which: str, value: float) -> None:
        """Remember the latest drag position; the frame timer applies it (drags emit far more often than a
        screen refreshes, and each update redraws both plots)."""
        self._pending = (which, value)
        if not self._drag_timer.isActive():
            self._drag_timer.start()

    @Slot()
    def flush_pending(self) -> None:
        """Apply a queued drag position now (the frame timer, a release, or a benchmark calls this)."""
        self._drag_timer.stop()
        pending, self._pending = self._pending, None
        if pending is None:
            return
        which, value = pending
        if which == "t1":
            self.model.set_t1(value)
        else:
            self.model.set_t2(value)

    @Slot(object)
    def _on_line_moved(self, line: pg.InfiniteLine) -> None:
        if not self._syncing:
            self._queue("t1" if line is self.histogram.t1_line else "t2", float(line.value()))

    @Slot(object)
    def _on_target_moved(self, target: pg.TargetItem) -> None:
        if self._syncing or not self.model.has_roc():
            return
        pos = target.pos()
        self._queue("t1", self.model.threshold_at_roc_point(pos.x(), pos.y()))

    @Slot()
    def _on_drag_finished(self) -> None:
        self.flush_pending()
        # Snap the dragged item back onto the model's value even if the model did not change (clamped at
        # T2, or the ROC target released between two curve points).
        self._sync_thresholds()
        self._commit()

    @Slot(int)
    def _on_slider_moved(self, _value: int) -> None:
        if self._syncing:
            return
        control = self.t1 if self.sender() is self.t1.slider else self.t2
        self._queue("t1" if control is self.t1 else "t2", control.slider_value())
        if not control.slider.isSliderDown():  # keyboard / page step: a complete action
            self._on_drag_finished()

    @Slot(float)
    def _on_spin_changed(self, value: float) -> None:
        if self._syncing:
            return
        if self.sender() is self.t1.spin:
            self.model.set_t1(value)
        else:
            self.model.set_t2(value)
        self._sync_thresholds()
        self._commit()

    @Slot(bool)
    def _on_band_toggled(self, on: bool) -> None:
        if self._syncing:
            return
        self.model.set_review_band(on)
        self._commit()

    @Slot()
    def _on_preset_changed(self) -> None:
        default = PRESETS[self.preset_combo.currentData()][0]
        self.preset_param.setEnabled(default is not None)
        if default is not None:
            self.preset_param.setValue(default)

    @Slot()
    def _on_apply_preset(self) -> None:
        preset = self.preset_combo.currentData()
        param = self.preset_param.value() if self.preset_param.isEnabled() else None
        try:
            self.model.apply_preset(preset, param)
        except ValueError as exc:
            self.message.setText(f"{_PRESET_TEXT[preset]}: {exc}")
            return
        self.message.setText("")
        self._commit()

    def _commit(self) -> None:
        t1, t2 = self.model.t1, self.model.t2
        if math.isfinite(t1) and math.isfinite(t2):
            self.committed.emit(t1, t2, self.model.method)

    # ------------------------------------------------------------------ model -> views
    def _on_model_event(self, event: ModelEvent) -> None:
        if event.type == "thresholds":
            self._sync_thresholds()
            self._sync_stats()
        else:
            self._refresh_all()

    def _refresh_all(self) -> None:
        lo, hi = self.model.score_range()
        self.t1.set_range(lo, hi)
        self.t2.set_range(lo, hi)
        self.histogram.set_histogram(*self.model.histogram())
        curve = self.model.roc()
        self.roc.set_curve(None if curve is None else curve.x, None if curve is None else curve.y,
                           self.model.auroc())
        self._sync_thresholds()
        self._sync_stats()

    def _sync_thresholds(self) -> None:
        """Put the model's thresholds into every control with feedback suppressed."""
        m = self.model
        self._syncing = True
        try:
            if math.isfinite(m.t1) and math.isfinite(m.t2):
                self.histogram.set_thresholds(m.t1, m.t2, m.review_band)
                if m.has_roc():
                    self.roc.set_points(m.operating_point(m.t1),
                                        m.operating_point(m.t2) if m.review_band else None)
            self.t1.show_value(m.t1)
            self.t2.show_value(m.t2)
            self.t2.setEnabled(m.review_band)
            self.band_check.setChecked(m.review_band)
            self.method_label.setText(f"method: {m.method}")
        finally:
            self._syncing = False

    def _sync_stats(self) -> None:
        st = self.model.stats()
        for r, (label, _) in enumerate(_ROWS):
            for c, column in enumerate(COLUMNS):
                self.table.item(r, c).setText(str(st.counts[label][column]))
        self.metrics_label.setText(
            f"TPR {st.tpr:.3f}   FPR {st.fpr:.3f}   precision {st.precision:.3f}   F1 {st.f1:.3f}")
        review = st.column_total("review")
        total = review + st.column_total("pass") + st.column_total("fail")
        share = f" ({review / total:.1%})" if total else ""
        auto = f"auto-fail only: TPR {st.auto_fail.tpr:.3f}  FPR {st.auto_fail.fpr:.3f}" if self.model.review_band \
            else "review counts as flagged"
        unscored = f"; {st.n_unscored} unscored" if st.n_unscored else ""
        if st.n_left_out:
            unscored += f"; {st.n_left_out} training images left out"
        self.auto_label.setText(f"to review: {review}{share}; {auto}{unscored}")
