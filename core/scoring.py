"""Batch scoring helpers shared by patch detectors: stream windows of many images through a scoring
function in fixed-size batches, then lay the per-patch values back onto each image's grid."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
import torch

from core.data.patches import patch_coverage_map, sliding_patches
from core.detectors.base import Cancelled, MapGeometry, ProgressFn, StopFn

AGGREGATES = ("max", "mean", "p99", "p95")

PatchScoreFn = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def aggregate(grid: np.ndarray, how: str) -> float:
    """Image score from its patch scores. 'max' follows the paper: one bad patch makes a bad image."""
    flat = np.asarray(grid, dtype=np.float64).ravel()
    if how == "max":
        return float(flat.max())
    if how == "mean":
        return float(flat.mean())
    if how in ("p99", "p95"):
        return float(np.percentile(flat, int(how[1:])))
    raise ValueError(f"aggregate must be one of {AGGREGATES}, not {how!r}")


def score_sliding_windows(
    images: Sequence[torch.Tensor], size: int, stride: int, batch_size: int, fn: PatchScoreFn,
    *, progress: ProgressFn, should_stop: StopFn,
) -> list[dict[str, np.ndarray]]:
    """For each C x H x W image, the (gh, gw) grid of every component `fn` returns for its windows.

    Windows of consecutive images share batches, so small images still fill the batch.
    """
    results: list[dict[str, np.ndarray]] = [{} for _ in images]
    chunk = [batch_size]  # shrinks if the device runs out of memory
    pending: list[tuple[int, torch.Tensor, tuple[int, int]]] = []
    pending_count = 0

    def flush() -> None:
        nonlocal pending, pending_count
        if not pending:
            return
        batch = torch.cat([p for _, p, _ in pending])
        outs: dict[str, list[torch.Tensor]] = {}
        start = 0
        while start < len(batch):
            try:
                values = fn(batch[start:start + chunk[0]])
            except torch.cuda.OutOfMemoryError:
                # Adapt to the device's memory: halve the batch and retry, down to one patch.
                if chunk[0] == 1:
                    raise
                chunk[0] = max(1, chunk[0] // 2)
                torch.cuda.empty_cache()
                continue
            for name, val in values.items():
                outs.setdefault(name, []).append(val.detach().float().cpu())
            start += chunk[0]
        merged = {k: torch.cat(v).numpy() for k, v in outs.items()}
        offset = 0
        for idx, patches, (gh, gw) in pending:
            n = len(patches)
            results[idx] = {k: v[offset:offset + n].reshape(gh, gw) for k, v in merged.items()}
            offset += n
        pending, pending_count = [], 0

    for i, img in enumerate(images):
        if should_stop():
            raise Cancelled()
        patches, grid = sliding_patches(img, size, stride)
        pending.append((i, patches, grid))
        pending_count += len(patches)
        if pending_count >= batch_size:
            flush()
            progress(i + 1, len(images), {})
    flush()
    progress(len(images), len(images), {})
    return results


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
