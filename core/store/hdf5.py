"""HDF5 building blocks of the store: the append-only text log, tables with a committed row count, string
attributes and text datasets, and opening a file with errors that name it.

Nothing here knows which tables a store has (that is core/store/format.py); these are the mechanics that
make a write either fully counted or ignored after a crash. No pickle anywhere: every value is a plain HDF5
type, so a store from someone else cannot run code when opened.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from core.store.errors import StoreCorruptError, StoreError, StoreLockedError

# Text in tables is a reference (byte offset, length) into /text, an append-only UTF-8 byte log, and NOT an
# HDF5 variable-length string. Reason, measured with tests/store_writer_child.py: vlen strings live in
# HDF5 global-heap collections that are rewritten whole when a new string is added, and a SIGKILL in the
# middle of that multi-page write left *committed* rows pointing at a torn collection ("bad heap
# pointer"), so the store no longer opened (3 of ~290 kills). Bytes appended to /text are never rewritten
# except as identical copies inside a chunk, so a torn write can only damage uncounted data.
TEXT_DTYPE = np.dtype([("off", "<i8"), ("len", "<i4")])
TEXT_CHUNK = 16384  # bytes
INTERN_MAX = 64  # short strings (who, defect types, run ids) are stored once and shared by reference


def _dcpl_early() -> h5py.h5p.PropDCID:
    """Chunks allocated when the dataset is created or grown, not at first write: the chunk index is then
    only rewritten on a resize (rare), not while labels are being committed."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    return dcpl


