"""Training of the Detector-VAE (paper 001, eq. 9) with its TC discriminator.

Objective per batch (means over the batch, sums over pixels / codes):
    L_VAE = L_R + w (L_KL + gamma * L_TC) + eta * sum_j (1/beta_j - 1)^2, w ramping 0 -> 1 (warm-up)
    L_R   = rec_weight x sum of squared pixel errors of a reparameterised sample (the paper's l2 loss; as a
            Gaussian likelihood its variance is 1 / (2 rec_weight), so rec_weight sets how much detail the
            codes must carry before the KL term makes them collapse to the prior)
    L_KL  = sum_j KL(q(z_j|x) || N(0, 1/beta_j))
    L_TC  = E_q(z)[log D(z) / (1 - D(z))], the discriminator's logit difference on the sampled codes
Gradient routing as the paper gives it: one Adam step of L_VAE updates the encoder (which thereby gets
grad(L_R + L_KL + gamma L_TC)), the decoder (only L_R depends on it) and the precisions beta (L_KL and the
regulariser); the discriminator's parameters are not touched by that step. Then the discriminator takes
its own step on its BCE between the batch's codes (first half, detached) and codes with every dimension
shuffled across the batch (second half, detached, permute_dims), so the two sets are independent draws.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from core.detectors.base import FitReport, ProgressFn, StopFn
from core.detectors.training_loop import run_training
from core.nets.oiad_nets import DetectorVAE, TCDiscriminator, beta_regulariser, kl_per_code, permute_dims

TERMS = ("loss", "rec", "kl", "tc", "disc")


def vae_terms(net: DetectorVAE, disc: TCDiscriminator, x: torch.Tensor, gamma: float, eta: float,
              rec_weight: float = 1.0, ramp: float = 1.0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The Detector-VAE loss and its parts for one batch, plus the sampled codes (for the discriminator)."""
    mu, log_var = net.encode(x)
    z = mu + torch.randn_like(mu) * (0.5 * log_var).exp()
    recon = net.decode(z)
    rec = rec_weight * (recon - x).pow(2).flatten(1).sum(dim=1).mean()
    kl = kl_per_code(mu, log_var, net.log_beta).sum(dim=1).mean()
    tc = disc.tc(z)
    loss = rec + ramp * (kl + gamma * tc) + eta * beta_regulariser(net.log_beta)
    return {"loss": loss, "rec": rec, "kl": kl, "tc": tc}, z


def train_detector_vae(
    net: DetectorVAE, disc: TCDiscriminator, draw: Callable[[], torch.Tensor], params: dict[str, Any],
    steps_per_epoch: int, gen: torch.Generator, *, progress: ProgressFn, should_stop: StopFn,
) -> tuple[FitReport, dict[str, list[float]]]:
    """Train until the epoch limit or the time budget; returns the report and per-epoch means of each term."""
    opt_vae = torch.optim.Adam(net.parameters(), lr=params["lr"], betas=(0.9, 0.999))
    # FactorVAE's discriminator settings (Kim & Mnih 2018): Adam, betas (0.5, 0.9).
    opt_d = torch.optim.Adam(disc.parameters(), lr=params["lr_disc"], betas=(0.5, 0.9))
    gamma, eta, rec_weight = float(params["gamma"]), float(params["eta"]), float(params["rec_weight"])
    history: list[dict[str, float]] = []
    # Warm-up: the KL and TC weights ramp from 0 to 1 over the first `warmup` share of the run (of the steps,
    # or of the time budget when that ends the run first), so codes carry the images before the prior and the
    # independence penalty pull on them (without it most codes collapse in the first epochs and stay so).
    warm = float(params.get("warmup", 0.0))
    total_steps = max(1, int(params["epochs"]) * steps_per_epoch)
    budget = float(params.get("time_budget") or 0.0)
    started = time.perf_counter()
    net.train()
    disc.train()

    def step() -> float:
        x = draw()
        ramp = 1.0
        if warm > 0:
            share = len(history) / total_steps
            if budget > 0:
                share = max(share, (time.perf_counter() - started) / budget)
            ramp = min(1.0, share / warm)
        terms, z = vae_terms(net, disc, x, gamma, eta, rec_weight, ramp)
        opt_vae.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt_vae.step()
        half = len(z) // 2
        d_loss = disc.loss(z[:half].detach(), permute_dims(z[half:].detach(), gen))
        opt_d.zero_grad(set_to_none=True)  # drops the grads L_VAE left on the discriminator
        d_loss.backward()
        opt_d.step()
        values = {k: v.item() for k, v in terms.items()}
        values["disc"] = d_loss.item()
        history.append(values)
        return values["loss"]

    def report_progress(done: int, total: int, info: dict) -> None:
        # The GUI's loss curve reads info["loss"]; the other terms ride along for anyone who wants them.
        progress(done, total, {**info, **{k: history[-1][k] for k in TERMS[1:]}})

    report = run_training(step, epochs=params["epochs"], steps_per_epoch=steps_per_epoch,
                          time_budget=params["time_budget"], progress=report_progress, should_stop=should_stop)
    net.eval()
    disc.eval()
    per_epoch = {k: [] for k in TERMS}
    for e in range(report.epochs):
        chunk = history[e * steps_per_epoch:(e + 1) * steps_per_epoch]
        for k in TERMS:
            per_epoch[k].append(float(np.mean([h[k] for h in chunk])))
    return report, per_epoch
