"""Pairwise distances for the kernel baselines (KDE and OC-SVM evaluate their kernels on them)."""

from __future__ import annotations

import torch


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(n, m) squared Euclidean distances in float64, clamped at 0 (cancellation of the expanded form)."""
    d2 = a.pow(2).sum(1)[:, None] + b.pow(2).sum(1)[None, :] - 2.0 * a @ b.T
    return d2.clamp_min(0.0)
