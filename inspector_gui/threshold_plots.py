"""The two plots of the threshold panel: the score histogram split by label with draggable T1 / T2 lines,
and the ROC curve with a draggable operating point.

These are dumb views: they draw what the panel hands them (from `core.threshold.ThresholdModel`) and report
what the mouse did through pyqtgraph's own signals (`sigPositionChanged` while dragging,
`sigPositionChangeFinished` on release). They never compute a metric.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGraphicsItem

from core.vocabulary import LABEL_COLOURS

# Draw order: the big groups first so the small ones (defects, suspicious) are drawn on top of them.
HIST_ORDER = ("good", "unlabeled", "suspicious", "defect")
T1_COLOUR = "#1f3a93"
T2_COLOUR = "#8e44ad"
BAND_BRUSH = (255, 200, 0, 45)


def _cache(item: pg.PlotDataItem) -> None:
    """Keep a drawn curve as a pixmap: while a threshold is dragged the curves do not change, and blitting
    them is much cheaper than re-filling the paths at every frame. Qt drops the pixmap when the item calls
    update() (new data) or the view transform changes (zoom, resize)."""
    item.curve.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)


def _fill(colour: str, alpha: int) -> QColor:
    c = QColor(colour)
    c.setAlpha(alpha)
    return c


class HistogramView(pg.PlotWidget):
    """Score histogram per label (step curves with light fills, so overlapping groups stay visible) and the
    T1 / T2 lines; the review band between them is shaded."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        plot = self.getPlotItem()
        plot.setLabel("bottom", "anomaly score")
        plot.setLabel("left", "images")
        plot.showGrid(x=False, y=True, alpha=0.2)
        plot.setMenuEnabled(False)
        # Zoom / pan along the score axis only: counts always start at zero.
        plot.setMouseEnabled(x=True, y=False)
        self.legend = plot.addLegend(offset=(-8, 8), labelTextSize="8pt", verSpacing=-6)
        self.curves: dict[str, pg.PlotDataItem] = {}
        for label in HIST_ORDER:
            colour = LABEL_COLOURS[label]
            self.curves[label] = plot.plot(
                [0.0, 1.0], [0.0], stepMode="center", fillLevel=0, fillOutline=False,
                pen=pg.mkPen(colour, width=1.5), brush=_fill(colour, 50), name=label)
            _cache(self.curves[label])
        self.band = pg.LinearRegionItem(values=(0, 0), movable=False, brush=BAND_BRUSH,
                                        pen=pg.mkPen(None))
        self.band.setZValue(-10)
        plot.addItem(self.band, ignoreBounds=True)
        self.t1_line = pg.InfiniteLine(
            0.0, angle=90, movable=True, pen=pg.mkPen(T1_COLOUR, width=2),
            hoverPen=pg.mkPen(T1_COLOUR, width=4), label="T1 {value:.4g}",
            labelOpts={"position": 0.93, "color": T1_COLOUR, "fill": (255, 255, 255, 200)})
        self.t2_line = pg.InfiniteLine(
            0.0, angle=90, movable=True, pen=pg.mkPen(T2_COLOUR, width=2, style=pg.QtCore.Qt.PenStyle.DashLine),
            hoverPen=pg.mkPen(T2_COLOUR, width=4), label="T2 {value:.4g}",
            labelOpts={"position": 0.78, "color": T2_COLOUR, "fill": (255, 255, 255, 200)})
        for line in (self.t1_line, self.t2_line):
            line.setZValue(10)
            plot.addItem(line, ignoreBounds=True)

    def sizeHint(self) -> QSize:
        return QSize(520, 300)

    def set_histogram(self, edges: np.ndarray, counts: dict[str, np.ndarray]) -> None:
        for label, curve in self.curves.items():
            curve.setData(edges, counts[label])
        top = max((int(c.max()) for c in counts.values() if c.size), default=1)
        self.getPlotItem().setYRange(0, max(top, 1) * 1.08, padding=0)
        lo, hi = float(edges[0]), float(edges[-1])
        pad = (hi - lo) * 0.02
        self.getPlotItem().setXRange(lo - pad, hi + pad, padding=0)

    def set_thresholds(self, t1: float, t2: float, band: bool) -> None:
        """Move lines and shading (callers block feedback while they do)."""
        self.t1_line.setValue(t1)
        self.t2_line.setValue(t2)
        self.t2_line.setVisible(band)
        self.band.setVisible(band)
        if band:
            self.band.setRegion((t1, t2))
            # pyqtgraph skips label updates of hidden lines: refresh the text now that T2 is shown.
            self.t2_line.label.valueChanged()


