"""f-AnoGAN (paper 002, after Schlegl et al. 2019): a WGAN-GP learns the good images, then an encoder learns to
invert its generator, and an image is as anomalous as G(E(x)) fails to be x.

Stage 1: a generator G and critic D (64 px, latent 100, Adam lr 2e-4, batch 32). The critic trains on every
batch, the generator on every 5th (the paper: "We update the discriminator every batch iteration and
generator every fifth batch iteration"); the critic's loss is D(G(z)) - D(x) + 10 * gradient penalty, with
LayerNorm instead of BatchNorm in the critic (core/nets/gan.py says why).
Stage 2 (izif): G and D frozen, an encoder E trained on the good images with the score itself as its loss:
    A(x) = 1/n ||x - G(E(x))||^2 + kappa / n_d ||f(x) - f(G(E(x)))||^2,
f = the critic's last convolutional features (n_d of them), n = pixels x channels, images in [-1, 1] as the
paper normalises them (mean 0.5, std 0.5, random horizontal flip while training).

Components: `score` = A(x) (default), `residual` and `feature` its two terms (without kappa). Maps: the
squared residual per pixel (channels averaged), the feature term per position of the critic's 4 x 4 map
(channels averaged, spread over the pixels the position covers), and `score` = residual + kappa * feature,
whose mean over the pixels is A(x).

Both stages share the time budget: stage 1 gets `gan_share` of it, stage 2 the rest (plus what stage 1 left
unused). The sample grid of G(z) written after stage 1 goes into the model's metadata (`sample_grid`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.detectors import settings
from core.detectors.autoencoders.base import EpochSampler
from core.detectors.autoencoders.cae import random_hflip
from core.detectors.base import Cancelled, Detector, FitReport, Param, ProgressFn, StopFn
from core.detectors.channels import ColourChannels
from core.detectors.gan.samples import SAMPLE_GRID_KEY, grid_record, to_images
from core.detectors.results import MapGeometry, ScoreResult
from core.detectors.torch_runtime import TorchDevice, load_net_state, net_state, seed_everything
from core.detectors.training_loop import run_training
from core.nets.gan import ConvCritic, ConvEncoder, Generator, critic_loss, gan_depth, izif_terms, sample_latent

STAGE_GAN = "training stage 1/2: WGAN-GP generator + critic"
STAGE_ENCODER = "training stage 2/2: izif encoder (G, critic frozen)"
N_SAMPLES = 16


def stage_budgets(total: float, share: float, used_by_first: float | None = None) -> tuple[float, float]:
    """(stage 1, stage 2) seconds of a total budget (0 = no limit for either). Once stage 1 has run,
    `used_by_first` gives stage 2 everything it left."""
    if not total:
        return 0.0, 0.0
    first = total * share
    if used_by_first is None:
        return first, total - first
    return first, max(total - used_by_first, 1e-3)


class FAnoGAN(TorchDevice, ColourChannels, Detector):
    name = "fanogan"
    PARAMS = (
        Param("image_size", 64, "images are resized to this square side (paper: 64)", minimum=8),
        Param("latent", 100, "latent dimensions (paper: 100)", minimum=1),
        Param("epochs", 1500, "stage 1: passes of the WGAN-GP over the training images (paper: 1500)", minimum=1),
        Param("encoder_epochs", 200, "stage 2: passes of the encoder training (paper: 200)", minimum=1),
        settings.TIME_BUDGET,
        Param("gan_share", 0.7, "share of the time budget for stage 1 (the GAN); stage 2 gets the rest",
              minimum=0.05, maximum=0.95),
        Param("lr", 2e-4, "Adam learning rate of all three networks (paper: 2e-4)", minimum=0.0),
        settings.batch_size(32, "images per batch (paper: 32)", minimum=2),
        Param("n_critic", 5, "critic updates per generator update (paper: generator every 5th batch)", minimum=1),
        Param("gp_weight", 10.0, "weight of the WGAN-GP gradient penalty", minimum=0.0),
        Param("kappa", 1.0, "weight of the feature term in the score and the encoder loss", minimum=0.0),
        Param("base_channels", 64, "channels of the outermost conv layers, doubling towards 4 x 4", minimum=1),
        Param("critic_norm", "layer", "normalisation in the critic and encoder (not BatchNorm: the gradient "
              "penalty is per sample)", choices=("layer", "none")),
        Param("hflip", True, "random horizontal flip while training (paper: yes)"),
        settings.CHANNELS,
        settings.seed("initialisation, latents, shuffling, flips"),
        settings.DEVICE,
    )
    components = ("score", "residual", "feature")
    default_component = "score"
    min_train_images = 2

    @classmethod
    def quick_settings(cls) -> dict[str, Any]:
        return {"image_size": 16, "latent": 8, "base_channels": 4, "epochs": 2, "encoder_epochs": 2,
                "batch_size": 4, "n_critic": 2}

    # -- networks ---------------------------------------------------------------------------------
    def build_nets(self) -> tuple[nn.Module, nn.Module, nn.Module]:
        p = self.params
        size, base = int(p["image_size"]), int(p["base_channels"])
        gan_depth(size)
        c = self.n_channels
        return (Generator(p["latent"], c, size, base), ConvEncoder(p["latent"], c, size, base, norm=p["critic_norm"]),
                ConvCritic(c, size, base, norm=p["critic_norm"]))

    def prepare(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[MapGeometry]]:
        """(N, C, S, S) in [-1, 1] (the paper's mean 0.5 / std 0.5) and where the maps lie."""
        tensors, geometry = self.square_tensors(images)
        return tensors * 2 - 1, geometry

    # -- training ---------------------------------------------------------------------------------
    def _fit(self, images: Sequence[np.ndarray], *, progress: ProgressFn, should_stop: StopFn) -> FitReport:
        p = self.params
        gen = seed_everything(int(p["seed"]))
        data, _ = self.prepare(images)
        self.G, self.E, self.D = (net.to(self.device) for net in self.build_nets())
        sampler = EpochSampler(len(data), int(p["batch_size"]), gen)
        budget1, _ = stage_budgets(p["time_budget"], p["gan_share"])
        first = self._train_gan(lambda: self._batch(data, sampler, gen), sampler.steps_per_epoch, gen, budget1,
                                progress, should_stop)
        self.metadata[SAMPLE_GRID_KEY] = self.samples(int(p["seed"]))
        _, budget2 = stage_budgets(p["time_budget"], p["gan_share"], first.seconds)
        sampler = EpochSampler(len(data), int(p["batch_size"]), gen)
        second = self._train_encoder(lambda: self._batch(data, sampler, gen), sampler.steps_per_epoch, budget2,
                                     progress, should_stop)
        self.metadata["training_stages"] = {
            "gan": {**first.to_json(), "time_budget": budget1},
            "encoder": {**second.to_json(), "time_budget": budget2},
        }
        stopped = "time_budget" if "time_budget" in (first.stopped_by, second.stopped_by) else "done"
        return FitReport(seconds=first.seconds + second.seconds, steps=first.steps + second.steps,
                         epochs=first.epochs + second.epochs, stopped_by=stopped,
                         loss_history=first.loss_history + second.loss_history)

    def _batch(self, data: torch.Tensor, sampler: EpochSampler, gen: torch.Generator) -> torch.Tensor:
        x = data[sampler.next()]
        return (random_hflip(x, gen) if self.params["hflip"] else x).to(self.device)

    def _train_gan(self, batch: Any, steps_per_epoch: int, gen: torch.Generator, budget: float,
                   progress: ProgressFn, should_stop: StopFn) -> FitReport:
        p = self.params
        G, D = self.G, self.D
        G.train()
        D.train()
        opt_g = torch.optim.Adam(G.parameters(), lr=p["lr"], betas=(0.5, 0.9))
        opt_d = torch.optim.Adam(D.parameters(), lr=p["lr"], betas=(0.5, 0.9))
        live: dict[str, float] = {"generator_loss": float("nan")}
        count = [0]

        def step() -> float:
            real = batch()
            z = sample_latent(len(real), p["latent"], gen).to(self.device)
            with torch.no_grad():
                fake = G(z)
            loss, wasserstein = critic_loss(D, real, fake, gen, p["gp_weight"])
            opt_d.zero_grad(set_to_none=True)
            loss.backward()
            opt_d.step()
            live["critic_loss"], live["wasserstein_estimate"] = loss.item(), -wasserstein.item()
            count[0] += 1
            if count[0] % int(p["n_critic"]) == 0:
                D.requires_grad_(False)
                z = sample_latent(len(real), p["latent"], gen).to(self.device)
                g_loss = -D(G(z)).mean()
                opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                opt_g.step()
                D.requires_grad_(True)
                live["generator_loss"] = g_loss.item()
            return live["critic_loss"]

        def report(done: int, total: int, info: dict) -> None:
            progress(done, total, {**info, "stage": STAGE_GAN, **live})

        return run_training(step, epochs=int(p["epochs"]), steps_per_epoch=steps_per_epoch, time_budget=budget,
                            progress=report, should_stop=should_stop)

    def _train_encoder(self, batch: Any, steps_per_epoch: int, budget: float, progress: ProgressFn,
                       should_stop: StopFn) -> FitReport:
        p = self.params
        self.G.eval()
        self.D.eval()
        self.G.requires_grad_(False)
        self.D.requires_grad_(False)
        self.E.train()
        opt = torch.optim.Adam(self.E.parameters(), lr=p["lr"], betas=(0.5, 0.999))
        live: dict[str, float] = {}

        def step() -> float:
            x = batch()
            recon = self.G(self.E(x))
            residual, feature = izif_terms(x, recon, self.D.features(x), self.D.features(recon))
            loss = (residual + p["kappa"] * feature).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            live["residual_loss"], live["feature_loss"] = residual.mean().item(), feature.mean().item()
            return loss.item()

        def report(done: int, total: int, info: dict) -> None:
            progress(done, total, {**info, "stage": STAGE_ENCODER, **live})

        try:
            return run_training(step, epochs=int(p["encoder_epochs"]), steps_per_epoch=steps_per_epoch,
                                time_budget=budget, progress=report, should_stop=should_stop)
        finally:
            self.E.eval()

    @torch.inference_mode()
    def samples(self, seed: int, n: int = N_SAMPLES) -> dict:
        """The sample grid of G(z) for the model's metadata (fixed latents: the same seed draws the same z)."""
        was_training = self.G.training
        self.G.eval()
        gen = torch.Generator().manual_seed(seed + 1)
        images = to_images(self.G(sample_latent(n, self.params["latent"], gen).to(self.device)))
        self.G.train(was_training)
        return grid_record(images, f"G(z) of the f-AnoGAN generator after stage 1: {n} random latents")

    # -- scoring ----------------------------------------------------------------------------------
    @torch.inference_mode()
    def terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per image `residual`, `feature`, `score` and their maps, for x (N, C, S, S) in [-1, 1]."""
        x = x.to(self.device)
        recon = self.G(self.E(x))
        fx, fr = self.D.feature_map(x), self.D.feature_map(recon)
        residual, feature = izif_terms(x, recon, fx, fr)
        residual_map = (x - recon).pow(2).mean(dim=1)
        feature_grid = (fx - fr).pow(2).mean(dim=1, keepdim=True)
        feature_map = F.interpolate(feature_grid, size=x.shape[2:], mode="nearest")[:, 0]
        kappa = float(self.params["kappa"])
        return {"residual": residual, "feature": feature, "score": residual + kappa * feature,
                "residual_map": residual_map, "feature_map": feature_map,
                "score_map": residual_map + kappa * feature_map}

    def _score(self, images: Sequence[np.ndarray], *, progress: ProgressFn, should_stop: StopFn) -> ScoreResult:
        bs = max(int(self.params["batch_size"]), 16)
        comps: dict[str, list[np.ndarray]] = {c: [] for c in self.components}
        maps: dict[str, list[np.ndarray]] = {c: [] for c in self.components}
        geometry: list[MapGeometry] = []
        start_time = time.perf_counter()
        for start in range(0, len(images), bs):
            if should_stop():
                raise Cancelled()
            x, geo = self.prepare(images[start:start + bs])
            geometry += geo
            out = self.terms(x)
            for c in self.components:
                comps[c].append(out[c].cpu().numpy().astype(np.float64))
                maps[c] += list(out[f"{c}_map"].cpu().numpy().astype(np.float32))
            progress(min(start + bs, len(images)), len(images), {"elapsed": time.perf_counter() - start_time})
        return ScoreResult(self.default_component, {c: np.concatenate(v) for c, v in comps.items()}, maps,
                           geometry)

    # -- model file -------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {**net_state(self.G, "G."), **net_state(self.E, "E."), **net_state(self.D, "D.")}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.G, self.E, self.D = self.build_nets()
        for net, prefix in ((self.G, "G."), (self.E, "E."), (self.D, "D.")):
            load_net_state(net, state, prefix)
            net.to(self.device).eval()
