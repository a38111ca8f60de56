"""On-disk layout of the label store (schema version 1): tables, records, maps, and file access rules.

The record types the Store returns, the locking/open rules and the map encoding live here too, because
they are part of the file contract (another program reading the file must follow them). Kept apart from
core/store.py so that migrations (core/store_migrations.py) can build the current layout
without importing the Store class, and so the format can be read in one place. docs/store-format.md is the
human-readable description of this module; change both together and bump SCHEMA_VERSION (with a migration)
whenever the layout changes.

No Qt here, no pickle anywhere: every value is a plain HDF5 type (numbers, enums, fixed or UTF-8 strings,
JSON text for dictionaries), so a store from someone else cannot run code when opened.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

try:  # POSIX advisory locks; on Windows we fall back to HDF5's own locking
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

SCHEMA_VERSION = 1
FORMAT_NAME = "anomaly-inspector-store"

# Enum codes are part of the file format: append new names, never renumber.
LABELS = ("unlabeled", "good", "defect", "suspicious")
SOURCES = ("none", "human", "import", "model")
SPLITS = ("unsorted", "train", "test")

LABEL_DTYPE = h5py.enum_dtype({name: i for i, name in enumerate(LABELS)}, basetype="i1")
SOURCE_DTYPE = h5py.enum_dtype({name: i for i, name in enumerate(SOURCES)}, basetype="i1")
SPLIT_DTYPE = h5py.enum_dtype({name: i for i, name in enumerate(SPLITS)}, basetype="i1")
# Text in tables is a reference (byte offset, length) into /text, an append-only UTF-8 byte log, and NOT an
# HDF5 variable-length string. Reason, measured with tests/store_writer_child.py: vlen strings live in
# HDF5 global-heap collections that are rewritten whole when a new string is added, and a SIGKILL in the
# middle of that multi-page write left *committed* rows pointing at a torn collection ("bad heap
# pointer"), so the store no longer opened (3 of ~290 kills). Bytes appended to /text are never rewritten
# except as identical copies inside a chunk, so a torn write can only damage uncounted data.
TEXT_DTYPE = np.dtype([("off", "<i8"), ("len", "<i4")])
STR_DTYPE = TEXT_DTYPE  # a text column
TIME_DTYPE = np.dtype("S32")  # datetime.isoformat(timespec="microseconds") in UTC is exactly 32 bytes
SHA_DTYPE = np.dtype("S64")  # hex sha256

# Images the importers pick up. A private copy (not core.data.images) so that opening a store stays a
# light import: the crash test starts many writer processes and must not pay for OpenCV each time.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm"})

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
THRESHOLD_COLUMNS: dict[str, Any] = {
    "t1": np.dtype("f8"),
    "t2": np.dtype("f8"),
    "method": STR_DTYPE,
    "who": STR_DTYPE,
    "time": TIME_DTYPE,
}

# Rows per chunk: one chunk is rewritten per commit, so it is kept near 8-40 KiB for each table.
CHUNK_ROWS = {"images": 512, "image_updates": 256, "labels": 4096, "model_labels": 4096, "audit": 256,
              "thresholds": 64}
TEXT_CHUNK = 16384  # bytes
INTERN_MAX = 64  # short strings (who, defect types, run ids) are stored once and shared by reference
MAP_BATCH = 256  # maps written per HDF5 call when a run is stored
MAP_COMPRESSION = {"compression": "gzip", "compression_opts": 4, "shuffle": True}


class StoreError(Exception):
    """A problem with a store file that a user can cause or fix; the message names the file."""


class StoreVersionError(StoreError):
    """The file was written by a newer Anomaly Inspector (or names a schema this version does not know)."""


class StoreLockedError(StoreError):
    """Another process (or another handle in this one) has the store open."""


class StoreCorruptError(StoreError):
    """The file is not a store, or is damaged beyond what opening can repair."""


class UnknownImageError(StoreError):
    """An image path or id that the store does not hold."""


class UnknownRunError(StoreError):
    """A run id that the store does not hold."""


@dataclass(frozen=True)
class ImageRecord:
    id: int
    path: str  # relative to the project root, "/" separators
    sha256: str
    nbytes: int
    split: str
    source_defect: str
    mask_path: str


@dataclass(frozen=True)
class LabelRecord:
    """Current state of one image on one track (review = human/import, or model). Empty strings mean
    "none"; source is "none" for an image nobody has labeled."""

    image_id: int
    label: str = "unlabeled"
    defect_type: str = ""
    note: str = ""
    source: str = "none"
    who: str = ""
    time: str = ""
    run: str = ""


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    time: str
    who: str
    source: str
    image_id: int
    old_label: str
    new_label: str
    old_defect_type: str
    new_defect_type: str
    old_note: str
    new_note: str
    run: str


@dataclass(frozen=True)
class ReplayState:
    """Labels rebuilt from the audit log: `labels` is the review track, `model_labels` the model's."""

    labels: dict[int, LabelRecord]
    model_labels: dict[int, LabelRecord]


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    detector: str
    params: dict
    metadata: dict
    created: str
    who: str
    default_component: str
    components: tuple[str, ...]
    map_components: tuple[str, ...]
    n_images: int


