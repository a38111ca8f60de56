"""Sample grids of a generator, kept with the model: a few G(z) side by side, so an engineer can see what the
GAN learned (a generator that draws mush explains a weak f-AnoGAN; generated images used for augmentation
should look like the parts). Stored as a PNG, base64 in the model's JSON metadata, so the model file stays
tensors + JSON and the store's run metadata carries it to the window without loading the model."""

from __future__ import annotations

import base64
import math

import cv2
import numpy as np
import torch

SAMPLE_GRID_KEY = "sample_grid"


def tile(images: np.ndarray, cols: int | None = None, gap: int = 2) -> np.ndarray:
    """(N, H, W, C) in [0, 1] -> one (rows*H, cols*W, C) image with white gaps."""
    n, h, w, c = images.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    out = np.ones((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap, c), np.float32)
    for i, img in enumerate(images):
        r, q = divmod(i, cols)
        out[r * (h + gap):r * (h + gap) + h, q * (w + gap):q * (w + gap) + w] = img
    return out


def to_images(batch: torch.Tensor) -> np.ndarray:
    """A generator's (N, C, H, W) output in [-1, 1] -> (N, H, W, C) float32 in [0, 1]."""
    return ((batch.detach().float().cpu().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()


def encode_grid(grid: np.ndarray) -> str:
    """[0, 1] image -> base64 PNG (8 bit, gray or RGB)."""
    arr = (np.clip(grid, 0, 1) * 255 + 0.5).astype(np.uint8)
    if arr.shape[2] == 3:
        arr = arr[:, :, ::-1]  # OpenCV writes BGR
    ok, png = cv2.imencode(".png", arr)
    if not ok:
        raise ValueError("could not encode the sample grid as PNG")
    return base64.b64encode(png.tobytes()).decode("ascii")


def decode_grid(text: str) -> np.ndarray:
    """base64 PNG -> (H, W, C) uint8 (C = 1 or 3, RGB order)."""
    raw = np.frombuffer(base64.b64decode(text), np.uint8)
    arr = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ValueError("the sample grid is not a readable PNG")
    if arr.ndim == 2:
        return arr[:, :, None]
    return np.ascontiguousarray(arr[:, :, 2::-1])


def grid_record(samples: np.ndarray, caption: str) -> dict:
    """The metadata entry: the PNG, what it shows, and its sample count and size."""
    grid = tile(samples)
    return {"png_base64": encode_grid(grid), "caption": caption, "n": int(len(samples)),
            "sample_shape": [int(s) for s in samples.shape[1:3]]}
