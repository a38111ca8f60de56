"""Gaussian mixture on PCA features with the number of components chosen by BIC (paper 001's GMM baseline).

Components 2..20 are fitted by EM and the one with the lowest BIC = -2 log L + p log n is kept.
Covariances are full unless the samples are too few for them: with covariance "auto" full needs
n >= 4 (d + 1) samples (2 (d + 1) per component for two components), else diagonal covariances are used
(recorded in metadata). The component count is also capped by the same ratio, 2 (d + 1) samples per full
component on average (2 for the other types): a component on fewer points collapses onto them with a
near-singular covariance whose likelihood is set by reg_covar, not by the data, and BIC then rewards the
collapse (seen on 100 digits in 20 dims: uncapped, BIC chose 12 full components and the held-out
log-likelihood was -10^6; capped at d + 1 samples per component it still chose the cap). On small training
sets this leaves full covariances with few candidate counts (125 digits in 20 dims: k = 2 only).
Score = -log p(x) under the whole mixture (`nll`, default); the split of paper 000 under the most likely
component (L = D + A + M, see core/detectors/mixtures.py) is kept as extra components.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from sklearn.mixture import GaussianMixture

from core.detectors.base import Cancelled, Param, StopFn
from core.detectors.mixtures import gaussian_split
from core.detectors.pca.baseline import BASELINE_PARAMS, PcaBaselineDetector

COVARIANCES = ("auto", "full", "diag", "tied", "spherical")


def full_precision_cholesky(gmm: GaussianMixture) -> np.ndarray:
    """scikit-learn's precision Cholesky factors of any covariance type as (K, d, d) matrices."""
    k, d = gmm.means_.shape
    p = gmm.precisions_cholesky_
    if gmm.covariance_type == "full":
        return np.ascontiguousarray(p, dtype=np.float64)
    if gmm.covariance_type == "tied":
        return np.ascontiguousarray(np.broadcast_to(p, (k, d, d)), dtype=np.float64)
    if gmm.covariance_type == "diag":
        return np.ascontiguousarray(np.stack([np.diag(row) for row in p]), dtype=np.float64)
    return np.ascontiguousarray(p[:, None, None] * np.eye(d)[None], dtype=np.float64)  # spherical


def mixture_nll(feats: torch.Tensor, weights: torch.Tensor, means: torch.Tensor,
                prec_chol: torch.Tensor) -> torch.Tensor:
    """-log sum_k w_k N(x | mu_k, Sigma_k) per row (N, d), equal to -GaussianMixture.score_samples."""
    d = feats.shape[1]
    y = torch.einsum("nd,kde->nke", feats, prec_chol) - torch.einsum("kd,kde->ke", means, prec_chol)
    half_log_det_prec = torch.log(torch.diagonal(prec_chol, dim1=1, dim2=2)).sum(-1)
    log_joint = torch.log(weights) + half_log_det_prec - 0.5 * d * math.log(2 * math.pi) - 0.5 * y.pow(2).sum(-1)
    return -torch.logsumexp(log_joint, dim=1)


class PcaGmmBic(PcaBaselineDetector):
    name = "gmm_bic"
    PARAMS = BASELINE_PARAMS + (
        Param("min_components", 2, "fewest mixture components tried (paper 001: 2)", minimum=1),
        Param("max_components", 20, "most mixture components tried (paper 001: 20)", minimum=1),
        Param("covariance", "auto", "covariance type; auto = full when n >= 4 (dims + 1), else diag",
              choices=COVARIANCES),
        Param("reg_covar", 1e-6, "added to covariance diagonals for stability", minimum=0.0),
        Param("max_iter", 200, "EM iterations at most", minimum=1),
    )
    components = ("nll", "L", "M", "D", "A")
    default_component = "nll"
    criterion = "holdout mean full-space log-likelihood (BIC-chosen GMM on PCA features + isotropic Gaussian residual)"

    @classmethod
    def quick_settings(cls) -> dict[str, Any]:
        return {**super().quick_settings(), "max_components": 3}

    def covariance_type(self, n: int, d: int) -> str:
        choice = self.params["covariance"]
        if choice != "auto":
            return choice
        return "full" if n >= 4 * (d + 1) else "diag"

    def fit_model(self, feats: np.ndarray, seed: int, should_stop: StopFn) -> dict[str, Any]:
        n, d = feats.shape
        cov = self.covariance_type(n, d)
        per_component = 2 * (d + 1) if cov == "full" else 2  # samples a component needs on average
        k_max = max(1, min(self.params["max_components"], n // per_component))
        k_min = min(self.params["min_components"], k_max)
        best, bics = None, {}
        for k in range(k_min, k_max + 1):
            if should_stop():
                raise Cancelled()
            gmm = GaussianMixture(k, covariance_type=cov, reg_covar=self.params["reg_covar"],
                                  max_iter=self.params["max_iter"], random_state=seed).fit(feats)
            bics[k] = float(gmm.bic(feats))
            if best is None or bics[k] < bics[best[0]]:
                best = (k, gmm)
        assert best is not None
        gmm = best[1]
        self.weights = np.ascontiguousarray(gmm.weights_, dtype=np.float64)
        self.means = np.ascontiguousarray(gmm.means_, dtype=np.float64)
        self.prec_chol = full_precision_cholesky(gmm)
        return {"dims": int(d), "covariance": cov, "n_components": best[0],
                "bic": {str(k): round(v, 2) for k, v in bics.items()}}

    def _tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.weights), torch.from_numpy(self.means), torch.from_numpy(self.prec_chol)

    def feature_scores(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        w, mu, p = self._tensors()
        return {"nll": mixture_nll(feats, w, mu, p), **gaussian_split(feats, w, mu, p)}

    def selection_value(self, hold_feats: torch.Tensor, residual_loglik: torch.Tensor) -> float:
        return float((residual_loglik - mixture_nll(hold_feats, *self._tensors())).mean())

    def model_state(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights, "means": self.means, "prec_chol": self.prec_chol}

    def load_model_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights, self.means, self.prec_chol = arrays["weights"], arrays["means"], arrays["prec_chol"]
