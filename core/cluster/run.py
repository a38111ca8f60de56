"""The client side of cluster scoring: split the images into chunks, keep a bounded window of chunk tasks on the
cluster, and hand the results back in the images' order, into a growing run of the project store (merged as one
run, resumable) or streamed to a CSV / Parquet file. A task that raises is retried; a worker that dies has its
chunks re-run elsewhere by the scheduler; a chunk that still fails is reported by its files and the rest goes on.
"""

from __future__ import annotations

import csv
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.data.folders import ImageItem
from core.detectors.base import Detector, ProgressFn, StopFn, never_stop, no_progress
from core.detectors.errors import Cancelled
from core.detectors.results import ScoreResult
from core.evaluate import SCORE_CHUNK, RunWriter
from core.store import Store

Log = Callable[[str], None]
TaskFn = Callable[..., Any]  # score_chunk's signature: (model, index, paths, keep_maps) -> ChunkScores

RETRIES = 2  # a chunk whose task raises is tried this many more times (a worker's death is the scheduler's)


@dataclass
class ChunkFailure:
    """A chunk that failed after its retries (or whose workers kept dying): its files were not scored."""

    index: int
    paths: list[str]
    reason: str

    def __str__(self) -> str:
        shown = ", ".join(self.paths[:5]) + (f" and {len(self.paths) - 5} more" if len(self.paths) > 5 else "")
        return f"chunk {self.index} ({len(self.paths)} files) not scored: {self.reason}; files: {shown}"


@dataclass
class ClusterOutcome:
    n_images: int = 0  # images scored, each exactly once
    skipped: list[tuple[str, str]] = field(default_factory=list)  # unreadable files: (path, reason)
    failures: list[ChunkFailure] = field(default_factory=list)
    chunks: int = 0
    seconds: float = 0.0
    task_seconds: float = 0.0  # the workers' own time in the tasks, summed
    task_cpu_seconds: float = 0.0  # their CPU time in the tasks, summed
    workers: set[str] = field(default_factory=set)

    @property
    def failed_paths(self) -> list[str]:
        return [p for f in self.failures for p in f.paths]


