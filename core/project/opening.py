"""Open a folder's project store, creating it on first use from what the folder's layout says.

- MVTec AD: its ground truth is imported (train/good marked for training, test/* judged).
- Folder layout (good/, <defect>/): labels imported; the held-out share of good images is marked for judging
  and the rest for training (image_sets.held_out), defects for judging.
- Flat folder: images added unlabeled; the engineer labels them and marks good ones for training.
A folder's existing store gets the images that appeared since it was last opened (unlabeled). A store file
opens as it is. The window and the command line both come through here, so they agree.
"""

from __future__ import annotations

from pathlib import Path

from core.data.folders import ImageFolder, scan_folder
from core.project.image_sets import HOLDOUT_SEED, HOLDOUT_SHARE, folder_held_out
from core.project.location import STORE_SUFFIXES, is_store_file, project_store_path
from core.store import AddImagesResult, ImportResult, Store
from core.vocabulary import IMAGE_SUFFIXES


def layout_entries(folder: ImageFolder, share: float = HOLDOUT_SHARE,
                   seed: int = HOLDOUT_SEED) -> list[tuple[Path, str, str, Path | None]]:
    """Folder layout as import entries (file, split, defect type, mask): good images split train / test by the
    seeded hold-out, defect images test."""
    hold = folder_held_out(folder, share, seed)
    entries = []
    for it in folder.items:
        if it.label == "good":
            split = "test" if it.path in hold else "train"
        else:
            split = "test"
        entries.append((Path(it.path), split, it.defect_type or ("" if it.label == "good" else "defect"),
                        Path(it.mask_path) if it.mask_path else None))
    return entries


def populate(store: Store, folder: ImageFolder, check_images: bool = True) -> ImportResult | None:
    """Fill a new project store from the folder's layout; returns the import result (None for a flat folder).
    check_images: leave out files that do not decode (Store.add_images); the window keeps them as broken tiles."""
    if folder.layout == "mvtec":
        return store.import_mvtec(folder.root, check_images=check_images)
    if folder.layout == "folder":
        return store.import_ground_truth(layout_entries(folder), check_images=check_images)
    store.add_folder(folder.root, check_images=check_images)
    return None


def add_new_files(store: Store, folder: Path, check_images: bool = True) -> AddImagesResult | None:
    """Images that appeared in the folder since the store last saw it (a camera keeps writing), added
    unlabeled. Only new paths are hashed, so reopening a folder of thousands of frames stays quick."""
    known = {rec.path for rec in store.images()}
    root = store.root.resolve()
    new = [p for p in sorted(folder.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
           and not any(part.startswith(".") for part in p.relative_to(folder).parts)
           and p.resolve().is_relative_to(root) and p.resolve().relative_to(root).as_posix() not in known]
    return store.add_images(new, check_images=check_images) if new else None


def open_project(target: str | Path, *, create: bool = True, readonly: bool = False,
                 check_images: bool = True) -> Store:
    """The project store of TARGET (a store file, or a folder whose store is created when missing)."""
    target = Path(target)
    if is_store_file(target) or (target.suffix.lower() in STORE_SUFFIXES and not target.is_dir()):
        return Store.open(target, readonly=readonly)  # a missing .h5 is "no such store file", not a folder
    path = project_store_path(target)
    if path.exists() or not create:
        store = Store.open(path, readonly=readonly)
        if not readonly and target.is_dir():
            try:
                add_new_files(store, target, check_images)
            except BaseException:
                store.close()
                raise
        return store
    folder = scan_folder(target)
    store = Store.create(path, target)
    try:
        populate(store, folder, check_images)
    except BaseException:
        store.close()
        path.unlink(missing_ok=True)
        raise
    return store
