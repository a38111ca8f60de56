"""What scoring returns and how its maps lie on the images: the part of the detector contract the window,
the store and the reports read, kept apart from the Detector interface so display code needs no detector."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from core.data.patches import patch_coverage_map


@dataclass(frozen=True)
class MapGeometry:
    """Where a score map lies on the image it came from.

    A map of shape (gh, gw) on a patch grid: cell (i, j) scores the patch whose top-left corner is
    (i * stride, j * stride) in the *processed* image of shape `input_shape`, `patch` pixels square.
    A pixel map has patch = stride = 1. `original_shape` is the image as decoded from disk, so an overlay
    scales by original_shape / input_shape.
    """

    input_shape: tuple[int, int]
    original_shape: tuple[int, int]
    patch: int
    stride: int

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class ScoreResult:
    """Scores of a batch of images.

    scores: (N,) the default component, higher = more anomalous.
    components: name -> (N,) every component the method defines (e.g. L, D, A, M); includes the default.
    maps: name -> list of N 2-D float32 arrays (patch or pixel grid), one per image.
    geometry: one MapGeometry per image.
    extras: method-specific small payloads (e.g. OIAD morph strips), name -> list of N items.
    levels: (N, 2) each image's mean and std of intensity before normalisation (the drift warning's input),
        filled in by Detector.score; None when unknown.
    """

    default_component: str
    components: dict[str, np.ndarray]
    maps: dict[str, list[np.ndarray]] = field(default_factory=dict)
    geometry: list[MapGeometry] = field(default_factory=list)
    extras: dict[str, list[Any]] = field(default_factory=dict)
    levels: np.ndarray | None = None

    @property
    def scores(self) -> np.ndarray:
        return self.components[self.default_component]

    def __len__(self) -> int:
        return len(self.scores)

    @staticmethod
    def concatenate(parts: Sequence[ScoreResult]) -> ScoreResult:
        """Join the results of consecutive batches (same detector)."""
        if not parts:
            raise ValueError("nothing to concatenate")
        first = parts[0]
        return ScoreResult(
            default_component=first.default_component,
            components={k: np.concatenate([p.components[k] for p in parts]) for k in first.components},
            maps={k: [m for p in parts for m in p.maps[k]] for k in first.maps},
            geometry=[g for p in parts for g in p.geometry],
            extras={k: [e for p in parts for e in p.extras[k]] for k in first.extras},
            levels=(np.concatenate([p.levels for p in parts]) if all(p.levels is not None for p in parts)
                    else None),
        )


def pixel_map(grid: np.ndarray, geometry: MapGeometry, reduce: str = "mean") -> np.ndarray:
    """A map on the original image's pixels: patch values spread over the pixels each patch covers
    (mean of the covering patches), then scaled from the processed to the original image size."""
    if geometry.patch == 1 and geometry.stride == 1:
        dense = np.asarray(grid, np.float32)
    else:
        dense = patch_coverage_map(grid, geometry.input_shape, geometry.patch, geometry.stride, reduce)
    if dense.shape != tuple(geometry.original_shape):
        h, w = geometry.original_shape
        dense = cv2.resize(dense, (w, h), interpolation=cv2.INTER_LINEAR)
    return dense


def shared_map_ranges(maps: dict[str, list[np.ndarray]], lo_pct: float = 1.0,
                      hi_pct: float = 99.5) -> dict[str, tuple[float, float]]:
    """One colour range per component over every image of a run, so heat-map colours compare between
    images (percentiles, so one extreme patch does not wash out the rest)."""
    out = {}
    for name, grids in maps.items():
        if not grids:
            continue
        flat = np.concatenate([np.asarray(g, np.float64).ravel() for g in grids])
        lo, hi = np.percentile(flat, [lo_pct, hi_pct])
        out[name] = (float(lo), float(hi) if hi > lo else float(lo) + 1e-6)
    return out


def map_layout(geometry: Sequence[MapGeometry]) -> dict[str, Any]:
    """How a run's maps lie on their images, in a form a store can keep as JSON: patch and stride, and the
    processed input size when every image shares one (resized runs); else maps lie on the original image."""
    if not geometry:
        return {}
    first = geometry[0]
    same_input = all(g.input_shape == first.input_shape for g in geometry)
    return {"patch": first.patch, "stride": first.stride,
            "input_shape": list(first.input_shape) if same_input else None}


def geometry_from_layout(layout: dict[str, Any], params: dict[str, Any], shape: tuple[int, int]) -> MapGeometry:
    """The MapGeometry of one image of a stored run. Runs stored before layouts were recorded fall back to the
    patch detectors' settings (image_size, patch_size, stride)."""
    if layout:
        input_shape = tuple(layout["input_shape"]) if layout.get("input_shape") else shape
        return MapGeometry(input_shape, shape, int(layout["patch"]), int(layout["stride"]))
    size = params.get("image_size")
    return MapGeometry((size, size) if size else shape, shape, int(params.get("patch_size") or 1),
                       int(params.get("stride") or 1))
