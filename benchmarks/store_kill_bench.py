"""Crash-safety benchmark for the label store: SIGKILL a labeling writer many times and count losses.

    python benchmarks/store_kill_bench.py [--trials 200] [--seed 1] [--out docs/store-kill.md]

Uses the same writer and checks as tests/test_store.py (tests/store_writer_child.py), only with more
trials. Every trial starts a writer process on one store (state carries over), kills it at a random
moment, reopens the store and checks every acknowledged label. The result goes to a markdown file.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import h5py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from store_writer_child import kill_trials  # noqa: E402

from core.store import Store  # noqa: E402


def tiny_png(i: int) -> bytes:
    import cv2
    import numpy as np

    return cv2.imencode(".png", np.array([[i % 256, i // 256 % 256]], np.uint8))[1].tobytes()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--max-delay", type=float, default=0.25, help="kill at most this long after READY (s)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "store-kill.md"))
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="store-kill-"))
    try:
        (work / "img").mkdir()
        for i in range(args.images):
            # real (tiny) images: add_folder skips files that do not decode
            (work / "img" / f"{i:04d}.png").write_bytes(tiny_png(i))
        with Store.create(work / "bench.h5", work) as s:
            s.add_folder(work / "img")
        load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
        t0 = time.perf_counter()
        stats = kill_trials(work / "bench.h5", args.trials, seed=args.seed, max_delay=args.max_delay)
        seconds = time.perf_counter() - t0
        load_after = os.getloadavg() if hasattr(os, "getloadavg") else None
        with Store.open(work / "bench.h5", readonly=True) as s:
            n_log = len(s.history())
        size = (work / "bench.h5").stat().st_size
    finally:
        shutil.rmtree(work, ignore_errors=True)

    cmd = "python benchmarks/store_kill_bench.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [
        "# Label store: SIGKILL crash test",
        "",
        f"Made with `{cmd.strip()}` on {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"h5py {h5py.version.version}, HDF5 {h5py.version.hdf5_version}; load average "
        f"{load_before[0] if load_before else float('nan'):.2f} before, "
        f"{load_after[0] if load_after else float('nan'):.2f} after (other work was running on the machine).",
        "",
        "Each trial starts `tests/store_writer_child.py`, which labels random images of one store in a "
        "loop (every `set_label` = write + flush + fsync) and prints `ACK` after each call returns. "
        f"The parent sends SIGKILL at a random moment (uniform 0-{args.max_delay:g} s after the writer "
        "reports READY; in about 15% of trials at a random time from process start, i.e. possibly while "
        "it is starting or opening the store), then reopens the store for writing and checks each image's "
        "label and note against the last acknowledged write. The one write in flight may or may not "
        "have landed; either is accepted. State carries over between trials.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| trials (kills) | {stats.trials} |",
        f"| of them killed before READY | {stats.early_kills} |",
        f"| acknowledged labels, total | {stats.acked} |",
        f"| acknowledged labels lost or wrong | **{stats.lost}** |",
        f"| stores that failed to open after a kill | **{stats.failed_opens}** |",
        f"| reopened stores whose replayed audit log differed from the labels | {stats.log_mismatches} |",
        f"| opens that repaired a torn, unacknowledged label row from the log | {stats.repaired} |",
        f"| un-acknowledged in-flight writes that had landed | {stats.inflight_landed} |",
        f"| audit log entries at the end | {n_log} |",
        f"| store size at the end | {size / 1024:.0f} KiB |",
        f"| wall time | {seconds:.0f} s |",
        "",
    ]
    if stats.problems:
        lines += ["Problems:", ""] + [f"- {p}" for p in stats.problems[:50]] + [""]
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0 if stats.lost == 0 and stats.failed_opens == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