def _grow(ds: h5py.Dataset, n: int) -> None:
    size = ds.shape[0]
    if size < n:
        chunk = ds.chunks[0]
        new = max(n, 2 * size, chunk)
        ds.resize((-(-new // chunk) * chunk,))


class TextHeap:
    """Append-only UTF-8 bytes (/text) that text columns point into; `n_bytes` is its commit point.

    Bytes are written at the end as rows are written and become part of the store only when the store
    publishes n_bytes together with the row counts; a failed or killed commit leaves them uncounted and
    the next write reuses the space.
    """

    def __init__(self, ds: h5py.Dataset) -> None:
        if not isinstance(ds, h5py.Dataset) or ds.dtype != np.uint8 or "n_bytes" not in ds.attrs:
            raise StoreCorruptError(f"text log {getattr(ds, 'name', ds)} is incomplete")
        self.ds = ds
        self._end = self._published = self.n_bytes
        self._interned: dict[str, tuple[int, int]] = {}
        self._pending: dict[str, tuple[int, int]] = {}

    @classmethod
    def create(cls, parent: h5py.Group, name: str = "text") -> TextHeap:
        ds = parent.create_dataset(name, shape=(0,), maxshape=(None,), dtype=np.uint8, chunks=(TEXT_CHUNK,),
                                   dcpl=_dcpl_early())
        ds.attrs["n_bytes"] = 0
        return cls(ds)

    @property
    def n_bytes(self) -> int:
        return int(self.ds.attrs["n_bytes"])

    def put(self, texts: Sequence[str]) -> np.ndarray:
        refs = np.zeros(len(texts), dtype=TEXT_DTYPE)
        blob = bytearray()
        for k, text in enumerate(texts):
            if not text:
                continue
            known = self._interned.get(text) or self._pending.get(text)
            if known is None:
                data = str(text).encode("utf-8")
                known = (self._end + len(blob), len(data))
                blob += data
                if len(data) <= INTERN_MAX:
                    self._pending[text] = known
            refs[k] = known
        if blob:
            _grow(self.ds, self._end + len(blob))
            self.ds[self._end:self._end + len(blob)] = np.frombuffer(bytes(blob), dtype=np.uint8)
            self._end += len(blob)
        return refs

    @property
    def dirty(self) -> bool:
        return self._end != self._published

    def publish(self) -> None:
        """Part of the commit: count the bytes written so far."""
        if self._end != self._published:
            self.ds.attrs["n_bytes"] = self._end
            self._published = self._end

    def committed(self) -> None:
        self._interned.update(self._pending)
        self._pending.clear()

    def rollback(self) -> None:
        self._end = self._published = self.n_bytes
        self._pending.clear()

    def get(self, refs: np.ndarray) -> np.ndarray:
        out = np.empty(len(refs), dtype=object)
        out[:] = ""
        used = refs["len"] > 0
        if not used.any():
            return out
        lo = int(refs["off"][used].min())
        hi = int((refs["off"][used] + refs["len"][used]).max())
        if lo < 0 or hi > self.n_bytes:
            raise StoreCorruptError(f"text reference outside the committed text log ({hi} > {self.n_bytes})")
        data = self.ds[lo:hi].tobytes()
        for k in np.flatnonzero(used):
            off, n = int(refs["off"][k]) - lo, int(refs["len"][k])
            out[k] = data[off:off + n].decode("utf-8", errors="replace")
        return out


class Table:
    """A 1-D compound dataset (one field per column) with a committed row count.

    One compound row is one HDF5 write, which keeps a label commit cheap (a dataset per column cost ten
    writes). Rows are pre-allocated in chunks (capacity >= n_rows) so appending does not resize the
    dataset each time; the `n_rows` attribute is the commit point. A row is written first, flushed, and
    only then counted, so a writer killed mid-append leaves at most an uncounted row that is ignored.
    Text columns hold (off, len) references into the store's TextHeap.
    """

    def __init__(self, ds: h5py.Dataset, text: TextHeap) -> None:
        if not isinstance(ds, h5py.Dataset) or ds.dtype.names is None or "n_rows" not in ds.attrs:
            raise StoreCorruptError(f"table {getattr(ds, 'name', ds)} is incomplete")
        self.ds = ds
        self.text = text
        self.columns: list[str] = list(ds.dtype.names)
        self.dtype = ds.dtype
        self.text_columns = {c for c in self.columns if self.dtype[c] == TEXT_DTYPE}

    @classmethod
    def create(cls, parent: h5py.Group, name: str, columns: Mapping[str, Any], text: TextHeap,
               chunk_rows: int) -> Table:
        dtype = np.dtype([(col, dt) for col, dt in columns.items()])
        ds = parent.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(chunk_rows,),
                                   dcpl=_dcpl_early())
        ds.attrs["n_rows"] = 0
        return cls(ds, text)

    @property
    def n_rows(self) -> int:
        return int(self.ds.attrs["n_rows"])

    def set_n_rows(self, n: int) -> None:
        self.ds.attrs["n_rows"] = int(n)

    def ensure_capacity(self, n: int) -> None:
        _grow(self.ds, n)

    def write(self, start: int, values: Mapping[str, Sequence[Any] | np.ndarray]) -> None:
        """Write rows [start, start+k) (uncounted until set_n_rows). Columns not given are written as
        zeros / empty text, so callers pass whole rows."""
        lengths = {len(v) for v in values.values()}
        if len(lengths) != 1:
            raise ValueError(f"columns of unequal length written to {self.ds.name}")
        k = lengths.pop()
        if k == 0:
            return
        rows = np.zeros(k, dtype=self.dtype)
        for col, vals in values.items():
            rows[col] = self.text.put(list(vals)) if col in self.text_columns else np.asarray(vals)
        self.ensure_capacity(start + k)
        self.ds[start:start + k] = rows

    def read_all(self, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
        """Committed rows as columns; text and fixed-width strings come back as Python str."""
        stop = self.n_rows if stop is None else min(stop, self.n_rows)
        raw = self.ds[start:stop] if stop > start else np.zeros(0, dtype=self.dtype)
        out: dict[str, np.ndarray] = {}
        for col in self.columns:
            if col in self.text_columns:
                out[col] = self.text.get(raw[col])
            elif self.dtype[col].kind == "S":
                out[col] = np.array([v.decode("utf-8") for v in raw[col]], dtype=object)
            else:
                out[col] = np.asarray(raw[col])
        return out


def set_text_attr(obj: h5py.Group | h5py.Dataset, name: str, text: str) -> None:
    """String attributes as fixed-length bytes, stored in the object header: h5py's default (a vlen
    string) would put them in the global heap, which a later torn write can damage (see TEXT_DTYPE)."""
    data = text.encode("utf-8")
    obj.attrs.create(name, np.array(data, dtype=f"S{max(1, len(data))}"))


def get_text_attr(obj: h5py.Group | h5py.Dataset, name: str, default: str = "") -> str:
    if name not in obj.attrs:
        return default
    value = obj.attrs[name]
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def write_text_dataset(group: h5py.Group, name: str, text: str) -> None:
    """Large text (JSON of a run's params and metadata): a fixed-length scalar dataset written once."""
    data = text.encode("utf-8")
    group.create_dataset(name, data=np.array(data, dtype=f"S{max(1, len(data))}"))


def read_text_dataset(group: h5py.Group, name: str) -> str:
    value = group[name][()]
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def to_json(value: Any, what: str) -> str:
    """JSON text for metadata; numpy scalars/arrays and paths are converted, anything else is refused."""

    def convert(obj: Any) -> Any:
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        if isinstance(obj, Path):
            return str(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

    try:
        return json.dumps(value, sort_keys=True, default=convert, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be JSON-serialisable (no pickling in the store): {exc}") from exc


def h5open(path: Path, mode: str, *, use_hdf5_locking: bool) -> h5py.File:
    """Open with default libver; translate HDF5's errors into messages that name the file."""
    try:
        return h5py.File(path, mode, locking=use_hdf5_locking)
    except BlockingIOError as exc:  # HDF5's own lock (Windows, or unlocked reads racing a creator)
        raise StoreLockedError(f"{path}: the store is open elsewhere; close it there first") from exc
    except PermissionError as exc:
        raise StoreError(f"{path}: no permission to {'write' if mode != 'r' else 'read'} the store "
                         f"file{'; open it read-only' if mode != 'r' else ''}") from exc
    except OSError as exc:
        raise StoreCorruptError(f"{path}: not a readable store file ({exc})") from exc
