"""Train on a project's training set, score its judged set, and measure: the engine behind
`anomaly-inspector evaluate`, the window's Train button, the demo and the benchmarks. Which images train
and which are judged is decided by core.project (the store, or the folder's layout)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core import metrics
from core.data.folders import ImageItem
from core.data.image_source import ImageSource, image_shape
from core.data.images import Skipped, load_images
from core.data.photometric import DriftWarning
from core.detectors.base import Detector, ProgressFn, StopFn, never_stop, no_progress
from core.detectors.errors import Cancelled
from core.detectors.registry import create, detector_class
from core.detectors.results import MapGeometry, ScoreResult, map_layout, shared_map_ranges
from core.pixel_eval import PixelMapSpool, has_masks, pixel_metrics
from core.project import ImageSets, image_sets
from core.project.labeled_split import require_for, sets_for, trained_on
from core.store import Store, StoreError

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


def load_source(items: Sequence[ImageItem], min_side: int | None = None, log: Log = print,
                skips: SkipReport | None = None) -> LoadedImages:
    """The readable images of `items` as a lazy source (decoded on demand, reduced to `min_side`, a bounded
    cache); each unreadable file is reported by name (once per `skips`) and left out. Decodes every file once
    to find them."""
    source, skipped = ImageSource([it.path for it in items], min_side=min_side).readable(
        on_skip=skips if skips is not None else SkipReport(log))
    by_path = {it.path: it for it in items}
    return LoadedImages([by_path[p] for p in source.paths], source, skipped)


# Images scored per chunk: large enough to keep a batch of patches or a backbone busy, small enough that a chunk
# of decoded 5 MP frames (60 MB each as float32 at full resolution) stays within a few GB.
SCORE_CHUNK = 32


@dataclass
class ChunkedScores:
    result: ScoreResult
    scored: LoadedImages  # the images the result rows refer to, in order (a lazy source: pixels are not kept)
    decode_seconds: float = 0.0


def score_in_chunks(detector: Detector, items: Sequence[ImageItem], *, progress: ProgressFn = no_progress,
                    should_stop: StopFn = never_stop, log: Log = print, chunk: int = SCORE_CHUNK,
                    on_chunk: Callable[[list[ImageItem], ScoreResult], None] | None = None,
                    keep_maps: bool = True, skips: SkipReport | None = None) -> ChunkedScores:
    """Score `items` a chunk at a time: decode a chunk (in parallel, reduced to what the detector needs), score
    it, hand it to `on_chunk` (e.g. to store it or show it), drop its pixels. Peak memory is one chunk of
    decoded images plus the results, whatever the number of images. Unreadable files are named and left out."""
    source = ImageSource([it.path for it in items], min_side=detector.input_side(), cache_bytes=0)
    parts: list[ScoreResult] = []
    kept: list[ImageItem] = []
    skipped: list[Skipped] = []
    report = skips if skips is not None else SkipReport(log)

    def skip(s: Skipped) -> None:
        skipped.append(s)
        report(s)

    total = len(items)
    for start in range(0, total, chunk):
        if should_stop():
            raise Cancelled()
        indices, images = source.decode_chunk(range(start, min(start + chunk, total)), skip)
        if not images:
            continue
        done_before = start

        def chunk_progress(done: int, _total: int, info: dict, base: int = done_before) -> None:
            progress(min(total, base + done), total, info)

        part = detector.score(images, progress=chunk_progress, should_stop=should_stop)
        chunk_items = [items[i] for i in indices]
        if source.min_side:  # decoded reduced: maps still lie on the file's full resolution
            part.geometry = [replace(g, original_shape=image_shape(it.path))
                             for g, it in zip(part.geometry, chunk_items, strict=True)]
        parts.append(part)
        kept.extend(chunk_items)
        if on_chunk is not None:
            on_chunk(chunk_items, part)
        if not keep_maps:  # written elsewhere (the store): the result keeps scores only
            part.maps, part.extras = {k: [] for k in part.maps}, {k: [] for k in part.extras}
        del images
    if not parts:
        raise ValueError("no readable images to score" + (f" ({len(skipped)} skipped)" if skipped else ""))
    # The scored images stay reachable (decoded again on demand, as the detector saw them), never held.
    again = ImageSource([it.path for it in kept], min_side=source.min_side, cache_bytes=0)
    return ChunkedScores(ScoreResult.concatenate(parts), LoadedImages(kept, again, skipped), source.decode_seconds)


def training_fingerprint(items: Sequence[ImageItem], root: Path) -> str:
    """Identifies the training set (relative paths and sizes) so a model records what it learned from."""
    h = hashlib.sha256()
    for it in sorted(items, key=lambda i: i.path):
        p = Path(it.path)
        rel = p.relative_to(root) if p.is_relative_to(root) else p
        h.update(f"{rel.as_posix()}\0{p.stat().st_size}\n".encode())
    return h.hexdigest()


def train_detector(sets: ImageSets, name: str, params: dict[str, Any], *, progress: ProgressFn = no_progress,
                   should_stop: StopFn = never_stop, log: Log = print,
                   skips: SkipReport | None = None) -> tuple[Detector, LoadedImages]:
    """Fit detector NAME on the project's training set (good images marked for training).

    Too few training images, before or after unreadable files are left out, is TooFewTrainingImages with a
    message saying how many there are and how to mark more. A supervised detector trains on the labeled
    training share of both classes (core.project.labeled_split) and gets their labels."""
    cls = detector_class(name)
    sets = sets_for(sets, cls)
    needed = cls.min_train_images
    require_for(sets, cls, name)
    detector = create(name, **params)
    train = load_source(sets.train, detector.input_side(), log, skips)
    if len(train.images) < needed or not train.images:
        readable = ImageSets(sets.root, sets.origin, train=list(train.items), judged=list(sets.judged),
                             store_path=sets.store_path, supervised=sets.supervised)
        require_for(readable, cls, name)
    stamp_training(detector, train, sets.root)
    extra = {}
    if cls.supervised:
        extra["labels"] = image_labels(train.items)
        detector.metadata["trained_on"] = trained_on(train.items, sets.root)  # left out of its thresholds
    detector.fit(train.images, progress=progress, should_stop=should_stop, **extra)
    return detector, train


def stamp_training(detector: Detector, train: LoadedImages, root: Path) -> None:
    """Record in the detector what it will learn from (fingerprint, count, folder)."""
    detector.metadata["train_fingerprint"] = training_fingerprint(train.items, root)
    detector.metadata["n_train"] = len(train.images)
    detector.metadata["train_folder"] = str(root)


def image_labels(items: Sequence[ImageItem]) -> np.ndarray:
    return np.array([it.label == "defect" for it in items], dtype=bool)


def measure(result: ScoreResult, items: Sequence[ImageItem], log: Log = print,
            spool: PixelMapSpool | None = None) -> dict[str, Any]:
    """AUROC / AUPR / F1-max per component, pixel AUROC and PRO per component where masks exist (from `spool`,
    the maps spooled while scoring, else from the result's maps)."""
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
    if not has_masks(items):
        return out
    if spool is None and result.maps and all(result.maps.values()):
        spool = PixelMapSpool()
        try:
            spool.add(result.maps, result.geometry, items)
            out.update(pixel_metrics(spool, items, log))
        finally:
            spool.close()
    elif spool is not None and spool.components:
        out.update(pixel_metrics(spool, items, log))
    return out


def judge_held_out(detector: Detector, sets: ImageSets, log: Log = print) -> dict[str, Any]:
    """Score the judged set (for a supervised detector: the held-out labeled share) and measure it: what
    `train` reports for a supervised detector, which has no other honest figure."""
    chunked = score_in_chunks(detector, sets.judged, log=log, keep_maps=False)
    items = chunked.scored.items
    measured = measure(chunked.result, items, log)
    return {"n_judged": len(items), "n_judged_defect": int(image_labels(items).sum()),
            **{k: measured[k] for k in ("image_auroc", "image_aupr", "f1_max", "note") if k in measured}}


def evaluate(data: str | Path, name: str, params: dict[str, Any], *, progress: ProgressFn = no_progress,
             log: Log = print, keep_maps: bool = False) -> tuple[dict[str, Any], Detector, ScoreResult, LoadedImages]:
    """Train on DATA's training set, score its judged set (labeled images not used for training), return the
    JSON report. DATA is a folder (its project store decides if it has one, else its layout) or a store.
    The returned result holds scores only, unless `keep_maps` (small sets: tests, screenshots): memory then
    grows with the number of images."""
    sets = sets_for(image_sets(data), detector_class(name))  # supervised: a held-out share of each class
    skips = SkipReport(log)
    t0 = time.perf_counter()
    detector, train = train_detector(sets, name, params, progress=progress, log=log, skips=skips)
    train_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    # Maps are spooled at pixel-metric size where pixel metrics need them (pixel_eval.py), never kept.
    spool = PixelMapSpool() if has_masks(sets.judged) else None
    try:
        chunked = score_in_chunks(
            detector, sets.judged, progress=progress, log=log, keep_maps=keep_maps, skips=skips,
            on_chunk=(lambda items, part: spool.add(part.maps, part.geometry, items)) if spool else None)
        result, test = chunked.result, chunked.scored
        score_seconds = time.perf_counter() - t1
        measured = measure(result, test.items, log, spool)
    finally:
        if spool is not None:
            spool.close()
    report = {
        "detector": detector.name,
        "params": detector.params,
        "data": str(sets.where),
        "sets_from": sets.origin,
        **measured,
        "default_component": result.default_component,
        "train_seconds": round(train_seconds, 2),
        "stopped_by": detector.fit_report.stopped_by if detector.fit_report else None,
        "epochs": detector.fit_report.epochs if detector.fit_report else None,
        "score_seconds": round(score_seconds, 2),
        "score_images_per_second": round(len(test.items) / max(score_seconds, 1e-9), 2),
        "score_decode_share": round(min(1.0, chunked.decode_seconds / max(score_seconds, 1e-9)), 3),
        "n_train": len(train.images),
        "n_test": len(test.items),
        "n_test_defect": int(image_labels(test.items).sum()),
        "left_out": {"suspicious": sets.n_suspicious, "unlabeled": sets.n_unlabeled},
        **({"n_train_defect": int(image_labels(train.items).sum()), "judged": "held-out labeled share"}
           if sets.supervised else {}),
        "skipped_files": skips.lines(),
    }
    drift = detector.drift_warning(result)
    report["drift_warning"] = drift.to_json() if drift else None
    return report, detector, result, test


class MapRangeSample:
    """A bounded random sample of a run's map values per component, for its shared colour range (the same
    percentiles as shared_map_ranges) without keeping every map in memory."""

    def __init__(self, per_map: int = 64, seed: int = 0) -> None:
        self.per_map = per_map
        self._rng = np.random.default_rng(seed)
        self._values: dict[str, list[np.ndarray]] = {}

    def add(self, maps: dict[str, list[np.ndarray]]) -> None:
        for name, grids in maps.items():
            for g in grids:
                flat = np.asarray(g, np.float32).ravel()
                flat = flat[np.isfinite(flat)]
                if flat.size > self.per_map:
                    flat = self._rng.choice(flat, self.per_map, replace=False)
                self._values.setdefault(name, []).append(flat)

    def ranges(self) -> dict[str, tuple[float, float]]:
        return shared_map_ranges({k: v for k, v in self._values.items() if v})


STORED_MAP_SIDE = 256  # pixel maps are stored at most this long on their longer side (the viewer resizes anyway)


def bounded_maps(maps: dict[str, list[np.ndarray]], geometry: Sequence[MapGeometry]) -> dict[str, list[np.ndarray]]:
    """Maps as the store keeps them: pixel maps (patch = stride = 1) larger than STORED_MAP_SIDE are shrunk
    (area average), so a run of full-resolution 5 MP maps stays small; patch-grid maps are small already. A
    pixel map of any size is stretched over its image when shown (results.pixel_map), so nothing else changes."""
    out: dict[str, list[np.ndarray]] = {}
    for comp, grids in maps.items():
        kept = []
        for grid, geom in zip(grids, geometry, strict=False):
            h, w = np.shape(grid)[:2]
            if geom.patch == 1 and geom.stride == 1 and max(h, w) > STORED_MAP_SIDE:
                scale = STORED_MAP_SIDE / max(h, w)
                size = (max(1, round(w * scale)), max(1, round(h * scale)))
                grid = cv2.resize(np.asarray(grid, np.float32), size, interpolation=cv2.INTER_AREA)
            kept.append(grid)
        out[comp] = kept
    return out


class RunWriter:
    """One growing run of the store, written chunk by chunk; the desktop's and the cluster's scoring both write
    through it. With `run_id` it resumes that run: `todo` leaves out what it has scored, and a sample of its maps
    seeds the colour range. The run is begun at the first chunk (the components are known then) and finished
    with the colour range over every map."""

    def __init__(self, store: Store, detector: Detector, run_id: str | None = None) -> None:
        self.store, self.detector, self.run_id = store, detector, run_id
        self.sample = MapRangeSample()
        self.done: set[int] = set()
        self.levels: list[np.ndarray] = []  # each scored chunk's lighting, for the drift warning
        self.drift: DriftWarning | None = None  # the first warning of this run (said once), then the final
        if run_id is not None:
            info = store.run_info(run_id)
            if info.complete:
                raise StoreError(f"{store.path}: run {run_id} is already complete")
            if info.detector != detector.name:
                raise StoreError(f"{store.path}: run {run_id} was scored by {info.detector}, not {detector.name}")
            self.done = set(store.run_image_ids(run_id).tolist())
            for image_id in sorted(self.done)[:: max(1, len(self.done) // 200)]:
                self.sample.add({k: [v] for k, v in store.maps(run_id, image_id).items()})

    def todo(self, items: Sequence[ImageItem]) -> list[ImageItem]:
        return [it for it in items if self.store.image_id(it.path) not in self.done]

    def write(self, chunk_items: Sequence[ImageItem], part: ScoreResult) -> str:
        """One scored chunk into the run (begun here on the first chunk); on disk when this returns."""
        if self.run_id is None:
            self.run_id = self.store.begin_run(
                self.detector.name, self.detector.params,
                {**self.detector.metadata, "map_layout": map_layout(part.geometry)},
                part.default_component, list(part.components), list(part.maps))
        maps = bounded_maps(part.maps, part.geometry)
        self.store.append_to_run(self.run_id, [it.path for it in chunk_items], part.components, maps)
        self.sample.add(maps)
        if part.levels is not None:
            self.levels.append(part.levels)
        return self.run_id

    def drift_so_far(self) -> DriftWarning | None:
        """The lighting warning over the chunks written so far (None: in range, or nothing to compare)."""
        if not self.levels:
            return None
        return self.detector.drift_warning(ScoreResult("x", {"x": np.zeros(0)}, levels=np.concatenate(self.levels)))

    def finish(self) -> str:
        meta = self.store.run_info(self.run_id).metadata
        final = self.drift_so_far()
        extra = {"drift_warning": final.to_json()} if final else {}
        self.store.finish_run(self.run_id, {**meta, "map_ranges": self.sample.ranges(), **extra})
        return self.run_id


def score_into_store(store: Store, detector: Detector, items: Sequence[ImageItem], *, run_id: str | None = None,
                     progress: ProgressFn = no_progress, should_stop: StopFn = never_stop, log: Log = print,
                     chunk: int = SCORE_CHUNK,
                     on_chunk: Callable[[str, list[ImageItem], ScoreResult], None] | None = None,
                     extras_out: dict[int, dict[str, Any]] | None = None,
                     on_drift: Callable[[DriftWarning], None] | None = None) -> str:
    """Score `items` (images of the store) into a run that grows chunk by chunk: each chunk is on disk as soon
    as it is scored, so a window shows it at once and a cancel or crash keeps it. With `run_id`, resume that
    run: only the images it has not scored yet are scored. Returns the run id; Cancelled leaves the run
    incomplete and resumable. `extras_out` collects each image's small extras (e.g. OIAD morph strips, which
    the store does not keep) by image id."""
    writer = RunWriter(store, detector, run_id)

    def write(chunk_items: list[ImageItem], part: ScoreResult) -> None:
        run = writer.write(chunk_items, part)
        if writer.drift is None:  # said once per run, as soon as the scored images show it
            writer.drift = writer.drift_so_far()
            if writer.drift is not None:
                log(f"warning: {writer.drift.message}")
                if on_drift is not None:
                    on_drift(writer.drift)
        if extras_out is not None and part.extras:
            for k, it in enumerate(chunk_items):
                extras_out[store.image_id(it.path)] = {name: values[k] for name, values in part.extras.items()}
        if on_chunk is not None:
            on_chunk(run, chunk_items, part)

    todo = writer.todo(items)
    if todo:
        score_in_chunks(detector, todo, progress=progress, should_stop=should_stop, log=log, chunk=chunk,
                        on_chunk=write, keep_maps=False)
    if writer.run_id is None:
        raise ValueError("no readable images to score")
    return writer.finish()


@dataclass
class StoredRun:
    """A run scored into the project store, and what the window keeps of it in memory: the model (to save or
    score more with) and each image's small extras."""

    detector: Detector
    run_id: str
    extras: dict[int, dict[str, Any]] = field(default_factory=dict)
    n_train: int = 0


MODELS_FOLDER = "models"


def save_beside_store(detector: Detector, store: Store) -> Path:
    """Save a freshly trained model in the project's models/ folder and record where in its metadata, so an
    interrupted run can be resumed with the same model."""
    folder = store.path.parent / MODELS_FOLDER
    folder.mkdir(exist_ok=True)
    path = folder / f"{detector.name}-{time.strftime('%Y%m%d-%H%M%S')}.ai"
    k = 1
    while path.exists():
        path = folder / f"{detector.name}-{time.strftime('%Y%m%d-%H%M%S')}-{k}.ai"
        k += 1
    detector.metadata["model_file"] = f"{MODELS_FOLDER}/{path.name}"  # relative to the store's folder
    detector.save(path)
    return path


def train_into_store(store: Store, sets: ImageSets, name: str, params: dict[str, Any], items: Sequence[ImageItem],
                     *, progress: ProgressFn = no_progress, should_stop: StopFn = never_stop,
                     log: Log = print) -> StoredRun:
    """What the window's Train button does: fit on the project's training set, save the model beside the store,
    then score `items` into a run that grows chunk by chunk (shown as it lands; a cancel keeps what was scored
    and the run can be resumed with the saved model). Progress info carries the stage and, once the run
    exists, its id ("run")."""
    detector, train = train_detector(sets, name, params, progress=_staged(progress, "training"),
                                     should_stop=should_stop, log=log)
    save_beside_store(detector, store)
    return score_keeping_extras(store, detector, items, progress=progress, should_stop=should_stop, log=log,
                                n_train=len(train.images))


def score_keeping_extras(store: Store, detector: Detector, items: Sequence[ImageItem], *, run_id: str | None = None,
                         progress: ProgressFn = no_progress, should_stop: StopFn = never_stop, log: Log = print,
                         n_train: int = 0) -> StoredRun:
    """score_into_store for the window: progress info names the run as soon as it exists, extras are kept."""
    extras: dict[int, dict[str, Any]] = {}
    # "run": its id once it exists; "chunks": chunks committed by this call; "drift": the lighting warning
    state: dict[str, Any] = {}

    def with_run(done: int, total: int, info: dict) -> None:
        progress(done, total, {**info, "stage": "scoring", **state})

    last = [0, len(items)]  # the latest progress (done, total), repeated when a chunk is committed

    def committed(run: str, *_: Any) -> None:
        state["run"], state["chunks"] = run, state.get("chunks", 0) + 1
        with_run(last[0], last[1], {})

    def counting(done: int, total: int, info: dict) -> None:
        last[:] = [done, total]
        with_run(done, total, info)

    def drifted(warning: DriftWarning) -> None:
        state["drift"] = warning.message
        with_run(last[0], last[1], {})

    run = score_into_store(store, detector, items, run_id=run_id, progress=counting, should_stop=should_stop, log=log,
                           on_chunk=committed, extras_out=extras, on_drift=drifted)
    return StoredRun(detector, run, extras, n_train)


def _staged(progress: ProgressFn, stage: str) -> ProgressFn:
    return lambda done, total, info: progress(done, total, {"stage": stage, **info})
