"""NI-CAE (paper 004): a grayscale convolutional autoencoder trained with Gaussian noise (mean 0, variance
0.001) injected into a random 10 % of the training images, drawn anew each epoch (eq. 7:
S_r = Random(K_D, [0.10 K_D]) image indices), and early stopping once the validation loss (a split of the good
images, without noise) has not improved for 5 epochs.

Architecture as the paper gives it: five Conv2D 3 x 3 with [128, 64, 16, 8, 4] filters, each followed by a
2 x 2 max-pool, a dense layer of 512; the decoder mirrors it with upsampling and ends in a 1 x 1 conv.
Score: mean squared reconstruction error. `noise=false` gives the paper's "without noise" row.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import nn

from core.detectors.autoencoders.base import ImageAutoencoder, common_params
from core.detectors.base import Param
from core.nets.conv_autoencoder import PooledAutoencoder

FILTERS = (128, 64, 16, 8, 4)


def pick_noisy(n: int, fraction: float, gen: torch.Generator) -> torch.Tensor:
    """Boolean mask over n images with floor(fraction * n) of them, drawn at random, set (eq. 7)."""
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.randperm(n, generator=gen)[: math.floor(fraction * n)]] = True
    return mask


def inject_noise(x: torch.Tensor, noisy: torch.Tensor, variance: float, gen: torch.Generator) -> torch.Tensor:
    """x plus N(0, variance) per pixel on the images where `noisy` is set; the others untouched."""
    out = x.clone()
    if noisy.any():
        noise = torch.randn(out[noisy].shape, generator=gen) * math.sqrt(variance)
        out[noisy] = out[noisy] + noise.to(out.device)
    return out


_params = tuple(dataclasses.replace(p, default="gray") if p.name == "channels" else p
                for p in common_params(image_size=128, epochs=100, batch=16, lr=1e-3,
                                       lr_help="the paper does not state it; Keras' default"))


class NICAE(ImageAutoencoder):
    name = "nicae"
    PARAMS = _params + (
        Param("noise", True, "inject Gaussian noise while training (false = the paper's 'without noise')"),
        Param("noise_fraction", 0.10, "share of training images given noise each epoch (paper: 10 %)",
              minimum=0.0, maximum=1.0),
        Param("noise_variance", 0.001, "variance of the Gaussian noise (paper: 0.001)", minimum=0.0),
        Param("val_fraction", 0.2, "share of the good images held out for early stopping", minimum=0.0,
              maximum=0.9),
        Param("patience", 5, "stop after this many epochs without validation improvement (paper: 5)", minimum=1),
        Param("dense", 512, "units of the dense bottleneck (paper: 512)", minimum=1),
    )
    components = ("reconstruction", "ssim")
    default_component = "reconstruction"

    @classmethod
    def quick_settings(cls) -> dict[str, Any]:
        return {"image_size": 32, "dense": 16, "epochs": 2, "batch_size": 4}

    def build_net(self) -> nn.Module:
        return PooledAutoencoder(self.n_channels, int(self.params["image_size"]), FILTERS, self.params["dense"])

    def split_training(self, data: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n = len(data)
        n_val = math.floor(self.params["val_fraction"] * n) if n >= 4 else 0
        order = torch.randperm(n, generator=gen)
        self.val = data[order[:n_val]]
        self.best_val, self.stale = math.inf, 0
        self.noisy = torch.zeros(n - n_val, dtype=torch.bool)
        return data[order[n_val:]]

    def on_epoch(self) -> None:
        if self.params["noise"]:
            self.noisy = pick_noisy(len(self.noisy), self.params["noise_fraction"], self.gen)

    def augment(self, x: torch.Tensor, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if not self.params["noise"]:
            return x
        return inject_noise(x, self.noisy[idx], self.params["noise_variance"], gen)

    def training_loss(self, x: torch.Tensor) -> torch.Tensor:
        # The noisy image is the input and the target alike: the paper injects noise into the training set.
        return (self.net(x) - x).pow(2).mean()

    def after_epoch(self, epoch: int) -> bool:
        if len(self.val) == 0:
            return False
        self.net.eval()
        with torch.inference_mode():
            val = sum(float((self.net(x.to(self.device)) - x.to(self.device)).pow(2).sum())
                      for x in self.val.split(32)) / self.val.numel()
        self.net.train()
        if val < self.best_val:
            self.best_val, self.stale = val, 0
        else:
            self.stale += 1
        return self.stale >= self.params["patience"]
