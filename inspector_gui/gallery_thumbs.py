"""Gallery thumbnails: decoded on a thread pool, delivered to the main thread by a queued signal, kept in an LRU.

Why this shape:
- Decoding a folder of full-size part images on the GUI thread would freeze the window for seconds, so the
  work runs in QRunnable tasks on a private QThreadPool (private so that a 10k-image folder cannot starve other
  users of the global pool). A task builds a QImage (safe off the GUI thread; QPixmap is not) and emits it through
  a relay QObject; the receiving slot belongs to the loader, which lives in the main thread, so Qt queues the
  call there. No lambdas are connected, because Qt would run a lambda in the emitting (worker) thread.
- Requests come only from painting (the model asks when a view wants DecorationRole), so opening 10k images
  decodes only the ones on screen.
- Scrolling quickly past thousands of tiles queues thousands of decodes. Each request carries a token; `retain()`
  forgets the requests of tiles that left the screen, and a task whose token is no longer wanted returns at once
  without decoding. Newer screens get a higher pool priority, so what the user looks at now is decoded first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable

import numpy as np
from PySide6.QtCore import QObject, QRectF, QRunnable, Qt, QThread, QThreadPool, Signal, Slot
from PySide6.QtGui import QColor, QImage, QPainter, QPen

from core.data.images import ImageLoadError, decode_image

DecodeFn = Callable[[str, int], QImage]

THUMB_SIZE = 96
CACHE_SIZE = 2000


def decode_thumbnail(path: str, size: int = THUMB_SIZE) -> QImage:
    """Decode one file into a QImage that fits in size x size (aspect kept). Raises ImageLoadError.

    Runs in a worker thread: only numpy, OpenCV and QImage here (QImage owns its pixels after .copy()).
    The decoder refuses images over the pixel limit by their header, shrinks before converting to float and
    decodes JPEGs at reduced scale, so four workers on a folder of 24 MP frames stay within a few MB each.
    """
    # float32 H x W x C in [0, 1], C = 1 or 3 (RGB), fitting in size x size; never upscaled here: the
    # delegate scales small images when it paints them.
    img = decode_image(path, max_side=size)
    u8 = np.ascontiguousarray(np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8))
    h, w, c = u8.shape
    fmt = QImage.Format.Format_Grayscale8 if c == 1 else QImage.Format.Format_RGB888
    # QImage wraps the numpy buffer without owning it; copy() detaches before the array is freed.
    return QImage(u8.data, w, h, w * c, fmt).copy()


class _Relay(QObject):
    """Carries results out of the pool. Emitted from worker threads; its receiver lives in the main thread."""

    decoded = Signal(str, int, QImage, str)  # path, token, image (null on failure), error message


class _Wanted:
    """Paths that still need a thumbnail, each with the token of its latest request. Shared with the workers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, int] = {}

    def add(self, path: str, token: int) -> None:
        with self._lock:
            self._tokens[path] = token

    def is_wanted(self, path: str, token: int) -> bool:
        with self._lock:
            return self._tokens.get(path) == token

    def contains(self, path: str) -> bool:
        with self._lock:
            return path in self._tokens

    def done(self, path: str, token: int) -> None:
        with self._lock:
            if self._tokens.get(path) == token:
                del self._tokens[path]

    def keep_only(self, paths: set[str]) -> int:
        with self._lock:
            stale = [p for p in self._tokens if p not in paths]
            for p in stale:
                del self._tokens[p]
            return len(stale)

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._tokens)


class _DecodeTask(QRunnable):
    def __init__(self, path: str, token: int, size: int, decode: DecodeFn, wanted: _Wanted, relay: _Relay):
        super().__init__()
        self.path, self.token, self.size = path, token, size
        self._decode, self._wanted, self._relay = decode, wanted, relay

    def run(self) -> None:
        if not self._wanted.is_wanted(self.path, self.token):
            return  # scrolled away (or superseded) before a worker got to it
        try:
            image, error = self._decode(self.path, self.size), ""
        except ImageLoadError as exc:
            image, error = QImage(), str(exc)
        except Exception as exc:  # a decoder bug must show as a broken tile, never kill the worker silently
            image, error = QImage(), f"{self.path}: cannot make a thumbnail ({type(exc).__name__}: {exc})"
        self._relay.decoded.emit(self.path, self.token, image, error)


