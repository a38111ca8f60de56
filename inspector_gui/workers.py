"""Background jobs: a worker QObject moved to its own QThread runs one core call and reports by signals.

The job function receives `progress(done, total, info)` and `should_stop()`; both are safe to call from
the worker thread (progress emits a queued signal, should_stop reads a threading.Event). Results, errors
and progress reach the main thread only through signals connected to QObject slots there — never to
lambdas, which Qt would run in the worker thread.

The worker ends its own thread when the job function returns, so a thread never waits for the main thread's
event loop to quit it: `Job.wait()` from the main thread (closing the window, a test) cannot deadlock, and
it delivers the job's last queued signals before it returns.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from core.detectors.base import Cancelled

# Jobs whose thread still runs. Holding them here keeps Python from destroying a QThread that is still
# running (Qt aborts the process on that) when the caller drops its handle early.
_LIVE: set[Job] = set()

JobFn = Callable[[Callable[[int, int, dict], None], Callable[[], bool]], Any]


class _Worker(QObject):
    progress = Signal(int, int, dict)
    finished = Signal(object)
    failed = Signal(str, str)  # plain message, traceback for the log
    cancelled = Signal()

    def __init__(self, fn: JobFn, stop: threading.Event, min_interval: float):
        super().__init__()
        self._fn = fn
        self._stop = stop
        self._min_interval = min_interval
        self._last = 0.0

    def _progress(self, done: int, total: int, info: dict) -> None:
        # Rate-limit: a detector may report hundreds of steps a second; the window needs ~20 updates/s.
        now = time.perf_counter()
        if now - self._last >= self._min_interval or done >= total:
            self._last = now
            self.progress.emit(done, total, dict(info))

    @Slot()
    def run(self) -> None:
        try:
            result = self._fn(self._progress, self._stop.is_set)
        except Cancelled:
            self.cancelled.emit()
        except Exception as exc:  # every failure must reach the user, never kill the thread silently
            self.failed.emit(str(exc) or type(exc).__name__, traceback.format_exc())
        else:
            if self._stop.is_set():
                self.cancelled.emit()
            else:
                self.finished.emit(result)
        finally:
            # Quit from here, not from a main-thread slot: a main thread blocked in Job.wait() would never
            # run that slot, and the wait would last its full timeout.
            QThread.currentThread().quit()


class Job(QObject):
    """Handle of one background job. Connect to its signals, then call start(); cancel() asks it to stop.

    Signals: progress(done, total, info), finished(result), failed(message, traceback), cancelled(),
    and ended() after any of the last three, once the thread has quit. `wait(ms)` blocks until the thread
    has ended and delivers those signals; `stop(ms)` is cancel() then wait(ms).
    """

    progress = Signal(int, int, dict)
    finished = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal()
    ended = Signal()

    def __init__(self, name: str, fn: JobFn, parent: QObject | None = None, min_interval: float = 0.05):
        super().__init__(parent)
        self.name = name
        self._stop = threading.Event()
        self._thread = QThread()
        self._thread.setObjectName(f"job:{name}")
        self._worker = _Worker(fn, self._stop, min_interval)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        # Relay through this object's slots: they run in the main thread (this object lives there).
        self._worker.progress.connect(self._on_progress)
        self._worker.finished.connect(self._on_finished)
        self._worker.failed.connect(self._on_failed)
        self._worker.cancelled.connect(self._on_cancelled)
        self._thread.finished.connect(self._on_thread_finished)
        self.running = False

    def start(self) -> None:
        self.running = True
        _LIVE.add(self)
        self._thread.start()

    def cancel(self) -> None:
        self._stop.set()

    def wait(self, ms: int = 5000) -> bool:
        """Block at most `ms` until the job's thread has ended. When it has (True), the signals it queued on
        its way out (finished / failed / cancelled, ended) have been delivered and `running` is False."""
        if not self._thread.wait(ms):
            return False
        # The worker's last signals wait in this (main) thread's queue for this object: deliver them now
        # rather than at the next event-loop turn, which a closing window or a test may never give.
        QCoreApplication.sendPostedEvents(self, 0)
        return True

    def stop(self, ms: int = 5000) -> bool:
        """Cancel and wait at most `ms` for the job to end (True when it has)."""
        self.cancel()
        return self.wait(ms) if self.running else True

    @Slot(int, int, dict)
    def _on_progress(self, done: int, total: int, info: dict) -> None:
        self.progress.emit(done, total, info)

    @Slot(object)
    def _on_finished(self, result: object) -> None:
        self.finished.emit(result)

    @Slot(str, str)
    def _on_failed(self, message: str, tb: str) -> None:
        self.failed.emit(message, tb)

    @Slot()
    def _on_cancelled(self) -> None:
        self.cancelled.emit()

    @Slot()
    def _on_thread_finished(self) -> None:
        self.running = False
        _LIVE.discard(self)
        self.ended.emit()
