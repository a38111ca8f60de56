"""GAN parts shared by f-AnoGAN (paper 002: WGAN-GP + izif encoder) and the DCGAN augmentation (paper 004).

All three networks are DCGAN-shaped: 4x4 kernels, stride 2, the side halving (or doubling) per layer down to
(up from) 4 x 4, channels doubling as the side halves. The generator maps a latent vector to an image in
[-1, 1] (tanh), with BatchNorm + ReLU as DCGAN prescribes. The critic / discriminator and the encoder are its
mirror with LeakyReLU(0.2); their normalisation is a choice: `batch` for the DCGAN discriminator (paper 004:
"use batchnorm in both the generator and the discriminator"), `layer` (GroupNorm with one group, i.e. LayerNorm
over channels and positions) or `none` for a WGAN-GP critic. BatchNorm must not be used there: the gradient
penalty is defined per sample, and BatchNorm couples the samples of a batch (Gulrajani et al. 2017, sec. 4),
which a previous attempt here confirmed the hard way.

`ConvCritic.features` is the last convolutional feature map, flattened: f-AnoGAN's f(.) in
A(x) = 1/n ||x - G(E(x))||^2 + kappa / n_d ||f(x) - f(G(E(x)))||^2.
"""

from __future__ import annotations

import math

import torch
from torch import nn

NORMS = ("layer", "batch", "none")


def gan_depth(size: int) -> int:
    """Stride-2 layers between a 4 x 4 map and a `size` x `size` image (size must be 4 times a power of 2)."""
    n = round(math.log2(max(size, 1) / 4))
    if n < 1 or 4 * 2 ** n != size:
        raise ValueError(f"GAN image size {size} must be 4 times a power of two, at least 8 (e.g. 64)")
    return n


def _ladder(depth: int, base: int, cap: int) -> list[int]:
    """Channels from the image side inwards: base, 2 base, 4 base ... capped."""
    return [min(base * 2 ** i, cap) for i in range(depth)]


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalisation {kind!r}; known: {NORMS}")


class Generator(nn.Module):
    """z (N, latent) -> image (N, C, size, size) in [-1, 1]."""

    def __init__(self, latent: int, channels: int, size: int, base: int = 64, cap: int = 512):
        super().__init__()
        depth = gan_depth(size)
        chans = _ladder(depth, base, cap)[::-1]  # widest at 4 x 4
        self.latent = latent
        layers: list[nn.Module] = [nn.ConvTranspose2d(latent, chans[0], 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(chans[0]), nn.ReLU(inplace=True)]
        for cin, cout in zip(chans[:-1], chans[1:], strict=True):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout),
                       nn.ReLU(inplace=True)]
        layers += [nn.ConvTranspose2d(chans[-1], channels, 4, 2, 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z.view(z.shape[0], self.latent, 1, 1))


class _DownStack(nn.Module):
    """Image -> the 4 x 4 feature map: strided 4x4 convs, normalisation (not on the first layer, as in DCGAN),
    LeakyReLU(0.2)."""

    def __init__(self, channels: int, size: int, base: int, cap: int, norm: str):
        super().__init__()
        chans = _ladder(gan_depth(size), base, cap)
        layers: list[nn.Module] = []
        cin = channels
        for i, cout in enumerate(chans):
            layers.append(nn.Conv2d(cin, cout, 4, 2, 1, bias=(i == 0 or norm == "none")))
            if i > 0:
                layers.append(_norm(norm, cout))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            cin = cout
        self.body = nn.Sequential(*layers)
        self.n_features = chans[-1] * 4 * 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.body(x), 1)


class ConvCritic(nn.Module):
    """WGAN critic (unbounded output) or DCGAN discriminator (a logit): the down stack, then one linear unit."""

    def __init__(self, channels: int, size: int, base: int = 64, cap: int = 512, norm: str = "layer"):
        super().__init__()
        self.stack = _DownStack(channels, size, base, cap, norm)
        self.head = nn.Linear(self.stack.n_features, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """f(x): the intermediate features (N, n_d) f-AnoGAN compares."""
        return self.stack(x)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """f(x) as the (N, C, 4, 4) map it is, for a per-position map of the feature term."""
        return self.stack.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stack(x)).view(-1)


class ConvEncoder(nn.Module):
    """izif encoder E: image -> latent, tanh-bounded like the uniform [-1, 1] latents the generator learned on."""

    def __init__(self, latent: int, channels: int, size: int, base: int = 64, cap: int = 512,
                 norm: str = "layer"):
        super().__init__()
        self.stack = _DownStack(channels, size, base, cap, norm)
        self.head = nn.Sequential(nn.Linear(self.stack.n_features, latent), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stack(x))


def sample_latent(n: int, latent: int, gen: torch.Generator, kind: str = "uniform") -> torch.Tensor:
    """Latent vectors: uniform in [-1, 1] (f-AnoGAN, so the tanh encoder can reach them) or standard normal
    (DCGAN)."""
    if kind == "uniform":
        return torch.rand(n, latent, generator=gen) * 2 - 1
    return torch.randn(n, latent, generator=gen)


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """WGAN-GP's penalty: (||grad_x D(x_hat)||_2 - 1)^2 averaged over x_hat on random lines real -> fake."""
    eps = torch.rand(real.shape[0], 1, 1, 1, generator=gen).to(real.device)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    out = critic(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


def critic_loss(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator,
                gp_weight: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(full critic loss, its Wasserstein part): D(fake) - D(real) + gp_weight * GP. The Wasserstein part is
    minus the critic's estimate of the distance: it falls as the critic learns to tell the two apart."""
    wasserstein = critic(fake).mean() - critic(real).mean()
    return wasserstein + gp_weight * gradient_penalty(critic, real, fake, gen), wasserstein


def izif_terms(x: torch.Tensor, recon: torch.Tensor, fx: torch.Tensor,
               frecon: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image (residual, feature) of f-AnoGAN: 1/n ||x - G(E(x))||^2 and 1/n_d ||f(x) - f(G(E(x)))||^2.
    The encoder's training loss and the anomaly score are residual + kappa * feature."""
    residual = (x - recon).pow(2).flatten(1).mean(dim=1)
    feature = (fx - frecon).pow(2).flatten(1).mean(dim=1)
    return residual, feature
