"""Tiling at native resolution for the feature detectors: a 5 MP frame squashed to 224 px shrinks 11x, and a
3 px scratch vanishes; cut into overlapping image_size tiles, every pixel reaches the backbone as it was taken.

Training sees every tile of every training frame as one more image (PaDiM models each tile-grid position over
all tiles, PatchCore pools their patches), so both describe the surface at native scale. Scoring scores every
tile of a frame and stitches the tiles' heat maps back onto the frame (the largest value where tiles overlap),
at a bounded resolution: the map's longer side is at most MAP_SIDE px, whatever the frame size. The image
score is the largest tile score.

Frames of one run share a size on a line; a training frame of another size than the first is resized to the
first's, so each one yields the same tiles (said in the model's metadata as `tile_frame`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

import cv2
import numpy as np

MAP_SIDE = 1024  # stitched maps: at most this many pixels on the longer side


def starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along one axis: stride tile - overlap, the last tile flush with the far edge."""
    if length <= tile:
        return [0]
    step = max(1, tile - overlap)
    n = math.ceil((length - tile) / step) + 1
    out = [min(i * step, length - tile) for i in range(n)]
    return sorted(set(out))


@dataclass(frozen=True)
class TileLayout:
    """Where a frame's tiles lie: (y, x) origins of image_size squares."""

    frame: tuple[int, int]
    tile: int
    origins: tuple[tuple[int, int], ...]

    @staticmethod
    def of(shape: tuple[int, int], tile: int, overlap: int) -> TileLayout:
        h, w = int(shape[0]), int(shape[1])
        return TileLayout((h, w), tile, tuple((y, x) for y in starts(h, tile, overlap)
                                              for x in starts(w, tile, overlap)))

    def __len__(self) -> int:
        return len(self.origins)

    def cut(self, img: np.ndarray) -> list[np.ndarray]:
        """The tiles of `img` (views, no copy); a frame smaller than a tile is padded by edge replication."""
        h, w = img.shape[:2]
        t = self.tile
        if h < t or w < t:
            img = cv2.copyMakeBorder(img, 0, max(0, t - h), 0, max(0, t - w), cv2.BORDER_REPLICATE)
            if img.ndim == 2:
                img = img[:, :, None]
        return [img[y:y + t, x:x + t] for y, x in self.origins]

    def map_scale(self) -> float:
        return min(1.0, MAP_SIDE / max(self.frame))

    def stitch(self, tile_maps: Sequence[np.ndarray]) -> np.ndarray:
        """Tile heat maps (each at tile size) -> one map over the frame at map_scale(), max where they overlap."""
        s = self.map_scale()
        h, w = self.frame
        out_h, out_w = max(1, round(h * s)), max(1, round(w * s))
        canvas = np.full((out_h, out_w), -np.inf, dtype=np.float32)
        t = self.tile
        for (y, x), m in zip(self.origins, tile_maps, strict=True):
            y0, x0 = round(y * s), round(x * s)
            y1, x1 = min(out_h, round(min(y + t, h) * s)), min(out_w, round(min(x + t, w) * s))
            if y1 <= y0 or x1 <= x0:
                continue
            part = m[:min(t, h - y), :min(t, w - x)]
            part = cv2.resize(part, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA if s < 1 else
                              cv2.INTER_LINEAR)
            np.maximum(canvas[y0:y1, x0:x1], part, out=canvas[y0:y1, x0:x1])
        canvas[~np.isfinite(canvas)] = 0.0
        return canvas


class TrainingTiles(Sequence[np.ndarray]):
    """Every tile of every training frame as one sequence, decoding each frame once for all its tiles (the
    frames are read in order, so a one-frame cache suffices)."""

    def __init__(self, frames: Sequence[np.ndarray], layout: TileLayout) -> None:
        self.frames = frames
        self.layout = layout
        self._cached: tuple[int, list[np.ndarray]] | None = None

    def __len__(self) -> int:
        return len(self.frames) * len(self.layout)

    def _tiles_of(self, f: int) -> list[np.ndarray]:
        if self._cached is None or self._cached[0] != f:
            img = self.frames[f]
            h, w = self.layout.frame
            if img.shape[:2] != (h, w):
                img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
                if img.ndim == 2:
                    img = img[:, :, None]
            self._cached = (f, self.layout.cut(img))
        return self._cached[1]

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, index: slice) -> list[np.ndarray]: ...

    def __getitem__(self, index: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        f, t = divmod(index, len(self.layout))
        return self._tiles_of(f)[t]

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self[i]
