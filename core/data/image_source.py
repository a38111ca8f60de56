"""Images decoded on demand: a lazy, indexable sequence of image files, so no step holds a folder in memory.

A 5 MP RGB frame is 60 MB as float32; a day of one camera is thousands of them. `ImageSource` decodes an image
when it is asked for, a few at a time in a small thread pool with read-ahead (OpenCV releases the GIL while it
decodes, so threads use every core), and keeps recently decoded images in a cache with a byte budget. It can
reduce each image at decode time to what the detector needs (`min_side`): JPEGs are then decoded at 1/2, 1/4 or
1/8 scale by the decoder itself (DCT scaling, several times faster than a full decode and a resize), other
formats are decoded and shrunk once. Detectors receive it where they received a list (`Sequence[np.ndarray]`).

Files that cannot be decoded are found before training (`ImageSource.readable`, which names each one) and are
left out of each scoring chunk (`decode_chunk`), so one bad file never stops a run.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import overload

import cv2
import numpy as np
import PIL.Image

from core.data.images import ImageLoadError, Skipped, decode_image, to_float

DEFAULT_CACHE_BYTES = 512 * 2**20
DEFAULT_WORKERS = max(1, min(4, os.cpu_count() or 1))
JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif")
_REDUCED = {  # OpenCV's reduced JPEG decode flags by factor: (gray, colour)
    2: (cv2.IMREAD_REDUCED_GRAYSCALE_2, cv2.IMREAD_REDUCED_COLOR_2),
    4: (cv2.IMREAD_REDUCED_GRAYSCALE_4, cv2.IMREAD_REDUCED_COLOR_4),
    8: (cv2.IMREAD_REDUCED_GRAYSCALE_8, cv2.IMREAD_REDUCED_COLOR_8),
}


def _header(path: str | Path) -> tuple[int, int, bool] | None:
    """(height, width, is_gray) from the file's header without decoding it (Pillow opens lazily), or None."""
    try:
        with PIL.Image.open(path) as im:
            w, h = im.size
            if im.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF orientation turns it a quarter: the decoders do too
                w, h = h, w
            return h, w, im.mode in ("L", "I;16", "1")
    except (OSError, ValueError, PIL.Image.DecompressionBombError):
        return None


