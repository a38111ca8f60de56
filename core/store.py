"""The HDF5 label and score store: one file per review project.

Why it looks like this (details in docs/store-format.md):
- A label the API returns from is on disk. Every acknowledged change is written, flushed and fsync'ed
  before set_label returns, with HDF5's default file-format bounds (not libver='latest', not SWMR: files in
  those modes refuse to open after a crash until h5clear is run).
- The audit log is the source of truth for labels; the `labels` table is its materialised current state.
  On open the two are compared and the table is repaired from the log if a writer died between them.
- One writer. Locking is our own flock on the store file (HDF5's own locking is switched off for the
  handle), so it also holds when a user has set HDF5_USE_FILE_LOCKING=FALSE, and the message can say
  which file is busy. Read-only opens take a shared lock, or read without a lock if a writer holds it.
- All I/O goes through one Store object guarded by a re-entrant lock, so the GUI can own it from a worker
  thread and the main thread can still ask for a label.

Layout: this module opens, closes, locks and commits the store and manages its images; the label and
audit-log methods are in core/store_labels.py and the model runs and thresholds in core/store_runs.py,
as mixins of Store (one class, one lock, one file handle: they are split only to keep each file readable).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np

from core.store_labels import LABEL_SOURCES, LabelsMixin
from core.store_locking import _locked, _writer
from core.store_migrations import MigrationContext, detect_version, migrate_file, migrate_in_place
from core.store_runs import RunsMixin
from core.store_schema import (
    IMAGE_SUFFIXES,
    LABELS,
    SCHEMA_VERSION,
    SPLITS,
    AddImagesResult,
    AuditEntry,
    ImageRecord,
    ImportResult,
    LabelRecord,
    ReplayState,
    RunInfo,
    StoreCorruptError,
    StoreError,
    StoreLockedError,
    StoreVersionError,
    Table,
    TextHeap,
    ThresholdRecord,
    UnknownImageError,
    UnknownRunError,
    acquire_lock,
    create_layout,
    current_user,
    fcntl,
    file_facts,
    find_mask,
    fsync_dir,
    get_text_attr,
    h5open,
    image_columns,
    release_lock,
    set_text_attr,
    utc_now,
)

# isort: split
# Re-exported: core.store used to define or import these itself, before the run methods moved to
# core/store_runs.py and the decorators to core/store_locking.py; `from core.store import ...` keeps working.
from core.store_locking import _T as _T
from core.store_schema import SOURCES as SOURCES
from core.store_schema import THRESHOLD_COLUMNS as THRESHOLD_COLUMNS
from core.store_schema import check_component as check_component
from core.store_schema import read_text_dataset as read_text_dataset
from core.store_schema import to_json as to_json
from core.store_schema import write_maps as write_maps
from core.store_schema import write_text_dataset as write_text_dataset

__all__ = [
    "AddImagesResult", "AuditEntry", "ImageRecord", "ImportResult", "LabelRecord", "ReplayState", "RunInfo",
    "SCHEMA_VERSION", "Store", "StoreCorruptError", "StoreError", "StoreLockedError", "StoreVersionError",
    "ThresholdRecord", "UnknownImageError", "UnknownRunError", "LABEL_NAMES", "LABEL_SOURCES",
]

LABEL_NAMES = LABELS


def _norm(path: str | Path) -> str:
    """Absolute and normalised, without resolving symlinks (a symlinked image folder stays inside)."""
    return os.path.normpath(os.path.abspath(os.fspath(path)))


class Store(LabelsMixin, RunsMixin):
    """One open review project. Create with Store.create, open with Store.open; use as a context manager.

    Images are addressed by id (row number, stable forever: images are never deleted) or by path.
    """

    def __init__(self, f: h5py.File, path: Path, *, readonly: bool, lock_fd: int | None, root: str | Path | None,
                 user: str | None, unlocked_read: bool = False, temp_dir: Path | None = None,
                 migrated_from: int | None = None, migration_notes: Sequence[str] = (),
                 backup_path: Path | None = None) -> None:
        self._lock = threading.RLock()
        self._f: h5py.File | None = f
        self.path = path
        self.readonly = readonly
        self.unlocked_read = unlocked_read  # read-only without a lock: another process is writing
        self.user = user or current_user()
        self.migrated_from = migrated_from
        self.migration_notes = list(migration_notes)
        self.backup_path = backup_path
        self.repaired_images: list[int] = []
        self._lock_fd = lock_fd
        self._temp_dir = temp_dir
        self._fd = f.id.get_vfd_handle() if not readonly else None
        self._explicit_root = root
        self._run_rows: dict[str, dict[int, int]] = {}
        try:
            self._text = TextHeap(f["text"])
            self._images = Table(f["images"], self._text)
            self._updates = Table(f["image_updates"], self._text)
            self._labels = Table(f["labels"], self._text)
            self._model = Table(f["model_labels"], self._text)
            self._audit = Table(f["audit"], self._text)
            self._runs = f["runs"]
            self._load()
            if not readonly:
                self._cleanup_incomplete_runs()
        except (KeyError, ValueError, OSError) as exc:
            raise StoreCorruptError(f"{path}: store layout is damaged ({exc})") from exc

    # ------------------------------------------------------------------ opening and closing
    @classmethod
    def create(cls, path: str | Path, root: str | Path, *, user: str | None = None,
               overwrite: bool = False) -> Store:
        """New empty store. `root` is the project root that image paths are stored relative to; it is
        recorded both relative to the store file (so project and store can move together) and absolute."""
        path = Path(path)
        root_path = Path(_norm(root))
        if not root_path.is_dir():
            raise StoreError(f"{root}: project root is not a folder")
        if not path.parent.is_dir():
            raise StoreError(f"{path}: folder {path.parent} does not exist")
        if path.exists() and not overwrite:
            raise StoreError(f"{path}: already exists (open it, or create with overwrite)")
        existed = path.exists()
        lock_fd = acquire_lock(path, exclusive=True, create=not existed)
        try:
            f = h5open(path, "w", use_hdf5_locking=lock_fd is None and fcntl is None)
            try:
                rel = os.path.relpath(root_path, _norm(path.parent))
            except ValueError:  # pragma: no cover - different drive on Windows
                rel = ""
            who = user or current_user()
            create_layout(f, root_relative=Path(rel).as_posix() if rel else "", root_absolute=str(root_path),
                          created=utc_now(), who=who)
            f.flush()
            os.fsync(f.id.get_vfd_handle())
            fsync_dir(path.parent)
            return cls(f, path, readonly=False, lock_fd=lock_fd, root=None, user=who)
        except BaseException:
            release_lock(lock_fd)
            raise

    @classmethod
    def open(cls, path: str | Path, *, readonly: bool = False, root: str | Path | None = None,
             user: str | None = None, allow_unlocked_read: bool = True) -> Store:
        """Open an existing store, migrating older schemas (a backup of the old file is kept).

        readonly=True takes a shared lock; if a writer holds the store and allow_unlocked_read is set, it
        reads without a lock instead (`unlocked_read` is then True): the view is a snapshot that may
        miss the writer's later labels, and a read racing a write can fail (reopen to retry).
        """
        path = Path(path)
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
        hdf5_locking = fcntl is None and not unlocked
        temp_dir: Path | None = None
        try:
            f = h5open(path, "r" if readonly else "r+", use_hdf5_locking=hdf5_locking)
            try:
                version = detect_version(f, path)
            except BaseException:
                f.close()
                raise
            if version == SCHEMA_VERSION:
                return cls(f, path, readonly=readonly, lock_fd=lock_fd, root=root, user=user,
                           unlocked_read=unlocked)
            f.close()
            ctx = MigrationContext(store_path=path, who=user or current_user())
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
            return cls(f, path, readonly=readonly, lock_fd=lock_fd, root=root, user=user,
                       unlocked_read=unlocked, temp_dir=temp_dir, migrated_from=version,
                       migration_notes=ctx.notes, backup_path=backup)
        except BaseException:
            release_lock(lock_fd)
            if temp_dir is not None:
                shutil.rmtree(temp_dir, ignore_errors=True)
            raise

    def close(self) -> None:
        with self._lock:
            if self._f is None:
                return
            try:
                if not self.readonly:
                    self._commit()
                self._f.close()
            finally:
                self._f = None
                release_lock(self._lock_fd)
                self._lock_fd = None
                if self._temp_dir is not None:
                    shutil.rmtree(self._temp_dir, ignore_errors=True)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._f is None else ("read-only" if self.readonly else "writable")
        return f"Store({str(self.path)!r}, {state}, {len(self._paths)} images)"

    @property
    def closed(self) -> bool:
        return self._f is None

    # ------------------------------------------------------------------ low level
    def _commit(self, counts: Sequence[tuple[Table, int]] = ()) -> None:
        """The durability point. Rows and text are flushed first; only then are the row counts and the
        text length that make them part of the store written, flushed, and fsync'ed (on the descriptor
        HDF5 writes through). A kill at any moment leaves either the old or the new counts."""
        assert self._f is not None
        try:
            self._f.flush()
            if counts or self._text.dirty:
                for table, n in counts:
                    table.set_n_rows(n)
                self._text.publish()
                self._f.flush()
            os.fsync(self._fd if self._fd is not None else self._f.id.get_vfd_handle())
        except (OSError, ValueError) as exc:
            self._text.rollback()
            raise StoreError(f"{self.path}: could not save to disk ({exc})") from exc
        self._text.committed()

    def _load(self) -> None:
        n = self._images.n_rows
        img = self._images.read_all()
        self._paths: list[str] = list(img["path"])
        self._index = {p: i for i, p in enumerate(self._paths)}
        if len(self._index) != n:
            raise StoreCorruptError(f"{self.path}: the image table lists a path twice")
        self._image_rows = [ImageRecord(i, img["path"][i], img["sha256"][i], int(img["nbytes"][i]),
                                        SPLITS[img["split"][i]], img["source_defect"][i], img["mask_path"][i])
                            for i in range(n)]
        upd = self._updates.read_all()
        for k in range(len(upd["image"])):
            i = int(upd["image"][k])
            if 0 <= i < n:
                self._image_rows[i] = replace(self._image_rows[i], split=SPLITS[upd["split"][k]],
                                              source_defect=upd["source_defect"][k], mask_path=upd["mask_path"][k])
        self._reconcile()
        self.root = self._resolve_root(self._explicit_root)

    def _resolve_root(self, explicit: str | Path | None) -> Path:
        assert self._f is not None
        if explicit is not None:
            return Path(_norm(explicit))
        rel = get_text_attr(self._f, "root_relative")
        absolute = get_text_attr(self._f, "root_absolute")
        candidates = ([Path(_norm(self.path.parent / rel))] if rel else []) + ([Path(absolute)] if absolute else [])
        for c in candidates:
            if c.is_dir():
                return c
        return candidates[0] if candidates else Path(_norm(self.path.parent))

    # ------------------------------------------------------------------ project root and images
    @_writer
    def set_root(self, root: str | Path) -> None:
        """Point the store at a moved project (paths stay relative, so only the root changes)."""
        assert self._f is not None
        new = Path(_norm(root))
        if not new.is_dir():
            raise StoreError(f"{root}: project root is not a folder")
        try:
            rel = Path(os.path.relpath(new, _norm(self.path.parent))).as_posix()
        except ValueError:  # pragma: no cover - Windows drives
            rel = ""
        set_text_attr(self._f, "root_relative", rel)
        set_text_attr(self._f, "root_absolute", str(new))
        self._commit()
        self.root = new

    @property
    @_locked
    def n_images(self) -> int:
        return len(self._paths)

    @_locked
    def images(self) -> list[ImageRecord]:
        return list(self._image_rows)

    @_locked
    def image(self, image: int | str | Path) -> ImageRecord:
        return self._image_rows[self._image_index(image)]

    @_locked
    def image_id(self, path: str | Path) -> int:
        """Id of a stored image given its stored relative path or any path to the file."""
        return self._image_index(path)

    def absolute_path(self, image: int | str | Path) -> Path:
        return self.root / self.image(image).path

    def _image_index(self, image: int | str | Path) -> int:
        if isinstance(image, (int, np.integer)) and not isinstance(image, bool):
            if 0 <= image < len(self._paths):
                return int(image)
            raise UnknownImageError(f"{self.path}: no image with id {image}")
        key = os.fspath(image)
        found = self._index.get(Path(key).as_posix()) if not os.path.isabs(key) else None
        if found is None:
            rel = self._relative(key)
            found = self._index.get(rel) if rel is not None else None
        if found is None:
            raise UnknownImageError(f"{image}: not an image of the store {self.path}")
        return found

    def _relative(self, path: str | Path) -> str | None:
        rel = os.path.relpath(_norm(path), str(self.root))
        if rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel):
            return None
        return Path(rel).as_posix()

    def add_images(self, paths: Iterable[str | Path], root: str | Path | None = None, *,
                   split: str = "unsorted") -> AddImagesResult:
        """Add image files (unlabeled). Relative `paths` are taken relative to `root` (default: the project
        root). Files that are missing, unreadable or outside the project root are reported in `skipped`
        and the rest are added; paths already in the store keep their id."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        base = Path(root) if root is not None else self.root
        entries = [(p if Path(p).is_absolute() else base / p, split, "", None) for p in paths]
        result, _ = self._add_entries(entries)
        return result

    def add_folder(self, folder: str | Path, *, split: str = "unsorted") -> AddImagesResult:
        """Every image file below `folder` (recursively, by suffix), unlabeled."""
        folder = Path(folder).absolute()
        if not folder.is_dir():
            raise StoreError(f"{folder}: not a folder")
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(folder).parts))
        return self.add_images(files, split=split)

    def _add_entries(self, entries: Sequence[tuple[Path | str, str, str, Path | None]]
                     ) -> tuple[AddImagesResult, list[int | None]]:
        """entries: (file, split, source_defect, mask file). Hashing runs before taking the lock so the
        GUI thread is not blocked while thousands of files are read."""
        result = AddImagesResult()
        prepared: list[tuple[str, str, int, str, str, str] | None] = []
        with self._lock:
            if self.readonly:
                raise StoreError(f"{self.path}: opened read-only; open it for writing to change it")
            root = str(self.root)
        for file, split, defect, mask in entries:
            file = Path(file)
            rel = os.path.relpath(_norm(file), root)
            if rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel):
                result.skipped.append((str(file), f"outside the project root {root}"))
                prepared.append(None)
                continue
            if file.is_dir():
                result.skipped.append((str(file), "is a folder, not an image file"))
                prepared.append(None)
                continue
            try:
                sha, size = file_facts(file)
            except OSError as exc:
                result.skipped.append((str(file), f"cannot read ({exc.strerror or exc})"))
                prepared.append(None)
                continue
            mask_rel = ""
            if mask is not None:
                mask_rel = Path(os.path.relpath(_norm(mask), root)).as_posix()
                if mask_rel.startswith("../"):
                    result.skipped.append((str(mask), f"mask outside the project root {root}; not recorded"))
                    mask_rel = ""
            prepared.append((Path(rel).as_posix(), sha, size, split, defect, mask_rel))
        ids: list[int | None] = []
        with self._lock:
            if self._f is None:
                raise StoreError(f"{self.path}: store is closed")
            new_rows: list[ImageRecord] = []
            updates: list[ImageRecord] = []
            pending: dict[str, int] = {}
            for item in prepared:
                if item is None:
                    ids.append(None)
                    continue
                rel, sha, size, split, defect, mask_rel = item
                known = self._index.get(rel, pending.get(rel))
                if known is not None:
                    ids.append(known)
                    result.existing += 1
                    if known < len(self._image_rows):
                        old = self._image_rows[known]
                        new = replace(old, split=split if split != "unsorted" else old.split,
                                      source_defect=defect or old.source_defect,
                                      mask_path=mask_rel or old.mask_path)
                        if new != old:
                            updates.append(new)
                    continue
                rec = ImageRecord(len(self._paths) + len(new_rows), rel, sha, size, split, defect, mask_rel)
                pending[rel] = rec.id
                new_rows.append(rec)
                ids.append(rec.id)
            result.ids = [i for i in ids if i is not None]
            result.added = len(new_rows)
            if new_rows or updates:
                self._write_images(new_rows, updates)
        return result, ids

    def _write_images(self, new_rows: list[ImageRecord], updates: list[ImageRecord]) -> None:
        """New images are appended; changes to existing ones go to the append-only update table."""
        start = len(self._paths)
        n = start + len(new_rows)
        k = len(new_rows)
        try:
            if updates:
                u0 = self._updates.n_rows
                now = utc_now().encode()
                self._updates.write(u0, {
                    "image": [r.id for r in updates], "split": [SPLITS.index(r.split) for r in updates],
                    "source_defect": [r.source_defect for r in updates],
                    "mask_path": [r.mask_path for r in updates], "time": [now] * len(updates),
                    "who": [self.user] * len(updates)})
            if new_rows:
                self._images.write(start, image_columns(new_rows))
                for table in (self._labels, self._model):
                    table.write(start, {"label": [0] * k, "source": [0] * k, "seq": [-1] * k})
            counts = [(self._updates, u0 + len(updates))] if updates else []
            if new_rows:
                counts += [(table, n) for table in (self._images, self._labels, self._model)]
            self._commit(counts)
        except (OSError, ValueError) as exc:
            self._text.rollback()
            raise StoreError(f"{self.path}: could not add images ({exc})") from exc
        for rec in updates:
            self._image_rows[rec.id] = rec
        for rec in new_rows:
            self._paths.append(rec.path)
            self._index[rec.path] = rec.id
            self._image_rows.append(rec)
            self._label_cache.append(LabelRecord(rec.id))
            self._model_cache.append(LabelRecord(rec.id))
            self._seq["labels"].append(-1)
            self._seq["model_labels"].append(-1)

    def set_mask(self, image: int | str | Path, mask: str | Path | None) -> ImageRecord:
        """Record (or with None, forget) the ground-truth mask file of an image; export copies it."""
        with self._lock:
            if self.readonly:
                raise StoreError(f"{self.path}: opened read-only; open it for writing to change it")
            old = self._image_rows[self._image_index(image)]
            rel = ""
            if mask is not None:
                mask_path = Path(mask) if Path(mask).is_absolute() else self.root / mask
                rel = self._relative(mask_path) or ""
                if not rel:
                    raise StoreError(f"{mask}: mask is outside the project root {self.root}")
                if not mask_path.is_file():
                    raise StoreError(f"{mask_path}: no such mask file")
            new = replace(old, mask_path=rel)
            if new != old:
                self._write_images([], [new])
            return new

    def import_mvtec(self, folder: str | Path) -> ImportResult:
        """Ground truth from an MVTec AD folder as labels with source "import": train/good -> good (split
        train), test/good -> good, test/<defect> -> defect of that type, masks from ground_truth/<defect>/.
        Labels a human has set are kept (listed in kept_human): an import must not undo a review."""
        folder = Path(folder)
        if not ((folder / "train").is_dir() or (folder / "test").is_dir()):
            raise StoreError(f"{folder}: not an MVTec AD folder (no train/ or test/ inside)")
        result = ImportResult()
        entries: list[tuple[Path, str, str, Path | None]] = []
        for split in ("train", "test"):
            if not (folder / split).is_dir():
                continue
            for sub in sorted(p for p in (folder / split).iterdir() if p.is_dir() and not p.name.startswith(".")):
                defect = "" if sub.name == "good" else sub.name
                for p in sorted(sub.iterdir()):
                    if not p.is_file() or p.name.startswith("."):
                        continue
                    if p.suffix.lower() not in IMAGE_SUFFIXES:
                        result.skipped.append((str(p), "not an image file (by suffix)"))
                        continue
                    mask = find_mask(folder / "ground_truth" / sub.name, p.stem) if defect else None
                    if defect and mask is None and split == "test":
                        result.missing_masks.append(str(p))
                    result.masks += mask is not None
                    entries.append((p, split, defect, mask))
        added, ids = self._add_entries(entries)
        result.added, result.existing, result.skipped = added.added, added.existing, result.skipped + added.skipped
        changes = []
        with self._lock:
            for (p, _split, defect, _mask), image_id in zip(entries, ids, strict=True):
                if image_id is None:
                    continue
                label = "defect" if defect else "good"
                cur = self._label_cache[image_id]
                if cur.label == label and cur.defect_type == defect:
                    result.unchanged += 1
                elif cur.source == "human":
                    result.kept_human.append(str(p))
                else:
                    changes.append((image_id, label, defect, None))
            if changes:
                self.set_labels(changes, source="import")
            result.labeled = len(changes)
        return result

    # ------------------------------------------------------------------ labels
    # ------------------------------------------------------------------ checks
    def verify_images(self) -> list[tuple[int, str, str]]:
        """Images whose file is missing or changed since it was added: (id, path, problem). Lets the GUI
        warn that labels may no longer describe the file on disk (or that the root needs set_root)."""
        problems = []
        for rec in self.images():
            file = self.root / rec.path
            try:
                sha, _ = file_facts(file)
            except OSError:
                problems.append((rec.id, rec.path, f"missing ({file})"))
                continue
            if rec.sha256 and sha != rec.sha256:
                problems.append((rec.id, rec.path, "content changed since it was added"))
        return problems
