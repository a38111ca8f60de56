"""Patch VAE with the unregularized score (paper 000, Matsubara et al.) and its AE baseline.

The negative ELBO splits exactly into three terms per patch (MAP latent z = mu_z at test time):
    D(x) = sum_j 1/2 (-log s_zj^2 - 1 + s_zj^2 + mu_zj^2)      KL regulariser
    A(x) = sum_i 1/2 log(2 pi s_xi^2)                           log-normaliser (tracks complexity)
    M(x) = sum_i 1/2 (mu_xi - x_i)^2 / s_xi^2                   unregularized score (default)
    L(x) = D + A + M
A grows where the decoder is unsure (complex but normal texture), so L ranks busy normal regions as
anomalous; M divides that uncertainty out and stays flat on normal regions.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.detectors.base import Param
from core.detectors.patch.torch_patch import TRAIN_PARAMS, TorchPatchDetector
from core.detectors.patch_base import PATCH_PARAMS
from core.nets.conv import ConvDecoder, ConvEncoder
from core.ssim import ssim

LOG_2PI = math.log(2 * math.pi)

# A real model, just tiny (16 px patches, 4 latent dims, one epoch): seconds on a few 32 px images.
QUICK = {"patch_size": 16, "stride": 8, "n_conv": 2, "base_channels": 4, "latent": 4, "epochs": 1,
         "patches_per_image": 4, "batch_size": 16}

ARCH_PARAMS: tuple[Param, ...] = (
    Param("n_conv", 5, "convolution layers in the encoder (paper: 5 for real data, 4 for 32 px)", minimum=1),
    Param("base_channels", 32, "channels of the first conv layer, N_c (paper: 16, 32 or 64)", minimum=1),
    Param("latent", 50, "latent dimensions N_z (paper: 50 on screws, 10 on gears)", minimum=1),
)


class GaussianVAE(nn.Module):
    """Conv VAE whose decoder outputs a mean and a log-variance per pixel."""

    def __init__(self, channels: int, size: int, n_conv: int, base_channels: int, latent: int,
                 min_log_var_x: float):
        super().__init__()
        self.encoder = ConvEncoder(channels, size, n_conv, base_channels, 2 * latent)
        self.decoder = ConvDecoder(latent, size, n_conv, base_channels, 2 * channels)
        self.min_log_var_x = min_log_var_x

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu_z, log_var_z = self.encoder(x).chunk(2, dim=1)
        return mu_z, log_var_z

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu_x, raw = self.decoder(z).chunk(2, dim=1)
        # A smooth floor on the variance: perfectly flat regions would otherwise drive s_x -> 0 and
        # the likelihood to infinity. The floor keeps s_x >= exp(min/2), a few grey levels.
        floor = self.min_log_var_x
        return mu_x, floor + F.softplus(raw - floor)


def elbo_terms(x: torch.Tensor, mu_z: torch.Tensor, log_var_z: torch.Tensor, mu_x: torch.Tensor,
               log_var_x: torch.Tensor) -> dict[str, torch.Tensor]:
    """D, A, M and L = D + A + M per sample (sums over latent dims / pixels)."""
    d = 0.5 * (-log_var_z - 1.0 + log_var_z.exp() + mu_z.pow(2)).sum(dim=1)
    a = 0.5 * (LOG_2PI + log_var_x).flatten(1).sum(dim=1)
    m = 0.5 * ((mu_x - x).pow(2) * torch.exp(-log_var_x)).flatten(1).sum(dim=1)
    return {"L": d + a + m, "D": d, "A": a, "M": m}


class PatchVAE(TorchPatchDetector):
    name = "vae"
    PARAMS = PATCH_PARAMS + TRAIN_PARAMS + ARCH_PARAMS + (
        Param("min_log_var_x", -9.0, "floor of the decoder's log-variance (numerical safety)"),
    )
    components = ("M", "L", "D", "A")
    default_component = "M"

    @classmethod
    def quick_settings(cls) -> dict[str, Any]:
        return dict(QUICK)

    def build_net(self) -> nn.Module:
        p = self.params
        return GaussianVAE(self.n_channels, p["patch_size"], p["n_conv"], p["base_channels"], p["latent"],
                           p["min_log_var_x"])

    def training_loss(self, batch: torch.Tensor) -> torch.Tensor:
        mu_z, log_var_z = self.net.encode(batch)
        z = mu_z + torch.randn_like(mu_z) * (0.5 * log_var_z).exp()  # one sample, reparameterised
        mu_x, log_var_x = self.net.decode(z)
        return elbo_terms(batch, mu_z, log_var_z, mu_x, log_var_x)["L"].mean()

    @torch.inference_mode()
    def patch_scores(self, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.scoring_input(patches)
        mu_z, log_var_z = self.net.encode(x)
        mu_x, log_var_x = self.net.decode(mu_z)  # MAP latent, no sampling
        return elbo_terms(x, mu_z, log_var_z, mu_x, log_var_x)


class PatchAE(TorchPatchDetector):
    """Same architecture with point estimates: MSE objective and MSE score (constant s_x). The `ssim`
    component, 1 - SSIM between a patch and its reconstruction, is paper 004's SSIM difference, per patch."""

    name = "ae"
    PARAMS = PATCH_PARAMS + TRAIN_PARAMS + ARCH_PARAMS
    components = ("score", "ssim")
    default_component = "score"

    @classmethod
    def quick_settings(cls) -> dict[str, Any]:
        return dict(QUICK)

    def build_net(self) -> nn.Module:
        p = self.params
        return nn.Sequential(
            ConvEncoder(self.n_channels, p["patch_size"], p["n_conv"], p["base_channels"], p["latent"]),
            ConvDecoder(p["latent"], p["patch_size"], p["n_conv"], p["base_channels"], self.n_channels),
        )

    def training_loss(self, batch: torch.Tensor) -> torch.Tensor:
        return (self.net(batch) - batch).pow(2).mean()

    @torch.inference_mode()
    def patch_scores(self, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.scoring_input(patches)
        recon = self.net(x)
        return {"score": (recon - x).pow(2).flatten(1).mean(dim=1), "ssim": 1.0 - ssim(x.float(), recon.float())}