class RocView(pg.PlotWidget):
    """ROC curve of good vs defect with a draggable target at the operating point of T1 (review counts as
    flagged) and a fixed marker for T2 (what fails without review) when the band is on."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        plot = self.getPlotItem()
        plot.setLabel("bottom", "FPR (good flagged)")
        plot.setLabel("left", "TPR (defects flagged)")
        plot.showGrid(x=True, y=True, alpha=0.12)
        plot.setMenuEnabled(False)
        # The unit square is the whole story: no zoom or pan that could lose the curve.
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.setXRange(0, 1, padding=0.03)
        plot.setYRange(0, 1, padding=0.03)
        _cache(plot.plot([0, 1], [0, 1], pen=pg.mkPen((150, 150, 150), width=1,
                                                     style=pg.QtCore.Qt.PenStyle.DotLine)))
        self.curve = plot.plot([], [], pen=pg.mkPen("#d62728", width=2))
        _cache(self.curve)
        # Only the drawing is thinned (at most about one point per pixel column); the model's curve is exact.
        self.curve.setDownsampling(auto=True, method="peak")
        self.t2_marker = pg.ScatterPlotItem(size=9, symbol="s", pen=pg.mkPen(T2_COLOUR, width=2),
                                            brush=pg.mkBrush(255, 255, 255))
        plot.addItem(self.t2_marker)
        self._t2_point: tuple[float, float] | None = None
        self.target = pg.TargetItem(pos=(0, 0), size=14, symbol="o", movable=True,
                                    pen=pg.mkPen(T1_COLOUR, width=2), brush=_fill(T1_COLOUR, 90),
                                    hoverPen=pg.mkPen(T1_COLOUR, width=3), hoverBrush=_fill(T1_COLOUR, 160))
        self.target.setZValue(10)
        plot.addItem(self.target)
        self.message = pg.TextItem("", color=(90, 90, 90), anchor=(0.5, 0.5))
        self.message.setPos(0.5, 0.5)
        plot.addItem(self.message, ignoreBounds=True)
        self.auc_text = pg.TextItem("", color=(40, 40, 40), anchor=(1, 1))
        self.auc_text.setPos(0.98, 0.02)
        plot.addItem(self.auc_text, ignoreBounds=True)

    def sizeHint(self) -> QSize:
        return QSize(300, 300)

    def set_curve(self, fpr: np.ndarray | None, tpr: np.ndarray | None, auroc: float | None) -> None:
        available = fpr is not None and tpr is not None
        self.curve.setData(fpr if available else [], tpr if available else [])
        self.target.setVisible(available)
        self.message.setText("" if available else "ROC needs images\nlabeled good and defect")
        self.auc_text.setText(f"AUROC {auroc:.3f}" if available and auroc is not None else "")
        if not available:
            self._t2_point = None
            self.t2_marker.setData([], [])

    def set_points(self, t1_point: tuple[float, float], t2_point: tuple[float, float] | None) -> None:
        self.target.setPos(*t1_point)
        # Rebuilding a scatter item costs about half a millisecond: skip it when the T2 point did not move
        # (always, while T1 is dragged).
        if t2_point != self._t2_point:
            self._t2_point = t2_point
            self.t2_marker.setData(*([], []) if t2_point is None else ([t2_point[0]], [t2_point[1]]))
