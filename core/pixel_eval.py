"""Pixel metrics (pixel AUROC, PRO) of a run of any length in bounded memory.

While a run is scored, each image's map is brought to its mask's size (at most PIXEL_EVAL_SIDE px on the
longer side) and spooled to a temporary file as float16 (divided by its largest magnitude, as the store keeps
maps), with a small random sample of its values. After the run the sample fixes the bins of
metrics.PixelMetrics and the spool is read back one image at a time beside its mask, decoded then. So memory
holds one chunk of maps and the sample, never every map and mask of the run: at 2,000 frames the maps alone
were 360 MB and the masks 110 MB (issue: projects and streaming). The disk holds about 110 KB per map.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from core import metrics
from core.data.folders import ImageItem
from core.data.image_source import image_shape
from core.data.images import ImageLoadError, decode_mask
from core.detectors.results import MapGeometry, pixel_map

PIXEL_EVAL_SIDE = 256
SAMPLE_PER_MAP = 256

Log = Callable[[str], None]


def shrunk_shape(shape: tuple[int, int]) -> tuple[int, int]:
    scale = PIXEL_EVAL_SIDE / max(shape)
    if scale >= 1:
        return tuple(shape)
    return max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))


def shrink_mask(mask: np.ndarray) -> np.ndarray:
    h, w = shrunk_shape(mask.shape)
    if (h, w) == mask.shape:
        return mask
    return cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0


def fit_to(dense: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if dense.shape == tuple(shape):
        return dense
    interp = cv2.INTER_AREA if dense.shape[0] > shape[0] else cv2.INTER_LINEAR
    return cv2.resize(dense, (shape[1], shape[0]), interpolation=interp)


def has_masks(items: Sequence[ImageItem]) -> bool:
    """Pixel metrics need a mask for every defect image (good ones: empty)."""
    defects = [it for it in items if it.label == "defect"]
    return bool(defects) and all(it.mask_path is not None for it in defects)


class PixelMapSpool:
    """Maps at pixel-metric size, one component per temporary file, in the order the images were scored."""

    def __init__(self, seed: int = 0) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="inspector-pixels-")
        self._rng = np.random.default_rng(seed)
        self._files: dict[str, object] = {}
        self._shapes: dict[str, list[tuple[int, int]]] = {}
        self._scales: dict[str, list[float]] = {}
        self._samples: dict[str, list[np.ndarray]] = {}

    def add(self, maps: dict[str, list[np.ndarray]], geometry: Sequence[MapGeometry],
            items: Sequence[ImageItem]) -> None:
        """One scored chunk: maps by component, one per image of `items` (whose files give the sizes)."""
        shapes = [shrunk_shape(tuple(g.original_shape)) for g in geometry]
        for comp, grids in maps.items():
            if comp not in self._files:
                self._files[comp] = open(Path(self._dir.name) / f"{len(self._files)}.f16", "wb")  # noqa: SIM115
                self._shapes[comp], self._scales[comp], self._samples[comp] = [], [], []
            out = self._files[comp]
            for grid, geom, shape in zip(grids, geometry, shapes, strict=True):
                flat = np.ravel(grid)
                self._samples[comp].append(self._rng.choice(flat, min(SAMPLE_PER_MAP, flat.size), replace=False))
                dense = fit_to(pixel_map(grid, geom), shape)
                finite = np.abs(dense[np.isfinite(dense)])
                scale = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
                out.write((dense / np.float32(scale)).astype(np.float16).tobytes())
                self._shapes[comp].append(shape)
                self._scales[comp].append(scale)

    @property
    def components(self) -> list[str]:
        return list(self._files)

    def sample(self, comp: str) -> np.ndarray:
        return np.concatenate(self._samples[comp])

    def maps(self, comp: str) -> Iterator[np.ndarray]:
        """The component's maps back as float32, in the order they were added."""
        self._files[comp].flush()
        with open(self._files[comp].name, "rb") as f:
            for (h, w), scale in zip(self._shapes[comp], self._scales[comp], strict=True):
                block = np.frombuffer(f.read(h * w * 2), dtype=np.float16).reshape(h, w)
                yield block.astype(np.float32) * np.float32(scale)

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._dir.cleanup()


def image_masks(items: Sequence[ImageItem]) -> Iterator[np.ndarray]:
    """Each image's mask at pixel-metric size (good images: empty), decoded as it is needed."""
    for it in items:
        yield (shrink_mask(decode_mask(it.mask_path)) if it.mask_path else
               np.zeros(shrunk_shape(image_shape(it.path)), bool))


def pixel_metrics(spool: PixelMapSpool, items: Sequence[ImageItem], log: Log = print) -> dict[str, dict[str, float]]:
    """Pixel AUROC and PRO per component over the spooled maps of `items` (in scoring order). A mask file that
    cannot be read is named, and the run goes on without pixel metrics (they would be biased without it)."""
    out: dict[str, dict[str, float]] = {"pixel_auroc": {}, "pixel_pro": {}}
    for comp in spool.components:
        acc = metrics.PixelMetrics(spool.sample(comp))
        try:
            for mask, amap in zip(image_masks(items), spool.maps(comp), strict=True):
                acc.add(mask, fit_to(amap, mask.shape))
        except ImageLoadError as exc:
            log(f"skipped mask {exc.path}: {exc.reason} (no pixel metrics for this run)")
            return {}
        out["pixel_auroc"][comp] = round(acc.auroc(), 4)
        out["pixel_pro"][comp] = round(acc.pro(), 4)
    return out
