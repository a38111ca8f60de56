"""The images of a store: the project root their paths are relative to, the image table and its append-only
update log, and turning any path a caller has into an image id.

Adding images is split into steps (prepare -> plan -> stage -> commit -> apply) because Store.add_images
commits the images together with their empty label rows (core/store/labels.py) in one durable write, and
hashes files before taking the lock so the GUI thread is not blocked while thousands of files are read.
The caller holds the handle's lock for every step except `prepare`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from core.store.errors import StoreCorruptError, StoreError, UnknownImageError
from core.store.files import file_facts, normalised
from core.store.format import image_columns
from core.store.handle import StoreHandle
from core.store.hdf5 import Table, get_text_attr, set_text_attr
from core.store.records import AddImagesResult, ImageRecord
from core.store.stamps import utc_now
from core.vocabulary import SPLITS

# (relative path, sha256, size, split, source defect, relative mask path) of a file ready to be added.
Prepared = tuple[str, str, int, str, str, str]
# (file, split, source defect, mask file or None) as callers hand them in.
Entry = tuple[Path | str, str, str, Path | None]


def _outside(rel: str) -> bool:
    return rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel)


class Images:
    def __init__(self, handle: StoreHandle, explicit_root: str | Path | None) -> None:
        self._h = handle
        self._table: Table = handle.table("images")
        self._updates: Table = handle.table("image_updates")
        self._load()
        self.root = self._resolve_root(explicit_root)

    def _load(self) -> None:
        n = self._table.n_rows
        img = self._table.read_all()
        self.paths: list[str] = list(img["path"])
        self._index = {p: i for i, p in enumerate(self.paths)}
        if len(self._index) != n:
            raise StoreCorruptError(f"{self._h.path}: the image table lists a path twice")
        self.rows = [ImageRecord(i, img["path"][i], img["sha256"][i], int(img["nbytes"][i]),
                                 SPLITS[img["split"][i]], img["source_defect"][i], img["mask_path"][i])
                     for i in range(n)]
        upd = self._updates.read_all()
        for k in range(len(upd["image"])):
            i = int(upd["image"][k])
            if 0 <= i < n:
                self.rows[i] = replace(self.rows[i], split=SPLITS[upd["split"][k]],
                                       source_defect=upd["source_defect"][k], mask_path=upd["mask_path"][k])

    def _resolve_root(self, explicit: str | Path | None) -> Path:
        if explicit is not None:
            return Path(normalised(explicit))
        f, store_dir = self._h.file, self._h.path.parent
        rel = get_text_attr(f, "root_relative")
        absolute = get_text_attr(f, "root_absolute")
        candidates = ([Path(normalised(store_dir / rel))] if rel else []) + ([Path(absolute)] if absolute else [])
        for c in candidates:
            if c.is_dir():
                return c
        return candidates[0] if candidates else Path(normalised(store_dir))

    def set_root(self, root: str | Path) -> None:
        new = Path(normalised(root))
        if not new.is_dir():
            raise StoreError(f"{root}: project root is not a folder")
        try:
            rel = Path(os.path.relpath(new, normalised(self._h.path.parent))).as_posix()
        except ValueError:  # pragma: no cover - Windows drives
            rel = ""
        set_text_attr(self._h.file, "root_relative", rel)
        set_text_attr(self._h.file, "root_absolute", str(new))
        self._h.commit()
        self.root = new

    # ------------------------------------------------------------------ lookup
    def index_of(self, image: int | str | Path) -> int:
        """Id of an image given its id, its stored relative path or any path to the file."""
        if isinstance(image, (int, np.integer)) and not isinstance(image, bool):
            if 0 <= image < len(self.paths):
                return int(image)
            raise UnknownImageError(f"{self._h.path}: no image with id {image}")
        key = os.fspath(image)
        found = self._index.get(Path(key).as_posix()) if not os.path.isabs(key) else None
        if found is None:
            rel = self.relative(key)
            found = self._index.get(rel) if rel is not None else None
        if found is None:
            raise UnknownImageError(f"{image}: not an image of the store {self._h.path}")
        return found

    def relative(self, path: str | Path) -> str | None:
        """Path relative to the project root ("/" separators), None if the path is outside it."""
        rel = os.path.relpath(normalised(path), str(self.root))
        return None if _outside(rel) else Path(rel).as_posix()

    def mask_change(self, image: int | str | Path, mask: str | Path | None) -> tuple[ImageRecord, ImageRecord]:
        """The image's record before and after recording `mask` (None forgets it); nothing is written."""
        old = self.rows[self.index_of(image)]
        rel = ""
        if mask is not None:
            mask_path = Path(mask) if Path(mask).is_absolute() else self.root / mask
            rel = self.relative(mask_path) or ""
            if not rel:
                raise StoreError(f"{mask}: mask is outside the project root {self.root}")
            if not mask_path.is_file():
                raise StoreError(f"{mask_path}: no such mask file")
        return old, replace(old, mask_path=rel)

    def verify(self, rows: Sequence[ImageRecord]) -> list[tuple[int, str, str]]:
        """Those of `rows` whose file is missing or changed since it was added: (id, path, problem).
        Reads every file, so the caller passes a copy of the rows and does not hold the lock."""
        problems = []
        for rec in rows:
            file = self.root / rec.path
            try:
                sha, _ = file_facts(file)
            except OSError:
                problems.append((rec.id, rec.path, f"missing ({file})"))
                continue
            if rec.sha256 and sha != rec.sha256:
                problems.append((rec.id, rec.path, "content changed since it was added"))
        return problems

    # ------------------------------------------------------------------ adding (see the module docstring)
    @staticmethod
    def prepare(entries: Sequence[Entry], root: str, check_images: bool = True
                ) -> tuple[AddImagesResult, list[Prepared | None]]:
        """Hash the files and check they are inside `root` and decode as images (over the pixel limit, truncated,
        HTML named .jpg, broken symlinks, ... are skipped with their reason); runs without the lock, because
        it reads every file. check_images=False only hashes (the window keeps such files as broken tiles, named
        with their reason, and opens a big folder faster). None = skipped."""
        # Imported here: opening a store stays a light import (no OpenCV / Pillow for the writer processes).
        from core.data.images import ImageLoadError, check_image, unreadable_reason

        result = AddImagesResult()
        prepared: list[Prepared | None] = []
        for file, split, defect, mask in entries:
            file = Path(file)
            rel = os.path.relpath(normalised(file), root)
            if _outside(rel):
                result.skipped.append((str(file), f"outside the project root {root}"))
                prepared.append(None)
                continue
            if file.is_dir():
                result.skipped.append((str(file), "is a folder, not an image file"))
                prepared.append(None)
                continue
            problem = unreadable_reason(file)
            if problem:
                result.skipped.append((str(file), f"cannot read: {problem.removeprefix('unreadable: ')}"))
                prepared.append(None)
                continue
            try:
                sha, size = file_facts(file)
                if check_images:
                    check_image(file)
            except OSError as exc:
                result.skipped.append((str(file), f"cannot read ({exc.strerror or exc})"))
                prepared.append(None)
                continue
            except ImageLoadError as exc:
                result.skipped.append((str(file), exc.reason))
                prepared.append(None)
                continue
            mask_rel = ""
            if mask is not None:
                mask_rel = Path(os.path.relpath(normalised(mask), root)).as_posix()
                if mask_rel.startswith("../"):
                    result.skipped.append((str(mask), f"mask outside the project root {root}; not recorded"))
                    mask_rel = ""
            prepared.append((Path(rel).as_posix(), sha, size, split, defect, mask_rel))
        return result, prepared

    def plan(self, prepared: Sequence[Prepared | None], result: AddImagesResult
             ) -> tuple[list[int | None], list[ImageRecord], list[ImageRecord]]:
        """Ids for the prepared files (None where skipped), the new rows, and changed existing rows. A path
        already in the store keeps its id; a new split, defect or mask for it becomes an update."""
        ids: list[int | None] = []
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
                if known < len(self.rows):
                    old = self.rows[known]
                    new = replace(old, split=split if split != "unsorted" else old.split,
                                  source_defect=defect or old.source_defect, mask_path=mask_rel or old.mask_path)
                    if new != old:
                        updates.append(new)
                continue
            rec = ImageRecord(len(self.paths) + len(new_rows), rel, sha, size, split, defect, mask_rel)
            pending[rel] = rec.id
            new_rows.append(rec)
            ids.append(rec.id)
        result.ids = [i for i in ids if i is not None]
        result.added = len(new_rows)
        return ids, new_rows, updates

    def stage(self, new_rows: Sequence[ImageRecord], updates: Sequence[ImageRecord]) -> list[tuple[Table, int]]:
        """Write (uncounted) rows: new images are appended, changes to existing ones go to the append-only
        update table. Returns the row counts the commit must publish."""
        counts: list[tuple[Table, int]] = []
        if updates:
            u0 = self._updates.n_rows
            now = utc_now().encode()
            self._updates.write(u0, {
                "image": [r.id for r in updates], "split": [SPLITS.index(r.split) for r in updates],
                "source_defect": [r.source_defect for r in updates],
                "mask_path": [r.mask_path for r in updates], "time": [now] * len(updates),
                "who": [self._h.user] * len(updates)})
            counts.append((self._updates, u0 + len(updates)))
        if new_rows:
            self._table.write(len(self.paths), image_columns(new_rows))
            counts.append((self._table, len(self.paths) + len(new_rows)))
        return counts

    def apply(self, new_rows: Sequence[ImageRecord], updates: Sequence[ImageRecord]) -> None:
        """After the commit: the in-memory view follows the file."""
        for rec in updates:
            self.rows[rec.id] = rec
        for rec in new_rows:
            self.paths.append(rec.path)
            self._index[rec.path] = rec.id
            self.rows.append(rec)
