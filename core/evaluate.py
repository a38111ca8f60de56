"""Train on a folder's good images, score its test images, and measure: the engine behind
`anomaly-inspector evaluate`, the demo and the benchmarks."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core import metrics
from core.data.folders import ImageFolder, ImageItem, scan_folder
from core.data.images import ImageLoadError, Skipped, decode_image, decode_mask, load_images
from core.detectors.base import Detector, ProgressFn, StopFn, never_stop, no_progress
from core.detectors.registry import create
from core.detectors.results import ScoreResult, pixel_map, shared_map_ranges

Log = Callable[[str], None]


@dataclass
class LoadedImages:
    items: list[ImageItem]
    images: list[np.ndarray]
    skipped: list[Skipped] = field(default_factory=list)


class SkipReport:
    """The files a run could not read, each logged once ("skipped PATH: REASON") however often it is tried
    (in the Folder layout a good image is both a training and a test image)."""

    def __init__(self, log: Log = print) -> None:
        self._log = log
        self.skipped: list[Skipped] = []
        self._seen: set[str] = set()

    def __call__(self, item: Skipped) -> None:
        if item.path in self._seen:
            return
        self._seen.add(item.path)
        self.skipped.append(item)
        self._log(str(item))

    def lines(self) -> list[str]:
        return [str(s) for s in self.skipped]


def load_items(items: Sequence[ImageItem], log: Log = print, skips: SkipReport | None = None) -> LoadedImages:
    """Decode the images of `items`; a bad file is reported by name (once per `skips`) and left out, the
    rest goes on."""
    report = skips if skips is not None else SkipReport(log)
    images, kept, skipped = load_images([it.path for it in items], on_skip=report)
    by_path = {it.path: it for it in items}
    return LoadedImages([by_path[p] for p in kept], images, skipped)


def training_fingerprint(items: Sequence[ImageItem], root: Path) -> str:
    """Identifies the training set (relative paths and sizes) so a model records what it learned from."""
    h = hashlib.sha256()
    for it in sorted(items, key=lambda i: i.path):
        p = Path(it.path)
        rel = p.relative_to(root) if p.is_relative_to(root) else p
        h.update(f"{rel.as_posix()}\0{p.stat().st_size}\n".encode())
    return h.hexdigest()


def train_detector(folder: ImageFolder, name: str, params: dict[str, Any], *, progress: ProgressFn = no_progress,
                   log: Log = print, skips: SkipReport | None = None) -> tuple[Detector, LoadedImages]:
    train = load_items(folder.train, log, skips)
    if not train.images:
        raise ValueError(f"{folder.root}: no usable training images (good images) found")
    detector = new_detector(name, params, train, folder)
    detector.fit(train.images, progress=progress)
    return detector, train


def new_detector(name: str, params: dict[str, Any], train: LoadedImages, folder: ImageFolder) -> Detector:
    """A detector stamped with what it will learn from (fingerprint, count, folder)."""
    detector = create(name, **params)
    detector.metadata["train_fingerprint"] = training_fingerprint(train.items, folder.root)
    detector.metadata["n_train"] = len(train.images)
    detector.metadata["train_folder"] = str(folder.root)
    return detector


def image_labels(items: Sequence[ImageItem]) -> np.ndarray:
    return np.array([it.label == "defect" for it in items], dtype=bool)


def measure(result: ScoreResult, items: Sequence[ImageItem], log: Log = print) -> dict[str, Any]:
    """AUROC / AUPR / F1-max per component, pixel AUROC and PRO per component where masks exist."""
    labels = image_labels(items)
    out: dict[str, Any] = {"image_auroc": {}, "image_aupr": {}, "f1_max": {}, "f1_max_threshold": {}}
    if labels.all() or not labels.any():
        out["note"] = "image metrics need both good and defect test images"
        return out
    for name, scores in result.components.items():
        out["image_auroc"][name] = round(metrics.auroc(labels, scores), 4)
        out["image_aupr"][name] = round(metrics.aupr(labels, scores), 4)
        f1, thr = metrics.f1_max(labels, scores)
        out["f1_max"][name], out["f1_max_threshold"][name] = round(f1, 4), thr
    masks = _masks(items, log)
    if masks and result.maps:
        # Pixel metrics on masks at most PIXEL_EVAL_SIDE px on the longer side: a few hundred large images
        # would otherwise mean sorting 10^8 pixels per component for no change in the first decimals.
        masks = [_shrink_mask(m) for m in masks]
        out["pixel_auroc"], out["pixel_pro"] = {}, {}
        for name, maps in result.maps.items():
            dense = [pixel_map(m, g) for m, g in zip(maps, result.geometry, strict=True)]
            dense = [_fit_to(d, m.shape) for d, m in zip(dense, masks, strict=True)]
            out["pixel_auroc"][name] = round(metrics.pixel_auroc(masks, dense), 4)
            out["pixel_pro"][name] = round(metrics.pro_score(masks, dense), 4)
    return out


PIXEL_EVAL_SIDE = 256


def _shrink_mask(mask: np.ndarray) -> np.ndarray:
    scale = PIXEL_EVAL_SIDE / max(mask.shape)
    if scale >= 1:
        return mask
    size = (max(1, round(mask.shape[1] * scale)), max(1, round(mask.shape[0] * scale)))
    return cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0


def _fit_to(dense: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if dense.shape == shape:
        return dense
    interp = cv2.INTER_AREA if dense.shape[0] > shape[0] else cv2.INTER_LINEAR
    return cv2.resize(dense, (shape[1], shape[0]), interpolation=interp)


def _masks(items: Sequence[ImageItem], log: Log = print) -> list[np.ndarray]:
    """Masks for every test image (good ones: empty) — only if every defect image has one. A mask file that
    cannot be read is named, and the run goes on without pixel metrics (they would be biased without it)."""
    defects = [it for it in items if it.label == "defect"]
    if not defects or any(it.mask_path is None for it in defects):
        return []
    masks = []
    for it in items:
        try:
            if it.mask_path:
                masks.append(decode_mask(it.mask_path))
            else:
                masks.append(np.zeros(decode_image(it.path).shape[:2], bool))
        except ImageLoadError as exc:
            log(f"skipped mask {exc.path}: {exc.reason} (no pixel metrics for this run)")
            return []
    return masks


def evaluate(data: str | Path, name: str, params: dict[str, Any], *, progress: ProgressFn = no_progress,
             log: Log = print) -> tuple[dict[str, Any], Detector, ScoreResult, LoadedImages]:
    """Train on DATA's good training images, score its test images, return the JSON report."""
    folder = scan_folder(data)
    skips = SkipReport(log)
    t0 = time.perf_counter()
    detector, train = train_detector(folder, name, params, progress=progress, log=log, skips=skips)
    train_seconds = time.perf_counter() - t0
    test = load_items(folder.test, log, skips)
    t1 = time.perf_counter()
    result = detector.score(test.images, progress=progress)
    score_seconds = time.perf_counter() - t1
    report = {
        "detector": detector.name,
        "params": detector.params,
        "data": str(folder.root),
        **measure(result, test.items, log),
        "default_component": result.default_component,
        "train_seconds": round(train_seconds, 2),
        "stopped_by": detector.fit_report.stopped_by if detector.fit_report else None,
        "epochs": detector.fit_report.epochs if detector.fit_report else None,
        "score_seconds": round(score_seconds, 2),
        "score_images_per_second": round(len(test.images) / max(score_seconds, 1e-9), 2),
        "n_train": len(train.images),
        "n_test": len(test.images),
        "n_test_defect": int(image_labels(test.items).sum()),
        "skipped_files": skips.lines(),
    }
    return report, detector, result, test


