"""The supervised CNN of paper 004: five blocks of (3 x 3 conv, 16 filters, ReLU, 2 x 2 max-pool), flatten, one
hidden dense layer, a sigmoid output; RMSprop on binary cross-entropy. It is a classifier of good vs defect
images, trained on the labels stored in the project.

What the paper leaves open, decided here and said in the settings:
- class imbalance: each class weighs half of the loss (weights n / (2 n_class)), so a line with 5 % defects does
  not learn "always good" (the paper names imbalance as the method's problem);
- augmentation: random horizontal / vertical flips and small rotations (reflect-padded), drawn per batch;
- input side 128 px (the paper uses 200 x 200; five pools need a multiple of 32), hidden layer 64 units;
- Keras' default initialisation (Glorot-uniform, zero biases): with PyTorch's smaller default the signal faded
  through the five blocks and the net predicted a constant on bottle (held-out output std 3e-5);
- batch normalisation after each conv (`batch_norm`, default on; off is the paper's net): on bottle, 40 s of
  training gave held-out AUROC 0.987 with it and 0.923 without (docs/benchmarks.md).

Scores: the defect probability (`probability`, default) and its logit. The map is Grad-CAM (Selvaraju et al.
2017) of the defect logit on the output of one conv block (`cam_block`, default 3: a 16 x 16 grid at 128 px),
scaled to the input, so the viewer shows where the classifier looks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.detectors import settings
from core.detectors.base import Cancelled, Detector, DetectorError, FitReport, Param, ProgressFn, StopFn
from core.detectors.channels import ColourChannels
from core.detectors.results import MapGeometry, ScoreResult
from core.detectors.torch_runtime import TorchDevice, load_net_state, net_state, seed_everything
from core.detectors.training_loop import run_training

BLOCKS = 5
FILTERS = 16


class SmallCNN(nn.Module):
    """5 x (conv 3x3, ReLU, max-pool 2), flatten, dense + ReLU, dense -> one logit (defect)."""

    def __init__(self, channels: int, size: int, filters: int = FILTERS, hidden: int = 64,
                 batch_norm: bool = False, glorot: bool = True) -> None:
        super().__init__()
        blocks, c = [], channels
        for _ in range(BLOCKS):
            norm = [nn.BatchNorm2d(filters)] if batch_norm else []
            blocks.append(nn.Sequential(nn.Conv2d(c, filters, 3, padding=1), *norm, nn.ReLU(), nn.MaxPool2d(2)))
            c = filters
        self.blocks = nn.ModuleList(blocks)
        side = size // 2 ** BLOCKS
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(filters * side * side, hidden), nn.ReLU(),
                                  nn.Linear(hidden, 1))
        if glorot:  # Keras' defaults (the paper's library): Glorot-uniform weights, zero biases
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, keep: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits (N,), the output of block `keep` (0-based) or None)."""
        kept = None
        x = x * 2.0 - 1.0
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == keep:
                kept = x
        return self.head(x).squeeze(1), kept


def augment(x: torch.Tensor, gen: torch.Generator, max_degrees: float) -> torch.Tensor:
    """Random flips (each axis with probability 1/2) and a rotation in [-max_degrees, max_degrees] per image."""
    n = x.shape[0]
    flip_x = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    flip_y = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(max_degrees)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip_x, -sin * flip_y
    theta[:, 1, 0], theta[:, 1, 1] = sin * flip_x, cos * flip_y
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def class_weights(labels: torch.Tensor) -> torch.Tensor:
    """Per-image loss weights giving each class half of the loss: n / (2 n_class)."""
    n = labels.numel()
    n_defect = float(labels.sum())
    w_defect = n / (2 * max(n_defect, 1.0))
    w_good = n / (2 * max(n - n_defect, 1.0))
    return torch.where(labels > 0.5, w_defect, w_good)


