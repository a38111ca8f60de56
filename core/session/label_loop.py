"""The label - train - review loop, without Qt: what the window offers to train next, and in which order the
engineer should review the images the model has not been told about.

- `review_keys`: a sort key per image for the gallery's "review next" order. Unlabeled scored images come first,
  the ones the current model is least sure about first: inside the T1..T2 review band, nearest its middle;
  with one threshold (T1 = T2), nearest it. Distances are measured in units of the band's half-width (or of the
  scores' interquartile range when there is no band), so "inside the band" is a key below 1. Labeled images
  follow in the same order (a second look), unscored images come last (NaN).
- `training_offer`: after labeling, whether to offer training the supervised `cnn` (enough good and defect
  labels, and the shown run is not one) or retraining (new labels since the shown run was trained: for the cnn
  every new good or defect label, for an unsupervised detector the new good labels, which it can train on once
  they are marked for training). The offer names the counts; the window shows it as a banner with a button.

Labels count as "new" when a person set them after the shown run was created (their time stamps are ISO 8601
UTC of one fixed width, so they compare as strings).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.detectors.registry import detector_class
from core.project.image_sets import ImageSets
from core.project.labeled_split import label_counts, supervised_sets

SUPERVISED_DETECTOR = "cnn"
# Labeled images come after every unlabeled one in the review order, whatever their distance.
LABELED_OFFSET = 1e9
# Fewest new labels that make a retrain worth offering.
RETRAIN_MIN_NEW = 5


def review_keys(scores: np.ndarray, labels: Sequence[str], t1: float | None = None, t2: float | None = None,
                centre: float | None = None) -> np.ndarray:
    """A sort key per image (ascending = review first; NaN = unscored, last). `labels` are store labels
    ("unlabeled" = not reviewed); `t1`, `t2` the review band (equal: one threshold); `centre` a threshold to use
    when there is no band (e.g. 0.5 for a probability); without either, the median score."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labeled = np.asarray([lab != "unlabeled" for lab in labels], dtype=bool)
    if labeled.shape[0] != scores.shape[0]:
        raise ValueError(f"review_keys: {scores.shape[0]} scores for {labeled.shape[0]} labels")
    finite = scores[np.isfinite(scores)]
    if finite.size == 0:
        return np.full(scores.shape, np.nan)
    q1, q3 = np.percentile(finite, [25, 75])
    spread = float(q3 - q1) or float(finite.std()) or 1.0
    band = t1 is not None and t2 is not None and math.isfinite(t1) and math.isfinite(t2)
    if band and t2 > t1:
        mid, unit = (t1 + t2) / 2.0, (t2 - t1) / 2.0
    elif band:
        mid, unit = float(t1), spread
    else:
        mid, unit = (float(centre) if centre is not None else float(np.median(finite))), spread
    keys = np.abs(scores - mid) / unit
    keys[labeled] += LABELED_OFFSET
    keys[~np.isfinite(scores)] = np.nan
    return keys


def review_order(scores: np.ndarray, labels: Sequence[str], t1: float | None = None, t2: float | None = None,
                 centre: float | None = None) -> np.ndarray:
    """Image indices in review order (unscored last, ties by index)."""
    keys = review_keys(scores, labels, t1, t2, centre)
    return np.lexsort((np.arange(keys.shape[0]), np.where(np.isnan(keys), np.inf, keys)))


@dataclass(frozen=True)
class TrainingOffer:
    """What the window offers: train (or retrain) `detector`. `mark_for_training` lists good images to mark
    for training first (an unsupervised retrain on new good labels). `key` identifies the offer, so a
    dismissed one stays dismissed until the situation changes (another run, or another kind of offer)."""

    action: str  # "train" or "retrain"
    detector: str
    message: str
    button: str
    key: str
    counts: dict[str, int] = field(default_factory=dict)
    mark_for_training: tuple[int, ...] = ()


