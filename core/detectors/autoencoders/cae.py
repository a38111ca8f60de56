"""The convolutional autoencoder baseline of paper 002 (MVTec bottle / carpet).

The paper gives the training setting, not the layers: 256 px input, latent dimension 1024, random horizontal
flip, normalisation with mean 0.5 and std 0.5 (so the network sees [-1, 1] and ends in tanh), learning rate
1e-3, 300 epochs, and the residual between image and reconstruction as the anomaly score. The layers are the
family's shared strided 4x4 blocks (ReLU) down to 8 x 8, then a fully connected 1024-unit latent.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from core.detectors.autoencoders.base import ImageAutoencoder, common_params, depth_to
from core.detectors.base import Param
from core.nets.conv_autoencoder import StridedAutoencoder


def random_hflip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each image of the batch mirrored left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    out = x.clone()
    out[flip] = out[flip].flip(-1)
    return out


class ConvAE(ImageAutoencoder):
    name = "cae"
    PARAMS = common_params(image_size=256, epochs=300, batch=16, lr=1e-3, lr_help="paper: 1e-3") + (
        Param("latent", 1024, "latent dimensions (paper: 1024)", minimum=1),
        Param("hflip", True, "random horizontal flip while training (paper: yes)"),
        Param("base_channels", 32, "channels of the first conv, doubling per layer (not in the paper)", minimum=1),
        Param("max_channels", 128, "cap on the doubling (not in the paper)", minimum=1),
    )
    residual_name = "residual"
    components = ("residual", "ssim")
    default_component = "residual"

    @classmethod
    def quick_settings(cls) -> dict[str, Any]:
        return {"image_size": 32, "latent": 16, "base_channels": 4, "max_channels": 8, "epochs": 1,
                "batch_size": 4}

    def build_net(self) -> nn.Module:
        p = self.params
        size = int(p["image_size"])
        return StridedAutoencoder(self.n_channels, size, depth_to(self.name, size, 8), p["base_channels"],
                                  p["max_channels"], act="relu", fc_latent=p["latent"], output="tanh")

    def to_net(self, x: torch.Tensor) -> torch.Tensor:
        return (x - 0.5) / 0.5

    def from_net(self, out: torch.Tensor) -> torch.Tensor:
        return out * 0.5 + 0.5

    def augment(self, x: torch.Tensor, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return random_hflip(x, gen) if self.params["hflip"] else x
