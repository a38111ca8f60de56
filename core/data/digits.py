"""One-class tasks from scikit-learn's bundled handwritten digits (no download): one digit is normal, the
others are anomalies — the small stand-in for paper 001's MNIST protocol, used by tests and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from sklearn.datasets import load_digits


@dataclass
class OneClassTask:
    normal_digit: int
    train: list[np.ndarray]  # normals only, H x W x 1 float32 in [0, 1]
    test: list[np.ndarray]
    test_labels: np.ndarray  # True = anomaly (another digit)


def digit_images(size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as (N, size, size, 1) float32 in [0, 1] and their classes (N,)."""
    data = load_digits()
    raw = (data.images / 16.0).astype(np.float32)  # 8 x 8, values 0..16
    if size != 8:
        raw = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_CUBIC) for im in raw])
    return np.clip(raw, 0.0, 1.0)[..., None], data.target.astype(np.int64)


def one_class_task(normal_digit: int, size: int = 32, train_share: float = 0.7, anomalies_per_digit: int = 30,
                   seed: int = 0) -> OneClassTask:
    """Train on `train_share` of the normal digit; test on the rest of it plus `anomalies_per_digit` of
    every other digit (a fixed, seeded draw), so the test set is about half anomalies."""
    images, target = digit_images(size)
    rng = np.random.default_rng(seed)
    normal = rng.permutation(np.flatnonzero(target == normal_digit))
    cut = int(round(train_share * len(normal)))
    others = [rng.permutation(np.flatnonzero(target == d))[:anomalies_per_digit]
              for d in range(10) if d != normal_digit]
    test_idx = np.concatenate([normal[cut:], *others])
    labels = np.concatenate([np.zeros(len(normal) - cut, bool), np.ones(sum(len(o) for o in others), bool)])
    return OneClassTask(normal_digit, list(images[normal[:cut]]), list(images[test_idx]), labels)
