"""GMM on PCA patch features with the score split of paper 000 (full covariances, EM); the split itself
(D, A, M, L under the most likely component) is `core.detectors.mixtures.gaussian_split`."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.mixture import GaussianMixture

from core.detectors.base import Param
from core.detectors.mixtures import gaussian_split
from core.detectors.patch_base import PATCH_PARAMS
from core.detectors.pca_patch import PCA_PARAMS, PcaPatchDetector


class PatchGMM(PcaPatchDetector):
    name = "gmm"
    PARAMS = PATCH_PARAMS + PCA_PARAMS + (
        Param("n_components", 5, "mixture components N_z (paper 000: 2..100)", minimum=1),
        Param("reg_covar", 1e-6, "added to covariance diagonals for stability", minimum=0.0),
        Param("max_iter", 200, "EM iterations at most", minimum=1),
    )
    components = ("M", "L", "D", "A")
    default_component = "M"

    @classmethod
    def quick_settings(cls) -> dict[str, Any]:
        return {**super().quick_settings(), "n_components": 2}

    def fit_features(self, feats: np.ndarray, seed: int) -> None:
        gmm = GaussianMixture(self.params["n_components"], covariance_type="full",
                              reg_covar=self.params["reg_covar"], max_iter=self.params["max_iter"],
                              random_state=seed).fit(feats)
        # C order, as they come back from a model file: the same memory layout gives bit-identical scores.
        self.weights = np.ascontiguousarray(gmm.weights_)
        self.means = np.ascontiguousarray(gmm.means_)
        self.prec_chol = np.ascontiguousarray(gmm.precisions_cholesky_)

    def feature_scores(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        return gaussian_split(feats, torch.from_numpy(self.weights), torch.from_numpy(self.means),
                              torch.from_numpy(self.prec_chol))

    def model_state(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights, "means": self.means, "prec_chol": self.prec_chol}

    def load_model_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights, self.means, self.prec_chol = arrays["weights"], arrays["means"], arrays["prec_chol"]
