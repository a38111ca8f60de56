"""OIAD morph strips: for the patch (or image) outlined in the viewer, one row per selected latent code.

A row reads left to right: the source patch, its reconstruction, then the morphs the code's traversal decodes
(ordered by the code's value, low to high), and under each morph its difference from the reconstruction
(morph - reconstruction) in one diverging colour range shared by every row (blue = darker, red = brighter,
white = unchanged; the range is stated in the panel's header). The structure consistency of the code is drawn
as a marker against its normal interval (green inside, red outside).

The payload is ScoreResult.extras["morph_strips"][i] (or OIAD.strips_at): a list of dicts with keys code,
morphs (s x H x W [x C] floats in [0, 1]), sc, interval (lo, hi), metric, and when the detector provides them
source and recon (H x W [x C]), values (the code values of the morphs), cell and box (where the patch lies).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QGridLayout, QLabel, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

STRIP_KEY = "morph_strips"
TILE = 96  # pixels per tile side: a 32 px patch at 3x, large enough to see what a code changes
SC_BAR_HEIGHT = 30


def to_qimage(arr: np.ndarray) -> QImage:
    """An H x W [x C] float image in [0, 1] (or uint8 RGB) as an owned 8-bit QImage."""
    a = np.asarray(arr)
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    a = np.ascontiguousarray(a[:, :, :3] if a.ndim == 3 else a)
    fmt = QImage.Format.Format_Grayscale8 if a.ndim == 2 else QImage.Format.Format_RGB888
    return QImage(a.data, a.shape[1], a.shape[0], a.strides[0], fmt).copy()  # own the pixels


def tile_pixmap(arr: np.ndarray, size: int = TILE) -> QPixmap:
    """A tile scaled to `size` pixels square with nearest-neighbour (pixels stay pixels)."""
    img = to_qimage(arr).scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                                Qt.TransformationMode.FastTransformation)
    return QPixmap.fromImage(img)


def diverging(diff: np.ndarray, limit: float) -> np.ndarray:
    """Signed differences (H x W [x C], averaged over colour) -> H x W x 3 uint8: blue < 0 < red, white at 0,
    saturated at +-limit."""
    d = np.asarray(diff, dtype=np.float32)
    if d.ndim == 3:
        d = d.mean(axis=2)
    t = np.clip(d / max(limit, 1e-12), -1.0, 1.0)
    pos, neg = np.clip(t, 0, 1), np.clip(-t, 0, 1)
    rgb = np.stack([1 - neg, 1 - pos - neg, 1 - pos], axis=2)
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def strip_image(morphs: np.ndarray, height: int = TILE) -> QImage:
    """Morphs side by side as one 8-bit image (gray or RGB), each scaled to `height` pixels (for exports)."""
    arr = np.asarray(morphs, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[..., None]
    row = np.concatenate(list(arr), axis=1)
    img = to_qimage(row)
    return img.scaledToHeight(height, Qt.TransformationMode.FastTransformation)


def diff_limit(strips: list[dict], quantile: float = 0.99) -> float:
    """The shared colour range of the difference tiles: the 99th percentile of |morph - recon| over every row's
    pixels (at least 1/255; the few larger differences saturate), so one extreme corner does not wash out the
    rest."""
    parts = [np.abs(np.asarray(s["morphs"], np.float32) - np.asarray(s["recon"], np.float32)[None]).ravel()
             for s in strips if s.get("recon") is not None]
    if not parts:
        return 1.0 / 255
    return max(1.0 / 255, float(np.quantile(np.concatenate(parts), quantile)))


class ScBar(QWidget):
    """The SC value as a marker on an axis with the code's normal interval as a band."""

    def __init__(self, sc: float, interval: tuple[float, float], parent: QWidget | None = None):
        super().__init__(parent)
        self.sc, (self.lo, self.hi) = float(sc), (float(interval[0]), float(interval[1]))
        self.setMinimumSize(QSize(150, SC_BAR_HEIGHT))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    @property
    def inside(self) -> bool:
        return self.lo <= self.sc <= self.hi

    def span(self) -> tuple[float, float]:
        """The axis: the interval and the value, with a margin of half the interval's width each side."""
        a, b = min(self.lo, self.sc), max(self.hi, self.sc)
        pad = max(0.5 * (self.hi - self.lo), 0.05 * (b - a), 1e-9)
        return a - pad, b + pad

    def x_of(self, v: float, width: float) -> float:
        a, b = self.span()
        return 4 + (v - a) / (b - a) * (width - 8)

    def paintEvent(self, _event) -> None:  # noqa: N802 (Qt name)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h = self.width(), self.height()
        mid = h / 2 - 4
        p.setPen(QPen(QColor("#888888"), 1))
        p.drawLine(4, int(mid), w - 4, int(mid))
        x0, x1 = self.x_of(self.lo, w), self.x_of(self.hi, w)
        p.fillRect(QRectF(x0, mid - 6, max(x1 - x0, 2.0), 12), QColor(44, 160, 44, 90))
        p.setPen(QPen(QColor("#2ca02c"), 1))
        p.drawRect(QRectF(x0, mid - 6, max(x1 - x0, 2.0), 12))
        colour = QColor("#2ca02c") if self.inside else QColor("#d62728")
        xs = self.x_of(self.sc, w)
        p.setPen(QPen(colour, 3))
        p.drawLine(int(xs), int(mid - 9), int(xs), int(mid + 9))
        p.setPen(QPen(self.palette().text().color(), 1))
        font = p.font()
        font.setPointSizeF(max(6.5, font.pointSizeF() * 0.8))
        p.setFont(font)
        p.drawText(QRectF(0, mid + 8, w, h - mid - 8), Qt.AlignmentFlag.AlignLeft, f"{self.lo:.4g}")
        p.drawText(QRectF(0, mid + 8, w, h - mid - 8), Qt.AlignmentFlag.AlignRight, f"{self.hi:.4g}")
        p.end()


