"""The Samples tab: the grid of generated images a GAN-based model keeps with it (f-AnoGAN's G(z), or the
DCGAN images an autoencoder was trained on with augment=dcgan), so the engineer can judge what the generator
learned before trusting its scores. Shown only for runs whose metadata carries a grid
(core.detectors.gan.samples)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QLabel, QScrollArea, QVBoxLayout, QWidget

from core.detectors.gan.samples import decode_grid

# Generated images are small (64 px): shown enlarged, without smoothing, so their pixels stay visible.
MAX_ZOOM = 4


def grid_qimage(pixels: np.ndarray) -> QImage:
    """(H, W, 1 or 3) uint8 -> a QImage owning its pixels."""
    arr = np.ascontiguousarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels[:, :, :3])
    fmt = QImage.Format.Format_Grayscale8 if arr.ndim == 2 else QImage.Format.Format_RGB888
    return QImage(arr.data, arr.shape[1], arr.shape[0], arr.strides[0], fmt).copy()


class SamplesPanel(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        self.picture = QLabel()
        self.picture.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.picture)
        layout = QVBoxLayout(self)
        layout.addWidget(self.caption)
        layout.addWidget(scroll, 1)
        self._image: QImage | None = None

    def set_grid(self, record: dict | None) -> bool:
        """Show a run's sample grid (the metadata entry); False (and nothing shown) without one."""
        self._image = None
        self.picture.clear()
        if not record:
            self.caption.setText("")
            return False
        try:
            self._image = grid_qimage(decode_grid(record["png_base64"]))
        except (KeyError, ValueError) as exc:
            self.caption.setText(f"The model's sample grid cannot be shown ({exc}).")
            return True
        h, w = record.get("sample_shape", ["?", "?"])
        self.caption.setText(f"{record.get('caption', 'Generated samples')} ({w} x {h} px each).")
        self._fit()
        return True

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        if self._image is None:
            return
        room = max(self.width() - 30, 64)
        zoom = max(1, min(MAX_ZOOM, room // max(self._image.width(), 1)))
        self.picture.setPixmap(QPixmap.fromImage(self._image).scaled(
            self._image.width() * zoom, self._image.height() * zoom, Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.FastTransformation))
