"""Small defects on 5 MP line frames: tiling at native resolution against plain resizing.

The frames are those of benchmarks/line_scale_bench.py (2448 x 2048 RGB JPEG, a machined surface; defective
frames carry a 3 px scratch or a 9 px pit). Squashed to 224 px the frame shrinks 11x and a 3 px scratch is a
quarter of a pixel; cut into 224 px tiles at native resolution (resize = tile) every pixel reaches the
backbone as it was taken. Each configuration trains on the same good frames and is judged on the same test
frames, with `core.evaluate.evaluate` (what `anomaly-inspector evaluate` runs).

    OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.line_tiling_bench --threads 2

Writes docs/bench-runs/line_tiling.json and the "small defects on 5 MP frames: tiling" section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from benchmarks.line_scale_bench import write_frame
from benchmarks.markdown_section import replace_section
from core.evaluate import evaluate

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "bench-runs" / "line_tiling.json"
SECTION = "small defects on 5 MP frames: tiling"
CONFIGS = {
    "padim, resized to 224 px": ("padim", {}),
    "padim, resized to 512 px": ("padim", {"image_size": 512}),
    "padim, 224 px tiles at native resolution": ("padim", {"resize": "tile"}),
    "patchcore, 224 px tiles at native resolution": ("patchcore", {"resize": "tile"}),
}


def generate(root: Path, n_train: int, n_good: int, n_defect: int) -> Path:
    for d in ("train/good", "test/good", "test/scratch", "test/pit", "ground_truth/scratch", "ground_truth/pit"):
        (root / d).mkdir(parents=True, exist_ok=True)
    jobs = [("train", "good", k, k) for k in range(n_train)]
    jobs += [("test", "good", k, 10_000 + k) for k in range(n_good)]
    jobs += [("test", "scratch" if k % 2 else "pit", n_good + k, 20_000 + k) for k in range(n_defect)]
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(lambda j: write_frame(root, *j), jobs))
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train", type=int, default=10)
    ap.add_argument("--good", type=int, default=10)
    ap.add_argument("--defect", type=int, default=10)
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = generate(Path(tmp) / "line", args.train, args.good, args.defect)
        for label in args.configs:
            name, params = CONFIGS[label]
            load = [round(x, 2) for x in os.getloadavg()]
            t0 = time.perf_counter()
            report, detector, _, _ = evaluate(data, name, params, log=lambda m: None)
            row = {"config": label, "detector": name, "params": detector.params,
                   "image_auroc": report["image_auroc"]["score"], "image_aupr": report["image_aupr"]["score"],
                   "pixel_auroc": report.get("pixel_auroc", {}).get("score"),
                   "train_seconds": report["train_seconds"], "score_seconds_per_frame":
                   round(report["score_seconds"] / max(report["n_test"], 1), 2),
                   "tiles_per_frame": detector.metadata.get("tiles_per_frame"),
                   "n_train": report["n_train"], "n_test": report["n_test"],
                   "n_test_defect": report["n_test_defect"], "threads": torch.get_num_threads(),
                   "load_before": load, "load_after": [round(x, 2) for x in os.getloadavg()],
                   "seconds": round(time.perf_counter() - t0, 1)}
            print(json.dumps({k: v for k, v in row.items() if k != "params"}), flush=True)
            rows.append(row)
    old = json.loads(RESULTS.read_text())["rows"] if RESULTS.exists() else []
    done = {r["config"] for r in rows}
    rows = [r for r in old if r["config"] not in done] + rows
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"rows": rows}, indent=1))
    lines = ["| configuration | image AUROC | pixel AUROC | tiles per frame | train s | score s per frame | "
             "threads | load (1 min) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pix = f"{r['pixel_auroc']:.3f}" if r.get("pixel_auroc") is not None else "-"
        lines.append(f"| {r['config']} | {r['image_auroc']:.3f} | {pix} | {r['tiles_per_frame'] or 1} | "
                     f"{r['train_seconds']:.0f} | {r['score_seconds_per_frame']:.1f} | {r['threads']} | "
                     f"{r['load_before'][0]} |")
    n = rows[-1]
    body = (f"Run: `python -m benchmarks.line_tiling_bench --threads {args.threads}`: {n['n_train']} good training "
            f"frames, {n['n_test'] - n['n_test_defect']} good and {n['n_test_defect']} defective test frames "
            "(half a 3 px scratch, half a 9 px pit), 2448 x 2048 RGB JPEG from benchmarks/line_scale_bench.py. "
            "Load: other jobs shared the 2 cores, so times are upper bounds.\n\n" + "\n".join(lines) + "\n")
    replace_section(ROOT / "docs" / "benchmarks.md", SECTION, body)
    print(np.round([r["image_auroc"] for r in rows], 3))


if __name__ == "__main__":
    main()
