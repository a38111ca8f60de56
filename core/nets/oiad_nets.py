"""Networks of OIAD (paper 001): the Detector-VAE and its total-correlation discriminator.

Table I of the paper, scaled to the input size: the encoder is four 4x4 stride-2 convolutions (32, 32, 64, 64
channels, ReLU) and a dense layer of 128, then the Gaussian posterior (mean, log-variance) of d codes; the
decoder mirrors it (dense 128, dense to a (size/16)^2 x 64 map, four transposed 4x4 stride-2 convolutions).
A sigmoid ends the decoder because images and morphs live in [0, 1] (the SSIM metric and the GUI strips
expect that). The prior of code j is N(0, 1/beta_j) with learned precisions beta_j (kept as log beta so they
stay positive). The TC discriminator is 6 x (Linear 1000, LeakyReLU) + Linear 2, as in FactorVAE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

N_CONV = 4


def check_size(size: int) -> int:
    if size % 2 ** N_CONV != 0 or size < 2 ** N_CONV:
        raise ValueError(f"OIAD needs an image/patch side divisible by {2 ** N_CONV}, got {size}")
    return size // 2 ** N_CONV


class DetectorVAE(nn.Module):
    def __init__(self, channels: int, size: int, latent: int, width: int = 32, dense: int = 128):
        super().__init__()
        side = check_size(size)
        w = (width, width, 2 * width, 2 * width)
        layers: list[nn.Module] = []
        prev = channels
        for out in w:
            layers += [nn.Conv2d(prev, out, 4, 2, 1), nn.ReLU(inplace=True)]
            prev = out
        self.enc_conv = nn.Sequential(*layers)
        self.enc_fc = nn.Sequential(nn.Linear(w[3] * side * side, dense), nn.ReLU(inplace=True),
                                    nn.Linear(dense, 2 * latent))
        self.dec_fc = nn.Sequential(nn.Linear(latent, dense), nn.ReLU(inplace=True),
                                    nn.Linear(dense, w[3] * side * side), nn.ReLU(inplace=True))
        ups: list[nn.Module] = []
        chans = (w[3], w[2], w[1], w[0])
        for a, b in zip(chans[:-1], chans[1:], strict=True):
            ups += [nn.ConvTranspose2d(a, b, 4, 2, 1), nn.ReLU(inplace=True)]
        ups.append(nn.ConvTranspose2d(chans[-1], channels, 4, 2, 1))
        self.dec_conv = nn.Sequential(*ups)
        self.log_beta = nn.Parameter(torch.zeros(latent))  # beta_j = 1 at the start: the standard prior
        self.side, self.top, self.latent = side, w[3], latent

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_var = self.enc_fc(torch.flatten(self.enc_conv(x), 1)).chunk(2, dim=1)
        return mu, log_var.clamp(-12.0, 8.0)  # numerical safety only: far outside what training reaches

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.dec_fc(z).view(z.shape[0], self.top, self.side, self.side)
        return torch.sigmoid(self.dec_conv(h))

    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.enc_conv.parameters()) + list(self.enc_fc.parameters())

    def decoder_parameters(self) -> list[nn.Parameter]:
        return list(self.dec_fc.parameters()) + list(self.dec_conv.parameters())


def kl_per_code(mu: torch.Tensor, log_var: torch.Tensor, log_beta: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1/beta)) per code: 1/2 (beta (sigma^2 + mu^2) - 1 - log sigma^2 - log beta)."""
    beta = log_beta.exp()
    return 0.5 * (beta * (log_var.exp() + mu * mu) - 1.0 - log_var - log_beta)


def beta_regulariser(log_beta: torch.Tensor) -> torch.Tensor:
    """sum_j (1/beta_j - 1)^2: keeps the learned prior variances near 1 so codes are not made redundant."""
    return (torch.exp(-log_beta) - 1.0).pow(2).sum()


class TCDiscriminator(nn.Module):
    """Tells codes of q(z) (class 0) from codes with each dimension shuffled across the batch (class 1)."""

    def __init__(self, latent: int, hidden: int = 1000, layers: int = 6):
        super().__init__()
        mods: list[nn.Module] = []
        prev = latent
        for _ in range(layers):
            mods += [nn.Linear(prev, hidden), nn.LeakyReLU(0.2, inplace=True)]
            prev = hidden
        mods.append(nn.Linear(prev, 2))
        self.net = nn.Sequential(*mods)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    def tc(self, z: torch.Tensor) -> torch.Tensor:
        """Density-ratio estimate of TC: E[log D(z) / (1 - D(z))] = mean logit difference (paper eq. 7)."""
        logits = self(z)
        return (logits[:, 0] - logits[:, 1]).mean()

    def loss(self, real: torch.Tensor, permuted: torch.Tensor) -> torch.Tensor:
        """The discriminator's own BCE: 1/2 [CE(D(z), real) + CE(D(permuted), fake)]."""
        zeros = torch.zeros(len(real), dtype=torch.long, device=real.device)
        ones = torch.ones(len(permuted), dtype=torch.long, device=real.device)
        return 0.5 * (F.cross_entropy(self(real), zeros) + F.cross_entropy(self(permuted), ones))


def permute_dims(z: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """Shuffle each code independently across the batch: a sample of the product of the marginals q-bar(z)."""
    n, d = z.shape
    idx = torch.argsort(torch.rand(n, d, generator=gen), dim=0).to(z.device)
    return torch.gather(z, 0, idx)


def estimate_tc(codes: torch.Tensor, *, steps: int = 400, hidden: int = 128, layers: int = 3, batch: int = 256,
                lr: float = 1e-3, seed: int = 0) -> float:
    """TC of a fixed set of codes by a freshly trained discriminator (train on one half, measure on the
    other): a yardstick that does not depend on the training run's own discriminator state."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    codes = codes.detach().float()
    # TC does not change under an invertible map of each code alone, so standardise them: a discriminator
    # learns far faster on unit-scale inputs than on the tiny spreads of an untrained encoder.
    codes = (codes - codes.mean(dim=0)) / codes.std(dim=0).clamp_min(1e-8)
    order = torch.randperm(len(codes), generator=gen)
    fit, held = codes[order[: len(codes) // 2]], codes[order[len(codes) // 2:]]
    disc = TCDiscriminator(codes.shape[1], hidden, layers)
    opt = torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.5, 0.9))
    for _ in range(steps):
        pick = torch.randint(len(fit), (batch,), generator=gen)
        other = torch.randint(len(fit), (batch,), generator=gen)
        loss = disc.loss(fit[pick], permute_dims(fit[other], gen))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float(disc.tc(held))
