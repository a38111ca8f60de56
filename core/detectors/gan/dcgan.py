"""DCGAN augmentation (paper 004): a DCGAN trained on the good training images generates extra good images for
the whole-image autoencoders, for categories with few training images ("some datasets, like the Toothbrush
dataset, only had 60 images in it").

DCGAN as Radford et al. and the paper describe it: strided convolutions, BatchNorm in the generator and the
discriminator, ReLU in the generator (tanh output), LeakyReLU in the discriminator, the non-saturating
cross-entropy loss, Adam lr 2e-4 with beta1 0.5, normal latents. It trains at `augment_size` (64 px by
default: a CPU trains it in minutes) and its images are scaled up to the autoencoder's input size.

With `--set augment=dcgan`, every training batch of the autoencoder gets freshly generated images on top of
its real ones, so that `augment_share` of each batch is generated. The DCGAN trains first, on
`augment_budget_share` of the time budget; the autoencoder gets the rest. A grid of generated samples and the
count of generated images fed go into the model's metadata (`sample_grid`, `augment`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from core.detectors.base import FitReport, Param, ProgressFn, StopFn
from core.detectors.gan.samples import SAMPLE_GRID_KEY, grid_record, to_images
from core.detectors.training_loop import run_training
from core.nets.gan import ConvCritic, Generator, gan_depth, sample_latent

STAGE_DCGAN = "augmentation: DCGAN generator + discriminator"
N_SAMPLES = 16

AUGMENT_PARAMS = (
    Param("augment", "none", "extra training images: dcgan = a DCGAN trained on the good images generates some "
          "of every batch (paper 004; for categories with few good images)", choices=("none", "dcgan")),
    Param("augment_share", 0.25, "share of each training batch that is generated (augment=dcgan)",
          minimum=0.0, maximum=0.9),
    Param("augment_epochs", 300, "DCGAN training passes over the good images (augment=dcgan)", minimum=1),
    Param("augment_budget_share", 0.4, "share of the time budget the DCGAN trains for; the autoencoder gets the "
          "rest (augment=dcgan)", minimum=0.05, maximum=0.95),
    Param("augment_size", 64, "side the DCGAN generates at, scaled to image_size (augment=dcgan)", minimum=8),
    Param("augment_latent", 100, "DCGAN latent dimensions (augment=dcgan)", minimum=1),
    Param("augment_channels", 64, "DCGAN channels of the outermost layers (augment=dcgan)", minimum=1),
)


def generated_per_batch(batch: int, share: float) -> int:
    """Generated images added to a batch of `batch` real ones so that `share` of the batch is generated."""
    if share <= 0:
        return 0
    return max(1, round(batch * share / (1 - share)))


class DCGAN:
    """Generator + BatchNorm discriminator, trained with the non-saturating GAN loss."""

    def __init__(self, channels: int, size: int, latent: int, base: int, device: torch.device):
        gan_depth(size)
        self.latent, self.device = latent, device
        self.G = Generator(latent, channels, size, base).to(device)
        self.D = ConvCritic(channels, size, base, norm="batch").to(device)

    def fit(self, data: torch.Tensor, *, epochs: int, batch: int, time_budget: float, gen: torch.Generator,
            lr: float = 2e-4, progress: ProgressFn, should_stop: StopFn) -> FitReport:
        """`data`: (N, C, size, size) in [-1, 1]."""
        G, D = self.G, self.D
        G.train()
        D.train()
        opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
        n = len(data)
        batch = max(2, min(batch, n))
        steps = max(1, n // batch)
        order: list[torch.Tensor] = []
        live: dict[str, float] = {}

        def step() -> float:
            if not order:
                order.extend(torch.randperm(n, generator=gen)[: steps * batch].split(batch))
            real = data[order.pop()].to(self.device)
            z = sample_latent(len(real), self.latent, gen, "normal").to(self.device)
            fake = G(z)
            ones, zeros = torch.ones(len(real), device=self.device), torch.zeros(len(real), device=self.device)
            d_loss = (F.binary_cross_entropy_with_logits(D(real), ones)
                      + F.binary_cross_entropy_with_logits(D(fake.detach()), zeros))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            g_loss = F.binary_cross_entropy_with_logits(D(fake), ones)  # non-saturating: -log D(G(z))
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            live["discriminator_loss"], live["generator_loss"] = d_loss.item(), g_loss.item()
            return d_loss.item()

        def report(done: int, total: int, info: dict) -> None:
            progress(done, total, {**info, "stage": STAGE_DCGAN, **live})

        try:
            return run_training(step, epochs=epochs, steps_per_epoch=steps, time_budget=time_budget,
                                progress=report, should_stop=should_stop)
        finally:
            G.eval()

    @torch.inference_mode()
    def generate(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """(n, C, size, size) in [-1, 1], the generator in eval mode (its BatchNorm's running statistics)."""
        return self.G(sample_latent(n, self.latent, gen, "normal").to(self.device))


class DcganAugmenter:
    """Trains the DCGAN on an autoencoder's training images and hands each training batch its generated part."""

    def __init__(self, params: dict[str, Any], channels: int, image_size: int, device: torch.device):
        self.params, self.image_size, self.device = params, image_size, device
        self.size = int(params["augment_size"])
        self.gan = DCGAN(channels, self.size, int(params["augment_latent"]), int(params["augment_channels"]),
                         device)
        self.fed = 0
        self.report: FitReport | None = None

    def train(self, data: torch.Tensor, gen: torch.Generator, time_budget: float, progress: ProgressFn,
              should_stop: StopFn) -> FitReport:
        """`data`: the autoencoder's training images (N, C, S, S) in [0, 1]."""
        small = F.interpolate(data, size=(self.size, self.size), mode="bilinear", antialias=True,
                              align_corners=False) if data.shape[-1] != self.size else data
        self.report = self.gan.fit(small * 2 - 1, epochs=int(self.params["augment_epochs"]),
                                   batch=int(self.params.get("batch_size", 16)), time_budget=time_budget, gen=gen,
                                   progress=progress, should_stop=should_stop)
        return self.report

    def images(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """n generated images at the autoencoder's size, (n, C, S, S) in [0, 1]."""
        out = (self.gan.generate(n, gen).clamp(-1, 1) + 1) / 2
        if out.shape[-1] != self.image_size:
            out = F.interpolate(out, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return out.clamp(0, 1)

    def extra(self, batch: int, gen: torch.Generator) -> torch.Tensor:
        """The generated images to add to a training batch of `batch` real images (CPU tensor)."""
        k = generated_per_batch(batch, float(self.params["augment_share"]))
        self.fed += k
        return self.images(k, gen).cpu()

    def metadata(self, seed: int) -> dict[str, Any]:
        """(`augment` entry, `sample_grid` entry) for the model's metadata."""
        grid_gen = torch.Generator().manual_seed(seed + 2)
        samples = to_images(self.gan.generate(N_SAMPLES, grid_gen))
        return {
            "augment": {"method": "dcgan", "generated_fed": self.fed,
                        "per_batch": generated_per_batch(int(self.params.get("batch_size", 16)),
                                                         float(self.params["augment_share"])),
                        "dcgan_size": self.size, "dcgan": self.report.to_json() if self.report else None},
            SAMPLE_GRID_KEY: grid_record(samples, f"DCGAN-generated good images ({self.size} px) that were added to "
                                                  f"the autoencoder's training batches: {N_SAMPLES} samples"),
        }


def split_budget(total: float, share: float) -> float:
    """Seconds of a time budget for the DCGAN (0 = no limit)."""
    return total * share if total else 0.0


def remaining(total: float, used: float) -> float:
    """What is left of a time budget for the autoencoder (0 = no limit; never 0 when there was a budget)."""
    return max(total - used, 1e-3) if total else 0.0
