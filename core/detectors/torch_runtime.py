"""Torch mechanics every torch-based detector shares, written once: the device (CUDA when present, else
Apple MPS, else CPU; overridable by the user), seeding, and a network's weights in and out of a model file's
state (plain tensors under a prefix; model files are read with weights_only=True)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch import nn

from core.detectors.base import DetectorError


def pick_device(preference: str = "auto") -> torch.device:
    """'auto' picks the fastest available; 'cpu', 'cuda', 'cuda:1', 'mps' force one (error if missing)."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {preference!r} requested but CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"device {preference!r} requested but Apple MPS is not available")
    return device


def seed_everything(seed: int) -> torch.Generator:
    """Seed the global generators (for layer initialisation) and return a generator for sampling."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


class TorchDevice:
    """Mixin for a Detector with a "device" setting: the device it runs on, chosen once per detector."""

    name: str
    params: dict[str, Any]

    @property
    def device(self) -> torch.device:
        if not hasattr(self, "_device"):
            try:
                self._device = pick_device(self.params["device"])
            except RuntimeError as exc:  # the asked-for device is missing: the user's setting, said plainly
                raise DetectorError(f"{self.name}: {exc}") from None
        return self._device


def net_state(net: nn.Module, prefix: str = "net.") -> dict[str, torch.Tensor]:
    """A network's weights as model-file entries, on the CPU."""
    return {f"{prefix}{k}": v.detach().cpu() for k, v in net.state_dict().items()}


def load_net_state(net: nn.Module, state: dict[str, Any], prefix: str = "net.") -> None:
    """Put the entries `net_state` wrote back into `net` (strict: a mismatch raises RuntimeError)."""
    net.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