class SupervisedCNN(TorchDevice, ColourChannels, Detector):
    name = "cnn"
    supervised = True
    min_train_images = 10  # labeled good images, all of the project's (a share is held out to judge)
    min_defect_labels = 10
    components = ("probability", "logit")
    default_component = "probability"
    PARAMS = (
        Param("image_size", 128, "images are resized to this square side (a multiple of 32: five 2x2 pools)",
              minimum=32),
        Param("epochs", 60, "passes over the labeled training images", minimum=1),
        settings.TIME_BUDGET,
        Param("lr", 1e-3, "RMSprop learning rate (Keras' default, which the paper used)", minimum=0.0),
        settings.batch_size(16, "images per training batch"),
        Param("hidden", 64, "units of the hidden dense layer (the paper does not state it)", minimum=1),
        Param("batch_norm", True, "batch normalisation after each conv (not in the paper; measured better: "
              "docs/benchmarks.md, supervised CNN)"),
        Param("init", "glorot", "weight initialisation: glorot = Keras' default (the paper's library), torch = "
              "PyTorch's default (smaller: the signal fades through the five blocks)", choices=("glorot", "torch")),
        Param("class_weighting", True, "weigh each class as half of the loss (imbalanced labels)"),
        Param("augment", True, "random flips and small rotations while training"),
        Param("rotation", 10.0, "largest random rotation in degrees (with augment)", minimum=0.0, maximum=180.0),
        Param("cam_block", 3, "Grad-CAM map from the output of this conv block (1 = finest, 5 = coarsest)",
              minimum=1, maximum=BLOCKS),
        settings.CHANNELS,
        settings.seed("initialisation, shuffling, augmentation"),
        settings.DEVICE,
    )
    net: SmallCNN

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if int(self.params["image_size"]) % 2 ** BLOCKS:
            raise DetectorError(f"cnn: image_size {self.params['image_size']} must be a multiple of {2 ** BLOCKS}")

    @classmethod
    def quick_settings(cls) -> dict[str, Any]:
        return {"image_size": 32, "epochs": 2, "batch_size": 4, "hidden": 8}

    def build_net(self) -> SmallCNN:
        return SmallCNN(self.n_channels, int(self.params["image_size"]), hidden=int(self.params["hidden"]),
                        batch_norm=bool(self.params["batch_norm"]), glorot=self.params["init"] == "glorot")

    def prepare(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[MapGeometry]]:
        return self.square_tensors(images)

    def _fit(self, images: Sequence[np.ndarray], *, progress: ProgressFn, should_stop: StopFn,
             labels: np.ndarray | None = None) -> FitReport:
        assert labels is not None  # Detector.fit checks it
        gen = seed_everything(int(self.params["seed"]))
        data, _ = self.prepare(images)
        target = torch.from_numpy(labels.astype(np.float32))
        self.metadata["n_train_good"] = int((~labels).sum())
        self.metadata["n_train_defect"] = int(labels.sum())
        weights = class_weights(target) if self.params["class_weighting"] else torch.ones_like(target)
        self.net = self.build_net().to(self.device)
        self.net.train()
        opt = torch.optim.RMSprop(self.net.parameters(), lr=self.params["lr"])
        n = len(data)
        batch = max(1, min(int(self.params["batch_size"]), n))
        steps = max(1, n // batch)  # full batches (batch norm needs two images), reshuffled every epoch
        state = {"order": torch.randperm(n, generator=gen), "pos": 0}

        def step() -> float:
            if state["pos"] >= steps:
                state["order"], state["pos"] = torch.randperm(n, generator=gen), 0
            idx = state["order"][state["pos"] * batch:(state["pos"] + 1) * batch]
            state["pos"] += 1
            x = data[idx]
            if self.params["augment"]:
                x = augment(x, gen, float(self.params["rotation"]))
            logits, _ = self.net(x.to(self.device))
            loss = F.binary_cross_entropy_with_logits(logits, target[idx].to(self.device),
                                                      weight=weights[idx].to(self.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss.item()

        report = run_training(step, epochs=int(self.params["epochs"]), steps_per_epoch=steps,
                              time_budget=self.params["time_budget"], progress=progress, should_stop=should_stop)
        self.net.eval()
        return report

    def grad_cam(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (N,), Grad-CAM maps (N, S, S) of the defect logit) of a batch in [0, 1]."""
        keep = int(self.params["cam_block"]) - 1
        with torch.enable_grad():
            x = x.to(self.device).requires_grad_(False)
            logits, feats = self.net(x, keep=keep)
            assert feats is not None
            grads, = torch.autograd.grad(logits.sum(), feats)
            weights = grads.mean(dim=(2, 3), keepdim=True)
            cam = F.relu((weights * feats).sum(dim=1, keepdim=True))
        size = x.shape[-1]
        cam = F.interpolate(cam.detach(), size=(size, size), mode="bilinear", align_corners=False)
        return logits.detach(), cam[:, 0]

    def _score(self, images: Sequence[np.ndarray], *, progress: ProgressFn, should_stop: StopFn) -> ScoreResult:
        self.net.eval()
        bs = max(int(self.params["batch_size"]), 16)
        logits_all: list[np.ndarray] = []
        maps: list[np.ndarray] = []
        geometry: list[MapGeometry] = []
        for start in range(0, len(images), bs):
            if should_stop():
                raise Cancelled()
            x, geo = self.prepare(images[start:start + bs])
            logits, cam = self.grad_cam(x)
            logits_all.append(logits.cpu().numpy().astype(np.float64))
            maps += list(cam.cpu().numpy().astype(np.float32))
            geometry += geo
            progress(min(start + bs, len(images)), len(images), {})
        logit = np.concatenate(logits_all)
        probability = 1.0 / (1.0 + np.exp(-logit))
        return ScoreResult(self.default_component, {"probability": probability, "logit": logit},
                           {"gradcam": maps}, geometry)

    def _state(self) -> dict[str, Any]:
        return net_state(self.net)

    def _load_state(self, state: dict[str, Any]) -> None:
        self.net = self.build_net()
        load_net_state(self.net, state)
        self.net.to(self.device).eval()
