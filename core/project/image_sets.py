"""What trains and what is judged: the rules, one place, for a project store and for a bare folder.

- Training set: images labeled good (by a person or imported ground truth) AND marked for training
  (split "train"). MVTec `train/good` imports as such; in the Folder layout a fixed, seeded share of the good
  images (HOLDOUT_SHARE, anomalib's `normal_split_ratio`) is held out for judging and the rest trains; in a
  flat folder nothing trains until the engineer marks images (`label ... --train`, or the gallery).
- Judged set: every image labeled good or defect that is not used for training. Thresholds, ROC curves,
  confusion matrices and `evaluate`'s report are computed on it only: a model has fit its training images,
  so counting them would bias a threshold low exactly where it matters.
- Suspicious and unlabeled images are neither: they are counted so reports can say what was left out.

The held-out share is chosen by a hash of each image's path relative to the folder, not by shuffling, so a
folder gives the same split on every machine and adding images later does not move the ones already split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.data.folders import ImageFolder, ImageItem, scan_folder
from core.project.location import find_project_store
from core.store import Store

HOLDOUT_SHARE = 0.2
HOLDOUT_SEED = 0


class TooFewTrainingImages(ValueError):
    """Fewer training images than a detector needs; the message says how many and how to mark more."""


@dataclass
class ImageSets:
    root: Path
    origin: str  # "store" (a project store decides), or the folder layout: "mvtec", "folder", "flat"
    train: list[ImageItem] = field(default_factory=list)
    judged: list[ImageItem] = field(default_factory=list)
    # Store ids, aligned with train / judged (empty when the sets come from a bare folder).
    train_ids: list[int] = field(default_factory=list)
    judged_ids: list[int] = field(default_factory=list)
    n_unlabeled: int = 0
    n_suspicious: int = 0
    store_path: Path | None = None
    supervised: bool = False  # split for a supervised detector: train and judged hold both classes (labeled_split)

    @property
    def where(self) -> str:
        return str(self.store_path or self.root)

    def counts(self) -> dict[str, int]:
        judged_defect = sum(it.label == "defect" for it in self.judged)
        return {"train": len(self.train), "judged_good": len(self.judged) - judged_defect,
                "judged_defect": judged_defect, "suspicious": self.n_suspicious, "unlabeled": self.n_unlabeled}

    def summary(self) -> str:
        c = self.counts()
        left = [f"{c[k]} {k}" for k in ("suspicious", "unlabeled") if c[k]]
        tail = f"; left out: {', '.join(left)}" if left else ""
        if self.supervised:  # labeled_split.py: both classes train, a share of each is held out
            train_defect = sum(it.label == "defect" for it in self.train)
            return (f"training on {c['train'] - train_defect} good and {train_defect} defect images; judging "
                    f"{c['judged_good']} good and {c['judged_defect']} defect images held out{tail}")
        return (f"training on {c['train']} good images; judging {c['judged_good']} good and "
                f"{c['judged_defect']} defect images not used for training{tail}")

    def require_training(self, needed: int, detector: str) -> None:
        """Raise TooFewTrainingImages with a message saying how many there are and how to mark more."""
        n = len(self.train)
        if n >= max(1, needed):
            return
        if self.origin == "flat" or self.origin == "store":
            how = (f"mark good images for training: `anomaly-inspector label {self.where} IMAGE good --train` "
                   f"(or --from-file LIST for many), or in the window select them in the gallery and choose "
                   f"\"Use for training\"")
        else:
            how = "add good images to the folder (MVTec: train/good/, Folder layout: good/)"
        raise TooFewTrainingImages(
            f"{self.where}: {n} image{'s' if n != 1 else ''} labeled good and marked for training; "
            f"{detector} needs at least {max(1, needed)}. To train, {how}.")


def held_out(relative_paths: Sequence[str], share: float = HOLDOUT_SHARE, seed: int = HOLDOUT_SEED) -> set[str]:
    """The paths kept out of training for judging: the `share` of them with the smallest seeded hash (at
    least one when there are two or more, never all of them)."""
    n = len(relative_paths)
    if n < 2 or share <= 0:
        return set()
    k = min(n - 1, max(1, round(share * n)))
    ranked = sorted(relative_paths, key=lambda p: hashlib.sha256(f"{seed}:{p}".encode()).hexdigest())
    return set(ranked[:k])


def relative_to_root(path: str, root: Path) -> str:
    p = Path(path)
    return p.relative_to(root).as_posix() if p.is_relative_to(root) else p.as_posix()


def folder_held_out(folder: ImageFolder, share: float = HOLDOUT_SHARE, seed: int = HOLDOUT_SEED) -> set[str]:
    """The good images (their paths as in folder.items) of a Folder-layout folder kept out of training."""
    good = {relative_to_root(it.path, folder.root): it.path for it in folder.items if it.label == "good"}
    return {good[rel] for rel in held_out(list(good), share, seed)}


def sets_from_folder(folder: ImageFolder, share: float = HOLDOUT_SHARE, seed: int = HOLDOUT_SEED) -> ImageSets:
    """The sets a folder's layout implies (what a new project store for it would hold)."""
    sets = ImageSets(folder.root, folder.layout)
    if folder.layout == "mvtec":
        for it in folder.items:
            (sets.train if it.split == "train" and it.label == "good" else sets.judged).append(it)
        return sets
    if folder.layout == "folder":
        hold = folder_held_out(folder, share, seed)
        for it in folder.items:
            if it.label == "good" and it.path not in hold:
                sets.train.append(ImageItem(it.path, "train", it.label, it.defect_type, it.mask_path))
            else:
                sets.judged.append(ImageItem(it.path, "test", it.label, it.defect_type, it.mask_path))
        return sets
    sets.n_unlabeled = len(folder.items)
    return sets


