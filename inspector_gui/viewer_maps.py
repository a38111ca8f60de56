"""Qt-free helpers of the image viewer: the dense-map cache, the patch under a point, mask contours.

Kept apart from the widget so the geometry can be reasoned about (and tested) without a scene, and so the
widget file stays about drawing and controls.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict

import cv2
import numpy as np

from core.detectors.results import MapGeometry, pixel_map


class DenseMapCache:
    """Pixel maps (core.detectors.results.pixel_map) of patch grids, least recently used first out.

    Keyed by the grid's *content* and geometry rather than the array object, because the main window may
    fetch the same map from the store again as a new array when the user comes back to an image; the
    digest of a patch grid costs microseconds, the spread onto the pixels does not.
    """

    def __init__(self, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple, tuple[np.ndarray, tuple[float, float]]] = OrderedDict()
        self._bytes = 0
        self.misses = 0  # how many dense maps were computed (tests check that nothing is recomputed)

    @staticmethod
    def key(grid: np.ndarray, geometry: MapGeometry) -> tuple:
        arr = np.ascontiguousarray(grid, dtype=np.float32)
        digest = hashlib.blake2b(arr.tobytes(), digest_size=16).digest()
        return digest, arr.shape, geometry

    def get(self, grid: np.ndarray, geometry: MapGeometry) -> tuple[np.ndarray, tuple[float, float]]:
        """The dense map on the original image's pixels and its finite (min, max)."""
        k = self.key(grid, geometry)
        hit = self._entries.get(k)
        if hit is not None:
            self._entries.move_to_end(k)
            return hit
        self.misses += 1
        dense = np.ascontiguousarray(pixel_map(np.asarray(grid, np.float32), geometry), dtype=np.float32)
        finite = dense[np.isfinite(dense)]
        span = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        entry = (dense, span)
        self._entries[k] = entry
        self._bytes += dense.nbytes
        while self._bytes > self.max_bytes and len(self._entries) > 1:
            _, (old, _) = self._entries.popitem(last=False)
            self._bytes -= old.nbytes
        return entry

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0


def safe_levels(lo: float, hi: float) -> tuple[float, float]:
    """A colour range pyqtgraph can divide by: a constant map still gets a (tiny) non-empty range."""
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return 0.0, 1.0
    if hi <= lo:
        hi = lo + max(1e-6, abs(lo) * 1e-6)
    return lo, hi


def patch_cell(x: float, y: float, grid_shape: tuple[int, int], geometry: MapGeometry) -> tuple[int, int]:
    """Grid cell (i, j) of the patch under the point (x, y) of the original image (pixel (c, r) spans
    [c, c+1) x [r, r+1)): the window whose centre is nearest, after scaling to the processed image.

    Nearest centre rather than "first window that covers" because windows overlap when stride < patch, and
    the nearest one is the patch the value is most about. Points in the strip no window starts in (the
    last (h - patch) % stride pixels) belong to the last row / column.
    """
    in_h, in_w = geometry.input_shape
    if geometry.patch == 1 and geometry.stride == 1:  # a pixel map, maybe stored smaller (evaluate.bounded_maps)
        in_h, in_w = grid_shape
    orig_h, orig_w = geometry.original_shape
    px = x * in_w / orig_w
    py = y * in_h / orig_h
    half = geometry.patch / 2.0
    gh, gw = grid_shape
    # floor(v + 0.5) instead of round(): Python rounds halves to even, which would make ties depend on parity.
    i = int(math.floor((py - half) / geometry.stride + 0.5))
    j = int(math.floor((px - half) / geometry.stride + 0.5))
    return min(max(i, 0), gh - 1), min(max(j, 0), gw - 1)


def mask_contour(mask: np.ndarray, image_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Outline of every defect region as one polyline (x, y) with NaN breaks, in image coordinates.

    The outline follows the *edges* of the defect pixels (ImageItem draws pixel (c, r) as the square
    [c, c+1) x [r, r+1)), not their centres: a one-pixel-wide scratch then gets a thin loop around it
    instead of a line drawn over it. findContours traces pixel centres, so the mask is first upsampled
    k times (nearest), which puts the traced centres within 0.5 / k px of the true edges. A mask of another
    size than the image is scaled onto it.
    """
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[:, :, 0]
    m = (m > 0).astype(np.uint8)
    k = max(1, min(4, 4096 // max(m.shape)))  # bounded memory for large masks
    up = np.repeat(np.repeat(m, k, axis=0), k, axis=1) if k > 1 else m
    contours, _ = cv2.findContours(up, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return np.zeros(0), np.zeros(0)
    sy = image_shape[0] / m.shape[0]
    sx = image_shape[1] / m.shape[1]
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for c in contours:
        pts = c.reshape(-1, 2).astype(np.float64)
        pts = np.vstack([pts, pts[:1]])  # close the outline
        xs += [(pts[:, 0] + 0.5) / k * sx, [np.nan]]
        ys += [(pts[:, 1] + 0.5) / k * sy, [np.nan]]
    return np.concatenate(xs), np.concatenate(ys)


def format_value(v: float) -> str:
    """Short and readable for both VAE scores (thousands) and Isolation-Forest-like scores (0.0x)."""
    v = float(v)
    if not math.isfinite(v):
        return "nan"
    if abs(v) >= 100:
        return f"{v:.1f}"
    return f"{v:.4g}"
