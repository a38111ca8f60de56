"""Cluster scoring on this machine: frames/s of local scoring, `local:1` and `local:2`, the overhead per chunk
(an empty task's round trip, the scheduler's throughput of tasks, the client's merge), and a projection for N
machines from those measurements. Writes its section of docs/benchmarks.md.

    PYTHONPATH=$PWD python -m benchmarks.cluster_bench [--frames 256] [--detector padim] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.markdown_section import replace_section

SECTION = "cluster scoring on Dask (issue 17)"


def write_frames(folder: Path, n: int, side: int) -> list[Path]:
    """Textured 512 px JPEGs (a few with a bright defect), ~60 KB each like a line camera's reduced frames."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 255, (side, side, 3), dtype=np.uint8), (0, 0), 3)
    paths = []
    for k in range(n):
        img = cv2.add(base, rng.integers(0, 40, (side, side, 3), dtype=np.uint8))
        if k % 9 == 4:
            cv2.circle(img, (side // 3, side // 2), side // 20, (255, 255, 255), -1)
        path = folder / f"frame{k:05d}.jpg"
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


def noop(x: int) -> int:
    return x


def task_overheads(client, n: int = 200) -> dict[str, float]:
    """An empty task's round trip one at a time (latency) and n at once (the scheduler's per-task cost)."""
    lat = []
    for i in range(30):
        t = time.perf_counter()
        client.submit(noop, i, pure=False).result()
        lat.append(time.perf_counter() - t)
    t = time.perf_counter()
    futures = client.map(noop, range(n), pure=False)
    client.gather(futures)
    batch = time.perf_counter() - t
    return {"round_trip_ms": 1000 * statistics.median(lat), "per_task_ms": 1000 * batch / n}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=256)
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--chunk", type=int, default=32)
    ap.add_argument("--detector", default="padim")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    import torch

    from core.cluster import ClusterScorer, connect
    from core.data.folders import ImageItem
    from core.data.image_source import decode_for
    from core.detectors.registry import create
    from core.detectors.results import ScoreResult
    from core.evaluate import score_in_chunks
    from core.store import Store

    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="cluster-bench-"))
    paths = write_frames(tmp / "frames", args.frames, args.side)
    mb = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
    settings = {"image_size": 128} if args.detector == "padim" else {"image_size": 256, "patch_size": 16,
                                                                     "stride": 8}
    det = create(args.detector, **settings)
    det.fit([decode_for(p, det.input_side()) for p in paths[:16]])
    model = tmp / "model.ai"
    det.save(model)
    items = [ImageItem(str(p), "unsorted", "unknown") for p in paths]
    n_chunks = -(-len(items) // args.chunk)
    rows: dict[str, dict[str, float]] = {}

    for threads in (2, 1):  # the desktop uses every core; one thread is what a single worker process gets
        torch.set_num_threads(threads)
        score_in_chunks(det, items[: args.chunk], log=lambda m: None, chunk=args.chunk)  # warm
        t, cpu = time.perf_counter(), time.process_time()
        local = score_in_chunks(det, items, log=lambda m: None, chunk=args.chunk)
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        rows[f"local scoring, {threads} torch thread{'s' if threads > 1 else ''}"] = {
            "fps": len(items) / wall, "wall": wall, "per_chunk": wall / n_chunks, "cpu": cpu / n_chunks}
    torch.set_num_threads(2)

    over: dict[str, float] = {}
    for n in (1, 2):
        t = time.perf_counter()
        with connect(f"local:{n}", timeout=120) as client:
            client.wait_for_workers(n, timeout=120)
            started = time.perf_counter() - t
            with ClusterScorer(client, model, log=lambda m: None) as scorer:
                scorer.score_to_file(items[: args.chunk * n], tmp / "warm.csv", chunk=args.chunk)  # model load
                t = time.perf_counter()
                out = scorer.score_to_file(items, tmp / f"local{n}.csv", chunk=args.chunk)
                wall = time.perf_counter() - t
                assert out.n_images == len(items) and not out.failures
            if n == 2:
                over = task_overheads(client)
        task = out.task_seconds / out.chunks
        rows[f"`--cluster local:{n}` ({n} worker process{'es' if n > 1 else ''}, 1 thread each)"] = {
            "fps": len(items) / wall, "wall": wall, "per_chunk": task, "startup": started,
            "cpu": out.task_cpu_seconds / out.chunks,
            "overhead": wall * n / out.chunks - task}
    got = np.loadtxt(tmp / "local2.csv", delimiter=",", skiprows=1, usecols=3)
    max_rel = float(np.max(np.abs(got - local.result.scores) / np.maximum(1e-12, np.abs(local.result.scores))))

    # The client's merge of one chunk: rows to CSV are negligible; a project-store append (maps, fsync) is not.
    with Store.create(tmp / "bench.aistore.h5", tmp / "frames") as store:
        store.add_folder(tmp / "frames")
        part = local.result
        run = store.begin_run(det.name, det.params, {}, part.default_component, list(part.components),
                              list(part.maps))
        t = time.perf_counter()
        for start in range(0, len(items), args.chunk):
            sl = slice(start, start + args.chunk)
            chunk = ScoreResult(part.default_component, {k: v[sl] for k, v in part.components.items()},
                                {k: v[sl] for k, v in part.maps.items()})
            store.append_to_run(run, [it.path for it in items[sl]], chunk.components, chunk.maps)
        append_ms = 1000 * (time.perf_counter() - t) / n_chunks
    load_after = os.getloadavg()

    one = rows["`--cluster local:1` (1 worker process, 1 thread each)"]
    # A core's cost of one chunk: its CPU time in the task (what a loaded machine cannot inflate much) plus the
    # measured overhead per chunk; the wall-clock figure of this loaded machine is given beside it.
    chunk_s = one["cpu"] + max(0.0, one["overhead"])
    per_core_fps = args.chunk / chunk_s
    wall_fps = args.chunk / (one["per_chunk"] + max(0.0, one["overhead"]))
    sched_cap = 1000 / over["per_task_ms"] * args.chunk
    store_cap = 1000 / append_ms * args.chunk

    lines = [
        f"Generated {args.frames} JPEG frames of {args.side} px ({mb * 1000:.0f} KB each), scored by "
        f"`{args.detector}` ({', '.join(f'{k}={v}' for k, v in settings.items())}) in chunks of {args.chunk} "
        f"on this 2-core machine ({platform.python_version()}, CPU torch). Other sessions were using the CPU: "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after (2 cores), so the absolute "
        "numbers are pessimistic and noisy; the ratios and the overheads are what carries over.",
        "",
        "| how | frames/s | wall s | s per chunk (in the task) | CPU s per chunk | overhead per chunk "
        "| cluster start-up |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows.items():
        ov = f"{1000 * r['overhead']:.0f} ms" if "overhead" in r else "-"
        st = f"{r['startup']:.1f} s" if "startup" in r else "-"
        lines.append(f"| {name} | {r['fps']:.1f} | {r['wall']:.1f} | {r['per_chunk']:.2f} | {r['cpu']:.2f} | {ov} "
                     f"| {st} |")
    two = rows["`--cluster local:2` (2 worker processes, 1 thread each)"]
    lines += [
        "",
        f"Reading: `local:2` ran at {two['fps'] / one['fps']:.2f}x `local:1` while each chunk cost about the same CPU "
        f"({two['cpu']:.2f} vs {one['cpu']:.2f} s): with a load average near {load_before[0]:.0f} on 2 cores there "
        "was no idle second core to win, so the speed-up of N workers shows in the CPU figures, not here. Local "
        "scoring with 2 torch threads suffers most from the load (OpenMP threads waiting for a core); one thread "
        "per process, as the workers run, holds up.",
        "",
        f"`local:2` scores equal local scoring's (largest relative difference {max_rel:.1e}). Overhead per chunk "
        "is the wall time per chunk per worker minus the time inside the task (shipping paths and results, "
        "the scheduler, the client's in-order merge). The start-up (the scheduler and worker processes) is paid "
        "once per run; importing torch and the core and building the model happen on each worker's first chunk, "
        "once per worker (a warm-up, left out of the timing).",
        "",
        f"Scheduler, measured on `local:2`: an empty task's round trip {over['round_trip_ms']:.1f} ms one at a "
        f"time, {over['per_task_ms']:.2f} ms per task when {200} are queued at once. The client writing one chunk "
        f"into the project store (scores and maps, flushed): {append_ms:.1f} ms; to CSV: well under 1 ms.",
        "",
        "**Projection for N machines.** One worker process (one core) spends "
        f"{one['cpu']:.2f} CPU s on a chunk, plus {1000 * max(0.0, one['overhead']):.0f} ms of overhead: "
        f"{per_core_fps:.1f} frames/s per idle core (on this loaded machine's wall clock: {wall_fps:.1f}). "
        "Chunks are independent, so N machines of c cores give about N x c x "
        f"{per_core_fps:.1f} frames/s until one of the shared parts saturates:",
        "",
        f"- the scheduler: {over['per_task_ms']:.2f} ms per task caps a run at about {sched_cap:,.0f} frames/s "
        f"with chunks of {args.chunk} (bigger chunks raise it);",
        f"- the client's merge: into the project store about {store_cap:,.0f} frames/s ({append_ms:.1f} ms per "
        "chunk, one writer); to CSV / Parquet far more, so a very large archive goes to a file;",
        f"- the shared storage: every frame is read once, {mb:.2f} MB here, so N x c x {per_core_fps:.1f} "
        f"frames/s needs N x c x {per_core_fps * mb:.1f} MB/s from the file server.",
        "",
        "| machines x cores | projected frames/s | limited by |",
        "| --- | ---: | --- |",
    ]
    for machines, cores in ((1, 2), (4, 8), (16, 8), (64, 16)):
        compute = machines * cores * per_core_fps
        caps = {"cores": compute, "scheduler": sched_cap, "project-store merge": store_cap}
        limit = min(caps, key=caps.get)
        to_file = f" (to a CSV file: {min(compute, sched_cap):,.0f})" if limit == "project-store merge" else ""
        lines.append(f"| {machines} x {cores} | {caps[limit]:,.0f} | {limit}{to_file} |")
    lines += ["", f"Command: `PYTHONPATH=$PWD python -m benchmarks.cluster_bench --frames {args.frames} "
                  f"--detector {args.detector}`."]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        replace_section(Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md", SECTION, body)


if __name__ == "__main__":
    main()
