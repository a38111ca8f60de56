"""What runs on a worker: the model, loaded once per worker process from bytes sent once (a WorkerPlugin, so a
worker that joins or restarts mid-run gets it too), and the task that scores one chunk of image paths with the
desktop's own `score_in_chunks`. Only paths travel to a worker; it reads the files from shared storage."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import distributed
import numpy as np

from core.data.folders import ImageItem
from core.data.image_source import ImageSource
from core.detectors.base import Detector
from core.detectors.results import MapGeometry
from core.evaluate import score_in_chunks
from core.modelio import load_detector


class ModelPlugin(distributed.WorkerPlugin):
    """Carries a model file's bytes to every worker once; the detector is built on the worker's first task and
    kept for the rest of the run (the client unregisters the plugin when the run ends)."""

    def __init__(self, model_bytes: bytes, sha: str, label: str) -> None:
        self.model_bytes, self.sha, self.label = model_bytes, sha, label
        self._detector: Detector | None = None
        self._lock = threading.Lock()
        self.loads = 0  # how often this worker built the detector: once per run

    def __getstate__(self) -> dict:
        return {"model_bytes": self.model_bytes, "sha": self.sha, "label": self.label}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["model_bytes"], state["sha"], state["label"])

    def detector(self) -> Detector:
        with self._lock:  # a worker with several threads builds it once
            if self._detector is None:
                fd, tmp = tempfile.mkstemp(prefix="anomaly-inspector-model-", suffix=".pt")
                try:
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(self.model_bytes)
                    self._detector = load_detector(tmp)
                finally:
                    os.unlink(tmp)
                self.loads += 1
            return self._detector


def plugin_name(sha: str) -> str:
    return f"anomaly-inspector-model-{sha[:16]}"


@dataclass
class ChunkScores:
    """One chunk's results as they travel back: rows for the images that decoded (`kept`: their positions in the
    chunk, in order), the files skipped with their reasons, and where and how fast it ran."""

    index: int
    kept: list[int]
    default_component: str
    components: dict[str, np.ndarray]
    maps: dict[str, list[np.ndarray]] = field(default_factory=dict)
    geometry: list[MapGeometry] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # the worker process's CPU time in the task: what a chunk costs, whatever the load
    decode_seconds: float = 0.0
    worker: str = ""


def score_chunk(model: str, index: int, paths: list[str], keep_maps: bool) -> ChunkScores:
    """Score the images at `paths` with the model plugin named `model`: the same decode, reduce and score as the
    desktop (one `score_in_chunks` chunk). Unreadable files come back by name, never as a failed task."""
    start, cpu = time.perf_counter(), time.process_time()
    worker = distributed.get_worker()
    plugin = worker.plugins[model]
    detector = plugin.detector()
    items = [ImageItem(p, "unsorted", "unknown") for p in paths]
    try:
        chunked = score_in_chunks(detector, items, chunk=max(1, len(items)), log=lambda _m: None,
                                  keep_maps=keep_maps)
    except ValueError:  # not one file of the chunk decodes: say why for each
        skipped: list[tuple[str, str]] = []
        ImageSource(paths, cache_bytes=0).decode_chunk(range(len(paths)),
                                                       lambda s: skipped.append((s.path, s.reason)))
        return ChunkScores(index, [], detector.default_component, {}, skipped=skipped,
                           seconds=time.perf_counter() - start, cpu_seconds=time.process_time() - cpu,
                           worker=worker.address)
    position = {p: i for i, p in enumerate(paths)}
    result = chunked.result
    maps = {k: v for k, v in result.maps.items() if v} if keep_maps else {}
    return ChunkScores(index, [position[it.path] for it in chunked.scored.items], result.default_component,
                       {k: np.asarray(v) for k, v in result.components.items()}, maps,
                       list(result.geometry), [(s.path, s.reason) for s in chunked.scored.skipped],
                       time.perf_counter() - start, time.process_time() - cpu, chunked.decode_seconds,
                       worker.address)


def model_bytes(path: str | Path) -> tuple[bytes, str]:
    """The model file's bytes and their SHA-256 (which names the plugin, so two models never mix)."""
    data = Path(path).read_bytes()
    return data, hashlib.sha256(data).hexdigest()