class ClusterScorer:
    """Score with the model file `model_path` on a `distributed.Client`: the model is sent once per worker
    (a WorkerPlugin), removed again on close. Use as a context manager."""

    def __init__(self, client: Any, model_path: str | Path, *, log: Log = print, retries: int = RETRIES,
                 window: int | None = None) -> None:
        from core.cluster import tasks  # imports distributed: only when a cluster is used

        self.client, self.log, self.retries = client, log, retries
        self.model_path = Path(model_path)
        data, self.sha = tasks.model_bytes(self.model_path)
        self.plugin = tasks.plugin_name(self.sha)
        self._task: TaskFn = tasks.score_chunk
        client.register_plugin(tasks.ModelPlugin(data, self.sha, self.model_path.name), name=self.plugin)
        self.window = window
        self.outcome = ClusterOutcome()

    def __enter__(self) -> ClusterScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.client.unregister_worker_plugin(self.plugin)
        except Exception:  # noqa: BLE001 - a scheduler already gone has nothing left to free
            pass

    def workers(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    # -- the stream of chunks ---------------------------------------------------------------------------------
    def stream(self, items: Sequence[ImageItem], *, chunk: int = SCORE_CHUNK, keep_maps: bool = True,
               progress: ProgressFn = no_progress, should_stop: StopFn = never_stop,
               task: TaskFn | None = None) -> Iterator[tuple[list[ImageItem], ScoreResult]]:
        """Yield (scored items, their ScoreResult) chunk by chunk in the order of `items`. At most `window`
        chunks are on the cluster or waiting to be handed back, so the client's memory stays bounded whatever
        the number of images. Cancelled (should_stop) or Ctrl+C cancels the tasks still out."""
        import distributed

        task = task or self._task
        chunks = [list(items[i:i + chunk]) for i in range(0, len(items), chunk)]
        total, token = len(items), uuid.uuid4().hex[:10]
        window = self.window or max(4, 3 * self.workers())
        out = self.outcome = ClusterOutcome(chunks=len(chunks))
        started = time.perf_counter()
        pending: dict[Any, int] = {}
        finished = distributed.as_completed()
        ready: dict[int, Any] = {}  # chunk index -> ChunkScores or ChunkFailure, until its turn comes
        state = {"submitted": 0, "handed": 0, "done_images": 0}

        def submit_more() -> None:
            while state["submitted"] < len(chunks) and len(pending) + len(ready) < window:
                i = state["submitted"]
                fut = self.client.submit(task, self.plugin, i, [it.path for it in chunks[i]], keep_maps,
                                         key=f"score-chunk-{token}-{i}", retries=self.retries, pure=False)
                pending[fut] = i
                finished.add(fut)
                state["submitted"] += 1

        def collect(fut: Any) -> None:
            i = pending.pop(fut)
            if fut.status == "finished":
                ready[i] = fut.result()
            else:  # error after the retries, or KilledWorker: the workers running it kept dying
                exc = fut.exception() if fut.status == "error" else "cancelled"
                ready[i] = ChunkFailure(i, [it.path for it in chunks[i]], f"{type(exc).__name__}: {exc}"
                                        if isinstance(exc, BaseException) else str(exc))
            fut.release()

        interrupted = _CatchInterrupt()  # Ctrl+C lands between chunks, not inside Dask's machinery
        try:
            submit_more()
            while state["handed"] < len(chunks):
                interrupted.check()
                if should_stop():
                    raise Cancelled()
                if state["handed"] not in ready:
                    done = finished.next_batch(block=False)
                    if not done:
                        time.sleep(0.005)  # poll, so a stop request or Ctrl+C is seen within a moment
                    for fut in done:
                        collect(fut)
                while state["handed"] in ready:  # hand back in order
                    interrupted.check()
                    if should_stop():
                        raise Cancelled()
                    i = state["handed"]
                    got = ready.pop(i)
                    state["handed"] += 1
                    part = self._account(got, chunks[i])
                    state["done_images"] += len(chunks[i])
                    progress(state["done_images"], total, {"chunks": f"{state['handed']}/{len(chunks)}"})
                    if part is not None:
                        yield part
                submit_more()
        finally:
            interrupted.restore()
            if pending:  # cancelled, interrupted or failed: nothing keeps running on the cluster
                self.client.cancel(list(pending))
            out.seconds = time.perf_counter() - started

    def _account(self, got: Any, chunk_items: list[ImageItem]) -> tuple[list[ImageItem], ScoreResult] | None:
        out = self.outcome
        if isinstance(got, ChunkFailure):
            out.failures.append(got)
            self.log(f"error: {got}")
            return None
        for path, reason in got.skipped:
            out.skipped.append((path, reason))
            self.log(f"warning: skipped {path}: {reason}")
        out.task_seconds += got.seconds
        out.task_cpu_seconds += got.cpu_seconds
        out.workers.add(got.worker)
        if not got.kept:
            return None
        kept = [chunk_items[k] for k in got.kept]
        out.n_images += len(kept)
        return kept, ScoreResult(got.default_component, got.components, got.maps, got.geometry)

    # -- into the project store ------------------------------------------------------------------------------
    def score_into_store(self, store: Store, detector: Detector, items: Sequence[ImageItem], *,
                         run_id: str | None = None, progress: ProgressFn = no_progress,
                         should_stop: StopFn = never_stop, log: Log | None = None, chunk: int = SCORE_CHUNK,
                         on_chunk: Callable[[str, list[ImageItem], ScoreResult], None] | None = None,
                         task: TaskFn | None = None) -> str:
        """`core.evaluate.score_into_store` on the cluster: one growing run, written by this process chunk by
        chunk in the images' order, resumable with `run_id`. A run with failed chunks is left incomplete, so a
        resume retries just those images."""
        writer = RunWriter(store, detector, run_id)
        for chunk_items, part in self.stream(writer.todo(items), chunk=chunk, keep_maps=True, progress=progress,
                                             should_stop=should_stop, task=task):
            run = writer.write(chunk_items, part)
            if on_chunk is not None:
                on_chunk(run, chunk_items, part)
        if writer.run_id is None:
            raise ValueError("no readable images to score"
                             + (f" ({len(self.outcome.failed_paths)} in failed chunks)" if self.outcome.failures
                                else ""))
        if not self.outcome.failures:
            writer.finish()
        return writer.run_id

    # -- into a file -----------------------------------------------------------------------------------------
    def score_to_file(self, items: Sequence[ImageItem], out: str | Path, *, chunk: int = SCORE_CHUNK,
                      progress: ProgressFn = no_progress, should_stop: StopFn = never_stop,
                      task: TaskFn | None = None) -> ClusterOutcome:
        """Stream the scores to `out` (.csv, or .parquet when pyarrow is installed) in the images' order, a
        chunk at a time: one row per scored image (path, label, defect_type, score, every component)."""
        out = Path(out)
        suffix = out.suffix.lower()
        if suffix not in (".csv", ".parquet"):
            raise ValueError(f"{out}: cluster scoring writes .csv or .parquet (or, without --out, the project "
                             "store)")
        writer = _ParquetRows(out) if suffix == ".parquet" else _CsvRows(out)
        try:
            for chunk_items, part in self.stream(items, chunk=chunk, keep_maps=False, progress=progress,
                                                 should_stop=should_stop, task=task):
                writer.write(score_rows(chunk_items, part))
        finally:
            writer.close()
        return self.outcome


class _CatchInterrupt:
    """While a stream runs (on the main thread), the first Ctrl+C only sets a flag that the stream turns into a
    KeyboardInterrupt at a safe point (between chunks, after the last write); a second Ctrl+C is the usual one.
    A KeyboardInterrupt raised inside Dask's client can be swallowed by a callback and leave the run hanging."""

    def __init__(self) -> None:
        self.hit = False
        self.previous: Any = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.hit = True
        self.restore()

    def check(self) -> None:
        if self.hit:
            raise KeyboardInterrupt

    def restore(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None


def score_rows(items: Sequence[ImageItem], part: ScoreResult) -> list[dict[str, Any]]:
    """The rows of the `score --out` file (the same columns as local scoring's)."""
    return [{"path": it.path, "label": it.label, "defect_type": it.defect_type or "",
             "score": float(part.scores[i]), **{k: float(v[i]) for k, v in part.components.items()}}
            for i, it in enumerate(items)]


class _CsvRows:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = path.open("w", newline="", encoding="utf-8")
        self.writer: csv.DictWriter | None = None

    def write(self, rows: list[dict[str, Any]]) -> None:
        if self.writer is None:
            self.writer = csv.DictWriter(self.fh, fieldnames=list(rows[0]))
            self.writer.writeheader()
        self.writer.writerows(rows)
        self.fh.flush()

    def close(self) -> None:
        if self.writer is None:
            csv.writer(self.fh).writerow(["path"])
        self.fh.close()


class _ParquetRows:
    """Row groups written as chunks arrive (pyarrow's ParquetWriter), so the archive never sits in memory."""

    def __init__(self, path: Path) -> None:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ValueError(f"{path}: writing Parquet needs pyarrow (pip install pyarrow); or write a .csv") \
                from None
        path.parent.mkdir(parents=True, exist_ok=True)
        self.pa, self.pq, self.path = pa, pq, path
        self.writer: Any = None

    def write(self, rows: list[dict[str, Any]]) -> None:
        table = self.pa.Table.from_pylist(rows)
        if self.writer is None:
            self.writer = self.pq.ParquetWriter(str(self.path), table.schema)
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is None:
            self.pq.write_table(self.pa.table({"path": self.pa.array([], self.pa.string())}), str(self.path))
        else:
            self.writer.close()


def absolute_items(items: Sequence[ImageItem]) -> list[ImageItem]:
    """Paths as the workers must see them: absolute (the same mount point on every machine)."""
    return [replace(it, path=str(Path(it.path).absolute())) for it in items]