class StripRow:
    """The widgets of one code's row (kept for tests and screenshots)."""

    def __init__(self, strip: dict, limit: float, parent_grid: QGridLayout, row: int, tile: int):
        lo, hi = strip["interval"]
        sc = float(strip["sc"])
        self.bar = ScBar(sc, (lo, hi))
        verdict = "inside" if self.bar.inside else ("OUTSIDE (above)" if sc > hi else "OUTSIDE (below)")
        colour = "#2ca02c" if self.bar.inside else "#d62728"
        values = strip.get("values")
        walk = f"<br>z from {values[0]:.3g} to {values[-1]:.3g}" if values else ""
        self.text = QLabel(f"<b>code {strip['code']}</b><br>{strip.get('metric', 'SC')} {sc:.4g}<br>"
                           f"<span style='color:{colour}'>{verdict}</span><br>interval [{lo:.4g}, {hi:.4g}]{walk}")
        self.text.setTextFormat(Qt.TextFormat.RichText)
        left = QWidget()
        lay = QVBoxLayout(left)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.text)
        lay.addWidget(self.bar)
        lay.addStretch(1)
        left.setFixedWidth(190)
        parent_grid.addWidget(left, 2 * row + 1, 0, 2, 1)
        self.widgets: list[QWidget] = [left]
        self.tiles: list[QLabel] = []
        self.diffs: list[QLabel] = []
        col = 1
        recon = strip.get("recon")
        for key in ("source", "recon"):
            if strip.get(key) is not None:
                self.tiles.append(self._tile(tile_pixmap(strip[key], tile), f"{key} patch" if key == "source"
                                             else "reconstruction (the morphs' reference)"))
                parent_grid.addWidget(self.tiles[-1], 2 * row + 1, col)
                col += 1
        morphs = np.asarray(strip["morphs"])
        for k, m in enumerate(morphs):
            tip = f"morph {k + 1} of {len(morphs)}" + (f", z = {values[k]:.4g}" if values else "")
            self.tiles.append(self._tile(tile_pixmap(m, tile), tip))
            parent_grid.addWidget(self.tiles[-1], 2 * row + 1, col + k)
            if recon is not None:
                d = QLabel()
                d.setPixmap(tile_pixmap(diverging(m - np.asarray(recon), limit), tile))
                d.setToolTip(f"morph {k + 1} - reconstruction; blue -{limit:.3f}, white 0, red +{limit:.3f}")
                self.diffs.append(d)
                parent_grid.addWidget(d, 2 * row + 2, col + k)
        self.widgets += self.tiles + self.diffs

    @staticmethod
    def _tile(pixmap: QPixmap, tip: str) -> QLabel:
        label = QLabel()
        label.setPixmap(pixmap)
        label.setToolTip(tip)
        return label


class MorphStripPanel(QWidget):
    def __init__(self, parent: QWidget | None = None, tile: int = TILE):
        super().__init__(parent)
        self.tile = tile
        self.header = QLabel("")
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.header.setWordWrap(True)
        self.host = QWidget()
        self.grid = QGridLayout(self.host)
        self.grid.setHorizontalSpacing(4)
        self.grid.setVerticalSpacing(2)
        self.grid.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.host)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.header)
        layout.addWidget(scroll, 1)
        # Room for one full row (morphs and their differences) without scrolling.
        self.setMinimumHeight(2 * tile + 60)
        self.rows: list[StripRow] = []
        self.limit = 0.0

    def set_strips(self, strips: list[dict] | None, where: str = "") -> None:
        """Show the strips of one patch / image (`where` names it in the header); hides the panel when none."""
        while self.grid.count():
            old = self.grid.takeAt(0).widget()
            old.hide()  # deleteLater waits for the event loop; the old row must not show under the new one
            old.deleteLater()
        self.rows = []
        strips = strips or []
        self.limit = diff_limit(strips)
        if strips:  # column captions (grid row 0)
            first = strips[0]
            heads = [h for h, key in (("source", "source"), ("reconstruction", "recon")) if first.get(key) is not None]
            n = len(first["morphs"])
            heads += [f"morph {k + 1}" + (" (low z)" if k == 0 else " (high z)" if k == n - 1 else "")
                      for k in range(n)]
            for c, h in enumerate(heads):
                cap = QLabel(h)
                cap.setAlignment(Qt.AlignmentFlag.AlignCenter)
                self.grid.addWidget(cap, 0, c + 1)
        for r, strip in enumerate(strips):
            self.rows.append(StripRow(strip, self.limit, self.grid, r, self.tile))
        if strips:
            cell = strips[0].get("cell")
            place = where or (f"patch (row {cell[0]}, col {cell[1]})" if cell is not None else "whole image")
            has_diff = strips[0].get("recon") is not None
            diff = (f"; under each morph, morph - reconstruction from <span style='color:#3050d0'>"
                    f"-{self.limit:.3f}</span> (blue) through 0 (white) to <span style='color:#d62728'>"
                    f"+{self.limit:.3f}</span> (red) of the [0, 1] grey scale, the same range for every code "
                    "(larger differences saturate)") if has_diff else ""
            self.header.setText(f"<b>{place}</b>: per code, source, reconstruction, then the morphs along the "
                                f"code's traversal (low to high z){diff}. Click a patch on the heat map for its "
                                "strips.")
        self.setVisible(bool(self.rows))
