"""Device choice and seeding: CUDA when present, else Apple MPS, else CPU; overridable by the user."""

from __future__ import annotations

import random

import numpy as np
import torch


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
