"""On-disk layout of the label store (schema version 1): which tables a store has, their columns and
enum codes, and how an empty store is laid out.

docs/store-format.md is the human-readable description of this module; change both together and bump
SCHEMA_VERSION (with a migration in core/store/migrations.py) whenever the layout changes. Kept apart from
the Store class so that migrations can build the current layout without importing it, and so the format
can be read in one place. The mechanics (text log, tables with a commit count) are in core/store/hdf5.py,
the map encoding in core/store/maps.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np

from core.store.hdf5 import TEXT_DTYPE, Table, TextHeap, set_text_attr
from core.store.records import ImageRecord
from core.vocabulary import LABELS, SOURCES, SPLITS

SCHEMA_VERSION = 1
FORMAT_NAME = "anomaly-inspector-store"

# Enum codes are part of the file format: the names' order in core/vocabulary.py is the code.
LABEL_DTYPE = h5py.enum_dtype({name: i for i, name in enumerate(LABELS)}, basetype="i1")
SOURCE_DTYPE = h5py.enum_dtype({name: i for i, name in enumerate(SOURCES)}, basetype="i1")
SPLIT_DTYPE = h5py.enum_dtype({name: i for i, name in enumerate(SPLITS)}, basetype="i1")
STR_DTYPE = TEXT_DTYPE  # a text column: (offset, length) into /text, see core/store/hdf5.py
TIME_DTYPE = np.dtype("S32")  # datetime.isoformat(timespec="microseconds") in UTC is exactly 32 bytes
SHA_DTYPE = np.dtype("S64")  # hex sha256

IMAGE_COLUMNS: dict[str, Any] = {
    "path": STR_DTYPE,  # relative to the project root, "/" separators
    "sha256": SHA_DTYPE,  # of the file bytes; empty when the file was missing at import/migration
    "nbytes": np.dtype("i8"),  # file size in bytes, -1 when unknown
    "split": SPLIT_DTYPE,
    "source_defect": STR_DTYPE,  # defect folder the image came from (MVTec test/<defect>), "" if none
    "mask_path": STR_DTYPE,  # ground-truth mask, relative to the project root, "" if none
}
# The only table whose rows are rewritten in place. It holds no variable-length strings on purpose: a
# rewritten row that points into HDF5's global heap can be left dangling by a kill in mid-flush, and a
# dangling reference makes the whole chunk unreadable. The text (defect type, note, who, when, run) of the
# current label is in the audit row `seq` points at; appended rows are never rewritten.
LABEL_COLUMNS: dict[str, Any] = {
    "label": LABEL_DTYPE,
    "source": SOURCE_DTYPE,
    "seq": np.dtype("i8"),  # audit row that set this state, -1 for never labeled
}
# Image rows are written once; later changes of split / source defect / mask are appended here and
# applied in order when the store is opened (same reason as above: never rewrite a row holding strings).
IMAGE_UPDATE_COLUMNS: dict[str, Any] = {
    "image": np.dtype("i8"),
    "split": SPLIT_DTYPE,
    "source_defect": STR_DTYPE,
    "mask_path": STR_DTYPE,
    "time": TIME_DTYPE,
    "who": STR_DTYPE,
}
AUDIT_COLUMNS: dict[str, Any] = {
    "time": TIME_DTYPE,
    "who": STR_DTYPE,
    "source": SOURCE_DTYPE,
    "image": np.dtype("i8"),
    "old_label": LABEL_DTYPE,
    "new_label": LABEL_DTYPE,
    "old_defect_type": STR_DTYPE,
    "new_defect_type": STR_DTYPE,
    "old_note": STR_DTYPE,
    "new_note": STR_DTYPE,
    "run": STR_DTYPE,
}
THRESHOLD_COLUMNS: dict[str, Any] = {  # /runs/<run>/thresholds
    "t1": np.dtype("f8"),
    "t2": np.dtype("f8"),
    "method": STR_DTYPE,
    "who": STR_DTYPE,
    "time": TIME_DTYPE,
}
TABLE_COLUMNS: dict[str, dict[str, Any]] = {
    "images": IMAGE_COLUMNS, "image_updates": IMAGE_UPDATE_COLUMNS, "labels": LABEL_COLUMNS,
    "model_labels": LABEL_COLUMNS, "audit": AUDIT_COLUMNS, "thresholds": THRESHOLD_COLUMNS,
}
# Rows per chunk: one chunk is rewritten per commit, so it is kept near 8-40 KiB for each table.
CHUNK_ROWS = {"images": 512, "image_updates": 256, "labels": 4096, "model_labels": 4096, "audit": 256,
              "thresholds": 64}


def create_table(parent: h5py.Group, name: str, text: TextHeap) -> Table:
    """An empty table of the layout (`name` is one of TABLE_COLUMNS) with its chunk size."""
    return Table.create(parent, name, TABLE_COLUMNS[name], text, CHUNK_ROWS[name])


def create_layout(f: h5py.File, *, root_relative: str, root_absolute: str, created: str, who: str) -> TextHeap:
    """Empty schema-1 store in an open, empty file (used by Store.create and by migrations)."""
    set_text_attr(f, "format", FORMAT_NAME)
    f.attrs["schema_version"] = SCHEMA_VERSION
    set_text_attr(f, "root_relative", root_relative)
    set_text_attr(f, "root_absolute", root_absolute)
    set_text_attr(f, "created", created)
    set_text_attr(f, "created_by", who)
    set_text_attr(f, "migrations", "[]")
    text = TextHeap.create(f)
    for name in ("images", "image_updates", "labels", "model_labels", "audit"):
        create_table(f, name, text)
    runs = f.create_group("runs")
    runs.attrs["next_run"] = 1
    return text


def image_columns(rows: Sequence[ImageRecord]) -> dict[str, list]:
    """Rows of the images table for these records."""
    return {"path": [r.path for r in rows], "sha256": [r.sha256.encode() for r in rows],
            "nbytes": [r.nbytes for r in rows], "split": [SPLITS.index(r.split) for r in rows],
            "source_defect": [r.source_defect for r in rows], "mask_path": [r.mask_path for r in rows]}


def check_component(name: str) -> None:
    """Score and map component names become HDF5 member names under /runs/<run>/."""
    if not isinstance(name, str) or not name or "/" in name or name in (".", "..") or name.startswith("."):
        raise ValueError(f"component name {name!r} cannot be stored (empty, '/' or leading '.')")
