"""Patch detectors on PCA features (paper 000's GMM and Isolation Forest; paper 001's baselines). Shared by
the patch and PCA families, so it lives beside them.

Training: `patches_per_image` random crops per training image (paper 000 used ten), flattened, reduced to
`pca_components` dimensions with PCA. Scoring projects every sliding window with one matrix product.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.decomposition import PCA

from core.data.patches import random_crops
from core.detectors.base import Cancelled, FitReport, Param, ProgressFn, StopFn
from core.detectors.patch_base import PatchDetector
from core.detectors.torch_runtime import seed_everything

PCA_PARAMS: tuple[Param, ...] = (
    Param("patches_per_image", 10, "random crops per training image (paper 000: 10)", minimum=1),
    Param("pca_components", 50, "PCA feature dimensions N_h (paper 000: 20..500)", minimum=1),
)


class PcaPatchDetector(PatchDetector):
    """Fits PCA on training patches, then a model on the PCA features (subclass: `fit_features`)."""

    @classmethod
    def quick_settings(cls) -> dict[str, Any]:
        return {"patch_size": 16, "stride": 8, "pca_components": 6, "patches_per_image": 20}

    def fit_features(self, feats: np.ndarray, seed: int) -> None:
        raise NotImplementedError

    def feature_scores(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _fit(self, images: Sequence[np.ndarray], *, progress: ProgressFn, should_stop: StopFn) -> FitReport:
        start = time.perf_counter()
        seed = int(self.params["seed"])
        gen = seed_everything(seed)
        tensors, _ = self.prepare(images)
        count = len(tensors) * self.params["patches_per_image"]
        x = random_crops(tensors, count, self.params["patch_size"], gen).flatten(1).numpy()
        progress(1, 3, {"stage": "pca"})
        if should_stop():
            raise Cancelled()
        n_comp = min(self.params["pca_components"], x.shape[0] - 1, x.shape[1])
        pca = PCA(n_components=n_comp, svd_solver="randomized", random_state=seed).fit(x)
        self.pca_mean = np.ascontiguousarray(pca.mean_, dtype=np.float32)
        self.pca_basis = np.ascontiguousarray(pca.components_, dtype=np.float32)  # (n_comp, D)
        feats = self._project(torch.from_numpy(x)).numpy().astype(np.float64)
        progress(2, 3, {"stage": "model"})
        if should_stop():
            raise Cancelled()
        self.fit_features(feats, seed)
        progress(3, 3, {})
        return FitReport(seconds=time.perf_counter() - start, steps=1, epochs=1)

    def _project(self, flat: torch.Tensor) -> torch.Tensor:
        return (flat - torch.from_numpy(self.pca_mean)) @ torch.from_numpy(self.pca_basis).T

    @torch.inference_mode()
    def patch_scores(self, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self._project(patches.flatten(1).float()).double()
        return self.feature_scores(feats)

    def scoring_batch_size(self) -> int:
        return 1024

    def _state(self) -> dict[str, Any]:
        return {"pca_mean": self.pca_mean, "pca_basis": self.pca_basis, **self.model_state()}

    def _load_state(self, state: dict[str, Any]) -> None:
        arrays = {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in state.items()}
        self.pca_mean = arrays.pop("pca_mean")
        self.pca_basis = arrays.pop("pca_basis")
        self.load_model_state(arrays)

    def model_state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def load_model_state(self, arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError
