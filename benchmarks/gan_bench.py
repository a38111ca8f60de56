"""Benchmark of the GAN family: f-AnoGAN (paper 002) on the real categories in ../shared/data, and the effect of
DCGAN augmentation (paper 004) on the CAE with few (30) bottle training images, within a stated CPU training
budget per run.

    python benchmarks/gan_bench.py --budget 270 --ae-budget 240 --threads 1

Each run is `anomaly-inspector evaluate DATA -d NAME --time-budget BUDGET --set ... --out MODEL` in a child
process with OMP_NUM_THREADS=THREADS. Records go to docs/bench-runs/gan.json, the sample grids kept in the
models to docs/screenshots/gan_samples_*.png, the table to docs/benchmarks.md (section "GAN detectors").
`--collect` rebuilds the section from the records without running anything.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
DOCS = ROOT / "docs"
RECORDS = DOCS / "bench-runs" / "gan.json"
SHOTS = DOCS / "screenshots"
sys.path.insert(0, str(ROOT))

from benchmarks.markdown_section import replace_section  # noqa: E402

CATEGORIES = ("mvtec_bottle", "magnetic_tile", "elpv")
# The paper's f-AnoGAN (64 px, latent 100, batch 32, lr 2e-4, critic every batch, generator every 5th) with the
# networks at half width (32 channels outermost instead of 64): 0.52 s instead of 1.9 s per critic step on one
# CPU thread, so a budget of minutes reaches a few hundred generator updates instead of a few dozen.
FANOGAN = {"image_size": 64, "base_channels": 32}
# The CAE as benchmarks/autoencoders_bench.py runs it (128 px), and the DCGAN at half width for the same reason.
CAE = {"image_size": 128, "latent": 1024, "base_channels": 32, "max_channels": 128, "epochs": 300}
DCGAN = {"augment": "dcgan", "augment_channels": 32, "augment_share": 0.25, "augment_budget_share": 0.4}
FEW = 30
PAPER = {"fanogan": "AUROC 0.922, AUPR 0.977", "cae": "AUROC 0.846, AUPR 0.942 (209 images)"}

CHILD = """
import resource, sys
from core.cli import main
rc = main(sys.argv[1:])
print("PEAK_RSS_MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
sys.exit(rc)
"""


def few_images_copy(src: Path, dest: Path, n: int, seed: int = 0) -> Path:
    """An MVTec-layout copy of `src` with `n` training images drawn at random (test and masks unchanged)."""
    good = sorted((src / "train" / "good").glob("*.png"))
    pick = sorted(random.Random(seed).sample(good, n))
    (dest / "train" / "good").mkdir(parents=True)
    for p in pick:
        shutil.copy(p, dest / "train" / "good" / p.name)
    for sub in ("test", "ground_truth"):
        shutil.copytree(src / sub, dest / sub)
    return dest


def run_one(label: str, data: Path, detector: str, settings: dict, budget: float, threads: int,
            work: Path) -> dict:
    from core.detectors.model_file import read_model_file

    report, model = work / f"{label}.json", work / f"{label}.ai"
    argv = ["evaluate", str(data), "-d", detector, "--report", str(report), "--time-budget", str(budget),
            "--out", str(model)]
    for k, v in settings.items():
        argv += ["--set", f"{k}={v}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    load_before = os.getloadavg()[0]
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", CHILD, *argv], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.time() - t0
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return {"label": label, "error": proc.stderr.strip().splitlines()[-1:]}
    peak = [float(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("PEAK_RSS_MB")]
    result = json.loads(report.read_text())
    meta, _ = read_model_file(model)
    extra = meta.get("metadata", {})
    grid = extra.get("sample_grid")
    if grid:
        SHOTS.mkdir(parents=True, exist_ok=True)
        (SHOTS / f"gan_samples_{label}.png").write_bytes(base64.b64decode(grid["png_base64"]))
    result.update({"label": label, "budget": budget, "wall_seconds": round(wall, 1),
                   "peak_rss_mb": round(peak[0]) if peak else None, "torch_threads": threads,
                   "load_average_before": round(load_before, 1), "load_average_after": round(os.getloadavg()[0], 1),
                   "training_stages": extra.get("training_stages"), "augment": extra.get("augment"),
                   "sample_grid_file": f"docs/screenshots/gan_samples_{label}.png" if grid else None,
                   "settings": settings, "command": "anomaly-inspector " + " ".join(argv)})
    return result


def stage_text(r: dict) -> str:
    st = r.get("training_stages")
    if st:
        g, e = st["gan"], st["encoder"]
        return (f"GAN {g['steps']} critic steps / {g['steps'] // 5} generator steps, {g['epochs']} epochs, "
                f"{g['seconds']:.0f} s; encoder {e['steps']} steps, {e['epochs']} epochs, {e['seconds']:.0f} s")
    aug = r.get("augment")
    if aug:
        d = aug["dcgan"]
        return (f"DCGAN {d['steps']} steps ({d['epochs']} epochs, {d['seconds']:.0f} s), then CAE {r['epochs']} "
                f"epochs; {aug['generated_fed']} generated images fed ({aug['per_batch']} per batch)")
    return f"{r['epochs']} epochs"


def table(results: list[dict]) -> str:
    lines = ["| run | data | settings | budget s | image AUROC per component | AUPR (default) | F1-max (default) | "
             "pixel AUROC (default) | training (stopped by, train s) | paper (bottle) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['label']} | | | | error: {r['error']} | | | | | |")
            continue
        d = r["default_component"]
        auroc = ", ".join(f"{k} {v:.3f}" for k, v in r["image_auroc"].items())
        pix = (r.get("pixel_auroc") or {}).get(d)
        settings = ", ".join(f"{k}={v}" for k, v in r["settings"].items() if k != "epochs")
        paper = PAPER.get(r["detector"], "") if "bottle" in r["data"] else ""
        lines.append(
            f"| {r['label']} | {r['data']} ({r['n_train']} train, {r['n_test']} judged) | {settings} | "
            f"{r['budget']:g} | {auroc} | {r['image_aupr'][d]:.3f} | {r['f1_max'][d]:.3f} | "
            f"{'-' if pix is None else f'{pix:.3f}'} | {stage_text(r)} ({r['stopped_by']}, "
            f"{r['train_seconds']:.0f} s) | {paper} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--categories", nargs="*", default=list(CATEGORIES))
    ap.add_argument("--budget", type=float, default=270, help="f-AnoGAN training seconds per category")
    ap.add_argument("--ae-budget", type=float, default=240, help="CAE training seconds, with and without DCGAN")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-fanogan", action="store_true")
    ap.add_argument("--skip-augment", action="store_true")
    ap.add_argument("--only-dcgan", action="store_true", help="of the CAE pair, run only the augmented one")
    ap.add_argument("--label-suffix", default="", help="added to each run's label (a repeated run with other "
                    "settings keeps its own record)")
    ap.add_argument("--keep-models", type=Path, help="copy the trained models into this folder")
    ap.add_argument("--collect", action="store_true", help="run nothing: rebuild the docs from the records")
    ap.add_argument("--notes", type=Path, help="a Markdown file of measured remarks appended under the table")
    args = ap.parse_args()
    import torch

    records = json.loads(RECORDS.read_text()) if RECORDS.is_file() else {}
    work = Path(tempfile.mkdtemp(prefix="ai-gan-bench-"))

    def keep(r: dict, data: str) -> None:
        r["data"] = data
        records[r["label"]] = r
        RECORDS.parent.mkdir(parents=True, exist_ok=True)
        RECORDS.write_text(json.dumps(records, indent=1))
        print(json.dumps({k: r.get(k) for k in ("label", "image_auroc", "image_aupr", "train_seconds", "error")}),
              flush=True)

    try:
        if not args.collect and not args.skip_fanogan:
            for cat in args.categories:
                print(f"fanogan / {cat} ...", flush=True)
                keep(run_one(f"fanogan-{cat}{args.label_suffix}", DATA / cat, "fanogan", FANOGAN, args.budget,
                             args.threads, work), cat)
        if not args.collect and not args.skip_augment:
            few = few_images_copy(DATA / "mvtec_bottle", work / f"bottle{FEW}", FEW)
            pair = ((f"cae-bottle{FEW}", CAE), (f"cae-bottle{FEW}-dcgan", {**CAE, **DCGAN}))
            for label, settings in pair[1:] if args.only_dcgan else pair:
                print(f"{label} ...", flush=True)
                keep(run_one(label + args.label_suffix, few, "cae", settings, args.ae_budget, args.threads, work),
                     f"mvtec_bottle, {FEW} train images")
        if args.keep_models:
            args.keep_models.mkdir(parents=True, exist_ok=True)
            for model in work.glob("*.ai"):
                shutil.copy(model, args.keep_models / model.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()
    header = (f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} with {os.cpu_count()} cores shared "
              f"with other work (load average at the end {load[0]:.1f}; each record in `docs/bench-runs/gan.json` "
              f"has the load before and after its run), torch {torch.__version__}, {args.threads} torch thread per "
              f"run. Commands: `python benchmarks/gan_bench.py --budget 270 --ae-budget 240 --threads 1`, and for the "
              f"longer runs `... --budget 720 --categories mvtec_bottle magnetic_tile elpv --skip-augment "
              f"--label-suffix=-b720` (bottle alone, then the other two), "
              f"and for the augmented CAE with at least the plain run's CAE time `... --skip-fanogan --only-dcgan "
              f"--ae-budget 400 --label-suffix=-b400`; per-run commands in the records. `budget s` is the "
              f"run's `--time-budget` (f-AnoGAN: 70 % for stage 1, the GAN, the rest and what stage 1 left for "
              f"stage 2, the encoder; CAE + DCGAN: 40 % for the DCGAN, the rest for the CAE). The paper trained "
              f"f-AnoGAN's GAN 1500 epochs and its encoder 200 on a GPU. The sample grids of G(z) kept in each "
              f"model are in `docs/screenshots/gan_samples_*.png`.")
    rows = sorted(records.values(), key=lambda r: (r.get("detector") != "fanogan", r["label"]))
    notes = args.notes.read_text() if args.notes and args.notes.is_file() else ""
    replace_section(DOCS / "benchmarks.md", "GAN detectors (f-AnoGAN, DCGAN augmentation)",
                    header + "\n\n" + table(rows) + "\n\n" + notes)


if __name__ == "__main__":
    main()
