"""One writer per store: our own flock on the store file, and the in-process lock decorators of Store.

flock on the file itself, not on a side file: a killed writer leaves no stale lock behind. HDF5's own
locking is switched off for the handle, so this also holds when a user has set HDF5_USE_FILE_LOCKING=FALSE,
and the message can say which file is busy. Read-only opens take a shared lock.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

from core.store.errors import StoreError, StoreLockedError

try:  # POSIX advisory locks; on Windows we fall back to HDF5's own locking
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

HAVE_FLOCK = fcntl is not None

_T = TypeVar("_T", bound=Callable[..., Any])


def acquire_lock(path: Path, *, exclusive: bool, create: bool = False) -> int | None:
    """flock the store file (created when `create`); returns the descriptor that holds the lock.

    Re-checks the inode after locking, because a migration may have replaced the file in between.
    """
    if fcntl is None:  # pragma: no cover - Windows: HDF5's locking is used instead
        return None
    for _ in range(5):
        flags = (os.O_RDWR | os.O_CREAT | os.O_EXCL) if create else os.O_RDONLY
        try:
            fd = os.open(path, flags)
        except FileExistsError as exc:
            raise StoreError(f"{path}: already exists") from exc
        except OSError as exc:
            raise StoreError(f"{path}: cannot open ({exc.strerror})") from exc
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLockedError(
                f"{path}: the store is open elsewhere (another Anomaly Inspector window, export or script "
                f"has it); close it there first{'' if not exclusive else ', or open it read-only'}") from None
        except OSError as exc:
            os.close(fd)
            raise StoreLockedError(f"{path}: cannot lock the store file ({exc.strerror}); "
                                   f"is it on a network drive without locking?") from exc
        if create or os.fstat(fd).st_ino == os.stat(path).st_ino:
            return fd
        os.close(fd)
    raise StoreLockedError(f"{path}: the store file keeps being replaced while opening it")


def release_lock(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # closing the descriptor drops the flock


def locked(method: _T) -> _T:
    """Run a Store method under the store's re-entrant lock, and refuse once the store is closed: the GUI
    calls from two threads, and a closed h5py handle would fail with a far less useful message."""
    @wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        handle = self._handle
        with handle.lock:
            handle.check_open()
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def writer(method: _T) -> _T:
    """locked, and also refuse on a read-only store before anything is touched."""
    @wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        self._handle.check_writable()
        return method(self, *args, **kwargs)

    return locked(wrapper)  # type: ignore[return-value]
