"""Convolutional encoder / decoder pairs of the papers: 4x4 kernels, stride 2, channels doubling per layer.

The encoder of paper 000: N_conv x (conv 4x4 stride 2 -> BatchNorm -> ReLU), then one fully connected layer.
The decoder mirrors it with transposed convolutions and ends in a conv layer without normalisation, so its
outputs (means, log-variances) are unconstrained.
"""

from __future__ import annotations

import torch
from torch import nn


def check_geometry(size: int, n_conv: int) -> int:
    """Side of the last feature map; the patch must halve cleanly n_conv times."""
    if size % (2 ** n_conv) != 0:
        raise ValueError(f"patch size {size} must be divisible by 2**n_conv = {2 ** n_conv}")
    return size // (2 ** n_conv)


class ConvEncoder(nn.Module):
    def __init__(self, in_channels: int, size: int, n_conv: int, base_channels: int, out_features: int):
        super().__init__()
        side = check_geometry(size, n_conv)
        layers: list[nn.Module] = []
        channels = in_channels
        for n in range(n_conv):
            out = base_channels * 2 ** n
            layers += [nn.Conv2d(channels, out, 4, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(channels * side * side, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


class ConvDecoder(nn.Module):
    def __init__(self, in_features: int, size: int, n_conv: int, base_channels: int, out_channels: int):
        super().__init__()
        self.side = check_geometry(size, n_conv)
        self.top = base_channels * 2 ** (n_conv - 1)
        self.fc = nn.Linear(in_features, self.top * self.side * self.side)
        layers: list[nn.Module] = [nn.BatchNorm2d(self.top), nn.ReLU(inplace=True)]
        channels = self.top
        for n in range(n_conv - 1, 0, -1):
            out = base_channels * 2 ** (n - 1)
            layers += [nn.ConvTranspose2d(channels, out, 4, 2, 1, bias=False), nn.BatchNorm2d(out),
                       nn.ReLU(inplace=True)]
            channels = out
        layers.append(nn.ConvTranspose2d(channels, out_channels, 4, 2, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(z.shape[0], self.top, self.side, self.side)
        return self.body(h)
