"""Plain file-system helpers of the store: normalised paths, content hashes of image files, durable
directory entries."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def normalised(path: str | Path) -> str:
    """Absolute and normalised, without resolving symlinks (a symlinked image folder stays inside)."""
    return os.path.normpath(os.path.abspath(os.fspath(path)))


def file_facts(path: Path) -> tuple[str, int]:
    """sha256 (hex) and size in bytes of a file; OSError if it cannot be read."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
        size = os.fstat(fh.fileno()).st_size
    return h.hexdigest(), size


def fsync_dir(path: Path) -> None:
    """Make a created or renamed file's directory entry durable (POSIX; a no-op elsewhere)."""
    if os.name == "posix":
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
