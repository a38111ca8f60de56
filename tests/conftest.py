"""Shared fixtures: small generated image sets (tests never need the real data in ../shared/data)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import torch  # noqa: E402

# One torch thread: with two, training collapses (~8x slower) when another process holds a core, which is
# how the suite ran out of its waits on a busy machine; tiny test models gain nothing from a second one.
torch.set_num_threads(1)

from core.data.synthetic import DemoSpec, generate  # noqa: E402


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Every test starts on one torch thread, whatever the test before it set (the self-test, a benchmark-like
    test)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# Tiny patch-VAE settings for 64 px images: fast on CPU, still a real model.
TINY_VAE = {"patch_size": 32, "stride": 16, "n_conv": 4, "base_channels": 8, "latent": 8, "epochs": 2,
            "patches_per_image": 4, "batch_size": 32}


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo set in the MVTec layout (64 px; 12 train, 4 good + 2 per defect type in test)."""
    root = tmp_path_factory.mktemp("tiny_demo")
    return generate(root, DemoSpec(size=64, n_train=12, n_test_good=4, n_per_defect=2, seed=3))


def write_png(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix or ".png", img)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def random_images(n: int, size: int = 64, channels: int = 1, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random((size, size, channels), dtype=np.float32) for _ in range(n)]