def image_shape(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file from its header where Pillow can read one, else by decoding it."""
    header = _header(path)
    if header is not None:
        return header[0], header[1]
    return tuple(decode_image(path).shape[:2])  # type: ignore[return-value]


def decode_for(path: str | Path, min_side: int | None = None) -> np.ndarray:
    """Decode one file as float32 H x W x C in [0, 1], reduced so that its shorter side stays at least
    `min_side` (None: full resolution). Raises ImageLoadError naming the file."""
    if not min_side or Path(path).suffix.lower() not in JPEG_SUFFIXES:
        img = decode_image(path)
        return _shrink(img, min_side)
    header = _header(path)
    if header is None:  # not readable as a JPEG: the full decoder names the problem
        return _shrink(decode_image(path), min_side)
    h, w, gray = header
    factor = max([f for f in (8, 4, 2) if min(h, w) // f >= min_side], default=1)
    if factor == 1:
        return _shrink(decode_image(path), min_side)
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise ImageLoadError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    raw = cv2.imdecode(data, _REDUCED[factor][0 if gray else 1])
    if raw is None or raw.size == 0:
        raise ImageLoadError(f"{path}: not an image, or the file is corrupt or truncated")
    return _shrink(to_float(raw, source=str(path)), min_side)


def _shrink(img: np.ndarray, min_side: int | None) -> np.ndarray:
    """Area-shrink so the shorter side is `min_side` (never enlarges); keeps the aspect ratio."""
    if not min_side or min(img.shape[:2]) <= min_side:
        return img
    scale = min_side / min(img.shape[:2])
    size = (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale)))
    out = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return out[:, :, None] if out.ndim == 2 else out


class ImageSource(Sequence[np.ndarray]):
    """The images of `paths`, decoded when indexed. Iteration and slices decode ahead in a thread pool."""

    def __init__(self, paths: Sequence[str | Path], *, min_side: int | None = None,
                 cache_bytes: int = DEFAULT_CACHE_BYTES, workers: int = DEFAULT_WORKERS, readahead: int = 8) -> None:
        self.paths = [str(p) for p in paths]
        self.min_side = min_side
        self.cache_bytes = int(cache_bytes)
        self.workers = max(1, int(workers))
        self.readahead = max(1, int(readahead))
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()
        self.decoded = 0  # how many decodes ran (the cache's misses), for tests and benchmarks
        self.decode_seconds = 0.0  # summed over decoding threads (CPU time spent decoding, not wall time)

    # -- Sequence -----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.paths)

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, index: slice) -> list[np.ndarray]: ...

    def __getitem__(self, index: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(index, slice):
            return self._many(range(*index.indices(len(self))))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"image {index} of {len(self)}")
        with self._lock:
            hit = self._cache.get(index)
            if hit is not None:
                self._cache.move_to_end(index)
                return hit
        return self._decode(index)

    def __iter__(self) -> Iterator[np.ndarray]:
        step = self.readahead
        for start in range(0, len(self), step):
            yield from self._many(range(start, min(start + step, len(self))))

    # -- decoding -----------------------------------------------------------------------------------------
    def _decode(self, index: int) -> np.ndarray:
        t0 = time.perf_counter()
        img = decode_for(self.paths[index], self.min_side)
        with self._lock:
            self.decode_seconds += time.perf_counter() - t0
            self.decoded += 1
            if img.nbytes <= self.cache_bytes:
                self._cache[index] = img
                self._cached_bytes += img.nbytes
                while self._cached_bytes > self.cache_bytes:
                    _, old = self._cache.popitem(last=False)
                    self._cached_bytes -= old.nbytes
        return img

    def _many(self, indices: Sequence[int]) -> list[np.ndarray]:
        if len(indices) <= 1 or self.workers == 1:
            return [self[i] for i in indices]
        with ThreadPoolExecutor(self.workers, thread_name_prefix="decode") as pool:
            return list(pool.map(self.__getitem__, indices))

    def decode_chunk(self, indices: Sequence[int],
                     on_skip: Callable[[Skipped], None] | None = None) -> tuple[list[int], list[np.ndarray]]:
        """Decode `indices` in parallel; unreadable files are reported (on_skip) and left out."""

        def one(i: int) -> np.ndarray | Skipped:
            try:
                return self[i]
            except ImageLoadError as exc:
                return Skipped(self.paths[i], str(exc).split(": ", 1)[-1])

        if len(indices) > 1 and self.workers > 1:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="decode") as pool:
                results = list(pool.map(one, indices))
        else:
            results = [one(i) for i in indices]
        kept, images = [], []
        for i, res in zip(indices, results, strict=True):
            if isinstance(res, Skipped):
                if on_skip:
                    on_skip(res)
            else:
                kept.append(i)
                images.append(res)
        return kept, images

    def readable(self, on_skip: Callable[[Skipped], None] | None = None,
                 chunk: int = 32) -> tuple[ImageSource, list[Skipped]]:
        """A source of only the files that decode, and the skipped ones with their reasons. Decodes every file
        once (in chunks, in parallel); what fits the cache budget is kept, so training reads it again for free."""
        skipped: list[Skipped] = []

        def note(s: Skipped) -> None:
            skipped.append(s)
            if on_skip:
                on_skip(s)

        kept: list[int] = []
        for start in range(0, len(self), chunk):
            ok, _ = self.decode_chunk(range(start, min(start + chunk, len(self))), note)
            kept.extend(ok)
        if len(kept) == len(self):
            return self, skipped
        sub = ImageSource([self.paths[i] for i in kept], min_side=self.min_side, cache_bytes=self.cache_bytes,
                          workers=self.workers, readahead=self.readahead)
        with self._lock:  # carry the cached decodes over under their new indices
            for new, old in enumerate(kept):
                if old in self._cache:
                    sub._cache[new] = self._cache[old]
                    sub._cached_bytes += self._cache[old].nbytes
        return sub, skipped
