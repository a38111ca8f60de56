"""Training and persistence for patch detectors built on a torch network (VAE, AE).

Training draws fresh random crops every step (paper 000: random 96 px crops of the training images),
one "epoch" being `patches_per_image` crops per training image.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from core.data.patches import random_crops
from core.detectors.base import Cancelled, FitReport, Param, ProgressFn, StopFn
from core.detectors.patch_base import PatchDetector
from core.device import pick_device, seed_everything

TRAIN_PARAMS: tuple[Param, ...] = (
    Param("epochs", 30, "passes over the training set (an epoch = patches_per_image crops per image)", minimum=1),
    Param("patches_per_image", 16, "random crops drawn from each training image per epoch", minimum=1),
    Param("time_budget", 0.0, "stop training after this many seconds (0 = no limit)", minimum=0.0),
    Param("lr", 1e-3, "Adam learning rate (paper: 1e-3)", minimum=0.0),
    Param("weight_decay", 1e-4, "Adam weight decay (paper: 1e-4)", minimum=0.0),
    Param("lr_schedule", "constant", "learning rate over training: constant (paper) or cosine decay to 0, "
          "which ends training in a calmer state", choices=("constant", "cosine")),
)


def run_training(
    step: Any, *, epochs: int, steps_per_epoch: int, time_budget: float,
    progress: ProgressFn, should_stop: StopFn,
) -> FitReport:
    """Call `step()` (returns the batch loss) until the epochs are done or the time budget is spent.

    Says which one stopped it; the loss history holds one mean per epoch (and the live value goes to
    `progress` every step for the GUI's curve).
    """
    report = FitReport()
    start = time.perf_counter()
    total = epochs * steps_per_epoch
    for epoch in range(epochs):
        losses = []
        for s in range(steps_per_epoch):
            if should_stop():
                raise Cancelled()
            loss = float(step())
            if not math.isfinite(loss):
                raise FloatingPointError(f"training diverged (loss {loss}) at epoch {epoch + 1}, step {s + 1}")
            losses.append(loss)
            report.steps += 1
            elapsed = time.perf_counter() - start
            progress(report.steps, total, {"loss": loss, "epoch": epoch + 1, "elapsed": elapsed})
            if time_budget and elapsed >= time_budget:
                report.stopped_by = "time_budget"
                break
        report.loss_history.append(float(np.mean(losses)))
        report.epochs = epoch + 1
        if report.stopped_by == "time_budget":
            break
    report.seconds = time.perf_counter() - start
    return report


class TorchPatchDetector(PatchDetector):
    """A patch detector whose model is one torch module `self.net`."""

    net: nn.Module

    def build_net(self) -> nn.Module:
        raise NotImplementedError

    def training_loss(self, batch: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        if not hasattr(self, "_device"):
            self._device = pick_device(self.params["device"])
        return self._device

    def _fit(self, images: Sequence[np.ndarray], *, progress: ProgressFn, should_stop: StopFn) -> FitReport:
        gen = seed_everything(int(self.params["seed"]))
        tensors, _ = self.prepare(images)
        self.net = self.build_net().to(self.device)
        self.net.train()
        opt = torch.optim.Adam(self.net.parameters(), lr=self.params["lr"], betas=(0.9, 0.999),
                               weight_decay=self.params["weight_decay"])
        batch = self.params["batch_size"]
        steps = max(1, math.ceil(len(tensors) * self.params["patches_per_image"] / batch))

        total_steps = steps * self.params["epochs"]
        done = [0]

        def step() -> float:
            if self.params["lr_schedule"] == "cosine":
                for group in opt.param_groups:
                    group["lr"] = self.params["lr"] * 0.5 * (1 + math.cos(math.pi * done[0] / total_steps))
            done[0] += 1
            x = random_crops(tensors, batch, self.params["patch_size"], gen).to(self.device)
            loss = self.training_loss(x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss.item()

        report = run_training(step, epochs=self.params["epochs"], steps_per_epoch=steps,
                              time_budget=self.params["time_budget"], progress=progress,
                              should_stop=should_stop)
        self.net.eval()
        return report

    def before_scoring(self) -> None:
        # channels_last suits CPU convolutions (~20 % faster scoring measured here); weights are unchanged.
        self.net.eval()
        self.net.to(memory_format=torch.channels_last)

    def scoring_input(self, patches: torch.Tensor) -> torch.Tensor:
        return patches.to(self.device).contiguous(memory_format=torch.channels_last)

    def _state(self) -> dict[str, Any]:
        return {f"net.{k}": v.detach().cpu() for k, v in self.net.state_dict().items()}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.net = self.build_net()
        self.net.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")})
        self.net.to(self.device).eval()