@dataclass(frozen=True)
class ThresholdRecord:
    """Scores below t1 pass, scores at or above t2 fail, the band in between is for review."""

    run_id: str
    t1: float
    t2: float
    method: str  # preset name or "manual"
    who: str
    time: str

    def verdict(self, score: float) -> str:
        if score < self.t1:
            return "good"
        return "defect" if score >= self.t2 else "suspicious"


@dataclass
class AddImagesResult:
    ids: list[int] = field(default_factory=list)  # one per accepted path (new or already present)
    added: int = 0
    existing: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


@dataclass
class ImportResult:
    added: int = 0
    existing: int = 0
    labeled: int = 0
    unchanged: int = 0
    kept_human: list[str] = field(default_factory=list)  # human labels an import does not overwrite
    masks: int = 0
    missing_masks: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def acquire_lock(path: Path, *, exclusive: bool, create: bool = False) -> int | None:
    """flock the store file itself (not a side file: a kill leaves no stale lock behind).

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


def fsync_dir(path: Path) -> None:
    if os.name == "posix":
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def file_facts(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
        size = os.fstat(fh.fileno()).st_size
    return h.hexdigest(), size


def utc_now() -> str:
    """UTC ISO 8601 with microseconds; fixed width so it fits the S32 time columns exactly."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def current_user() -> str:
    """The OS login name. getpass fails in some containers (no passwd entry, no $USER): say so by uid."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}" if hasattr(os, "getuid") else "unknown-user"


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


def enum_names(dtype: Any) -> tuple[str, ...]:
    mapping = h5py.check_enum_dtype(dtype)
    if mapping is None:
        raise StoreCorruptError(f"expected an enum column, found {dtype}")
    names = [""] * (max(mapping.values()) + 1)
    for name, code in mapping.items():
        names[code] = name
    return tuple(names)


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

    Bytes are written at the end as rows are written and become part of the store only when the Store
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
    def create(cls, parent: h5py.Group, name: str, columns: Mapping[str, Any], text: TextHeap) -> Table:
        dtype = np.dtype([(col, dt) for col, dt in columns.items()])
        chunk = CHUNK_ROWS.get(name, 256)
        ds = parent.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(chunk,),
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
    Table.create(f, "images", IMAGE_COLUMNS, text)
    Table.create(f, "image_updates", IMAGE_UPDATE_COLUMNS, text)
    Table.create(f, "labels", LABEL_COLUMNS, text)
    Table.create(f, "model_labels", LABEL_COLUMNS, text)
    Table.create(f, "audit", AUDIT_COLUMNS, text)
    runs = f.create_group("runs")
    runs.attrs["next_run"] = 1
    return text


def image_columns(rows: Sequence[ImageRecord]) -> dict[str, list]:
    return {"path": [r.path for r in rows], "sha256": [r.sha256.encode() for r in rows],
            "nbytes": [r.nbytes for r in rows], "split": [SPLITS.index(r.split) for r in rows],
            "source_defect": [r.source_defect for r in rows], "mask_path": [r.mask_path for r in rows]}


def check_component(name: str) -> None:
    if not isinstance(name, str) or not name or "/" in name or name in (".", "..") or name.startswith("."):
        raise ValueError(f"component name {name!r} cannot be stored (empty, '/' or leading '.')")


def write_maps(group: h5py.Group, arrs: list[np.ndarray | None]) -> None:
    """Padded stack (n, Hmax, Wmax) float16, one gzip chunk per image, true shapes and scales beside it.

    Each map is divided by its largest finite magnitude before the cast, so float16 neither overflows
    (scores above 65504) nor flushes small maps to zero; reading multiplies the scale back.
    """
    n = len(arrs)
    shapes = np.array([(0, 0) if a is None else a.shape for a in arrs], dtype=np.int32).reshape(n, 2)
    hmax = max(1, int(shapes[:, 0].max(initial=0)))
    wmax = max(1, int(shapes[:, 1].max(initial=0)))
    scales = np.ones(n, dtype=np.float32)
    data = group.create_dataset("data", shape=(n, hmax, wmax), dtype=np.float16, chunks=(1, hmax, wmax),
                                fillvalue=0, **MAP_COMPRESSION)
    for start in range(0, n, MAP_BATCH):
        block = np.zeros((min(MAP_BATCH, n - start), hmax, wmax), dtype=np.float16)
        for j, a in enumerate(arrs[start:start + MAP_BATCH]):
            if a is None or a.size == 0:
                continue
            finite = np.abs(a[np.isfinite(a)])
            scale = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
            scales[start + j] = scale
            block[j, :a.shape[0], :a.shape[1]] = (a / np.float32(scale)).astype(np.float16)
        data[start:start + block.shape[0]] = block
    group.create_dataset("shape", data=shapes)
    group.create_dataset("scale", data=scales)


def find_mask(mask_dir: Path, stem: str) -> Path | None:
    for name in (f"{stem}_mask.png", f"{stem}.png", f"{stem}_mask.bmp", f"{stem}_mask.tif", f"{stem}_mask.jpg"):
        if (mask_dir / name).is_file():
            return mask_dir / name
    return None
