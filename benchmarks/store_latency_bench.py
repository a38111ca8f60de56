"""Label commit latency of the store, and its size with a full run of maps.

    python benchmarks/store_latency_bench.py [--images 10000] [--labels 2000] [--out docs/store-latency.md]

Builds a store of N tiny image files, then times N_labels `set_label` calls (each = HDF5 write + two
flushes + fsync, i.e. what the GUI waits for when a label is acknowledged). Also times opening the store
(which replays the audit log), storing a run with scores and four 28x28 maps per image, and reports the
file size, so the "10k images stay a few hundred MB" budget is checked with numbers.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.store import Store  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--labels", type=int, default=2_000)
    ap.add_argument("--grid", type=int, default=28, help="map side on the patch grid")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "docs" / "store-latency.md"))
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    nrng = np.random.default_rng(args.seed)

    work = Path(tempfile.mkdtemp(prefix="store-latency-", dir=os.environ.get("BENCH_TMP")))
    try:
        img = work / "img"
        img.mkdir()
        for i in range(args.images):
            # real (tiny, distinct) images: add_folder skips files that do not decode
            (img / f"{i:05d}.png").write_bytes(cv2.imencode(".png", np.frombuffer(
                i.to_bytes(4, "little"), np.uint8).reshape(2, 2))[1].tobytes())
        path = work / "bench.h5"
        t = time.perf_counter()
        with Store.create(path, work) as s:
            s.add_folder(img)
        t_add = time.perf_counter() - t

        fsync_ms: list[float] = []
        real_fsync = os.fsync

        def timed_fsync(fd: int) -> None:  # how much of a commit is the disk, not our code
            t0 = time.perf_counter()
            real_fsync(fd)
            fsync_ms.append((time.perf_counter() - t0) * 1000)

        with Store.open(path) as s:
            lat = []
            os.fsync = timed_fsync
            for k in range(args.labels):
                i = rng.randrange(args.images)
                label = rng.choice(("good", "defect", "suspicious"))
                defect = rng.choice(("scratch", "dent", "crack")) if label != "good" else None
                t = time.perf_counter()
                s.set_label(i, label, defect_type=defect, note=f"label {k}")
                lat.append((time.perf_counter() - t) * 1000)
            os.fsync = real_fsync
            size_labels = path.stat().st_size

            comps = ("L", "D", "A", "M")
            paths = [r.path for r in s.images()]
            scores = {c: nrng.random(args.images) for c in comps}
            maps = {c: [nrng.random((args.grid, args.grid)).astype(np.float32) for _ in paths] for c in comps}
            t = time.perf_counter()
            run = s.add_run("vae", {"latent": 16}, {"bench": True}, paths, scores, "M", maps)
            t_run = time.perf_counter() - t
            del maps
            t = time.perf_counter()
            for _ in range(200):
                s.maps(run, rng.randrange(args.images))
            t_map = (time.perf_counter() - t) / 200 * 1000
        size_run = path.stat().st_size
        t = time.perf_counter()
        with Store.open(path, readonly=True) as s:
            n_log = len(s.history())
        t_open = time.perf_counter() - t
    finally:
        shutil.rmtree(work, ignore_errors=True)

    a = np.array(lat)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cmd = "python benchmarks/store_latency_bench.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [
        "# Label store: commit latency and size",
        "",
        f"Made with `{cmd.strip()}` on {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"h5py {h5py.version.version}, HDF5 {h5py.version.hdf5_version}; load average {load:.2f} at the end "
        f"(other work was running on the machine). Store on the local disk (temporary folder).",
        "",
        f"`set_label` on a store of {args.images} images, {args.labels} labels of random images, each "
        "acknowledged only after write + flush + `os.fsync`:",
        "",
        "| measure | value |",
        "|---|---|",
        f"| label commit p50 | **{np.percentile(a, 50):.2f} ms** |",
        f"| label commit p90 | {np.percentile(a, 90):.2f} ms |",
        f"| label commit p99 | **{np.percentile(a, 99):.2f} ms** |",
        f"| label commit max | {a.max():.2f} ms |",
        f"| label commit mean | {a.mean():.2f} ms |",
        f"| of which `os.fsync` (mean / p50) | {np.mean(fsync_ms):.2f} / {np.percentile(fsync_ms, 50):.2f} ms |",
        f"| add {args.images} images (hash + one commit) | {t_add:.2f} s |",
        f"| store size after the labels | {size_labels / 1e6:.1f} MB |",
        f"| add_run: {args.images} images, 4 score components, 4 maps of {args.grid}x{args.grid} each | "
        f"{t_run:.1f} s |",
        f"| store size with that run | **{size_run / 1e6:.1f} MB** |",
        f"| read the maps of one image (4 components) | {t_map:.2f} ms |",
        f"| open read-only (replays {n_log} audit entries) | {t_open:.2f} s |",
        "",
        "The maps are random values (incompressible), so the size is an upper bound for real maps, "
        "which are smooth and compress better.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
