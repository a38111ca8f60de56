"""Sliding-window scoring shared by every detector that scores patches (the patch and PCA families): stream
the windows of many images through a scoring function in fixed-size batches, then lay the per-patch values
back onto each image's grid."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from core.data.patches import sliding_patches
from core.detectors.base import Cancelled, ProgressFn, StopFn

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
