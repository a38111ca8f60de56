"""One-class SVM with an RBF kernel on PCA features (paper 001's OC-SVM baseline, nu = 0.1).

scikit-learn (libsvm) solves the dual; the model file keeps its support vectors, dual coefficients,
intercept and the numeric gamma, and scoring evaluates
    f(x) = sum_i alpha_i exp(-gamma ||x - s_i||^2) + b
in torch, so no estimator is pickled. Score = -f(x) (equal to -OneClassSVM.decision_function): positive
outside the learned boundary, so 0 is the SVM's own threshold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.svm import OneClassSVM

from core.detectors.base import DetectorError, Param, StopFn
from core.detectors.pca.baseline import BASELINE_PARAMS, PcaBaselineDetector
from core.detectors.pca.distances import squared_distances

CHUNK = 4096


def parse_gamma(value: Any) -> str | float:
    if value in ("scale", "auto"):
        return str(value)
    try:
        gamma = float(value)
    except (TypeError, ValueError):
        raise DetectorError(f"gamma: {value!r} must be 'scale', 'auto' or a positive number") from None
    if gamma <= 0:
        raise DetectorError(f"gamma: {value!r} must be positive")
    return gamma


def rbf_decision(x: torch.Tensor, support: torch.Tensor, dual: torch.Tensor, intercept: float,
                 gamma: float) -> torch.Tensor:
    out = []
    for start in range(0, len(x), CHUNK):
        k = torch.exp(-gamma * squared_distances(x[start:start + CHUNK].double(), support))
        out.append(k @ dual + intercept)
    return torch.cat(out)


class PcaOneClassSVM(PcaBaselineDetector):
    name = "ocsvm"
    PARAMS = BASELINE_PARAMS + (
        Param("nu", 0.1, "upper bound on the share of training samples outside the boundary (paper 001: 0.1)",
              minimum=1e-4, maximum=1.0),
        Param("gamma", "scale", "RBF kernel width: 'scale' = 1 / (dims * feature variance), 'auto' = 1 / dims, "
              "or a number"),
        Param("tol", 1e-3, "libsvm stopping tolerance", minimum=0.0),
    )
    criterion = ("|holdout share outside the boundary - nu| (smaller is better; reported negated, "
                 "ties go to fewer dimensions)")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        parse_gamma(self.params["gamma"])

    def fit_model(self, feats: np.ndarray, seed: int, should_stop: StopFn) -> dict[str, Any]:
        svm = OneClassSVM(kernel="rbf", nu=self.params["nu"], gamma=parse_gamma(self.params["gamma"]),
                          tol=self.params["tol"]).fit(feats)
        self.support = np.ascontiguousarray(svm.support_vectors_, dtype=np.float64)
        self.dual = np.ascontiguousarray(svm.dual_coef_[0], dtype=np.float64)
        self.svm_params = np.array([float(svm.intercept_[0]), float(svm._gamma)], dtype=np.float64)
        self.metadata["suggested_threshold"] = 0.0
        train_out = self.share_outside(torch.from_numpy(feats))
        return {"dims": int(feats.shape[1]), "gamma": float(svm._gamma), "n_support": int(len(self.support)),
                "train_share_outside": round(train_out, 4)}

    def decision(self, feats: torch.Tensor) -> torch.Tensor:
        intercept, gamma = float(self.svm_params[0]), float(self.svm_params[1])
        return rbf_decision(feats, torch.from_numpy(self.support), torch.from_numpy(self.dual), intercept, gamma)

    def share_outside(self, feats: torch.Tensor) -> float:
        """Share of rows outside the boundary by more than libsvm's tolerance: the margin support vectors
        solve to |f| < tol, and counting their sign would read as ~5 % extra outliers on 130 digits."""
        return float((self.decision(feats) < -self.params["tol"]).double().mean())

    def feature_scores(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"score": -self.decision(feats)}

    def selection_value(self, hold_feats: torch.Tensor, residual_loglik: torch.Tensor) -> float:
        return -abs(self.share_outside(hold_feats) - self.params["nu"])

    def model_state(self) -> dict[str, np.ndarray]:
        return {"support": self.support, "dual": self.dual, "svm_params": self.svm_params}

    def load_model_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.support, self.dual, self.svm_params = arrays["support"], arrays["dual"], arrays["svm_params"]
