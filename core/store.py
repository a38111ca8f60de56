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
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import h5py
import numpy as np

from core.store_migrations import MigrationContext, detect_version, migrate_file, migrate_in_place
from core.store_schema import (
    IMAGE_SUFFIXES,
    LABELS,
    SCHEMA_VERSION,
    SOURCES,
    SPLITS,
    THRESHOLD_COLUMNS,
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
    check_component,
    create_layout,
    current_user,
    fcntl,
    file_facts,
    find_mask,
    fsync_dir,
    get_text_attr,
    h5open,
    image_columns,
    read_text_dataset,
    release_lock,
    set_text_attr,
    to_json,
    utc_now,
    write_maps,
    write_text_dataset,
)

__all__ = [
    "AddImagesResult", "AuditEntry", "ImageRecord", "ImportResult", "LabelRecord", "ReplayState", "RunInfo",
    "SCHEMA_VERSION", "Store", "StoreCorruptError", "StoreError", "StoreLockedError", "StoreVersionError",
    "ThresholdRecord", "UnknownImageError", "UnknownRunError", "LABEL_NAMES", "LABEL_SOURCES",
]

LABEL_NAMES = LABELS
LABEL_SOURCES = SOURCES[1:]  # "human", "import", "model"


_T = TypeVar("_T", bound=Callable[..., Any])


def _locked(method: _T) -> _T:
    @wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            if self._f is None:
                raise StoreError(f"{self.path}: store is closed")
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _writer(method: _T) -> _T:
    @wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only; open it for writing to change it")
        return method(self, *args, **kwargs)

    return _locked(wrapper)  # type: ignore[return-value]


def _norm(path: str | Path) -> str:
    """Absolute and normalised, without resolving symlinks (a symlinked image folder stays inside)."""
    return os.path.normpath(os.path.abspath(os.fspath(path)))


