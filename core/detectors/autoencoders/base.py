"""What the whole-image autoencoders of papers 002, 003 and 004 share: images resized to one square side,
trained in epochs of shuffled mini-batches (Adam), scored by reconstruction, with two pixel maps per image:
the squared residual and the SSIM difference 1 - local SSIM (paper 004's figure 5) between the image and its
reconstruction. A detector says only where its paper differs: the network, the loss, the input
normalisation, augmentation, and any component beyond the residual.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.detectors import settings
from core.detectors.base import Cancelled, Detector, DetectorError, FitReport, Param, ProgressFn, StopFn
from core.detectors.channels import ColourChannels
from core.detectors.gan.dcgan import AUGMENT_PARAMS, DcganAugmenter, remaining, split_budget
from core.detectors.results import MapGeometry, ScoreResult
from core.detectors.torch_runtime import TorchDevice, load_net_state, net_state, seed_everything
from core.detectors.training_loop import run_training
from core.ssim import fit_window, ssim_map

SSIM_WINDOW = 11


def common_params(*, image_size: int, epochs: int, batch: int, lr: float, lr_help: str) -> tuple[Param, ...]:
    return (
        Param("image_size", image_size, "images are resized to this square side", minimum=8),
        Param("epochs", epochs, "passes over the training images", minimum=1),
        settings.TIME_BUDGET,
        Param("lr", lr, f"Adam learning rate ({lr_help})", minimum=0.0),
        settings.batch_size(batch, "images per training batch"),
        settings.CHANNELS,
        settings.seed("initialisation, shuffling, augmentation"),
        settings.DEVICE,
    ) + AUGMENT_PARAMS


def ssim_difference(x: torch.Tensor, y: torch.Tensor, window: int = SSIM_WINDOW) -> torch.Tensor:
    """1 - local SSIM per pixel, (N, C, H, W) -> (N, H, W), channels averaged. The images are reflect-padded
    by half a window so the map has the image's size (core.ssim computes the valid part only)."""
    size = fit_window(x.shape[2], x.shape[3], window)
    half = size // 2
    if half and min(x.shape[2:]) > half:
        x = F.pad(x, (half, half, half, half), mode="reflect")
        y = F.pad(y, (half, half, half, half), mode="reflect")
    return 1.0 - ssim_map(x, y, window=size).mean(dim=1)


