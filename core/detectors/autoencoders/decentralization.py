"""Autoencoder with the decentralization loss (paper 003, eq. 9 and 13).

The encoder's last convolution goes through tanh, so the latent f(x) lies in (-1, 1)^d and its dispersion has
an upper bound (Bhatia-Davis / Popoviciu); the loss rewards dispersion up to that bound, so the decoder learns
to turn any latent into a normal-looking image and anomalies reconstruct badly:
    L = 1/m sum_i ||x_i - g(f(x_i))||_2 + lambda (d - 1/m sum_i ||f(x_i) - C||^2)
with C = 0 (eq. 13, the paper's simplified default) or the running centre of eq. 9-11, updated per
mini-batch as C <- C + sum_i (f(x_i) - C) / (m + 1). Score: eps = ||x - g(f(x))||_2 (eq. 2).
Architecture for MVTec: 4x4 stride-2 convs and transposed convs, BatchNorm + LeakyReLU(0.2), 64 initial
channels, 256 x 256; the depth follows the input size (8 convs at 256 px, down to 1 x 1).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from core.detectors.autoencoders.base import ImageAutoencoder, common_params, depth_to
from core.detectors.base import Param
from core.nets.conv_autoencoder import StridedAutoencoder


def decentralization_term(f: torch.Tensor, centre: torch.Tensor | None = None) -> torch.Tensor:
    """d - 1/m sum_i ||f_i - C||^2 for latents f (m, d); C = 0 when no centre is given (eq. 12)."""
    f = f.flatten(1)
    diff = f if centre is None else f - centre
    return f.shape[1] - diff.pow(2).sum(dim=1).mean()


def update_centre(centre: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Eq. 11: C_{j+1} = C_j - Delta C_j, Delta C_j = -sum_i (f_i - C_j) / (m + 1) (a centre-loss update)."""
    f = f.detach().flatten(1)
    return centre + (f - centre).sum(dim=0) / (f.shape[0] + 1)


class DecentralizationAE(ImageAutoencoder):
    name = "decentralization"
    PARAMS = common_params(image_size=256, epochs=200, batch=16, lr=1e-3,
                           lr_help="the paper does not state it") + (
        Param("lam", 0.01, "lambda, weight of the decentralization term (paper: 0.01)", minimum=0.0),
        Param("centre", "fixed", "fixed = C at 0 (eq. 13, paper's default); running = mini-batch centre (eq. 9)",
              choices=("fixed", "running")),
        Param("base_channels", 64, "channels of the first conv, doubling per layer (paper: 64)", minimum=1),
        Param("max_channels", 512, "cap on the doubling (8 doublings of 64 would be 8192)", minimum=1),
    )
    components = ("reconstruction", "ssim")
    default_component = "reconstruction"

    @classmethod
    def quick_settings(cls) -> dict[str, Any]:
        return {"image_size": 32, "base_channels": 4, "max_channels": 16, "epochs": 1, "batch_size": 4}

    def build_net(self) -> nn.Module:
        p = self.params
        size = int(p["image_size"])
        return StridedAutoencoder(self.n_channels, size, depth_to(self.name, size, 1), p["base_channels"],
                                  p["max_channels"], act="leaky", bottleneck="tanh", output="sigmoid")

    def split_training(self, data: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        self.centre = torch.zeros(0)  # a new fit starts from C = 0, sized at the first batch (d = the net's)
        return data

    def training_loss(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net.encode(x)
        recon = self.net.decode(z)
        f = z.flatten(1)
        rec = (x - recon).flatten(1).norm(dim=1).mean()
        if self.params["centre"] == "running":
            if self.centre.numel() != f.shape[1]:
                self.centre = torch.zeros(f.shape[1], device=f.device)
            term = decentralization_term(f, self.centre)
            self.centre = update_centre(self.centre, f)
        else:
            term = decentralization_term(f)
        return rec + self.params["lam"] * term

    def residual(self, x: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
        return (x - recon).flatten(1).norm(dim=1)

    def extra_state(self) -> dict[str, Any]:
        return {"centre": self.centre.detach().cpu()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.centre = state.get("centre", torch.zeros(0))
