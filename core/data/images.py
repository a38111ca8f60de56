"""Safe image decoding: any file a user drops in a folder is either an image or a named, skipped problem.

Images are decoded from bytes (so unicode paths work on every platform) into float32 arrays H x W x C in
[0, 1], C = 1 (gray) or 3 (RGB). 16-bit images keep their precision; alpha is dropped after compositing
on black, since inspection images carry no meaningful transparency.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.vocabulary import IMAGE_SUFFIXES as IMAGE_SUFFIXES  # defined once, in core.vocabulary


class ImageLoadError(Exception):
    """A file that cannot be read as an image; the message names the file and the reason."""


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"skipped {self.path}: {self.reason}"


def decode_image(path: str | Path, channels: str = "keep") -> np.ndarray:
    """Read one image file. channels: 'keep', 'gray' or 'rgb'. Raises ImageLoadError, never crashes."""
    path = Path(path)
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise ImageLoadError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if data.size == 0:
        raise ImageLoadError(f"{path}: the file is empty (0 bytes)")
    raw = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if raw is None or raw.size == 0:
        raise ImageLoadError(f"{path}: not an image, or the file is corrupt or truncated")
    return to_float(raw, channels, source=str(path))


def to_float(raw: np.ndarray, channels: str = "keep", source: str = "image") -> np.ndarray:
    """Convert an OpenCV array (BGR order, any depth) to float32 H x W x C in [0, 1]."""
    if raw.dtype == np.uint8:
        img = raw.astype(np.float32) / 255.0
    elif raw.dtype == np.uint16:
        img = raw.astype(np.float32) / 65535.0
    elif raw.dtype in (np.float32, np.float64):
        img = np.clip(raw.astype(np.float32), 0.0, 1.0)
    else:
        raise ImageLoadError(f"{source}: unsupported pixel type {raw.dtype}")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 4:  # BGRA: composite on black
        img = img[:, :, :3] * img[:, :, 3:4]
    if img.shape[2] == 3:
        img = img[:, :, ::-1]  # BGR -> RGB
    elif img.shape[2] != 1:
        raise ImageLoadError(f"{source}: unsupported channel count {img.shape[2]}")
    return convert_channels(np.ascontiguousarray(img), channels)


def convert_channels(img: np.ndarray, channels: str) -> np.ndarray:
    if channels == "keep":
        return img
    if channels == "gray":
        if img.shape[2] == 1:
            return img
        gray = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
        return gray[:, :, None]
    if channels == "rgb":
        return img if img.shape[2] == 3 else np.repeat(img, 3, axis=2)
    raise ValueError(f"channels must be keep, gray or rgb, not {channels!r}")


def resize_image(img: np.ndarray, size: int | None) -> np.ndarray:
    """Resize to size x size (area interpolation when shrinking). None keeps the image as it is."""
    if size is None or (img.shape[0] == size and img.shape[1] == size):
        return img
    interp = cv2.INTER_AREA if size < min(img.shape[:2]) else cv2.INTER_LINEAR
    out = cv2.resize(img, (size, size), interpolation=interp)
    return out[:, :, None] if out.ndim == 2 else out


def decode_mask(path: str | Path) -> np.ndarray:
    """Ground-truth mask as a bool H x W array (any non-zero pixel is defect)."""
    img = decode_image(path, channels="gray")
    return img[:, :, 0] > 0


def load_images(
    paths: Iterable[str | Path], channels: str = "keep",
    on_skip: Callable[[Skipped], None] | None = None,
) -> tuple[list[np.ndarray], list[str], list[Skipped]]:
    """Decode many files; bad ones are reported (on_skip) and left out, the rest goes on."""
    images: list[np.ndarray] = []
    kept: list[str] = []
    skipped: list[Skipped] = []
    for p in paths:
        try:
            images.append(decode_image(p, channels))
            kept.append(str(p))
        except ImageLoadError as exc:
            item = Skipped(str(p), str(exc).split(": ", 1)[-1])
            skipped.append(item)
            if on_skip:
                on_skip(item)
    return images, kept, skipped


def common_channels(images: Sequence[np.ndarray]) -> str:
    """'rgb' if any image has colour, else 'gray' — the format a detector trains on."""
    return "rgb" if any(img.shape[2] == 3 for img in images) else "gray"
