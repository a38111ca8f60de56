"""The HDF5 project store: one file per review project holding images, labels with their audit log,
model runs (scores, maps) and thresholds. Read docs/store-format.md for the file format.

    from core.store import Store, StoreError

Modules: store (the Store class), images / labels / runs (its parts), adding (new images with their label
rows), ground_truth (MVTec import), handle (the open file and its commit), opening, locking, migrations,
format (tables and columns), hdf5 and maps (encoding), records, errors, files and stamps (small helpers).
"""

from core.store.errors import (
    StoreCorruptError,
    StoreError,
    StoreLockedError,
    StoreVersionError,
    UnknownImageError,
    UnknownRunError,
)
from core.store.format import SCHEMA_VERSION
from core.store.records import (
    AddImagesResult,
    AuditEntry,
    ImageRecord,
    ImportResult,
    LabelRecord,
    ReplayState,
    RunInfo,
    ThresholdRecord,
)
from core.store.store import Store

__all__ = [
    "AddImagesResult", "AuditEntry", "ImageRecord", "ImportResult", "LabelRecord", "ReplayState", "RunInfo",
    "SCHEMA_VERSION", "Store", "StoreCorruptError", "StoreError", "StoreLockedError", "StoreVersionError",
    "ThresholdRecord", "UnknownImageError", "UnknownRunError",
]