@dataclass
class TrainScoreOutcome:
    detector: Detector
    result: ScoreResult
    scored: LoadedImages  # the images the result rows refer to, in order
    train: LoadedImages
    # One colour range per map component over the whole run; computed here, in the worker, because it reads
    # every map (pixel maps of thousands of images) and must not run on the window's thread.
    map_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.map_ranges:
            self.map_ranges = shared_map_ranges(self.result.maps)


def train_and_score(folder: ImageFolder, name: str, params: dict[str, Any], *, progress: ProgressFn = no_progress,
                    should_stop: StopFn = never_stop, log: Log = print) -> TrainScoreOutcome:
    """What the window's Train button does: fit on the good training images, then score every image of
    the folder. Progress info carries a "stage" (loading, training, scoring) for the status line."""

    def staged(stage: str) -> ProgressFn:
        return lambda done, total, info: progress(done, total, {"stage": stage, **info})

    skips = SkipReport(log)
    train = load_items(folder.train, log, skips)
    if not train.images:
        raise ValueError(f"{folder.root}: no good training images found (MVTec: train/good; folder: good/)")
    detector = new_detector(name, params, train, folder)
    detector.fit(train.images, progress=staged("training"), should_stop=should_stop)
    scored = load_items(folder.items, log, skips)
    result = detector.score(scored.images, progress=staged("scoring"), should_stop=should_stop)
    return TrainScoreOutcome(detector, result, scored, train)
