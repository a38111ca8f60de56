"""OIAD morph strips: for the selected image, one row of decoded latent-traversal morphs per latent code,
with the structure-consistency value against its normal interval. Shown only when the detector's result
carries strips (ScoreResult.extras["morph_strips"][i]: a list of dicts with keys code, morphs (k x H x W
[x C] floats in [0, 1]), sc, interval (lo, hi) and metric)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QGridLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

STRIP_KEY = "morph_strips"


STRIP_HEIGHT = 64


def strip_image(morphs: np.ndarray, height: int = STRIP_HEIGHT) -> QImage:
    """Morphs side by side as one 8-bit image (gray or RGB), scaled to `height` pixels."""
    arr = np.asarray(morphs, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[..., None]
    row = np.concatenate(list(arr), axis=1)  # H x (k*W) x C
    row = (np.clip(row, 0, 1) * 255).astype(np.uint8)
    if row.shape[2] == 1:
        row = np.ascontiguousarray(row[:, :, 0])
        img = QImage(row.data, row.shape[1], row.shape[0], row.strides[0], QImage.Format.Format_Grayscale8)
    else:
        row = np.ascontiguousarray(row[:, :, :3])
        img = QImage(row.data, row.shape[1], row.shape[0], row.strides[0], QImage.Format.Format_RGB888)
    img = img.copy()  # own the pixels: `row` is freed when this returns
    return img.scaledToHeight(height, Qt.TransformationMode.SmoothTransformation)


class MorphStripPanel(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.host = QWidget()
        self.grid = QGridLayout(self.host)
        self.grid.setColumnStretch(1, 1)  # strips start next to their labels; spare width goes to the right
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.host)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scroll)
        # Room for two strips without scrolling: one is rarely enough to compare codes.
        self.setMinimumHeight(2 * (STRIP_HEIGHT + 12) + 8)
        self.rows: list[tuple[QLabel, QLabel]] = []

    def set_strips(self, strips: list[dict] | None) -> None:
        """Show the strips of one image; hides the panel when there are none."""
        while self.grid.count():
            old = self.grid.takeAt(0).widget()
            old.hide()  # deleteLater waits for the event loop; the old row must not show under the new one
            old.deleteLater()
        self.rows = []
        for r, strip in enumerate(strips or []):
            lo, hi = strip["interval"]
            sc = float(strip["sc"])
            inside = lo <= sc <= hi
            verdict = "inside" if inside else "OUTSIDE"
            colour = "#2ca02c" if inside else "#d62728"
            text = QLabel(f"code {strip['code']}<br>{strip.get('metric', 'SC')} {sc:.4g}<br>"
                          f"<span style='color:{colour}'>{verdict} [{lo:.4g}, {hi:.4g}]</span>")
            picture = QLabel()
            picture.setPixmap(QPixmap.fromImage(strip_image(strip["morphs"])))
            self.grid.addWidget(text, r, 0)
            self.grid.addWidget(picture, r, 1, Qt.AlignmentFlag.AlignLeft)
            self.rows.append((text, picture))
        self.setVisible(bool(self.rows))