class Store:
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

    def _reconcile(self) -> None:
        """Current labels come from replaying the audit log (the truth); the label tables are checked
        against it and repaired when a writer was killed after writing a table row but before counting
        its log entry (or inside add_images, before the tables were extended)."""
        n = len(self._paths)
        state, seqs = self._replay_with_seq(None)
        self._label_cache = [state.labels.get(i, LabelRecord(i)) for i in range(n)]
        self._model_cache = [state.model_labels.get(i, LabelRecord(i)) for i in range(n)]
        self._seq = {"labels": [seqs[0].get(i, -1) for i in range(n)],
                     "model_labels": [seqs[1].get(i, -1) for i in range(n)]}
        repaired: set[int] = set()
        bad_tables = []
        for name, table, cache in (("labels", self._labels, self._label_cache),
                                   ("model_labels", self._model, self._model_cache)):
            want = self._label_rows(name, cache, range(n))
            try:
                have = table.read_all(0, n)
            except OSError:  # unreadable chunk: rebuild the whole table from the log
                have = {k: np.zeros(0) for k in want}
            m = len(have["seq"])
            diff = [i for i in range(m) if (have["label"][i], have["source"][i], have["seq"][i])
                    != (want["label"][i], want["source"][i], want["seq"][i])]
            repaired.update(diff)
            if diff or m < n:
                bad_tables.append((table, cache, name))
        self.repaired_images = sorted(repaired)
        if self.readonly or not bad_tables:
            return
        for table, cache, name in bad_tables:
            table.write(0, self._label_rows(name, cache, range(n)))
        self._commit([(table, n) for table, _, _ in bad_tables])

    def _label_rows(self, name: str, cache: Sequence[LabelRecord] | dict[int, LabelRecord],
                    ids: Iterable[int]) -> dict[str, list[int]]:
        ids = list(ids)
        return {"label": [LABELS.index(cache[i].label) for i in ids],
                "source": [SOURCES.index(cache[i].source) for i in ids],
                "seq": [self._seq[name][i] for i in ids]}

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

    def _cleanup_incomplete_runs(self) -> None:
        leftovers = [k for k in self._runs if k.startswith(".incomplete-")]
        for k in leftovers:
            del self._runs[k]
        if leftovers:
            self._commit()

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
    @_writer
    def set_label(self, image: int | str | Path, label: str, *, defect_type: str | None = None,
                  note: str | None = None, source: str = "human", run_id: str | None = None) -> LabelRecord:
        """Set one label; when this returns the change and its audit entry are on disk (flush + fsync).

        source "human"/"import" change the review label; "model" changes the separate model verdict, so
        a model never overwrites a person's decision. defect_type is only for defect/suspicious (None
        means none); note=None keeps the current note. Setting the same values again writes nothing.
        """
        return self.set_labels([(image, label, defect_type, note)], source=source, run_id=run_id)[0]

    @_writer
    def set_labels(self, items: Sequence[tuple[int | str | Path, str, str | None, str | None]], *,
                   source: str = "human", run_id: str | None = None) -> list[LabelRecord]:
        """Many labels with one commit (imports, bulk actions): (image, label, defect_type, note) each."""
        if source not in LABEL_SOURCES:
            raise ValueError(f"source must be one of {LABEL_SOURCES}, not {source!r}")
        if run_id is not None:
            self._run_group(run_id)
        cache = self._model_cache if source == "model" else self._label_cache
        now, staged = utc_now(), {}
        out: list[LabelRecord] = []
        audit_rows: list[tuple[LabelRecord, LabelRecord]] = []
        for image, label, defect_type, note in items:
            i = self._image_index(image)
            old = staged.get(i, cache[i])
            if label not in LABELS:
                raise ValueError(f"label must be one of {LABELS}, not {label!r}")
            defect = (defect_type or "").strip()
            if "\x00" in defect or (note is not None and "\x00" in note):
                raise ValueError("defect type and note cannot contain NUL characters (HDF5 strings end there)")
            if defect and label not in ("defect", "suspicious"):
                raise ValueError(f"a {label!r} image has no defect type (got {defect_type!r})")
            new_note = old.note if note is None else note
            if (old.label, old.defect_type, old.note) == (label, defect, new_note):
                out.append(old)
                continue
            new = LabelRecord(i, label, defect, new_note, source, self.user, now, run_id or "")
            staged[i] = new
            out.append(new)
            audit_rows.append((old, new))
        self._write_changes(source == "model", staged, audit_rows)
        return out

    def _write_changes(self, model: bool, staged: dict[int, LabelRecord],
                       audit_rows: list[tuple[LabelRecord, LabelRecord]]) -> None:
        """Log rows and table rows, flush, then count the log rows, flush + fsync (see Table)."""
        if not staged:
            return
        name = "model_labels" if model else "labels"
        table = self._model if model else self._labels
        cache = self._model_cache if model else self._label_cache
        start = self._audit.n_rows
        new_seq = {n.image_id: start + k for k, (_, n) in enumerate(audit_rows)}
        old_seq = {i: self._seq[name][i] for i in staged}
        try:
            self._audit.write(start, {
                "time": [n.time.encode() for _, n in audit_rows], "who": [n.who for _, n in audit_rows],
                "source": [SOURCES.index(n.source) for _, n in audit_rows],
                "image": [n.image_id for _, n in audit_rows],
                "old_label": [LABELS.index(o.label) for o, _ in audit_rows],
                "new_label": [LABELS.index(n.label) for _, n in audit_rows],
                "old_defect_type": [o.defect_type for o, _ in audit_rows],
                "new_defect_type": [n.defect_type for _, n in audit_rows],
                "old_note": [o.note for o, _ in audit_rows], "new_note": [n.note for _, n in audit_rows],
                "run": [n.run for _, n in audit_rows]})
            for i, seq in new_seq.items():
                self._seq[name][i] = seq
            merged = {i: staged[i] for i in staged}
            if len(staged) > 64:  # whole table: thousands of single-row writes are slow
                table.write(0, self._label_rows(name, [merged.get(i, c) for i, c in enumerate(cache)],
                                                range(len(cache))))
            else:
                for i in sorted(staged):
                    table.write(i, self._label_rows(name, {i: staged[i]}, [i]))
            self._commit([(self._audit, start + len(audit_rows))])
        except (OSError, ValueError) as exc:
            self._text.rollback()
            for i, seq in old_seq.items():
                self._seq[name][i] = seq
            for i in staged:  # best effort: put the table rows back to what the log says
                try:
                    table.write(i, self._label_rows(name, cache, [i]))
                except (OSError, ValueError):
                    break
            raise StoreError(f"{self.path}: could not save labels ({exc})") from exc
        for i, rec in staged.items():
            cache[i] = rec

    @_locked
    def label(self, image: int | str | Path) -> LabelRecord:
        """Current review label (human or import)."""
        return self._label_cache[self._image_index(image)]

    @_locked
    def labels(self) -> list[LabelRecord]:
        return list(self._label_cache)

    @_locked
    def model_label(self, image: int | str | Path) -> LabelRecord:
        """Latest model verdict, kept apart from the review label."""
        return self._model_cache[self._image_index(image)]

    @_locked
    def model_labels(self) -> list[LabelRecord]:
        return list(self._model_cache)

    @_locked
    def history(self, image: int | str | Path | None = None, *, source: str | None = None) -> list[AuditEntry]:
        """The audit log, oldest first, optionally for one image and/or one source."""
        entries = self._read_audit()
        if image is not None:
            i = self._image_index(image)
            entries = [e for e in entries if e.image_id == i]
        if source is not None:
            entries = [e for e in entries if e.source == source]
        return entries

    @_locked
    def replay(self, until: int | str | None = None) -> ReplayState:
        """Labels as they were after the first `until` log entries (int) or at UTC time `until` (ISO
        string, inclusive); None replays everything and equals the current labels."""
        return self._replay(until)

    def _read_audit(self) -> list[AuditEntry]:
        t = self._audit
        cols = t.read_all()
        try:
            return [AuditEntry(k, cols["time"][k], cols["who"][k], SOURCES[cols["source"][k]], int(cols["image"][k]),
                               LABELS[cols["old_label"][k]], LABELS[cols["new_label"][k]],
                               cols["old_defect_type"][k], cols["new_defect_type"][k], cols["old_note"][k],
                               cols["new_note"][k], cols["run"][k]) for k in range(len(cols["image"]))]
        except IndexError as exc:
            raise StoreCorruptError(f"{self.path}: audit log holds an unknown label or source code") from exc

    def _replay(self, until: int | str | None) -> ReplayState:
        return self._replay_with_seq(until)[0]

    def _replay_with_seq(self, until: int | str | None) -> tuple[ReplayState, tuple[dict[int, int], dict[int, int]]]:
        entries = self._read_audit()
        if isinstance(until, int):
            entries = entries[:until]
        elif isinstance(until, str):
            entries = [e for e in entries if e.time <= until]
        review: dict[int, LabelRecord] = {}
        model: dict[int, LabelRecord] = {}
        review_seq: dict[int, int] = {}
        model_seq: dict[int, int] = {}
        for e in entries:
            if not 0 <= e.image_id < len(self._paths):
                raise StoreCorruptError(f"{self.path}: audit entry {e.seq} names image {e.image_id}, "
                                        f"which the store does not hold")
            track, seqs = (model, model_seq) if e.source == "model" else (review, review_seq)
            track[e.image_id] = LabelRecord(e.image_id, e.new_label, e.new_defect_type, e.new_note, e.source,
                                            e.who, e.time, e.run)
            seqs[e.image_id] = e.seq
        return ReplayState(review, model), (review_seq, model_seq)

    # ------------------------------------------------------------------ model runs
    @_writer
    def add_run(self, detector: str, params: dict, metadata: dict, image_paths: Sequence[str | Path],
                scores: dict[str, np.ndarray], default_component: str,
                maps: dict[str, list[np.ndarray | None]] | None = None) -> str:
        """Store one scoring run; returns its id ("run-0001", ...).

        scores[component] holds one score per image_paths entry. maps[component][k] is image k's 2-D map on
        its patch grid (shapes may differ); maps are stored as float16 normalised per map (see
        docs/store-format.md), gzip-compressed, one chunk per image. Everything is validated before
        anything is written; the run appears atomically (written under a hidden name, then renamed).
        """
        ids = np.array([self._image_index(p) for p in image_paths], dtype=np.int64)
        n = len(ids)
        if len(set(ids.tolist())) != n:
            raise ValueError("image_paths lists an image twice")
        if not scores:
            raise ValueError("a run needs at least one score component")
        score_arrays = {}
        for comp, vals in scores.items():
            check_component(comp)
            arr = np.asarray(vals, dtype=np.float64).reshape(-1)
            if arr.shape[0] != n:
                raise ValueError(f"scores[{comp!r}] has {arr.shape[0]} values for {n} images")
            score_arrays[comp] = arr
        if default_component not in score_arrays:
            raise ValueError(f"default component {default_component!r} is not among {sorted(score_arrays)}")
        map_lists = {}
        for comp, items in (maps or {}).items():
            check_component(comp)
            if len(items) != n:
                raise ValueError(f"maps[{comp!r}] has {len(items)} maps for {n} images")
            arrs = [None if m is None else np.asarray(m, dtype=np.float32) for m in items]
            if any(a is not None and a.ndim != 2 for a in arrs):
                raise ValueError(f"maps[{comp!r}] must hold 2-D arrays")
            map_lists[comp] = arrs
        params_json = to_json(params, "params")
        meta_json = to_json(metadata, "metadata")
        number = max([int(self._runs.attrs.get("next_run", 1))]
                     + [int(k.rsplit("-", 1)[1]) + 1 for k in self._runs if k.rsplit("-", 1)[-1].isdigit()])
        run_id = f"run-{number:04d}"
        hidden = f".incomplete-{run_id}"
        try:
            g = self._runs.create_group(hidden)
            for key, value in (("detector", detector), ("created", utc_now()), ("who", self.user),
                               ("default_component", default_component),
                               ("components", to_json(list(score_arrays), "components")),
                               ("map_components", to_json(list(map_lists), "map components"))):
                set_text_attr(g, key, value)
            write_text_dataset(g, "params_json", params_json)
            write_text_dataset(g, "metadata_json", meta_json)
            g.create_dataset("image_ids", data=ids)
            sg = g.create_group("scores")
            for comp, arr in score_arrays.items():
                sg.create_dataset(comp, data=arr)
            mg = g.create_group("maps")
            for comp, arrs in map_lists.items():
                write_maps(mg.create_group(comp), arrs)
            Table.create(g, "thresholds", THRESHOLD_COLUMNS, self._text)
            assert self._f is not None
            self._f.flush()  # the whole run is in the file before it gets its visible name
            self._runs.move(hidden, run_id)
            self._runs.attrs["next_run"] = number + 1
            self._commit()
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self.path}: could not save run ({exc})") from exc
        return run_id

    def _run_group(self, run_id: str) -> h5py.Group:
        if not isinstance(run_id, str) or run_id.startswith(".") or "/" in run_id or run_id not in self._runs:
            raise UnknownRunError(f"{self.path}: no run {run_id!r}")
        return self._runs[run_id]

    @_locked
    def list_runs(self) -> list[RunInfo]:
        """Runs in creation order."""
        names = sorted((k for k in self._runs if not k.startswith(".")), key=lambda k: int(k.rsplit("-", 1)[1]))
        return [self._run_info(k) for k in names]

    @_locked
    def run_info(self, run_id: str) -> RunInfo:
        return self._run_info(run_id)

    @_locked
    def latest_run(self) -> str | None:
        runs = self.list_runs()
        return runs[-1].run_id if runs else None

    def _run_info(self, run_id: str) -> RunInfo:
        g = self._run_group(run_id)
        a = {k: get_text_attr(g, k) for k in ("detector", "created", "who", "default_component", "components",
                                               "map_components")}
        return RunInfo(run_id, a["detector"], json.loads(read_text_dataset(g, "params_json")),
                       json.loads(read_text_dataset(g, "metadata_json")), a["created"], a["who"],
                       a["default_component"], tuple(json.loads(a["components"])),
                       tuple(json.loads(a["map_components"])), int(g["image_ids"].shape[0]))

    @_locked
    def run_image_ids(self, run_id: str) -> np.ndarray:
        return self._run_group(run_id)["image_ids"][()]

    @_locked
    def run_scores(self, run_id: str) -> dict[str, np.ndarray]:
        """Every component's scores, aligned with run_image_ids(run_id)."""
        g = self._run_group(run_id)["scores"]
        return {comp: g[comp][()] for comp in g}

    @_locked
    def scores(self, run_id: str, component: str | None = None) -> np.ndarray:
        """One component (default: the run's default) aligned to image ids: index = image id, NaN for
        images the run did not score."""
        g = self._run_group(run_id)
        comp = component or get_text_attr(g, "default_component")
        if comp not in g["scores"]:
            raise StoreError(f"{self.path}: run {run_id} has no score component {comp!r}")
        out = np.full(len(self._paths), np.nan)
        out[g["image_ids"][()]] = g["scores"][comp][()]
        return out

    @_locked
    def maps(self, run_id: str, image: int | str | Path, component: str | None = None) -> dict[str, np.ndarray]:
        """Maps of one image in a run as float32, {component: 2-D array}; {} if the run stored none."""
        g = self._run_group(run_id)
        i = self._image_index(image)
        if run_id not in self._run_rows:  # runs never change once written: index them once
            self._run_rows[run_id] = {int(v): k for k, v in enumerate(g["image_ids"][()])}
        k = self._run_rows[run_id].get(i)
        if k is None:
            raise StoreError(f"{self.path}: run {run_id} did not score image {self._paths[i]}")
        comps = [component] if component is not None else list(g["maps"])
        out = {}
        for comp in comps:
            if comp not in g["maps"]:
                raise StoreError(f"{self.path}: run {run_id} has no maps for component {comp!r}")
            mg = g["maps"][comp]
            h, w = (int(v) for v in mg["shape"][k])
            out[comp] = mg["data"][k, :h, :w].astype(np.float32) * np.float32(mg["scale"][k])
        return out

    # ------------------------------------------------------------------ thresholds
    @_writer
    def set_threshold(self, run_id: str, t1: float, t2: float, method: str = "manual") -> ThresholdRecord:
        """Record the thresholds of a run; the latest record is current, older ones stay as history."""
        g = self._run_group(run_id)
        t1, t2 = float(t1), float(t2)
        if not (np.isfinite(t1) and np.isfinite(t2)) or t1 > t2:
            raise ValueError(f"thresholds need finite T1 <= T2, got T1={t1}, T2={t2}")
        rec = ThresholdRecord(run_id, t1, t2, method or "manual", self.user, utc_now())
        table = Table(g["thresholds"], self._text)
        n = table.n_rows
        try:
            table.write(n, {"t1": [t1], "t2": [t2], "method": [rec.method], "who": [rec.who],
                            "time": [rec.time.encode()]})
            self._commit([(table, n + 1)])
        except (OSError, ValueError) as exc:
            self._text.rollback()
            raise StoreError(f"{self.path}: could not save threshold ({exc})") from exc
        return rec

    @_locked
    def threshold_history(self, run_id: str) -> list[ThresholdRecord]:
        t = Table(self._run_group(run_id)["thresholds"], self._text)
        c = t.read_all()
        return [ThresholdRecord(run_id, float(c["t1"][k]), float(c["t2"][k]), c["method"][k], c["who"][k],
                                c["time"][k]) for k in range(len(c["t1"]))]

    @_locked
    def threshold(self, run_id: str) -> ThresholdRecord | None:
        history = self.threshold_history(run_id)
        return history[-1] if history else None

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
