"""The score split of paper 000 for a Gaussian mixture, shared by the patch GMM and the PCA GMM-BIC baseline.

With k = argmax_z p(z | x):
    D = -log w_k                               (regulariser: rare mixture components)
    A = 1/2 log((2 pi)^Nx |Sigma_k|)           (log-normaliser)
    M = 1/2 (x - mu_k)^T Sigma_k^-1 (x - mu_k) (unregularized score)
    L = D + A + M                              (negative log-likelihood under the chosen component)
"""

from __future__ import annotations

import math

import torch


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
