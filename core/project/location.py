"""Where a folder's project store lives: beside the images, so folder and labels travel together."""

from __future__ import annotations

from pathlib import Path

PROJECT_STORE_NAME = "anomaly_inspector.h5"
STORE_SUFFIXES = (".h5", ".hdf5")


def project_store_path(folder: str | Path) -> Path:
    return Path(folder) / PROJECT_STORE_NAME


def is_store_file(path: str | Path) -> bool:
    p = Path(path)
    return p.is_file() and p.suffix.lower() in STORE_SUFFIXES


def find_project_store(data: str | Path) -> Path | None:
    """The store DATA names: DATA itself if it is a store file, the folder's project store if it has one,
    else None (a plain folder, read through its layout)."""
    p = Path(data)
    if is_store_file(p):
        return p
    if p.is_dir() and project_store_path(p).is_file():
        return project_store_path(p)
    return None