def role(label: str, split: str) -> str:
    """What an image is in its project: "train", "judged", "suspicious" or "unlabeled" (the rules above)."""
    if label == "good" and split == "train":
        return "train"
    if label in ("good", "defect"):
        return "judged"
    return "suspicious" if label == "suspicious" else "unlabeled"


def sets_from_store(store: Store) -> ImageSets:
    """The sets a project store holds: its review labels and which images are marked for training."""
    sets = ImageSets(store.root, "store", store_path=store.path)
    labels = store.labels()
    for rec in store.images():
        lab = labels[rec.id]
        path = str(store.root / rec.path)
        mask = str(store.root / rec.mask_path) if rec.mask_path else None
        kind = role(lab.label, rec.split)
        if kind == "train":
            sets.train.append(ImageItem(path, "train", "good", None, mask))
            sets.train_ids.append(rec.id)
        elif kind == "judged":
            sets.judged.append(ImageItem(path, "test", lab.label, lab.defect_type or rec.source_defect or None,
                                         mask))
            sets.judged_ids.append(rec.id)
        elif kind == "suspicious":
            sets.n_suspicious += 1
        else:
            sets.n_unlabeled += 1
    return sets


def image_sets(data: str | Path, share: float = HOLDOUT_SHARE, seed: int = HOLDOUT_SEED) -> ImageSets:
    """The sets of DATA: a store file, a folder with a project store (the store decides), or a bare folder
    (its layout decides). Raises FolderError / StoreError with plain messages."""
    store_path = find_project_store(data)
    if store_path is None:
        return sets_from_folder(scan_folder(data), share, seed)
    with Store.open(store_path, readonly=True) as store:
        return sets_from_store(store)


def project_items(data: str | Path) -> list[ImageItem]:
    """Every image of DATA with what is known of it: the store's images and labels when there is a project
    store, else the folder layout's items."""
    store_path = find_project_store(data)
    if store_path is None:
        return list(scan_folder(data).items)
    with Store.open(store_path, readonly=True) as store:
        return store_items(store)


def store_items(store: Store) -> list[ImageItem]:
    """The store's images as items (absolute paths, review label, split), in id order."""
    labels = store.labels()
    items = []
    for rec in store.images():
        lab = labels[rec.id]
        items.append(ImageItem(str(store.root / rec.path), rec.split,
                               lab.label if lab.label in ("good", "defect") else "unknown",
                               lab.defect_type or rec.source_defect or None,
                               str(store.root / rec.mask_path) if rec.mask_path else None))
    return items
