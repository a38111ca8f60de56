"""Lighting-drift benchmark: does a detector's verdict follow a global brightness change?

For each dev category (mvtec_bottle, magnetic_tile, elpv in ../shared/data) each detector is trained once on
the category's training set; then its judged set is scored three times: as taken, and with the **good** test
images' intensities multiplied by 0.9 and by 1.1 (clipped to the valid range) while the defective ones are left
untouched. A detector whose image AUROC moves with the gain is ranking lighting, not defects: on a line, lamps
age and exposures change between shifts. The drift warning (core.detectors.drift) is read on every scored set:
it should fire on the 0.9-gain set and stay silent on the untouched one.

    OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.drift_bench --threads 2 \
        --detectors padim patchcore recommended --categories mvtec_bottle magnetic_tile elpv

Writes docs/bench-runs/drift.json (merged by detector and category, so detectors can be run separately) and
the "lighting drift and the recommended detector" section of docs/benchmarks.md. Records torch threads and the
machine load around every run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from benchmarks.markdown_section import replace_section
from core import metrics
from core.data.folders import ImageItem, scan_folder
from core.evaluate import image_labels, score_in_chunks, train_detector
from core.project import sets_from_folder

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "docs" / "bench-runs" / "drift.json"
SECTION = "lighting drift and the recommended detector"
GAINS = (1.0, 0.9, 1.1)
CATEGORIES = ("mvtec_bottle", "magnetic_tile", "elpv")


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def scaled_copy(item: ImageItem, gain: float, out_dir: Path) -> ImageItem:
    """The image with its intensities multiplied by `gain` and clipped, written losslessly (PNG) at its bit
    depth, so only the gain differs from the original."""
    img = cv2.imread(item.path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise OSError(f"{item.path}: cannot be read")
    top = 65535 if img.dtype == np.uint16 else 255
    scaled = np.clip(np.rint(img.astype(np.float32) * gain), 0, top).astype(img.dtype)
    out = out_dir / (Path(item.path).stem + ".png")
    cv2.imwrite(str(out), scaled)
    return ImageItem(str(out), item.split, item.label, item.defect_type, item.mask_path)


def drifted(items: list[ImageItem], gain: float, out_dir: Path) -> list[ImageItem]:
    if gain == 1.0:
        return list(items)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [scaled_copy(it, gain, out_dir) if it.label == "good" else it for it in items]


def run_one(category: str, name: str, params: dict[str, Any], tmp: Path) -> dict[str, Any]:
    folder = scan_folder(DATA / category)
    sets = sets_from_folder(folder)
    before = load_avg()
    t0, c0 = time.perf_counter(), time.process_time()
    detector, train = train_detector(sets, name, params, log=lambda m: None)
    train_seconds = time.perf_counter() - t0
    # CPU seconds of all threads: on a shared machine wall time measures the neighbours; CPU time / threads is
    # what training takes on an idle machine with that many cores (a lower bound: serial parts do not split).
    train_cpu = time.process_time() - c0
    row: dict[str, Any] = {
        "category": category, "detector": name, "params": detector.params, "threads": torch.get_num_threads(),
        "n_train": len(train.images), "train_seconds": round(train_seconds, 1),
        "train_cpu_seconds": round(train_cpu, 1),
        "stopped_by": detector.fit_report.stopped_by if detector.fit_report else None,
        "load_before": before,
    }
    for gain in GAINS:
        items = drifted(list(sets.judged), gain, tmp / f"{category}-{gain}")
        t1 = time.perf_counter()
        chunked = score_in_chunks(detector, items, log=lambda m: None, keep_maps=False)
        seconds = time.perf_counter() - t1
        labels = image_labels(chunked.scored.items)
        scores = chunked.result.components[chunked.result.default_component]
        key = f"gain_{gain}"
        row[key] = {"image_auroc": round(metrics.auroc(labels, scores), 4),
                    "image_aupr": round(metrics.aupr(labels, scores), 4),
                    "score_images_per_second": round(len(items) / max(seconds, 1e-9), 2)}
        warning = detector.drift_warning(chunked.result)
        row[key]["drift_warning"] = warning.to_json() if warning else None
    row["auroc_change_max"] = round(max(abs(row[f"gain_{g}"]["image_auroc"] - row["gain_1.0"]["image_auroc"])
                                        for g in GAINS[1:]), 4)
    row["load_after"] = load_avg()
    return row


def merge(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"rows": []}
    fresh = {(r["category"], r["detector"]) for r in rows}
    kept = [r for r in old["rows"] if (r["category"], r["detector"]) not in fresh]
    return kept + rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| detector | category | AUROC as taken | good x0.9 | good x1.1 | largest change | train s | "
             "train CPU s | load | score img/s | warning at x0.9 | warning as taken |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["detector"], CATEGORIES.index(r["category"])
                                         if r["category"] in CATEGORIES else 9)):
        def warn(key: str, r: dict[str, Any] = r) -> str:
            if "drift_warning" not in r[key]:
                return "-"
            return "yes" if r[key]["drift_warning"] else "no"
        lines.append(f"| {r['detector']} | {r['category']} | {r['gain_1.0']['image_auroc']:.3f} | "
                     f"{r['gain_0.9']['image_auroc']:.3f} | {r['gain_1.1']['image_auroc']:.3f} | "
                     f"{r['auroc_change_max']:.3f} | {r['train_seconds']:.0f} | "
                     f"{r['train_cpu_seconds'] if 'train_cpu_seconds' in r else '-'} | {r['load_before'][0]:.1f} | "
                     f"{r['gain_1.0']['score_images_per_second']:.1f} | {warn('gain_0.9')} | {warn('gain_1.0')} |")
    means: dict[str, list[float]] = {}
    for r in rows:
        means.setdefault(r["detector"], []).append(r["gain_1.0"]["image_auroc"])
    lines.append("")
    lines.append("| detector | mean image AUROC as taken | categories |")
    lines.append("|---|---|---|")
    for det, vals in sorted(means.items()):
        lines.append(f"| {det} | {np.mean(vals):.3f} | {len(vals)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detectors", nargs="+", default=["padim", "patchcore"])
    ap.add_argument("--categories", nargs="+", default=list(CATEGORIES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a setting for every detector run (e.g. time_budget=170)")
    ap.add_argument("--tag", default="", help="appended to the detector's name in the table, e.g. "
                    "'photometric=none' for a run with that setting")
    ap.add_argument("--no-docs", action="store_true", help="print the rows; do not write docs/")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from core.detectors.registry import parse_settings
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for category in args.categories:
            for name in args.detectors:
                params = parse_settings(name, args.set) if args.set else {}
                row = run_one(category, name, params, Path(tmp))
                if args.tag:
                    row["detector"] = f"{name} ({args.tag})"
                print(json.dumps({k: v for k, v in row.items() if k != "params"}), flush=True)
                rows.append(row)
                if not args.no_docs:  # after every row: a long queue that is stopped keeps what it measured
                    write_docs(rows)


def write_docs(rows: list[dict[str, Any]]) -> None:
    rows = merge(rows)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"rows": rows}, indent=1))
    body = (
        "Run: `python -m benchmarks.drift_bench --threads 2 --detectors ...` (2 CPU cores; torch threads and the "
        "machine load per run are in `docs/bench-runs/drift.json`). Each detector is trained once per category "
        "on its training set with its defaults; the judged set is scored as taken and with the **good** test "
        "images' intensities multiplied by 0.9 and by 1.1 (clipped), the defective ones untouched. "
        "\"largest change\" is the largest AUROC change from the untouched set: a large one means the detector "
        "ranks lighting, not defects.\n\n" + table(rows) + "\n")
    replace_section(ROOT / "docs" / "benchmarks.md", SECTION, body)


if __name__ == "__main__":
    main()