class ThumbnailLoader(QObject):
    """Decodes thumbnails on a thread pool and caches them by path.

    `thumbnailReady(path)` is emitted in the main thread after a thumbnail (or a failure) is stored.
    `decode_fn` is the function the workers call; tests replace it to observe the worker thread.
    """

    thumbnailReady = Signal(str)

    def __init__(self, size: int = THUMB_SIZE, capacity: int = CACHE_SIZE, threads: int | None = None,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.size = size
        self.capacity = capacity
        self.decode_fn: DecodeFn = decode_thumbnail
        self._pool = QThreadPool(self)
        if threads is None:  # leave a core for the GUI thread, but use at least two workers
            threads = min(4, max(2, QThread.idealThreadCount() - 1))
        self._pool.setMaxThreadCount(threads)
        self._pool.setObjectName("gallery-thumbnails")
        self._relay = _Relay(self)
        self._relay.decoded.connect(self._on_decoded)
        self._cache: OrderedDict[str, QImage] = OrderedDict()
        self._errors: dict[str, str] = {}
        self._wanted = _Wanted()
        self._token = 0
        self._epoch = 0  # bumped by retain(): requests made for a newer screen run first
        self._closed = False
        self.decoded_count = 0  # thumbnails decoded (successes and failures), for tests and benchmarks

    # -- queries (main thread) ------------------------------------------------------------------------------
    def get(self, path: str) -> QImage | None:
        image = self._cache.get(path)
        if image is not None:
            self._cache.move_to_end(path)
        return image

    def error(self, path: str) -> str:
        """Why the file could not be shown ("" when it could, or has not been tried)."""
        return self._errors.get(path, "")

    def is_pending(self, path: str) -> bool:
        return self._wanted.contains(path)

    def pending_count(self) -> int:
        return len(self._wanted)

    def cached_paths(self) -> list[str]:
        return list(self._cache)

    # -- requests (main thread) -----------------------------------------------------------------------------
    def request(self, path: str) -> None:
        """Ask for the thumbnail of `path` unless it is cached, known broken, or already on its way."""
        if self._closed or path in self._cache or path in self._errors or self._wanted.contains(path):
            return
        self._token += 1
        self._wanted.add(path, self._token)
        task = _DecodeTask(path, self._token, self.size, self.decode_fn, self._wanted, self._relay)
        self._pool.start(task, self._epoch)

    def retain(self, paths: Iterable[str]) -> int:
        """Forget pending requests for every path not in `paths` (the tiles now on screen). Returns how many."""
        self._epoch = min(self._epoch + 1, 2**31 - 1)
        return self._wanted.keep_only(set(paths))

    def cancel_all(self) -> None:
        self._wanted.clear()

    def forget(self, path: str) -> None:
        """Drop the cached thumbnail or error, e.g. after the file was replaced on disk."""
        self._cache.pop(path, None)
        self._errors.pop(path, None)

    def wait(self, msecs: int = -1) -> bool:
        """Block until the pool is idle (tests and benchmarks); queued results still need the event loop."""
        return self._pool.waitForDone(msecs)

    def shutdown(self) -> None:
        """Stop decoding and wait for running tasks: call before the application quits."""
        self._closed = True
        self._wanted.clear()
        self._pool.clear()
        self._pool.waitForDone()

    @Slot(str, int, QImage, str)
    def _on_decoded(self, path: str, token: int, image: QImage, error: str) -> None:
        self._wanted.done(path, token)
        self.decoded_count += 1
        if error:
            self._errors[path] = error
        else:
            self._cache[path] = image
            self._cache.move_to_end(path)
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        self.thumbnailReady.emit(path)


_PLACEHOLDERS: dict[tuple[str, int], QImage] = {}


def placeholder_image(kind: str, size: int = THUMB_SIZE) -> QImage:
    """'loading': a light grey tile shown until the worker delivers. 'broken': a pale red tile with a cross.

    Built once per kind and size, in the main thread (the caller is the model's data()).
    """
    key = (kind, size)
    image = _PLACEHOLDERS.get(key)
    if image is not None:
        return image
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(QColor(232, 232, 232) if kind == "loading" else QColor(252, 232, 232))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    if kind == "broken":
        m = size * 0.3
        cross = QRectF(m, m * 0.6, size - 2 * m, size - 2 * m)
        painter.setPen(QPen(QColor(198, 40, 40), max(2.0, size / 24)))
        painter.drawLine(cross.topLeft(), cross.bottomRight())
        painter.drawLine(cross.topRight(), cross.bottomLeft())
        font = painter.font()
        font.setPixelSize(max(8, size // 9))
        painter.setFont(font)
        painter.setPen(QColor(140, 30, 30))
        painter.drawText(QRectF(0, size * 0.76, size, size * 0.2), Qt.AlignmentFlag.AlignCenter, "cannot read")
    else:
        painter.setPen(QPen(QColor(205, 205, 205), 1))
        painter.drawRect(QRectF(0.5, 0.5, size - 1, size - 1))
    painter.end()
    _PLACEHOLDERS[key] = image
    return image
