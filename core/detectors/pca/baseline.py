"""Paper 001's non-parametric baselines (KDE, OC-SVM, GMM with BIC) on PCA features of whole images.

The paper reduces each image with PCA to 20..100 dimensions and keeps "the best on a small holdout set".
A one-class user has no labelled anomalies, so the holdout here is a share of the *good* training images and
the choice needs a criterion that needs no anomalies (each subclass states its own, see `selection_value`):

* density models (KDE, GMM): the held-out mean log-likelihood in the *full* pixel space. A density on d PCA
  features alone is not comparable across d (different spaces), so each candidate is completed, as in
  probabilistic PCA, with an isotropic Gaussian on the discarded directions (variance: the fit split's mean
  residual variance per discarded dimension). More dimensions describe more of the image but make the
  feature density harder to estimate; the held-out likelihood weighs the two.
* OC-SVM (no density): the share of held-out good images outside the boundary should match nu, the share
  the SVM was told to leave out of its training data; the candidate closest to nu wins (ties: fewer dims).

After the choice, PCA and the model are fitted again on every training image. The selection (grid, values,
criterion, split sizes) goes into `detector.metadata["pca_selection"]`.

Whole-image mode (the paper's setting) is patch_size = image_size, the default: each image is one window, so
maps are 1 x 1 and the geometry still overlays. A smaller patch_size gives a patch detector on random crops,
scored with the sliding window like the paper-000 detectors.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.decomposition import PCA

from core.data.patches import random_crops
from core.detectors.base import Cancelled, DetectorError, FitReport, Param, ProgressFn, StopFn
from core.detectors.patch_base import PATCH_PARAMS
from core.detectors.pca_patch import PcaPatchDetector
from core.detectors.torch_runtime import seed_everything

PAPER_PCA_DIMS = "20,40,60,80,100"


def _with_defaults(params: tuple[Param, ...], **changes: dict[str, Any]) -> tuple[Param, ...]:
    return tuple(dataclasses.replace(p, **changes[p.name]) if p.name in changes else p for p in params)


BASELINE_PARAMS: tuple[Param, ...] = _with_defaults(
    PATCH_PARAMS,
    image_size={"default": 64, "help": "resize images to this square side first (paper 001: whole images)"},
    patch_size={"default": None, "kind": int,
                "help": "window side; none = the whole image (image_size), as in paper 001; smaller = patches"},
) + (
    Param("patches_per_image", 10, "random crops per training image (patch mode only)", minimum=1),
    Param("pca_dims", PAPER_PCA_DIMS, "candidate PCA dimensions, comma separated (paper 001: 20..100), "
          "capped by the number of samples; one is chosen on the holdout"),
    Param("holdout_share", 0.2, "share of the good training images held out to choose the PCA dimensions",
          minimum=0.05, maximum=0.5),
)


def parse_dims(text: str) -> list[int]:
    try:
        dims = sorted({int(t) for t in str(text).replace(" ", "").split(",") if t})
    except ValueError:
        raise DetectorError(f"pca_dims: {text!r} is not a comma-separated list of integers") from None
    if not dims or dims[0] < 1:
        raise DetectorError(f"pca_dims: {text!r} must list positive integers")
    return dims


def capped_dims(grid: Sequence[int], n_samples: int, n_features: int) -> list[int]:
    """The grid within what PCA can give (n_samples - 1 and n_features); at least one candidate."""
    cap = max(1, min(n_samples - 1, n_features))
    return sorted({min(d, cap) for d in grid})


def gaussian_residual_loglik(x: torch.Tensor, feats: torch.Tensor, mean: np.ndarray, n_dims: int,
                             sigma2: float) -> torch.Tensor:
    """log N(r; 0, sigma2 I) of each row's PCA residual r (in the D - d discarded directions).
    ||r||^2 = ||x - mean||^2 - ||z||^2 because the basis is orthonormal."""
    rest = x.shape[1] - n_dims
    if rest <= 0:
        return torch.zeros(len(x), dtype=torch.float64)
    centred = (x - torch.from_numpy(mean)).double()
    r2 = (centred.pow(2).sum(1) - feats.pow(2).sum(1)).clamp_min(0.0)
    return -0.5 * rest * math.log(2 * math.pi * sigma2) - 0.5 * r2 / sigma2


class PcaBaselineDetector(PcaPatchDetector):
    """Chooses the PCA dimensions on a holdout of good images, then fits `fit_model` on the features.

    Subclasses implement `fit_model(feats, seed, should_stop)` (sets the arrays `feature_scores` and
    `model_state` use, returns a small JSON-able summary) and `selection_value(...)` (higher = better).
    """

    min_train_images = 4  # some are held out to choose the PCA dimensions

    criterion: str = ""

    @classmethod
    def quick_settings(cls) -> dict[str, Any]:
        return {"image_size": 16, "pca_dims": "2,4"}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.params["patch_size"] is None:
            if self.params["image_size"] is None:
                raise DetectorError(f"{self.name}: whole-image mode (patch_size none) needs an image_size")
            self.params["patch_size"] = self.params["image_size"]
        parse_dims(self.params["pca_dims"])

    # -- for subclasses ------------------------------------------------------------------------------
    def fit_model(self, feats: np.ndarray, seed: int, should_stop: StopFn) -> dict[str, Any]:
        raise NotImplementedError

    def selection_value(self, hold_feats: torch.Tensor, residual_loglik: torch.Tensor) -> float:
        raise NotImplementedError

    # -- training -------------------------------------------------------------------------------------
    def samples(self, tensors: Sequence[torch.Tensor], gen: torch.Generator) -> np.ndarray:
        """Whole images once each when they are exactly one window; else `patches_per_image` crops each."""
        size = self.params["patch_size"]
        if all(t.shape[1] == size and t.shape[2] == size for t in tensors):
            return torch.stack(list(tensors)).flatten(1).numpy()
        count = len(tensors) * self.params["patches_per_image"]
        return random_crops(tensors, count, size, gen).flatten(1).numpy()

    def _fit_pca(self, x: np.ndarray, n_dims: int, seed: int) -> np.ndarray:
        pca = PCA(n_components=n_dims, svd_solver="randomized", random_state=seed).fit(x)
        self.pca_mean = np.ascontiguousarray(pca.mean_, dtype=np.float32)
        self.pca_basis = np.ascontiguousarray(pca.components_, dtype=np.float32)
        return self._project(torch.from_numpy(x)).numpy().astype(np.float64)

    def _fit(self, images: Sequence[np.ndarray], *, progress: ProgressFn, should_stop: StopFn) -> FitReport:
        start = time.perf_counter()
        seed = int(self.params["seed"])
        gen = seed_everything(seed)
        tensors, _ = self.prepare(images)
        n_img = len(tensors)
        if n_img < 4:
            raise DetectorError(f"{self.name}: needs at least 4 good training images (got {n_img}): "
                                "some are held out to choose the PCA dimensions")
        order = np.random.default_rng(seed).permutation(n_img)
        n_hold = max(1, int(round(self.params["holdout_share"] * n_img)))
        hold_idx, fit_idx = order[:n_hold], order[n_hold:]
        x_fit = self.samples([tensors[i] for i in fit_idx], gen)
        x_hold = self.samples([tensors[i] for i in hold_idx], gen)
        grid = capped_dims(parse_dims(self.params["pca_dims"]), len(x_fit), x_fit.shape[1])
        steps = len(grid) + 1
        values: list[float] = []
        summaries: list[dict[str, Any]] = []
        for i, n_dims in enumerate(grid):
            if should_stop():
                raise Cancelled()
            progress(i, steps, {"stage": f"choosing PCA dimensions: {n_dims}"})
            feats = self._fit_pca(x_fit, n_dims, seed)
            sigma2 = self._residual_variance(x_fit, feats)
            summaries.append(self.fit_model(feats, seed, should_stop))
            hold_t = torch.from_numpy(x_hold)
            hold_feats = self._project(hold_t).double()
            residual = gaussian_residual_loglik(hold_t, hold_feats, self.pca_mean, n_dims, sigma2)
            values.append(float(self.selection_value(hold_feats, residual)))
        best = int(np.argmax(values))  # first maximum: ties go to fewer dimensions
        chosen = grid[best]
        if should_stop():
            raise Cancelled()
        progress(len(grid), steps, {"stage": f"fitting with {chosen} PCA dimensions"})
        x_all = self.samples(tensors, gen)
        n_dims = min(chosen, len(x_all) - 1, x_all.shape[1])
        feats = self._fit_pca(x_all, n_dims, seed)
        final = self.fit_model(feats, seed, should_stop)
        self.metadata["pca_selection"] = {
            "criterion": self.criterion, "grid": grid, "values": [round(v, 6) for v in values],
            "chosen_dims": n_dims, "n_fit_images": len(fit_idx), "n_holdout_images": int(n_hold),
            "n_fit_samples": len(x_fit), "n_holdout_samples": len(x_hold), "n_final_samples": len(x_all),
            "per_candidate": summaries,
        }
        self.metadata["model"] = final
        progress(steps, steps, {})
        return FitReport(seconds=time.perf_counter() - start, steps=steps, epochs=1)

    def _residual_variance(self, x: np.ndarray, feats: np.ndarray) -> float:
        rest = x.shape[1] - feats.shape[1]
        if rest <= 0:
            return 1.0
        centred = x.astype(np.float64) - self.pca_mean.astype(np.float64)
        r2 = np.maximum((centred ** 2).sum(1) - (feats ** 2).sum(1), 0.0)
        return max(float(r2.mean()) / rest, 1e-12)
