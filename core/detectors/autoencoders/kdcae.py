"""KD-CAE (paper 004): a convolutional autoencoder whose anomaly indicators are the reconstruction error and
a kernel density estimate over the latents of the training images (low density = anomalous).

Architecture: 128 px in, strided convs with 32 channels doubling to 128, down to an 8 x 8 x 128 latent map
(a flattened vector of 8192, the paper's choice). The density is a Gaussian KDE (scikit-learn KernelDensity)
whose bandwidth is chosen by 5-fold cross-validated log-likelihood on the training latents. The paper
thresholds each indicator on its own; the default `combined` component adds the two after z-normalising each
on the training images (the density of a training image leaves that image out, or it would look too normal).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.special import logsumexp
from sklearn.model_selection import KFold
from sklearn.neighbors import KernelDensity
from torch import nn

from core.detectors.autoencoders.base import ImageAutoencoder, common_params, depth_to
from core.detectors.base import Param
from core.nets.conv_autoencoder import StridedAutoencoder

LATENT_SIDE = 8


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) squared Euclidean distances, without an (n, m, d) intermediate (d is 8192 here)."""
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d2, 0.0)


def choose_bandwidth(latents: np.ndarray, seed: int, n_grid: int = 13) -> float:
    """Gaussian bandwidth by 5-fold cross-validated log-likelihood over a geometric grid around the median
    distance between latents: GridSearchCV's criterion (the held-out log-likelihood of scikit-learn's
    KernelDensity), computed from one distance matrix. GridSearchCV itself, on scikit-learn's tree KDE, took
    about 50 s for 256 latents of d = 8192 on this machine (10 x that for 800 images); this takes milliseconds
    and tests/test_autoencoders.py checks the densities equal KernelDensity.score_samples."""
    n = len(latents)
    d2 = squared_distances(latents, latents)
    off = np.sqrt(d2[~np.eye(n, dtype=bool)])
    scale = float(np.median(off)) if off.size and np.median(off) > 0 else 1.0
    if n < 3:
        return scale
    grid = scale * np.geomspace(0.02, 2.0, n_grid)
    folds = list(KFold(min(5, n), shuffle=True, random_state=seed).split(latents))
    dim = latents.shape[1]
    scores = []
    for h in grid:
        total = 0.0
        for train, test in folds:
            block = -d2[np.ix_(test, train)] / (2 * h ** 2)
            total += float((logsumexp(block, axis=1) - np.log(len(train))
                            - 0.5 * dim * np.log(2 * np.pi * h ** 2)).sum())
        scores.append(total)
    return float(grid[int(np.argmax(scores))])


def gaussian_kde_log_density(points: np.ndarray, data: np.ndarray, bandwidth: float,
                             leave_self_out: bool = False) -> np.ndarray:
    """log p(points) of a Gaussian KDE on `data` (scikit-learn's formula); `leave_self_out` when points ARE
    the data, so each point's own kernel is left out."""
    d2 = squared_distances(points, data) / (2 * bandwidth ** 2)
    n = len(data)
    if leave_self_out:
        np.fill_diagonal(d2, np.inf)
        n -= 1
    dim = data.shape[1]
    return logsumexp(-d2, axis=1) - np.log(max(n, 1)) - 0.5 * dim * np.log(2 * np.pi * bandwidth ** 2)


class KDCAE(ImageAutoencoder):
    name = "kdcae"
    PARAMS = common_params(image_size=128, epochs=100, batch=16, lr=1e-3, lr_help="the paper does not state it") + (
        Param("base_channels", 32, "channels of the first conv, doubling per layer (paper: 32)", minimum=1),
        Param("max_channels", 128, "channels of the latent map (paper: 128)", minimum=1),
    )
    components = ("combined", "reconstruction", "density", "ssim")
    default_component = "combined"

    @classmethod
    def quick_settings(cls) -> dict[str, Any]:
        return {"image_size": 32, "base_channels": 4, "max_channels": 8, "epochs": 1, "batch_size": 4}

    def build_net(self) -> nn.Module:
        p = self.params
        size = int(p["image_size"])
        return StridedAutoencoder(self.n_channels, size, depth_to(self.name, size, LATENT_SIDE),
                                  p["base_channels"], p["max_channels"], act="relu", bottleneck="relu",
                                  output="sigmoid")

    def after_fit(self, data: torch.Tensor) -> None:
        bs = max(int(self.params["batch_size"]), 16)
        latents, recon_err = [], []
        for start in range(0, len(data), bs):
            x = data[start:start + bs]
            z, recon = self.reconstruct(x)
            latents.append(z.flatten(1).cpu().double().numpy())
            recon_err.append(self.residual(x.to(recon.device), recon).cpu().double().numpy())
        self.latents = np.concatenate(latents)
        self.bandwidth = choose_bandwidth(self.latents, int(self.params["seed"]))
        train_density = -gaussian_kde_log_density(self.latents, self.latents, self.bandwidth,
                                                  leave_self_out=len(self.latents) > 1)
        train_recon = np.concatenate(recon_err)
        self.norm = np.array([train_recon.mean(), train_recon.std() or 1.0,
                              train_density.mean(), train_density.std() or 1.0])
        self._make_kde()

    def _make_kde(self) -> None:
        self.kde = KernelDensity(kernel="gaussian", bandwidth=self.bandwidth).fit(self.latents)

    def latent_components(self, z: torch.Tensor) -> dict[str, np.ndarray]:
        # Negative log density: higher = rarer among the training latents = more anomalous.
        return {"density": -self.kde.score_samples(z.flatten(1).cpu().double().numpy())}

    def combine(self, components: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        mr, sr, md, sd = self.norm
        return {"combined": (components["reconstruction"] - mr) / sr + (components["density"] - md) / sd}

    def extra_state(self) -> dict[str, Any]:
        return {"kde.latents": self.latents, "kde.bandwidth": np.array([self.bandwidth]), "kde.norm": self.norm}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.latents = state["kde.latents"].numpy()
        self.bandwidth = float(state["kde.bandwidth"].numpy()[0])
        self.norm = state["kde.norm"].numpy()
        self._make_kde()
