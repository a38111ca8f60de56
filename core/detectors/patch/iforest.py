"""Isolation Forest on PCA patch features (paper 000's baseline: N_e = 100 trees).

scikit-learn grows the trees; scoring walks them here, all patches at once, from plain arrays, so a saved
model holds arrays only (no pickled estimator). Score = 2^(-E[h(x)] / c(psi)), higher = more anomalous,
identical to -IsolationForest.score_samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.ensemble import IsolationForest

from core.detectors.base import Param
from core.detectors.patch_base import PATCH_PARAMS
from core.detectors.pca_patch import PCA_PARAMS, PcaPatchDetector


def average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): mean path length of an unsuccessful BST search, as in Liu et al. and scikit-learn."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


class PatchIsolationForest(PcaPatchDetector):
    name = "iforest"
    PARAMS = PATCH_PARAMS + PCA_PARAMS + (
        Param("n_estimators", 100, "trees N_e (paper 000: 100)", minimum=1),
        Param("max_samples", 256, "samples per tree (psi)", minimum=2),
        Param("contamination", 0.05, "expected anomaly share r; sets the default threshold", minimum=0.0,
              maximum=0.5),
    )

    @classmethod
    def quick_settings(cls) -> dict[str, Any]:
        return {**super().quick_settings(), "n_estimators": 10}

    def fit_features(self, feats: np.ndarray, seed: int) -> None:
        forest = IsolationForest(n_estimators=self.params["n_estimators"],
                                 max_samples=min(self.params["max_samples"], len(feats)),
                                 contamination=self.params["contamination"], random_state=seed).fit(feats)
        trees = [e.tree_ for e in forest.estimators_]
        width = max(t.node_count for t in trees)

        def pad(attr: str, fill: float, dtype: type) -> np.ndarray:
            out = np.full((len(trees), width), fill, dtype=dtype)
            for i, t in enumerate(trees):
                out[i, :t.node_count] = getattr(t, attr)
            return out

        # Features each tree saw (scikit-learn may subsample features; default uses all, in order).
        feat_map = np.stack([np.asarray(f) for f in forest.estimators_features_])
        local = pad("feature", -2, np.int64)
        self.node_feature = np.where(local >= 0, np.take_along_axis(feat_map, np.maximum(local, 0), 1), -1)
        self.node_threshold = pad("threshold", 0.0, np.float64)
        self.node_left = pad("children_left", -1, np.int64)
        self.node_right = pad("children_right", -1, np.int64)
        self.node_samples = pad("n_node_samples", 1, np.float64)
        self.max_samples_used = np.array([forest.max_samples_], dtype=np.float64)
        # Threshold at the contamination quantile of the training scores: where sklearn would cut.
        self.metadata["suggested_threshold"] = float(-forest.offset_)

    def feature_scores(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        x = feats.numpy()
        n_trees = self.node_feature.shape[0]
        depth = np.zeros(len(x))
        for t in range(n_trees):  # loop over trees and levels; every sample moves at once
            node = np.zeros(len(x), dtype=np.int64)
            path = np.zeros(len(x))
            feature, left, right = self.node_feature[t], self.node_left[t], self.node_right[t]
            threshold = self.node_threshold[t]
            while True:
                f = feature[node]
                inner = f >= 0
                if not inner.any():
                    break
                idx = np.flatnonzero(inner)
                go_left = x[idx, f[idx]] <= threshold[node[idx]]
                node[idx] = np.where(go_left, left[node[idx]], right[node[idx]])
                path[idx] += 1
            depth += path + average_path_length(self.node_samples[t][node])
        mean_depth = depth / n_trees
        score = 2.0 ** (-mean_depth / average_path_length(self.max_samples_used)[0])
        return {"score": torch.from_numpy(score)}

    def model_state(self) -> dict[str, np.ndarray]:
        return {"node_feature": self.node_feature, "node_threshold": self.node_threshold,
                "node_left": self.node_left, "node_right": self.node_right,
                "node_samples": self.node_samples, "max_samples_used": self.max_samples_used}

    def load_model_state(self, arrays: dict[str, np.ndarray]) -> None:
        for key, value in arrays.items():
            setattr(self, key, value)
