"""Backbone and stage benchmark: EfficientNet-Lite0 / -Lite1 / -Lite2 and the stage choice of the feature detectors.

For each dev category (mvtec_bottle, magnetic_tile, elpv in ../shared/data), each backbone and each stage choice
(`layers`), each detector (padim, patchcore, recommended) is trained on the category's training set with its
defaults otherwise and scored on the judged set through the same code as `evaluate` (train_detector,
score_in_chunks); image AUROC is measured on the judged images.

Backbone features are cached per (backbone, category, image size) under /tmp: the first run of a category
computes every stage (s4, s8, s16, s32) of each image once, keyed by the hash of the exact input tensor the
detector built (after its lighting normalisation and resize), and every later run, whatever its stages, reads
them back. The network is in eval mode, so an image's features do not depend on its batch: the cached run
scores what an uncached one would. Times: the detector's own train / score seconds (backbone time taken out),
and the backbone's uncached cost per image measured while the cache fills.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.backbone_bench --threads 1 \
        --backbones lite0 lite1 lite2 --layers s8+s16 s16+s32 s4+s8 --detectors padim patchcore

Writes docs/bench-runs/backbone.json (merged by category, detector, backbone and layers, so runs can be split)
and the "backbones and stages" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.markdown_section import replace_section
from core import metrics
from core.data.folders import scan_folder
from core.detectors.features import backbone as fb
from core.evaluate import image_labels, score_in_chunks, train_detector
from core.nets.efficientnet_lite import EfficientNetLite, pretrained
from core.project import sets_from_folder

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "docs" / "bench-runs" / "backbone.json"
CACHE = Path("/tmp/backbone_bench_cache")
SECTION = "backbones and stages"
NOTES = ROOT / "docs" / "bench-runs" / "backbone-notes.md"  # the reading of the numbers, kept under the tables
CATEGORIES = ("mvtec_bottle", "magnetic_tile", "elpv")
TAPS = ("s4", "s8", "s16", "s32")  # every stage a layers choice can ask for


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class CachedNet:
    """Stands in for the shared backbone: `features` answers from a per-image cache of all stages, computing
    (and remembering) only the images it has not seen."""

    def __init__(self, net: EfficientNetLite, path: Path) -> None:
        self.net = net
        self.path = path
        self.store: dict[str, dict[str, torch.Tensor]] = {}
        if path.is_file():
            self.store = torch.load(path, weights_only=True)
        self.dirty = False
        self.compute_seconds = 0.0
        self.computed = 0
        self.hits = 0

    @staticmethod
    def key(x: torch.Tensor) -> str:
        t = x.detach().contiguous().cpu()
        return hashlib.sha1(t.numpy().tobytes()).hexdigest() + str(tuple(t.shape))

    def features(self, x: torch.Tensor, taps: tuple[str, ...]) -> dict[str, torch.Tensor]:
        keys = [self.key(xi) for xi in x]
        missing = [i for i, k in enumerate(keys) if k not in self.store]
        self.hits += len(keys) - len(missing)
        if missing:
            t0 = time.perf_counter()
            out = self.net.features(x[missing].contiguous(memory_format=torch.channels_last), TAPS)
            self.compute_seconds += time.perf_counter() - t0
            self.computed += len(missing)
            for j, i in enumerate(missing):
                self.store[keys[i]] = {t: out[t][j].contiguous().clone() for t in TAPS}
            self.dirty = True
        return {t: torch.stack([self.store[k][t] for k in keys]).contiguous(memory_format=torch.channels_last)
                for t in taps}

    def save(self) -> None:
        if self.dirty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            torch.save(self.store, tmp)
            os.replace(tmp, self.path)
            self.dirty = False


def install_cache(backbone: str, category: str, image_size: int) -> CachedNet:
    """Put a CachedNet where the feature detectors look for the shared network (one per process and key)."""
    net = pretrained(backbone).to(memory_format=torch.channels_last)
    for p in net.parameters():
        p.requires_grad_(False)
    cached = CachedNet(net, CACHE / f"{backbone}-{category}-{image_size}.pt")
    fb._NETS.clear()
    fb._NETS[(backbone, "cpu")] = cached  # type: ignore[assignment]
    return cached


def run_one(category: str, name: str, backbone: str, layers: str, cached: CachedNet) -> dict[str, Any]:
    sets = sets_from_folder(scan_folder(DATA / category))
    params = {"backbone": backbone, "layers": layers, "device": "cpu"}
    before = load_avg()
    b0 = cached.compute_seconds
    t0 = time.perf_counter()
    detector, train = train_detector(sets, name, params, log=lambda m: None)
    train_seconds = time.perf_counter() - t0
    b1 = cached.compute_seconds
    t1 = time.perf_counter()
    chunked = score_in_chunks(detector, list(sets.judged), log=lambda m: None, keep_maps=False)
    score_seconds = time.perf_counter() - t1
    b2 = cached.compute_seconds
    labels = image_labels(chunked.scored.items)
    scores = chunked.result.components[chunked.result.default_component]
    return {
        "category": category, "detector": name, "backbone": backbone, "layers": layers,
        "params": detector.params, "threads": torch.get_num_threads(),
        "feature_dim": detector.feature_dim, "grid": list(detector.grid_shape()),
        "n_train": len(train.images), "n_judged": len(labels),
        "image_auroc": round(metrics.auroc(labels, scores), 4),
        "image_aupr": round(metrics.aupr(labels, scores), 4),
        # The detector's own time: wall time minus the time spent computing backbone features (cache misses).
        "train_seconds": round(train_seconds - (b1 - b0), 1),
        "score_seconds": round(score_seconds - (b2 - b1), 1),
        "backbone_seconds_in_run": round(b2 - b0, 1),
        "load_before": before, "load_after": load_avg(),
    }


def merge(rows: list[dict[str, Any]], backbone_cost: dict[str, dict[str, Any]]) -> dict[str, Any]:
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"rows": [], "backbone_cost": {}}
    ident = ("category", "detector", "backbone", "layers")
    fresh = {tuple(r[k] for k in ident) for r in rows}
    kept = [r for r in old["rows"] if tuple(r[k] for k in ident) not in fresh]
    cost = dict(old.get("backbone_cost", {}))
    cost.update(backbone_cost)
    return {**old, "rows": kept + rows, "backbone_cost": cost}  # other keys (checks run apart) are kept


def mean_table(rows: list[dict[str, Any]]) -> str:
    """Per detector, backbone and layers: the three categories' AUROCs and their mean."""
    cells: dict[tuple[str, str, str], dict[str, float]] = {}
    for r in rows:
        cells.setdefault((r["detector"], r["backbone"], r["layers"]), {})[r["category"]] = r["image_auroc"]
    lines = ["| detector | backbone | layers | " + " | ".join(CATEGORIES) + " | mean | train s | score s |",
             "|---|---|---|" + "---|" * len(CATEGORIES) + "---|---|---|"]
    times: dict[tuple[str, str, str], tuple[float, float]] = {}
    for r in rows:
        k = (r["detector"], r["backbone"], r["layers"])
        a, b = times.get(k, (0.0, 0.0))
        times[k] = (a + r["train_seconds"], b + r["score_seconds"])
    for k in sorted(cells):
        vals = cells[k]
        got = [f"{vals[c]:.3f}" if c in vals else "-" for c in CATEGORIES]
        mean = f"{np.mean([vals[c] for c in CATEGORIES]):.3f}" if all(c in vals for c in CATEGORIES) else "-"
        lines.append(f"| {k[0]} | {k[1]} | {k[2]} | " + " | ".join(got) + f" | {mean} | "
                     f"{times[k][0]:.0f} | {times[k][1]:.0f} |")
    return "\n".join(lines)


