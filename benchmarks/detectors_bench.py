"""Quality and speed of the paper-000 detectors on the real categories in ../shared/data and the demo set.

Each (category, detector) pair runs `anomaly-inspector evaluate` in its own process so peak memory is per
run. Results go to docs/benchmarks-detectors.json and a Markdown table in docs/benchmarks.md (between
markers, so other benchmarks' sections are kept).

    python benchmarks/detectors_bench.py                       # everything, ~10 min CPU per category at most
    python benchmarks/detectors_bench.py --categories demo --detectors vae gmm
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT))

from benchmarks.markdown_section import replace_section  # noqa: E402
from core.cli.demo import DEMO_SETTINGS  # noqa: E402

# Paper 000 settings for real images (96 px patches, stride 16, N_conv 5, N_c 32, N_z 50); images resized
# to 256 px squares so a category's scoring stays within the CPU budget.
REAL = {"image_size": 256, "patch_size": 96, "stride": 16}
SETTINGS = {
    "vae": {**REAL, "n_conv": 5, "base_channels": 32, "latent": 50, "epochs": 200},
    "ae": {**REAL, "n_conv": 5, "base_channels": 32, "latent": 50, "epochs": 200},
    "gmm": {**REAL, "pca_components": 50, "n_components": 5},
    "iforest": {**REAL, "pca_components": 50, "n_estimators": 100, "contamination": 0.05},
}
DEMO = {"vae": DEMO_SETTINGS, "ae": DEMO_SETTINGS,
        "gmm": {"patch_size": 32, "stride": 8, "pca_components": 50, "n_components": 5},
        "iforest": {"patch_size": 32, "stride": 8, "pca_components": 50, "n_estimators": 100}}
PAPER = {  # image AUROC reported in paper 000 (their screw / gear data, not these categories)
    "vae": "screws M 0.869 / L 0.735; gears M 0.930 / L 0.926",
    "ae": "screws 0.713; gears 0.824",
    "gmm": "screws M 0.639 / L 0.635; gears M 0.916 / L 0.923",
    "iforest": "screws 0.487; gears 0.796",
}

CHILD = """
import json, resource, sys, time
from core.cli import main
rc = main(sys.argv[1:])
print("PEAK_RSS_MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
sys.exit(rc)
"""


def categories(names: list[str] | None) -> dict[str, Path]:
    found: dict[str, Path] = {}
    if DATA.is_dir():
        found = {p.name: p for p in sorted(DATA.iterdir()) if (p / "train").is_dir()}
    from core.data.synthetic import demo_dataset

    found["demo"] = demo_dataset()
    return {k: v for k, v in found.items() if not names or k in names}


def run_one(cat: str, path: Path, det: str, budget: float, threads: int, stride: int | None = None) -> dict:
    settings = dict((DEMO if cat == "demo" else SETTINGS)[det])
    if stride and cat != "demo":
        settings["stride"] = stride
    report = DOCS / "bench-runs" / f"{cat}-{det}.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    argv = ["evaluate", str(path), "-d", det, "--report", str(report)]
    for k, v in settings.items():
        argv += ["--set", f"{k}={v}"]
    if det in ("vae", "ae"):
        argv += ["--time-budget", str(budget)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", CHILD, *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    wall = time.time() - t0
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return {"category": cat, "detector": det, "error": proc.stderr.strip().splitlines()[-1:]}
    peak = [float(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("PEAK_RSS_MB")]
    result = json.loads(report.read_text())
    result.update({"category": cat, "wall_seconds": round(wall, 1), "peak_rss_mb": round(peak[0]) if peak else None,
                   "torch_threads": threads, "load_average": round(os.getloadavg()[0], 1),
                   "command": "anomaly-inspector " + " ".join(a if " " not in a else repr(a) for a in argv)})
    report.write_text(json.dumps(result, indent=1))  # each run's record stands on its own (see --collect)
    return result


def table(results: list[dict]) -> str:
    lines = ["| category | detector | image AUROC (per component) | AUPR (default) | pixel AUROC (default) | "
             "train s (stopped by) | stride | test img/s | peak MB | paper 000 (other data) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['category']} | {r['detector']} | error: {r['error']} | | | | | | | |")
            continue
        d = r["default_component"]
        auroc = ", ".join(f"{k} {v:.3f}" for k, v in r["image_auroc"].items())
        pix = r.get("pixel_auroc", {}).get(d)
        lines.append(
            f"| {r['category']} | {r['detector']} | {auroc} | {r['image_aupr'][d]:.3f} | "
            f"{'-' if pix is None else f'{pix:.3f}'} | {r['train_seconds']:.0f} ({r['stopped_by']}) | "
            f"{r['params'].get('stride', '-')} | {r['score_images_per_second']:.1f} | {r['peak_rss_mb']} | "
            f"{PAPER.get(r['detector'], '')} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--categories", nargs="*", help="default: every category in ../shared/data plus demo")
    ap.add_argument("--detectors", nargs="*", default=["vae", "ae", "gmm", "iforest"])
    ap.add_argument("--budget", type=float, default=300, help="training seconds for vae / ae per category")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--stride", type=int, help="scoring stride on the real categories (default: the paper's 16)")
    ap.add_argument("--collect", action="store_true",
                    help="run nothing: rebuild the docs from the per-run records in docs/bench-runs/")
    args = ap.parse_args()
    import torch

    results = []
    if args.collect:
        results = [json.loads(p.read_text()) for p in sorted((DOCS / "bench-runs").glob("*.json"))]
    for cat, path in ({} if args.collect else categories(args.categories)).items():
        for det in args.detectors:
            print(f"{cat} / {det} ...", flush=True)
            r = run_one(cat, path, det, args.budget, args.threads, args.stride)
            print(json.dumps({k: r.get(k) for k in ("image_auroc", "train_seconds", "score_images_per_second",
                                                    "peak_rss_mb", "error")}), flush=True)
            results.append(r)
    out = DOCS / "benchmarks-detectors.json"
    previous = json.loads(out.read_text()) if out.is_file() else []
    keep = [p for p in previous if (p["category"], p["detector"]) not in {(r["category"], r["detector"])
                                                                          for r in results}]
    merged = sorted(keep + results, key=lambda r: (r["category"], r["detector"]))
    out.write_text(json.dumps(merged, indent=1))
    load = os.getloadavg()
    header = (f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} with {os.cpu_count()} cores, "
              f"torch {torch.__version__}, {args.threads} torch thread(s) per run, load average at the end "
              f"{load[0]:.1f} (other work shared the machine; see each run's `load_average`). Command: "
              f"`python benchmarks/detectors_bench.py --budget {args.budget:g} --threads {args.threads}` (per-run "
              f"commands and records in `docs/benchmarks-detectors.json` and `docs/bench-runs/`). Train time is "
              f"capped by the budget for vae / ae (`stopped by time_budget`).")
    replace_section(DOCS / "benchmarks.md", "paper-000 detectors",
                    header + "\n\n" + table(merged) + "\n")


if __name__ == "__main__":
    main()
