"""Adding images to a store: the one write that spans two parts, because a new image gets its empty rows
in both label tables in the same commit (a store never holds an image without its label rows).

The files are hashed before the lock is taken, so the GUI thread is not blocked while thousands of files
are read (see Images.prepare).
"""

from __future__ import annotations

from collections.abc import Sequence

from core.store.errors import StoreError
from core.store.handle import StoreHandle
from core.store.images import Entry, Images
from core.store.labels import Labels
from core.store.records import AddImagesResult, ImageRecord


class ImageAdder:
    def __init__(self, handle: StoreHandle, images: Images, labels: Labels) -> None:
        self._h = handle
        self._images = images
        self._labels = labels

    def add(self, entries: Sequence[Entry], check_images: bool = True) -> tuple[AddImagesResult, list[int | None]]:
        """Add (file, split, source defect, mask) entries; ids per entry, None where one was skipped (a file
        that does not decode, unless check_images is False: see Images.prepare)."""
        with self._h.lock:
            self._h.check_writable()
            root = str(self._images.root)
        result, prepared = Images.prepare(entries, root, check_images)
        with self._h.lock:
            self._h.check_open()
            ids, new_rows, updates = self._images.plan(prepared, result)
            if new_rows or updates:
                self.write(new_rows, updates)
        return result, ids

    def write(self, new_rows: list[ImageRecord], updates: list[ImageRecord]) -> None:
        """New images and their empty label rows (both tracks) are counted by one commit. Lock held."""
        try:
            counts = self._images.stage(new_rows, updates)
            if new_rows:
                counts += self._labels.stage_new_images(len(self._images.paths), len(new_rows))
            self._h.commit(counts)
        except (OSError, ValueError) as exc:
            self._h.text.rollback()
            raise StoreError(f"{self._h.path}: could not add images ({exc})") from exc
        self._images.apply(new_rows, updates)
        self._labels.apply_new_images(rec.id for rec in new_rows)