def _new_since(records: Sequence[Any], since: str) -> list[Any]:
    return [r for r in records if r.source == "human" and r.time and r.time > since]


def training_offer(sets: ImageSets, records: Sequence[Any], run_detector: str | None = None,
                   run_created: str = "", run_id: str | None = None, splits: Sequence[str] | None = None,
                   ) -> TrainingOffer | None:
    """The offer to make after labeling (None: nothing worth offering).

    `sets`: the project's unsupervised sets (core.project.sets_from_store); `records`: the store's review labels
    by image id; `run_detector`, `run_created`, `run_id`: the shown run (None before the first); `splits`: each
    image's split (for the unsupervised retrain, which needs good images not yet marked for training)."""
    supervised = detector_class(SUPERVISED_DETECTOR)
    counts = label_counts(sets)
    enough = counts["good"] >= supervised.min_train_images and counts["defect"] >= supervised.min_defect_labels
    run_is_supervised = run_detector is not None and detector_class(run_detector).supervised
    new = _new_since(records, run_created) if run_detector is not None else []
    if run_is_supervised:
        new_labels = [r for r in new if r.label in ("good", "defect")]
        if enough and len(new_labels) >= RETRAIN_MIN_NEW:
            n_def = sum(r.label == "defect" for r in new_labels)
            return TrainingOffer(
                "retrain", run_detector, f"{len(new_labels)} labels since {run_detector} was trained "
                f"({n_def} defect). Retrain it on all {counts['good']} good and {counts['defect']} defect labels?",
                f"Retrain {run_detector}", f"retrain:{run_id}:{run_detector}", counts)
        return None
    if enough:
        held = supervised_sets(sets)
        n_judge = len(held.judged)
        return TrainingOffer(
            "train", SUPERVISED_DETECTOR, f"{counts['defect']} defect and {counts['good']} good images are labeled: "
            f"enough to train the supervised {SUPERVISED_DETECTOR} on them ({n_judge} held out to judge it).",
            f"Train {SUPERVISED_DETECTOR}", f"train:{run_id}:{SUPERVISED_DETECTOR}", counts)
    if run_detector is not None and splits is not None:
        new_good = [r.image_id for r in new if r.label == "good" and splits[r.image_id] != "train"]
        if len(new_good) >= RETRAIN_MIN_NEW:
            return TrainingOffer(
                "retrain", run_detector, f"{len(new_good)} images labeled good since {run_detector} was trained. "
                f"Use them for training and retrain {run_detector}? ({supervised.min_defect_labels - counts['defect']}"
                f" more defect labels would allow the supervised {SUPERVISED_DETECTOR}.)"
                if counts["defect"] < supervised.min_defect_labels else
                f"{len(new_good)} images labeled good since {run_detector} was trained. Use them for training and "
                f"retrain {run_detector}?", f"Retrain {run_detector}", f"retrain:{run_id}:{run_detector}", counts,
                tuple(new_good))
    return None


def offer_for(session: Any) -> TrainingOffer | None:
    """training_offer for a ReviewSession's open project and shown run (None without a project)."""
    store = session.store
    if store is None:
        return None
    run = session.run
    info = store.run_info(run.run_id) if run is not None and run.run_id else None
    splits = [im.split for im in store.images()]
    return training_offer(session.sets(), store.labels(), info.detector if info else None,
                          info.created if info else "", info.run_id if info else None, splits)


def review_keys_for(session: Any, t1: float | None = None, t2: float | None = None) -> np.ndarray | None:
    """review_keys for a ReviewSession's shown run (None before the first run). A probability score (the
    supervised cnn's) without a band is centred on 0.5."""
    store, run = session.store, session.run
    if store is None or run is None:
        return None
    labels = [lb.label for lb in store.labels()]
    scores = np.asarray(run.scores, dtype=np.float64)[:len(labels)]
    centre = 0.5 if run.default_component == "probability" else None
    return review_keys(scores, labels, t1, t2, centre)
