"""The HDF5 label and score store: one file per review project.

Why it looks like this (details in docs/store-format.md):
- A label the API returns from is on disk. Every acknowledged change is written, flushed and fsync'ed
  before set_label returns, with HDF5's default file-format bounds (not libver='latest', not SWMR: files in
  those modes refuse to open after a crash until h5clear is run).
- The audit log is the source of truth for labels; the `labels` table is its materialised current state.
  On open the two are compared and the table is repaired from the log if a writer died between them.
- One writer, by our own flock on the store file (core/store/locking.py). Read-only opens take a shared
  lock, or read without a lock if a writer holds it.
- All I/O goes through one Store object guarded by a re-entrant lock, so the GUI can own it from a worker
  thread and the main thread can still ask for a label.

Layout: Store is the public face. It owns one StoreHandle (file, lock, text log, commit) and three parts
that get that handle explicitly: Images (core/store/images.py), Runs (runs.py) and Labels (labels.py).
Its methods take the lock and delegate. Writes that span parts have their own module: adding images
(each new image gets its empty label rows in the same commit, core/store/adding.py) and the MVTec import
(core/store/ground_truth.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from core.store.adding import ImageAdder
from core.store.errors import StoreCorruptError, StoreError
from core.store.ground_truth import label_changes, mvtec_entries
from core.store.handle import StoreHandle
from core.store.images import Images
from core.store.labels import Labels
from core.store.locking import locked, writer
from core.store.opening import OpenedFile, create_file, open_file
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
from core.store.runs import Runs
from core.store.stamps import current_user
from core.vocabulary import SPLITS


class Store:
    """One open review project. Create with Store.create, open with Store.open; use as a context manager.

    Images are addressed by id (row number, stable forever: images are never deleted) or by path.
    """

    def __init__(self, path: Path, opened: OpenedFile, *, readonly: bool, root: str | Path | None,
                 user: str | None) -> None:
        self.path = path
        self.readonly = readonly
        self.unlocked_read = opened.unlocked_read  # read-only without a lock: another process is writing
        self.user = user or current_user()
        self.migrated_from = opened.migrated_from
        self.migration_notes = list(opened.migration_notes)
        self.backup_path = opened.backup_path
        try:
            self._handle = StoreHandle(opened.f, path, readonly=readonly, user=self.user,
                                       lock_fd=opened.lock_fd, temp_dir=opened.temp_dir)
            self._images = Images(self._handle, root)
            self._runs = Runs(self._handle, self._images)
            self._labels = Labels(self._handle, self._images, self._runs)
            self._adder = ImageAdder(self._handle, self._images, self._labels)
            if not readonly:
                self._runs.cleanup_incomplete()
        except (KeyError, ValueError, OSError) as exc:
            raise StoreCorruptError(f"{path}: store layout is damaged ({exc})") from exc

    # ------------------------------------------------------------------ opening and closing
    @classmethod
    def create(cls, path: str | Path, root: str | Path, *, user: str | None = None,
               overwrite: bool = False) -> Store:
        """New empty store. `root` is the project root that image paths are stored relative to; it is
        recorded both relative to the store file (so project and store can move together) and absolute."""
        path = Path(path)
        who = user or current_user()
        opened = create_file(path, root, who=who, overwrite=overwrite)
        try:
            return cls(path, opened, readonly=False, root=None, user=who)
        except BaseException:
            opened.abandon()
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
        opened = open_file(path, readonly=readonly, who=user or current_user(),
                           allow_unlocked_read=allow_unlocked_read)
        try:
            return cls(path, opened, readonly=readonly, root=root, user=user)
        except BaseException:
            opened.abandon()
            raise

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("read-only" if self.readonly else "writable")
        return f"Store({str(self.path)!r}, {state}, {len(self._images.paths)} images)"

    @property
    def closed(self) -> bool:
        return self._handle.closed

    @property
    def repaired_images(self) -> list[int]:
        """Images whose label-table row was repaired from the audit log on open."""
        return self._labels.repaired_images

    # ------------------------------------------------------------------ project root and images
    @property
    def root(self) -> Path:
        return self._images.root

    @writer
    def set_root(self, root: str | Path) -> None:
        """Point the store at a moved project (paths stay relative, so only the root changes)."""
        self._images.set_root(root)

    @property
    @locked
    def n_images(self) -> int:
        return len(self._images.paths)

    @locked
    def images(self) -> list[ImageRecord]:
        return list(self._images.rows)

    @locked
    def image(self, image: int | str | Path) -> ImageRecord:
        return self._images.rows[self._images.index_of(image)]

    @locked
    def image_id(self, path: str | Path) -> int:
        """Id of a stored image given its stored relative path or any path to the file."""
        return self._images.index_of(path)

    def absolute_path(self, image: int | str | Path) -> Path:
        return self.root / self.image(image).path

    def add_images(self, paths: Iterable[str | Path], root: str | Path | None = None, *,
                   split: str = "unsorted", check_images: bool = True) -> AddImagesResult:
        """Add image files (unlabeled). Relative `paths` are taken relative to `root` (default: the project
        root). Files that are missing, unreadable, do not decode as images (check_images) or are outside the
        project root are reported in `skipped` and the rest are added; paths already in the store keep their
        id."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        base = Path(root) if root is not None else self.root
        entries = [(p if Path(p).is_absolute() else base / p, split, "", None) for p in paths]
        result, _ = self._adder.add(entries, check_images)
        return result

    def add_folder(self, folder: str | Path, *, split: str = "unsorted", check_images: bool = True
                   ) -> AddImagesResult:
        """Every image file below `folder` (recursively, by suffix; hidden names left out), unlabeled. Files
        that do not decode (broken symlinks too) are listed in `skipped` with their reason."""
        from core.data.images import folder_entries  # lazy: opening a store stays a light import

        folder = Path(folder).absolute()
        if not folder.is_dir():
            raise StoreError(f"{folder}: not a folder")
        return self.add_images(folder_entries(folder, recursive=True, images_only=True), split=split,
                               check_images=check_images)

    @writer
    def set_split(self, images: Iterable[int | str | Path], split: str) -> list[ImageRecord]:
        """Mark images for training ("train"), for judging only ("test") or neither ("unsorted"); returns the
        records that changed. Recorded in the image-update table with who and when (docs/store-format.md)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        changed, seen = [], set()
        for image in images:
            old = self._images.rows[self._images.index_of(image)]
            if old.split != split and old.id not in seen:
                seen.add(old.id)
                changed.append(replace(old, split=split))
        if changed:
            self._adder.write([], changed)
        return changed

    @writer
    def set_mask(self, image: int | str | Path, mask: str | Path | None) -> ImageRecord:
        """Record (or with None, forget) the ground-truth mask file of an image; export copies it."""
        old, new = self._images.mask_change(image, mask)
        if new != old:
            self._adder.write([], [new])
        return new

    def import_mvtec(self, folder: str | Path, *, check_images: bool = True) -> ImportResult:
        """Ground truth from an MVTec AD folder as labels with source "import": train/good -> good (split
        train), test/good -> good, test/<defect> -> defect of that type, masks from ground_truth/<defect>/.
        Labels a human has set are kept (listed in kept_human): an import must not undo a review."""
        entries, result = mvtec_entries(Path(folder))
        return self.import_ground_truth(entries, result, check_images=check_images)

    def import_ground_truth(self, entries: Sequence[tuple[Path, str, str, Path | None]],
                            result: ImportResult | None = None, *, check_images: bool = True) -> ImportResult:
        """Images with what a dataset says of them, as (file, split, defect type or "", mask or None):
        added (or updated) with that split and mask, labeled good (no defect type) or defect with source
        "import". Labels a human has set are kept (listed in kept_human). check_images: as add_images."""
        result = result or ImportResult()
        entries = list(entries)
        added, ids = self._adder.add(entries, check_images)
        result.added, result.existing, result.skipped = added.added, added.existing, result.skipped + added.skipped
        with self._handle.lock:
            changes = label_changes(entries, ids, self._labels.label, result)
            if changes:
                self.set_labels(changes, source="import")
            result.labeled = len(changes)
        return result

    def verify_images(self) -> list[tuple[int, str, str]]:
        """Images whose file is missing or changed since it was added: (id, path, problem). Lets the GUI
        warn that labels may no longer describe the file on disk (or that the root needs set_root)."""
        return self._images.verify(self.images())

    # ------------------------------------------------------------------ labels (core/store/labels.py)
    @writer
    def set_label(self, image: int | str | Path, label: str, *, defect_type: str | None = None,
                  note: str | None = None, source: str = "human", run_id: str | None = None) -> LabelRecord:
        """Set one label; when this returns the change and its audit entry are on disk (flush + fsync).

        source "human"/"import" change the review label; "model" changes the separate model verdict, so
        a model never overwrites a person's decision. defect_type is only for defect/suspicious (None
        means none); note=None keeps the current note. Setting the same values again writes nothing.
        """
        return self._labels.set_labels([(image, label, defect_type, note)], source=source, run_id=run_id)[0]

    @writer
    def set_labels(self, items: Sequence[tuple[int | str | Path, str, str | None, str | None]], *,
                   source: str = "human", run_id: str | None = None) -> list[LabelRecord]:
        """Many labels with one commit (imports, bulk actions): (image, label, defect_type, note) each."""
        return self._labels.set_labels(items, source=source, run_id=run_id)

    @locked
    def label(self, image: int | str | Path) -> LabelRecord:
        """Current review label (human or import)."""
        return self._labels.label(image)

    @locked
    def labels(self) -> list[LabelRecord]:
        return self._labels.labels()

    @locked
    def model_label(self, image: int | str | Path) -> LabelRecord:
        """Latest model verdict, kept apart from the review label."""
        return self._labels.model_label(image)

    @locked
    def model_labels(self) -> list[LabelRecord]:
        return self._labels.model_labels()

    @locked
    def history(self, image: int | str | Path | None = None, *, source: str | None = None) -> list[AuditEntry]:
        """The audit log, oldest first, optionally for one image and/or one source."""
        return self._labels.history(image, source=source)

    @locked
    def replay(self, until: int | str | None = None) -> ReplayState:
        """Labels as they were after the first `until` log entries (int) or at UTC time `until` (ISO
        string, inclusive); None replays everything and equals the current labels."""
        return self._labels.replay(until)

    # ------------------------------------------------------------------ runs (core/store/runs.py)
    @writer
    def add_run(self, detector: str, params: dict, metadata: dict, image_paths: Sequence[str | Path],
                scores: dict[str, np.ndarray], default_component: str,
                maps: dict[str, list[np.ndarray | None]] | None = None) -> str:
        """Store one scoring run; returns its id ("run-0001", ...).

        scores[component] holds one score per image_paths entry. maps[component][k] is image k's 2-D map on
        its patch grid (shapes may differ); maps are stored as float16 normalised per map (see
        docs/store-format.md), gzip-compressed, one chunk per image. Everything is validated before
        anything is written; the run appears atomically (written under a hidden name, then renamed).
        """
        return self._runs.add_run(detector, params, metadata, image_paths, scores, default_component, maps)

    @writer
    def begin_run(self, detector: str, params: dict, metadata: dict, default_component: str,
                  components: Sequence[str], map_components: Sequence[str] = ()) -> str:
        """Start a run that grows chunk by chunk (append_to_run) while a folder is scored; it shows as
        incomplete (RunInfo.complete False) until finish_run, and can be resumed after a cancel or a crash."""
        return self._runs.begin_run(detector, params, metadata, default_component, components, map_components)

    @writer
    def append_to_run(self, run_id: str, image_paths: Sequence[str | Path], scores: dict[str, np.ndarray],
                      maps: dict[str, list[np.ndarray | None]] | None = None) -> int:
        """One scored chunk into a growing run; on disk when this returns. Returns the run's image count."""
        return self._runs.append_to_run(run_id, image_paths, scores, maps)

    @writer
    def finish_run(self, run_id: str, metadata: dict | None = None) -> None:
        """Mark a growing run complete (optionally with its final metadata)."""
        self._runs.finish_run(run_id, metadata)

    @locked
    def list_runs(self) -> list[RunInfo]:
        """Runs in creation order."""
        return self._runs.list_runs()

    @locked
    def run_info(self, run_id: str) -> RunInfo:
        return self._runs.run_info(run_id)

    @locked
    def latest_run(self) -> str | None:
        return self._runs.latest_run()

    @locked
    def run_image_ids(self, run_id: str) -> np.ndarray:
        return self._runs.run_image_ids(run_id)

    @locked
    def run_scores(self, run_id: str) -> dict[str, np.ndarray]:
        """Every component's scores, aligned with run_image_ids(run_id)."""
        return self._runs.run_scores(run_id)

    @locked
    def run_rows_since(self, run_id: str, start: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Image ids and scores of the rows a growing run committed at or after row `start`."""
        return self._runs.run_rows_since(run_id, start)

    @locked
    def scores(self, run_id: str, component: str | None = None) -> np.ndarray:
        """One component (default: the run's default) aligned to image ids: index = image id, NaN for
        images the run did not score."""
        return self._runs.scores(run_id, component)

    @locked
    def maps(self, run_id: str, image: int | str | Path, component: str | None = None) -> dict[str, np.ndarray]:
        """Maps of one image in a run as float32, {component: 2-D array}; {} if the run stored none."""
        return self._runs.maps(run_id, image, component)

    @writer
    def set_threshold(self, run_id: str, t1: float, t2: float, method: str = "manual") -> ThresholdRecord:
        """Record the thresholds of a run; the latest record is current, older ones stay as history."""
        return self._runs.set_threshold(run_id, t1, t2, method)

    @locked
    def threshold_history(self, run_id: str) -> list[ThresholdRecord]:
        return self._runs.threshold_history(run_id)

    @locked
    def threshold(self, run_id: str) -> ThresholdRecord | None:
        return self._runs.threshold(run_id)
