"""Images decoded on demand: a lazy, indexable sequence of image files, so no step holds a folder in memory.

A 5 MP RGB frame is 60 MB as float32; a day of one camera is thousands of them. `ImageSource` decodes an image
when it is asked for, a few at a time in a small thread pool with read-ahead (OpenCV releases the GIL while it
decodes, so threads use every core), and keeps recently decoded images in a cache with a byte budget. It can
reduce each image at decode time to what the detector needs (`min_side`): JPEGs are then decoded at 1/2, 1/4 or
1/8 scale by the decoder itself (DCT scaling, several times faster than a full decode and a resize), other
formats are decoded and shrunk once. Decoding itself is core.data.images (pixel limit, named failures).
Detectors receive it where they received a list (`Sequence[np.ndarray]`).

Files that cannot be decoded are found before training (`ImageSource.readable`, which names each one) and are
left out of each scoring chunk (`decode_chunk`), so one bad file never stops a run.
"""

from __future__ import annotations

import math
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

from core.data.images import ImageLoadError, Skipped, decode_image, read_header, unreadable_reason

DEFAULT_CACHE_BYTES = 512 * 2**20
DEFAULT_WORKERS = max(1, min(4, os.cpu_count() or 1))


def _oriented_size(path: str | Path) -> tuple[int, int] | None:
    """(height, width) as the decoder returns the image (EXIF orientation applied), from the header alone.
    A file that is not one (a FIFO would block the header read for ever, a dangling link...) is refused first."""
    problem = unreadable_reason(path)
    if problem:
        raise ImageLoadError(path, problem)
    header = read_header(path)
    if header is None:
        return None
    h, w = header.height, header.width
    return (w, h) if header.orientation in (5, 6, 7, 8) else (h, w)


def image_shape(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file from its header where one can be read, else by decoding it."""
    size = _oriented_size(path)
    return size if size is not None else tuple(decode_image(path).shape[:2])  # type: ignore[return-value]


def decode_for(path: str | Path, min_side: int | None = None) -> np.ndarray:
    """Decode one file (core.data.images: pixel limit, every failure an ImageLoadError naming the file) as
    float32 H x W x C in [0, 1], reduced so that its shorter side stays at least `min_side` (None: full
    resolution). The decoder then decodes a JPEG at 1/2, 1/4 or 1/8 scale where that still covers it."""
    if not min_side:
        return decode_image(path)
    size = _oriented_size(path)
    if size is None or min(size) <= min_side:
        return _shrink(decode_image(path), min_side)
    longer = math.ceil(min_side * max(size) / min(size))  # decode_image's max_side bounds the longer side
    return _shrink(decode_image(path, max_side=longer), min_side)


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
                return Skipped(self.paths[i], exc.reason)

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
