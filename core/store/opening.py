"""Creating and opening store files: the lock is taken before HDF5 sees the file, older schemas are
migrated (in place with a backup, or into a temporary copy for a read-only open), and a failure at any
step releases what was taken.

Returns an OpenedFile for core.store.store.Store to build on; nothing here knows about labels or runs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import h5py

from core.store.errors import StoreError, StoreLockedError
from core.store.files import fsync_dir, normalised
from core.store.format import SCHEMA_VERSION, create_layout
from core.store.hdf5 import h5open
from core.store.locking import HAVE_FLOCK, acquire_lock, release_lock
from core.store.migrations import MigrationContext, detect_version, migrate_file, migrate_in_place
from core.store.stamps import utc_now


@dataclass
class OpenedFile:
    """An open, locked file at the current schema, and what opening it took."""

    f: h5py.File
    lock_fd: int | None
    unlocked_read: bool = False  # read-only without a lock: another process is writing
    temp_dir: Path | None = None  # holds the migrated copy of a read-only open
    migrated_from: int | None = None
    migration_notes: list[str] = field(default_factory=list)
    backup_path: Path | None = None

    def abandon(self) -> None:
        """Undo the open after a later step failed."""
        self.f.close()
        release_lock(self.lock_fd)
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def create_file(path: Path, root: str | Path, *, who: str, overwrite: bool) -> OpenedFile:
    """New empty store. `root` is recorded both relative to the store file (so project and store can move
    together) and absolute."""
    root_path = Path(normalised(root))
    if not root_path.is_dir():
        raise StoreError(f"{root}: project root is not a folder")
    if not path.parent.is_dir():
        raise StoreError(f"{path}: folder {path.parent} does not exist")
    if path.exists() and not overwrite:
        raise StoreError(f"{path}: already exists (open it, or create with overwrite)")
    existed = path.exists()
    lock_fd = acquire_lock(path, exclusive=True, create=not existed)
    try:
        f = h5open(path, "w", use_hdf5_locking=lock_fd is None and not HAVE_FLOCK)
        try:
            rel = os.path.relpath(root_path, normalised(path.parent))
        except ValueError:  # pragma: no cover - different drive on Windows
            rel = ""
        create_layout(f, root_relative=Path(rel).as_posix() if rel else "", root_absolute=str(root_path),
                      created=utc_now(), who=who)
        f.flush()
        os.fsync(f.id.get_vfd_handle())
        fsync_dir(path.parent)
        return OpenedFile(f, lock_fd)
    except BaseException:
        release_lock(lock_fd)
        raise


def open_file(path: Path, *, readonly: bool, who: str, allow_unlocked_read: bool) -> OpenedFile:
    """Open an existing store at the current schema, migrating older ones (see Store.open)."""
    if not path.exists():
        raise StoreError(f"{path}: no such store file")
    if path.is_dir():
        raise StoreError(f"{path}: is a folder, not a store file")
    unlocked = False
    try:
        lock_fd = acquire_lock(path, exclusive=not readonly)
    except StoreLockedError:
        if not (readonly and allow_unlocked_read):
            raise
        lock_fd, unlocked = None, True
    hdf5_locking = not HAVE_FLOCK and not unlocked
    temp_dir: Path | None = None
    try:
        f = h5open(path, "r" if readonly else "r+", use_hdf5_locking=hdf5_locking)
        try:
            version = detect_version(f, path)
        except BaseException:
            f.close()
            raise
        if version == SCHEMA_VERSION:
            return OpenedFile(f, lock_fd, unlocked_read=unlocked)
        f.close()
        ctx = MigrationContext(store_path=path, who=who)
        backup = None
        if readonly:
            temp_dir = Path(tempfile.mkdtemp(prefix="anomaly-inspector-store-"))
            migrate_file(path, temp_dir / path.name, version, ctx)
            release_lock(lock_fd)
            lock_fd = None
            f = h5open(temp_dir / path.name, "r", use_hdf5_locking=False)
        else:
            lock_fd, backup = migrate_in_place(path, lock_fd, version, ctx)
            f = h5open(path, "r+", use_hdf5_locking=hdf5_locking)
        return OpenedFile(f, lock_fd, unlocked_read=unlocked, temp_dir=temp_dir, migrated_from=version,
                          migration_notes=ctx.notes, backup_path=backup)
    except BaseException:
        release_lock(lock_fd)
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
        raise
