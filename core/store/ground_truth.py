"""Ground truth from an MVTec AD folder as store entries and labels (Store.import_mvtec).

The folder is read by core.data.folders, the same reader evaluation uses, so the store and `evaluate`
agree on which images and masks a folder holds. Only the translation into store terms is here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from core.store.errors import StoreError
from core.store.images import Entry
from core.store.records import ImportResult, LabelRecord
from core.vocabulary import IMAGE_SUFFIXES


def mvtec_entries(folder: Path) -> tuple[list[Entry], ImportResult]:
    """(file, split, defect type, mask) for every image of the folder; non-image files are listed in the
    result's `skipped`, defect test images without a mask in `missing_masks`."""
    # Imported here, not at the top: opening a store must stay a light import (the crash test starts many
    # writer processes), and the folder readers may grow image-decoding dependencies.
    from core.data.folders import scan_mvtec

    if not ((folder / "train").is_dir() or (folder / "test").is_dir()):
        raise StoreError(f"{folder}: not an MVTec AD folder (no train/ or test/ inside)")
    result = ImportResult()
    entries: list[Entry] = []
    for item in scan_mvtec(folder).items:
        path = Path(item.path)
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            result.skipped.append((str(path), "not an image file (by suffix)"))
            continue
        defect = item.defect_type or ""
        mask = Path(item.mask_path) if item.mask_path else None
        if defect and mask is None and item.split == "test":
            result.missing_masks.append(str(path))
        result.masks += mask is not None
        entries.append((path, item.split, defect, mask))
    return entries, result


def label_changes(entries: Sequence[Entry], ids: Sequence[int | None], current: Callable[[int], LabelRecord],
                  result: ImportResult) -> list[tuple[int, str, str, None]]:
    """The labels the import sets: good, or defect of the folder's type. Labels a human has set are kept
    (listed in kept_human): an import must not undo a review."""
    changes = []
    for (path, _split, defect, _mask), image_id in zip(entries, ids, strict=True):
        if image_id is None:
            continue
        label = "defect" if defect else "good"
        cur = current(image_id)
        if cur.label == label and cur.defect_type == defect:
            result.unchanged += 1
        elif cur.source == "human":
            result.kept_human.append(str(path))
        else:
            changes.append((image_id, label, defect, None))
    return changes