def cost_table(cost: dict[str, dict[str, Any]]) -> str:
    lines = ["| backbone | ms per image (all stages to s32, 1 thread, uncached) | images measured |", "|---|---|---|"]
    for b in sorted(cost):
        lines.append(f"| {b} | {cost[b]['ms_per_image']:.0f} | {cost[b]['images']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detectors", nargs="+", default=["padim", "patchcore"])
    ap.add_argument("--backbones", nargs="+", default=["lite0", "lite1", "lite2"])
    ap.add_argument("--layers", nargs="+", default=["s8+s16", "s16+s32", "s4+s8"])
    ap.add_argument("--categories", nargs="+", default=list(CATEGORIES))
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip", nargs="*", default=[], metavar="DETECTOR:LAYERS",
                    help="combinations left out, e.g. patchcore:s4+s8")
    ap.add_argument("--no-docs", action="store_true", help="print the rows; do not write docs/")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    rows: list[dict[str, Any]] = []
    cost: dict[str, dict[str, Any]] = {}
    for category in args.categories:
        for backbone in args.backbones:
            cached = install_cache(backbone, category, args.image_size)
            for name in args.detectors:
                for layers in args.layers:
                    if f"{name}:{layers}" in args.skip:
                        continue
                    row = run_one(category, name, backbone, layers, cached)
                    print(json.dumps({k: v for k, v in row.items() if k != "params"}), flush=True)
                    rows.append(row)
                    if not args.no_docs:
                        write(rows, cost, args, started)
            if cached.computed:
                c = cost.setdefault(backbone, {"seconds": 0.0, "images": 0})
                c["seconds"] += cached.compute_seconds
                c["images"] += cached.computed
                c["ms_per_image"] = round(1000 * c["seconds"] / c["images"], 1)
            cached.save()
    if not args.no_docs:
        write(rows, cost, args, started)


def write(rows: list[dict[str, Any]], cost: dict[str, dict[str, Any]], args: argparse.Namespace,
          started: float) -> None:
    data = merge(rows, cost)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=1))
    body = (
        "Run: `OMP_NUM_THREADS=1 python -m benchmarks.backbone_bench --threads 1` (torch 1 thread; the machine's "
        "2 cores were shared with other jobs: machine load per run is in `docs/bench-runs/backbone.json`). "
        f"Images resized to {args.image_size} px for every backbone (same grids: s4 56, s8 28, s16 14, s32 7 "
        "cells a side), every other setting at the detector's default (photometric = gain; recommended = PaDiM "
        "with clusters = 3). Image AUROC on the judged (test) images. Backbone features are cached per "
        "(backbone, category) under /tmp, keyed by the exact input tensor, so stage choices share one backbone "
        "pass; train s / score s are the detector's own time summed over the three categories with the "
        "backbone's time taken out, and the backbone's uncached cost is below.\n\n"
        + mean_table(data["rows"]) + "\n\n" + cost_table(data["backbone_cost"]) + "\n\n"
        + (NOTES.read_text(encoding="utf-8") if NOTES.is_file() else "") + "\n")
    replace_section(ROOT / "docs" / "benchmarks.md", SECTION, body)


if __name__ == "__main__":
    main()
