"""Training and persistence for patch detectors built on a torch network (VAE, AE).

Training draws fresh random crops every step (paper 000: random 96 px crops of the training images),
one "epoch" being `patches_per_image` crops per training image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from core.data.patches import random_crops
from core.detectors.base import FitReport, Param, ProgressFn, StopFn
from core.detectors.patch_base import PatchDetector
from core.detectors.settings import TIME_BUDGET
from core.detectors.torch_runtime import TorchDevice, load_net_state, net_state, seed_everything
from core.detectors.training_loop import run_training

TRAIN_PARAMS: tuple[Param, ...] = (
    Param("epochs", 30, "passes over the training set (an epoch = patches_per_image crops per image)", minimum=1),
    Param("patches_per_image", 16, "random crops drawn from each training image per epoch", minimum=1),
    TIME_BUDGET,
    Param("lr", 1e-3, "Adam learning rate (paper: 1e-3)", minimum=0.0),
    Param("weight_decay", 1e-4, "Adam weight decay (paper: 1e-4)", minimum=0.0),
    Param("lr_schedule", "constant", "learning rate over training: constant (paper) or cosine decay to 0, "
          "which ends training in a calmer state", choices=("constant", "cosine")),
)


class TorchPatchDetector(TorchDevice, PatchDetector):
    """A patch detector whose model is one torch module `self.net`."""

    net: nn.Module

    def build_net(self) -> nn.Module:
        raise NotImplementedError

    def training_loss(self, batch: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

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
        return net_state(self.net)

    def _load_state(self, state: dict[str, Any]) -> None:
        self.net = self.build_net()
        load_net_state(self.net, state)
        self.net.to(self.device).eval()
