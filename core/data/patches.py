"""Patches: random crops for training, a sliding window for scoring (paper 000: 96 px, stride 16)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """H x W x C float32 array -> C x H x W tensor (shares memory when possible)."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def grid_shape(height: int, width: int, size: int, stride: int) -> tuple[int, int]:
    """Rows and columns of the sliding window; the last (h - size) % stride pixels are not a window start."""
    if height < size or width < size:
        raise ValueError(f"image {height}x{width} is smaller than the {size}px patch")
    return (height - size) // stride + 1, (width - size) // stride + 1


def sliding_patches(img: torch.Tensor, size: int, stride: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """All windows of a C x H x W tensor, row-major: (gh * gw, C, size, size) and (gh, gw)."""
    c, h, w = img.shape
    gh, gw = grid_shape(h, w, size, stride)
    windows = img.unfold(1, size, stride).unfold(2, size, stride)  # C, gh, gw, size, size
    return windows.permute(1, 2, 0, 3, 4).reshape(gh * gw, c, size, size), (gh, gw)


def random_crops(images: Sequence[torch.Tensor], count: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """`count` random size x size crops, images drawn uniformly (each C x H x W, sizes may differ)."""
    which = torch.randint(len(images), (count,), generator=gen)
    out = torch.empty((count, images[0].shape[0], size, size), dtype=images[0].dtype)
    for k, i in enumerate(which.tolist()):
        img = images[i]
        y = int(torch.randint(img.shape[1] - size + 1, (1,), generator=gen))
        x = int(torch.randint(img.shape[2] - size + 1, (1,), generator=gen))
        out[k] = img[:, y:y + size, x:x + size]
    return out


def patch_coverage_map(values: np.ndarray, image_shape: tuple[int, int], size: int, stride: int,
                       reduce: str = "mean") -> np.ndarray:
    """Spread a (gh, gw) patch-score grid back onto the pixels: each pixel gets the mean (or max) of the
    patches covering it. Pixels no window covers take the nearest covered value. Vectorised with
    cumulative sums over the grid, no per-pixel loops."""
    h, w = image_shape
    gh, gw = values.shape
    # Index of the first and one-past-last window covering each pixel row / column.
    rows = np.arange(h)
    cols = np.arange(w)
    r0 = np.clip(np.ceil((rows - size + 1) / stride).astype(int), 0, gh - 1)
    r1 = np.clip(rows // stride, 0, gh - 1) + 1
    c0 = np.clip(np.ceil((cols - size + 1) / stride).astype(int), 0, gw - 1)
    c1 = np.clip(cols // stride, 0, gw - 1) + 1
    r0 = np.minimum(r0, r1 - 1)
    c0 = np.minimum(c0, c1 - 1)
    v = values.astype(np.float64)
    if reduce == "max":
        # Max over a window range: rows first (small grids, so a loop over grid rows is cheap).
        row_max = np.stack([v[a:b].max(axis=0) for a, b in zip(r0, r1, strict=True)])  # h, gw
        return np.stack([row_max[:, a:b].max(axis=1) for a, b in zip(c0, c1, strict=True)], axis=1).astype(
            np.float32)
    csum = np.zeros((gh + 1, gw + 1))
    csum[1:, 1:] = v.cumsum(0).cumsum(1)
    total = csum[r1][:, c1] - csum[r0][:, c1] - csum[r1][:, c0] + csum[r0][:, c0]
    count = (r1 - r0)[:, None] * (c1 - c0)[None, :]
    return (total / count).astype(np.float32)
