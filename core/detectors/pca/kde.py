"""Gaussian kernel density on PCA features (paper 001's KDE baseline).

The bandwidth h is chosen by k-fold cross-validation of the held-out log-likelihood (what scikit-learn's
GridSearchCV over KernelDensity does, computed here for the whole grid at once) on a grid relative to the
features' scale: s * 10^[-2 .. 1] with s = sqrt(mean feature variance), so scaling the data scales h.
Score = -log p(x) with p(x) = 1/n sum_j N(x; f_j, h^2 I), from the stored training features (logsumexp,
in chunks), equal to -KernelDensity.score_samples.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import KFold

from core.detectors.base import Cancelled, Param, StopFn
from core.detectors.pca.baseline import BASELINE_PARAMS, PcaBaselineDetector
from core.detectors.pca.distances import squared_distances

CHUNK_ELEMENTS = 2 ** 24  # distance-matrix entries per chunk (x bandwidths): ~130 MB in float64


def bandwidth_grid(feats: np.ndarray, count: int = 31) -> np.ndarray:
    scale = math.sqrt(max(float(feats.var(axis=0).mean()), 1e-24))
    return scale * np.logspace(-2.0, 1.0, count)


def kde_log_density(x: torch.Tensor, train: torch.Tensor, bandwidths: torch.Tensor) -> torch.Tensor:
    """log p(x) for each bandwidth: (len(bandwidths), len(x)). Rows of x in chunks to bound memory."""
    n, d = train.shape
    h2 = bandwidths.double().pow(2)
    norm = math.log(n) + 0.5 * d * torch.log(2 * math.pi * h2)  # (H,)
    rows = max(1, CHUNK_ELEMENTS // (n * len(h2)))
    out = []
    for start in range(0, len(x), rows):
        d2 = squared_distances(x[start:start + rows].double(), train.double())  # (c, n)
        out.append(torch.logsumexp(-d2[None] / (2.0 * h2[:, None, None]), dim=2) - norm[:, None])
    return torch.cat(out, dim=1)


def cv_bandwidth(feats: np.ndarray, grid: np.ndarray, folds: int, seed: int,
                 should_stop: StopFn) -> tuple[float, np.ndarray]:
    """The grid bandwidth with the best mean (over folds) of the held-out fold's total log-likelihood."""
    x = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float64))
    h = torch.from_numpy(grid)
    scores = np.zeros((folds, len(grid)))
    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    for f, (tr, va) in enumerate(splitter.split(feats)):
        if should_stop():
            raise Cancelled()
        scores[f] = kde_log_density(x[va], x[tr], h).sum(dim=1).numpy()
    mean = scores.mean(axis=0)
    return float(grid[int(np.argmax(mean))]), mean


class PcaKDE(PcaBaselineDetector):
    name = "kde"
    PARAMS = BASELINE_PARAMS + (
        Param("cv_folds", 5, "folds of the bandwidth cross-validation", minimum=2),
        Param("bandwidth", 0.0, "fixed kernel bandwidth in PCA-feature units (0 = choose by cross-validation)",
              minimum=0.0),
    )
    criterion = "holdout mean full-space log-likelihood (KDE on PCA features + isotropic Gaussian residual)"

    def fit_model(self, feats: np.ndarray, seed: int, should_stop: StopFn) -> dict[str, Any]:
        self.train_feats = np.ascontiguousarray(feats, dtype=np.float64)
        folds = min(self.params["cv_folds"], len(feats))
        if self.params["bandwidth"] > 0:
            h, grid, cv = float(self.params["bandwidth"]), np.array([]), np.array([])
        elif folds < 2:
            raise ValueError("KDE bandwidth cross-validation needs at least 2 samples")
        else:
            grid = bandwidth_grid(feats)
            h, cv = cv_bandwidth(feats, grid, folds, seed, should_stop)
        self.bandwidth = np.array([h], dtype=np.float64)
        at_edge = bool(len(grid) and (h == grid[0] or h == grid[-1]))
        return {"dims": int(feats.shape[1]), "bandwidth": h, "bandwidth_at_grid_edge": at_edge,
                "bandwidth_grid": [float(g) for g in grid], "cv_mean_loglik": [round(float(v), 4) for v in cv]}

    def log_density(self, feats: torch.Tensor) -> torch.Tensor:
        return kde_log_density(feats, torch.from_numpy(self.train_feats), torch.from_numpy(self.bandwidth))[0]

    def feature_scores(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"score": -self.log_density(feats)}

    def selection_value(self, hold_feats: torch.Tensor, residual_loglik: torch.Tensor) -> float:
        return float((self.log_density(hold_feats) + residual_loglik).mean())

    def model_state(self) -> dict[str, np.ndarray]:
        return {"train_feats": self.train_feats, "bandwidth": self.bandwidth}

    def load_model_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.train_feats, self.bandwidth = arrays["train_feats"], arrays["bandwidth"]
