"""A small publish / subscribe hub, so the session can tell a view what changed without knowing it.

Callbacks run in the thread that emits (the store owner thread or a job thread). A Qt view forwards them
through a queued signal to its own thread; a test or a batch tool can use them directly. A callback that
raises is reported to `on_error` and does not stop the others: a broken view must never undo a saved label.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any

Callback = Callable[..., None]


class Events:
    def __init__(self, on_error: Callable[[str, str], None] | None = None) -> None:
        self._subscribers: dict[str, list[Callback]] = {}
        self._lock = threading.Lock()
        self.on_error = on_error or (lambda name, tb: None)

    def connect(self, name: str, callback: Callback) -> None:
        with self._lock:
            self._subscribers.setdefault(name, []).append(callback)

    def disconnect(self, name: str, callback: Callback) -> None:
        with self._lock:
            callbacks = self._subscribers.get(name, [])
            if callback in callbacks:
                callbacks.remove(callback)

    def emit(self, name: str, *args: Any) -> None:
        with self._lock:
            callbacks = list(self._subscribers.get(name, ()))
        for callback in callbacks:
            try:
                callback(*args)
            except Exception:  # noqa: BLE001 (a view's bug is reported, the session goes on)
                self.on_error(name, traceback.format_exc())
