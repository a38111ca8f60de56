"""What trains and what is judged for a supervised detector (one that learns from good AND defect labels).

The rules beside image_sets.py's, from the same stored labels:
- The pool is every image labeled good or defect (by a person, or imported ground truth), marked for training
  or not: a classifier needs both classes. Suspicious and unlabeled images stay out, as for every detector.
- Of each class a seeded share (SUPERVISED_HOLDOUT_SHARE) is held out and judged; the rest trains. Held out
  per class, so a project with few defects still judges some of them. The share is chosen by the seeded hash
  of each path relative to the project (image_sets.held_out), so a project splits the same on every machine.
- Thresholds and reports of a supervised run count the held-out images, and images labeled after it was
  trained, only: the run's metadata lists the images it trained on (`trained_on`), which are left out.
- Too few labels is TooFewLabels (a TooFewTrainingImages), naming how many good and defect labels there are
  and how many more are needed, before anything is decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.data.folders import ImageItem
from core.project.image_sets import HOLDOUT_SEED, ImageSets, TooFewTrainingImages, held_out, relative_to_root
from core.store import StoreError

SUPERVISED_HOLDOUT_SHARE = 0.2


class TooFewLabels(TooFewTrainingImages):
    """Fewer good or defect labels than a supervised detector needs; the message gives the counts."""


def _pool(sets: ImageSets) -> list[tuple[ImageItem, int | None]]:
    train_ids = sets.train_ids or [None] * len(sets.train)
    judged_ids = sets.judged_ids or [None] * len(sets.judged)
    pool = [(ImageItem(it.path, it.split, "good", it.defect_type, it.mask_path), i)
            for it, i in zip(sets.train, train_ids, strict=True)]
    pool += [(it, i) for it, i in zip(sets.judged, judged_ids, strict=True) if it.label in ("good", "defect")]
    return pool


def label_counts(sets: ImageSets) -> dict[str, int]:
    """Good and defect labels a supervised detector can learn from (training and judged images together)."""
    if sets.supervised:
        items = sets.train + sets.judged
    else:
        items = [it for it, _ in _pool(sets)]
    defect = sum(it.label == "defect" for it in items)
    return {"good": len(items) - defect, "defect": defect}


def supervised_sets(sets: ImageSets, share: float = SUPERVISED_HOLDOUT_SHARE, seed: int = HOLDOUT_SEED) -> ImageSets:
    """The training and judged sets of a supervised detector, from the unsupervised rules' sets of the same
    project (train items keep their labels: good or defect)."""
    if sets.supervised:
        return sets
    pool = _pool(sets)
    hold: set[str] = set()
    for label in ("good", "defect"):
        rel = [relative_to_root(it.path, sets.root) for it, _ in pool if it.label == label]
        hold |= held_out(rel, share, seed)
    out = ImageSets(sets.root, sets.origin, n_unlabeled=sets.n_unlabeled, n_suspicious=sets.n_suspicious,
                    store_path=sets.store_path, supervised=True)
    for it, image_id in pool:
        judged = relative_to_root(it.path, sets.root) in hold
        item = ImageItem(it.path, "test" if judged else "train", it.label, it.defect_type, it.mask_path)
        (out.judged if judged else out.train).append(item)
        if image_id is not None:
            (out.judged_ids if judged else out.train_ids).append(image_id)
    return out


def sets_for(sets: ImageSets, detector_cls: Any) -> ImageSets:
    """The sets detector class `detector_cls` trains and is judged on (supervised: re-split from the labels)."""
    return supervised_sets(sets) if getattr(detector_cls, "supervised", False) else sets


def require_labels(sets: ImageSets, detector_cls: Any, name: str) -> None:
    """Raise TooFewLabels unless the project has enough good and defect labels for `detector_cls`."""
    counts = label_counts(sets)
    need_good = max(2, int(detector_cls.min_train_images))
    need_defect = max(2, int(detector_cls.min_defect_labels))
    if counts["good"] >= need_good and counts["defect"] >= need_defect:
        return
    missing = []
    if counts["defect"] < need_defect:
        missing.append(f"{need_defect - counts['defect']} more defect label"
                       f"{'s' if need_defect - counts['defect'] != 1 else ''}")
    if counts["good"] < need_good:
        missing.append(f"{need_good - counts['good']} more good label{'s' if need_good - counts['good'] != 1 else ''}")
    raise TooFewLabels(
        f"{sets.where}: {counts['good']} good and {counts['defect']} defect labels; {name} is supervised and needs "
        f"at least {need_good} good and {need_defect} defect labels ({int(SUPERVISED_HOLDOUT_SHARE * 100)} % of "
        f"each are held out to judge it): label {' and '.join(missing)} (in the window: D for defect, G for good; "
        f"or `anomaly-inspector label {sets.where} IMAGE defect`).")


def require_for(sets: ImageSets, detector_cls: Any, name: str) -> None:
    """The check before training `name`: enough labels (supervised) or enough training images (the others)."""
    if getattr(detector_cls, "supervised", False):
        require_labels(sets, detector_cls, name)
    else:
        sets.require_training(detector_cls.min_train_images, name)


def trained_on(items: Sequence[ImageItem], root: Path) -> list[str]:
    """What a supervised model records it trained on: its images' paths relative to the project."""
    return sorted(relative_to_root(it.path, root) for it in items)


def trained_ids(store: Any, metadata: dict[str, Any]) -> np.ndarray | None:
    """Store ids of the images a supervised run's model trained on (None: the run is not supervised)."""
    paths = metadata.get("trained_on")
    if paths is None:
        return None
    ids = []
    for rel in paths:
        try:
            ids.append(store.image_id(rel))
        except (StoreError, KeyError, ValueError):
            continue  # an image removed from the project since
    return np.asarray(ids, dtype=np.int64)


def judged_for_model(sets: ImageSets, metadata: dict[str, Any]) -> list[ImageItem]:
    """The judged images for a trained model: for a supervised one (its metadata lists `trained_on`), every
    labeled image it did not train on (held out, or labeled since); for the others the sets' judged images."""
    paths = metadata.get("trained_on")
    if paths is None:
        return list(sets.judged)
    trained = set(paths)
    return [it for it, _ in _pool(sets) if relative_to_root(it.path, sets.root) not in trained]
