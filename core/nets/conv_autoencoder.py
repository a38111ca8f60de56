"""Whole-image convolutional autoencoders of papers 002, 003 and 004, built from the same few blocks so the
detectors differ only where their papers do.

Two block kinds: the strided 4x4 convolution (stride 2, BatchNorm, activation) and its transposed mirror
(papers 002 / 003 / 004 KD-CAE), and the Keras-style 3x3 convolution + 2x2 max-pool and its upsampling mirror
(paper 004 NI-CAE). `StridedAutoencoder` stacks the first kind, with either a convolutional latent (the last
conv's feature map, through an optional bounding activation such as paper 003's tanh) or a fully connected one
(paper 002's latent vector); `PooledAutoencoder` stacks the second with a dense bottleneck.
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = ("relu", "leaky", "tanh", "sigmoid", "none")


def activation(name: str) -> nn.Module:
    """The activations the papers use; "leaky" is LeakyReLU(0.2) (paper 003)."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "leaky":
        return nn.LeakyReLU(0.2, inplace=True)
    if name == "tanh":
        return nn.Tanh()
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r}; known: {ACTIVATIONS}")


def channel_ladder(n: int, base: int, cap: int) -> list[int]:
    """Channels of n layers doubling from `base`, capped (paper 003 doubles from 64; 8 doublings would reach
    8192 channels, so a cap keeps the deepest layers at a size a CPU can train)."""
    return [min(base * 2 ** i, cap) for i in range(n)]


def strided_down(cin: int, cout: int, act: str, norm: bool = True) -> list[nn.Module]:
    """Conv 4x4 stride 2 (halves the side) -> BatchNorm -> activation."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, 2, 1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    return layers + [activation(act)]


def strided_up(cin: int, cout: int, act: str, norm: bool = True) -> list[nn.Module]:
    """Transposed conv 4x4 stride 2 (doubles the side) -> BatchNorm -> activation."""
    layers: list[nn.Module] = [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    return layers + [activation(act)]


def pooled_down(cin: int, cout: int) -> list[nn.Module]:
    """Conv 3x3 (same padding) -> ReLU -> max-pool 2x2, as Keras' Conv2D + MaxPooling2D."""
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]


def upsampled(cin: int, cout: int) -> list[nn.Module]:
    """Conv 3x3 -> ReLU -> nearest upsampling x2, the decoder mirror of `pooled_down`."""
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True), nn.Upsample(scale_factor=2)]


def halvings(size: int, n: int) -> int:
    """Side after n halvings; the input must halve cleanly."""
    if size % (2 ** n) != 0 or size < 2 ** n:
        raise ValueError(f"image side {size} must be a multiple of 2**{n} = {2 ** n}")
    return size // (2 ** n)


class StridedAutoencoder(nn.Module):
    """n_conv strided convs down, n_conv transposed convs up (BatchNorm + activation after each but the
    output layer). `fc_latent` None: the latent is the last conv's map through `bottleneck` (no BatchNorm
    there, so a tanh really bounds it); else a fully connected latent of that many units."""

    def __init__(self, in_channels: int, size: int, n_conv: int, base_channels: int, max_channels: int, *,
                 act: str = "leaky", bottleneck: str = "none", fc_latent: int | None = None,
                 output: str = "sigmoid"):
        super().__init__()
        self.side = halvings(size, n_conv)
        chans = channel_ladder(n_conv, base_channels, max_channels)
        self.top = chans[-1]
        down: list[nn.Module] = []
        cin = in_channels
        for i, cout in enumerate(chans):
            last = i == n_conv - 1 and fc_latent is None
            down += strided_down(cin, cout, bottleneck if last else act, norm=not last)
            cin = cout
        self.features = nn.Sequential(*down)
        self.fc_latent = fc_latent
        if fc_latent is not None:
            flat = self.top * self.side * self.side
            self.to_latent = nn.Sequential(nn.Linear(flat, fc_latent), activation(bottleneck))
            self.from_latent = nn.Linear(fc_latent, flat)
            self.unflatten_norm = nn.Sequential(nn.BatchNorm2d(self.top), activation(act))
        up: list[nn.Module] = []
        outs = chans[::-1][1:] + [in_channels]
        cin = self.top
        for i, cout in enumerate(outs):
            last = i == n_conv - 1
            up += strided_up(cin, cout, output if last else act, norm=not last)
            cin = cout
        self.body = nn.Sequential(*up)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        return self.to_latent(torch.flatten(h, 1)) if self.fc_latent is not None else h

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if self.fc_latent is not None:
            z = self.unflatten_norm(self.from_latent(z).view(z.shape[0], self.top, self.side, self.side))
        return self.body(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class PooledAutoencoder(nn.Module):
    """Conv 3x3 + max-pool per filter count, a dense bottleneck, and the mirror with upsampling, ending in a
    1x1 conv (paper 004's NI-CAE: filters [128, 64, 16, 8, 4], dense 512)."""

    def __init__(self, in_channels: int, size: int, filters: tuple[int, ...], dense: int, output: str = "sigmoid"):
        super().__init__()
        self.side = halvings(size, len(filters))
        self.last = filters[-1]
        down: list[nn.Module] = []
        cin = in_channels
        for f in filters:
            down += pooled_down(cin, f)
            cin = f
        flat = self.last * self.side * self.side
        self.encoder = nn.Sequential(*down, nn.Flatten(), nn.Linear(flat, dense), nn.ReLU(inplace=True))
        self.from_latent = nn.Sequential(nn.Linear(dense, flat), nn.ReLU(inplace=True))
        up: list[nn.Module] = []
        for f in filters[::-1]:
            up += upsampled(cin, f)
            cin = f
        self.body = nn.Sequential(*up, nn.Conv2d(cin, in_channels, 1), activation(output))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.from_latent(z).view(z.shape[0], self.last, self.side, self.side))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))
