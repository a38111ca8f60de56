"""The open store file that every part of the store (images, labels, runs) writes through: the h5py file,
the re-entrant lock that serialises threads, the shared text log, and the commit that makes writes durable.

The parts get this handle explicitly instead of sharing one class, so each can be read on its own; the
durability rules are in docs/store-format.md.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

import h5py

from core.store.errors import StoreError
from core.store.hdf5 import Table, TextHeap
from core.store.locking import release_lock


class StoreHandle:
    def __init__(self, f: h5py.File, path: Path, *, readonly: bool, user: str, lock_fd: int | None,
                 temp_dir: Path | None = None) -> None:
        self.lock = threading.RLock()
        self._f: h5py.File | None = f
        self.path = path
        self.readonly = readonly
        self.user = user
        self._lock_fd = lock_fd
        self._temp_dir = temp_dir  # a read-only open of an old schema reads a migrated copy from here
        self._fd = f.id.get_vfd_handle() if not readonly else None
        self.text = TextHeap(f["text"])

    @property
    def file(self) -> h5py.File:
        self.check_open()
        assert self._f is not None
        return self._f

    @property
    def closed(self) -> bool:
        return self._f is None

    def table(self, name: str, parent: h5py.Group | None = None) -> Table:
        return Table((parent if parent is not None else self.file)[name], self.text)

    def check_open(self) -> None:
        if self._f is None:
            raise StoreError(f"{self.path}: store is closed")

    def check_writable(self) -> None:
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only; open it for writing to change it")

    def commit(self, counts: Sequence[tuple[Table, int]] = ()) -> None:
        """The durability point. Rows and text are flushed first; only then are the row counts and the
        text length that make them part of the store written, flushed, and fsync'ed (on the descriptor
        HDF5 writes through). A kill at any moment leaves either the old or the new counts."""
        f = self.file
        try:
            f.flush()
            if counts or self.text.dirty:
                for table, n in counts:
                    table.set_n_rows(n)
                self.text.publish()
                f.flush()
            os.fsync(self._fd if self._fd is not None else f.id.get_vfd_handle())
        except (OSError, ValueError) as exc:
            self.text.rollback()
            raise StoreError(f"{self.path}: could not save to disk ({exc})") from exc
        self.text.committed()

    def close(self) -> None:
        """Commit (when writable), close the file, drop the lock and any temporary copy. Idempotent."""
        with self.lock:
            if self._f is None:
                return
            try:
                if not self.readonly:
                    self.commit()
                self._f.close()
            finally:
                self._f = None
                release_lock(self._lock_fd)
                self._lock_fd = None
                if self._temp_dir is not None:
                    shutil.rmtree(self._temp_dir, ignore_errors=True)