class EpochSampler:
    """Shuffled mini-batches, a new permutation (and an `on_epoch` call) per epoch. Batches are full-sized
    (the last partial one is dropped, BatchNorm needs at least two images), one image is used twice."""

    def __init__(self, n: int, batch: int, gen: torch.Generator, on_epoch: Any = None):
        self.n, self.gen, self.on_epoch = n, gen, on_epoch
        self.batch = max(2, min(batch, n))
        self.steps_per_epoch = max(1, n // self.batch)
        self._order: torch.Tensor | None = None
        self._pos = 0

    def next(self) -> torch.Tensor:
        if self._order is None or self._pos >= self.steps_per_epoch:
            self._order = torch.randperm(self.n, generator=self.gen)
            if self.n < self.batch:
                self._order = torch.cat([self._order, self._order])[: self.batch]
            self._pos = 0
            if self.on_epoch is not None:
                self.on_epoch()
        start = self._pos * self.batch
        self._pos += 1
        return self._order[start:start + self.batch]


class ImageAutoencoder(TorchDevice, ColourChannels, Detector):
    """Base of the whole-image autoencoders. Subclasses implement `build_net` (a module with encode/decode)
    and may override the hooks below."""

    residual_name: ClassVar[str] = "reconstruction"
    components: ClassVar[tuple[str, ...]] = ("reconstruction", "ssim")
    default_component: ClassVar[str] = "reconstruction"
    net: nn.Module

    # -- hooks ---------------------------------------------------------------------------------------
    def build_net(self) -> nn.Module:
        raise NotImplementedError

    def to_net(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] images -> the network's input space (identity unless the paper normalises)."""
        return x

    def from_net(self, out: torch.Tensor) -> torch.Tensor:
        """Network output -> [0, 1] image space, where residual and SSIM maps are measured."""
        return out

    def augment(self, x: torch.Tensor, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Training-time change of a batch (in [0, 1]); `idx` are the images' training indices."""
        return x

    def training_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Loss of a batch already in network space; default: mean squared error."""
        return (self.net(x) - x).pow(2).mean()

    def residual(self, x: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
        """Image score from image and reconstruction in [0, 1]; default: mean squared residual."""
        return (x - recon).pow(2).flatten(1).mean(dim=1)

    def on_epoch(self) -> None:
        """Called before every training epoch (e.g. to draw the images that get noise)."""

    def after_epoch(self, epoch: int) -> bool:
        """Called after every epoch; True stops training (early stopping)."""
        return False

    def after_fit(self, data: torch.Tensor) -> None:
        """Called once training ends, with every training image (e.g. to fit a density on latents)."""

    def latent_components(self, z: torch.Tensor) -> dict[str, np.ndarray]:
        """Further per-image components from the latents of a scored batch."""
        return {}

    def combine(self, components: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Components computed from the others, over the whole scored set."""
        return {}

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Read back what `extra_state` saved."""

    # -- machinery -----------------------------------------------------------------------------------
    def prepare(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[MapGeometry]]:
        """(N, C, S, S) float32 in [0, 1] in the recorded channels, and where the maps lie."""
        return self.square_tensors(images)

    def _fit(self, images: Sequence[np.ndarray], *, progress: ProgressFn, should_stop: StopFn) -> FitReport:
        gen = seed_everything(int(self.params["seed"]))
        self.gen = gen
        data, _ = self.prepare(images)
        data = self.split_training(data, gen)
        augmenter, budget = self.train_augmenter(data, gen, progress, should_stop)
        self.net = self.build_net().to(self.device)
        self.net.train()
        opt = torch.optim.Adam(self.net.parameters(), lr=self.params["lr"])
        sampler = EpochSampler(len(data), int(self.params["batch_size"]), gen, self.on_epoch)

        def step() -> float:
            idx = sampler.next()
            x = self.augment(data[idx], idx, gen)
            if augmenter is not None:  # DCGAN-generated good images on top of the real ones (paper 004)
                x = torch.cat([x, augmenter.extra(len(x), gen)])
            x = self.to_net(x.to(self.device))
            loss = self.training_loss(x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss.item()

        report = run_training(step, epochs=int(self.params["epochs"]), steps_per_epoch=sampler.steps_per_epoch,
                              time_budget=budget, progress=progress,
                              should_stop=should_stop, after_epoch=self.after_epoch)
        self.net.eval()
        if augmenter is not None:
            self.metadata.update(augmenter.metadata(int(self.params["seed"])))
            report.seconds += augmenter.report.seconds
            if augmenter.report.stopped_by == "time_budget":
                report.stopped_by = "time_budget"
        self.after_fit(data)
        return report

    def train_augmenter(self, data: torch.Tensor, gen: torch.Generator, progress: ProgressFn,
                        should_stop: StopFn) -> tuple[DcganAugmenter | None, float]:
        """With augment=dcgan, the DCGAN trained on the training images (on its share of the time budget);
        and the autoencoder's own time budget."""
        total = float(self.params["time_budget"])
        if self.params.get("augment", "none") != "dcgan":
            return None, total
        augmenter = DcganAugmenter(self.params, self.n_channels, int(self.params["image_size"]), self.device)
        used = augmenter.train(data, gen, split_budget(total, self.params["augment_budget_share"]), progress,
                               should_stop).seconds
        return augmenter, remaining(total, used)

    def split_training(self, data: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """The images training steps use (a subclass may hold some back for validation)."""
        return data

    @torch.inference_mode()
    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(latent, reconstruction in [0, 1]) of a batch in [0, 1]."""
        z = self.net.encode(self.to_net(x.to(self.device)))
        return z, self.from_net(self.net.decode(z))

    def _score(self, images: Sequence[np.ndarray], *, progress: ProgressFn, should_stop: StopFn) -> ScoreResult:
        self.net.eval()
        bs = max(int(self.params["batch_size"]), 16)
        parts: dict[str, list[np.ndarray]] = {}
        maps: dict[str, list[np.ndarray]] = {self.residual_name: [], "ssim": []}
        geometry: list[MapGeometry] = []
        for start in range(0, len(images), bs):
            if should_stop():
                raise Cancelled()
            x, geo = self.prepare(images[start:start + bs])
            geometry += geo
            z, recon = self.reconstruct(x)
            x = x.to(recon.device)
            with torch.inference_mode():
                values = {self.residual_name: self.residual(x, recon).cpu().numpy().astype(np.float64)}
                ssim_diff = ssim_difference(x, recon)
                values["ssim"] = ssim_diff.flatten(1).mean(dim=1).cpu().numpy().astype(np.float64)
                values.update(self.latent_components(z))
                maps[self.residual_name] += list((x - recon).pow(2).mean(dim=1).cpu().numpy().astype(np.float32))
                maps["ssim"] += list(ssim_diff.cpu().numpy().astype(np.float32))
            for k, v in values.items():
                parts.setdefault(k, []).append(v)
            progress(min(start + bs, len(images)), len(images), {})
        components = {k: np.concatenate(v) for k, v in parts.items()}
        components.update(self.combine(components))
        return ScoreResult(self.default_component, components, maps, geometry)

    def _state(self) -> dict[str, Any]:
        return {**net_state(self.net), **self.extra_state()}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.net = self.build_net()
        load_net_state(self.net, {k: v for k, v in state.items() if k.startswith("net.")})
        self.net.to(self.device).eval()
        self.load_extra_state(state)


def depth_to(name: str, size: int, side: int) -> int:
    """Strided halvings from `size` down to `side` (the depth follows the input size)."""
    n = round(math.log2(max(size / side, 1)))
    if n < 1 or side * 2 ** n != size:
        raise DetectorError(f"{name}: image_size {size} must be {side} times a power of two (e.g. {side * 32})")
    return n
