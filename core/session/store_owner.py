"""One thread does every write to the open store, so an fsync never stalls the window and writes from the
window (labels, thresholds) and from jobs (scored chunks) never interleave inside HDF5.

`OwnedStore` wraps a Store: reads pass straight through (the Store serves them under its own lock, from
cached state where it can), writes are sent to the owner thread and the caller waits for them, so code written
against a plain Store (the engine's train_into_store / score_into_store) runs unchanged in a job thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from core.store import Store

# The Store methods that change the file; everything else is a read.
STORE_WRITES = frozenset({
    "add_folder", "add_images", "add_run", "append_to_run", "begin_run", "close", "finish_run",
    "import_ground_truth", "import_mvtec", "set_label", "set_labels", "set_mask", "set_root", "set_split",
    "set_threshold", "verify_images",
})


class StoreOwner:
    """A single worker thread; `submit` queues a call, `call` runs one and waits (directly when already on it)."""

    def __init__(self, name: str = "store") -> None:
        self._ident: int | None = None
        ready = threading.Event()

        def remember() -> None:
            self._ident = threading.get_ident()
            ready.set()

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name, initializer=remember)
        self._pool.submit(lambda: None).result()  # start the thread now, so `on_owner` is right from here on
        ready.wait()

    def on_owner(self) -> bool:
        return threading.get_ident() == self._ident

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        if self.on_owner():  # a queued call from the owner to itself would wait for itself
            future: Future = Future()
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 (handed to whoever looks at the future)
                future.set_exception(exc)
            return future
        return self._pool.submit(fn, *args, **kwargs)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.submit(fn, *args, **kwargs).result()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


class OwnedStore:
    """A Store whose writes run on the owner thread (reads stay where they are called)."""

    def __init__(self, store: Store, owner: StoreOwner) -> None:
        self._store = store
        self._owner = owner

    @property
    def plain(self) -> Store:
        """The wrapped Store (for code that must run on the owner thread anyway)."""
        return self._store

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name in STORE_WRITES and callable(attr):
            def on_owner(*args: Any, **kwargs: Any) -> Any:
                return self._owner.call(attr, *args, **kwargs)
            return on_owner
        return attr

    def __enter__(self) -> OwnedStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
