"""GMM on PCA patch features with the score split of paper 000 (full covariances, EM).

With k = argmax_z p(z | x):
    D = -log w_k                               (regulariser: rare mixture components)
    A = 1/2 log((2 pi)^Nx |Sigma_k|)           (log-normaliser)
    M = 1/2 (x - mu_k)^T Sigma_k^-1 (x - mu_k) (unregularized score)
    L = D + A + M                              (negative log-likelihood under the chosen component)
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.mixture import GaussianMixture

from core.detectors.base import Param
from core.detectors.patch_base import PATCH_PARAMS
from core.detectors.pca_patch import PCA_PARAMS, PcaPatchDetector


def gaussian_split(feats: torch.Tensor, weights: torch.Tensor, means: torch.Tensor,
                   prec_chol: torch.Tensor) -> dict[str, torch.Tensor]:
    """D, A, M, L per row of `feats` (N, d) for a full-covariance mixture given by its precision Cholesky
    factors (K, d, d), as scikit-learn stores them (Sigma^-1 = P P^T)."""
    d = feats.shape[1]
    y = torch.einsum("nd,kde->nke", feats, prec_chol) - torch.einsum("kd,kde->ke", means, prec_chol)
    maha = y.pow(2).sum(-1)  # (N, K)
    half_log_det_prec = torch.log(torch.diagonal(prec_chol, dim1=1, dim2=2)).sum(-1)  # (K,)
    a_k = 0.5 * d * math.log(2 * math.pi) - half_log_det_prec  # 1/2 log((2pi)^d |Sigma_k|)
    d_k = -torch.log(weights)
    log_joint = -(d_k + a_k + 0.5 * maha)  # log w_k N(x | mu_k, Sigma_k)
    k = log_joint.argmax(dim=1)
    m = 0.5 * maha.gather(1, k[:, None])[:, 0]
    return {"D": d_k[k], "A": a_k[k], "M": m, "L": d_k[k] + a_k[k] + m}


class PatchGMM(PcaPatchDetector):
    name = "gmm"
    PARAMS = PATCH_PARAMS + PCA_PARAMS + (
        Param("n_components", 5, "mixture components N_z (paper 000: 2..100)", minimum=1),
        Param("reg_covar", 1e-6, "added to covariance diagonals for stability", minimum=0.0),
        Param("max_iter", 200, "EM iterations at most", minimum=1),
    )
    components = ("M", "L", "D", "A")
    default_component = "M"

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
