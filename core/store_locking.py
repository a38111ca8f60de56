"""Lock decorators shared by Store and its mixins (core/store_labels.py, core/store_runs.py).

They live in their own module so the mixins can decorate their methods without importing core.store
(which imports the mixins). core.store re-imports them, so `from core.store import _locked` still works.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from core.store_schema import StoreError

_T = TypeVar("_T", bound=Callable[..., Any])


def _locked(method: _T) -> _T:
    """Run the method under the store's re-entrant lock, and refuse once the store is closed: the GUI
    calls from two threads, and a closed h5py handle would fail with a far less useful message."""
    @wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            if self._f is None:
                raise StoreError(f"{self.path}: store is closed")
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _writer(method: _T) -> _T:
    """_locked, and also refuse on a read-only store before anything is touched."""
    @wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only; open it for writing to change it")
        return method(self, *args, **kwargs)

    return _locked(wrapper)  # type: ignore[return-value]
