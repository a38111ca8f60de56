"""OIAD on real parts (issue 18): do latent traversals change the decoded patch, do codes differ in SC, and
what AUROC does oiad reach, with the detector's DEFAULT settings (only the training time is budgeted).

Per category of ../shared/data (MVTec layout):
    strip std   mean over pixels of the standard deviation across a strip's morphs (the 8 decoded images
                of one code's traversal, the strip the window shows), in grey levels of 255; averaged over
                the scored test images, for the top-ranked code and for every selected code
    SC spread   per image, (max - min) over the selected codes of their SC (the strip metric, SC_ssim, and
                SC_mse) divided by the mean over the codes; median over the scored images
    AUROC       image AUROC of the default component (OIAD), SC_ssim, SC_mse and recon on the scored images

Training: time_budget seconds (default 150, one thread); test images: every good and defect image up to
--per-class of each (seeded pick), so a category costs a few minutes. Results go to
docs/bench-runs/oiad.json and the section "OIAD on real parts (issue 18)" of docs/benchmarks.md.

    python benchmarks/oiad_strips_bench.py --threads 1
    python benchmarks/oiad_strips_bench.py --categories mvtec_bottle --budget 60 --per-class 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.markdown_section import replace_section  # noqa: E402
from core import metrics  # noqa: E402
from core.data.images import decode_image  # noqa: E402
from core.detectors.oiad import OIAD  # noqa: E402

SECTION = "OIAD on real parts (issue 18)"
CATEGORIES = ["mvtec_bottle", "magnetic_tile", "elpv"]
EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTS) if folder.is_dir() else []


def load_category(root: Path, per_class: int, seed: int) -> tuple[list, list, np.ndarray, list[str]]:
    train = [decode_image(p) for p in files(root / "train" / "good")]
    good = files(root / "test" / "good")
    bad = [p for d in sorted((root / "test").iterdir()) if d.is_dir() and d.name != "good" for p in files(d)]
    rng = np.random.default_rng(seed)
    pick_g = sorted(rng.choice(len(good), min(per_class, len(good)), replace=False))
    pick_b = sorted(rng.choice(len(bad), min(per_class, len(bad)), replace=False))
    paths = [good[i] for i in pick_g] + [bad[i] for i in pick_b]
    labels = np.array([0] * len(pick_g) + [1] * len(pick_b))
    return train, [decode_image(p) for p in paths], labels, [str(p.relative_to(root)) for p in paths]


def strip_stats(strips: list[list[dict]]) -> dict:
    """Strip std (grey levels) per code rank and SC spread across codes, over images."""
    per_rank = np.array([[float(np.std(s["morphs"], axis=0).mean()) * 255 for s in img] for img in strips])
    sc = np.array([[s["sc"] for s in img] for img in strips])  # SC_ssim per image and code
    spread = (sc.max(axis=1) - sc.min(axis=1)) / np.maximum(np.abs(sc.mean(axis=1)), 1e-12)
    diff = np.array([[float(np.abs(s["morphs"] - s["recon"][None]).max()) for s in img] for img in strips])
    return {"strip_std_top_code": float(per_rank[:, 0].mean()),
            "strip_std_per_code_rank": [round(float(v), 2) for v in per_rank.mean(axis=0)],
            "sc_ssim_spread_median": float(np.median(spread)),
            "max_abs_diff_median": float(np.median(diff) * 255)}


def run_category(name: str, budget: float, per_class: int, seed: int, save: Path | None = None) -> dict:
    train, test, labels, paths = load_category(DATA / name, per_class, seed)
    det = OIAD(time_budget=budget)
    t0 = time.perf_counter()
    report = det.fit(train)
    fit_s = time.perf_counter() - t0
    if save is not None:  # for benchmarks/screenshot_oiad_strips.py
        save.mkdir(parents=True, exist_ok=True)
        det.save(save / f"{name}.pt")
    t1 = time.perf_counter()
    res = det.score(test)
    score_s = time.perf_counter() - t1
    comps = res.components
    codes = [int(c) for c in det.codes]
    sc_mse = np.stack([comps[f"SC_{c}"] for c in codes], axis=1)  # per-code mean excursion, for the record
    out = {
        "category": name, "n_train": len(train), "n_test": len(test), "n_defect": int(labels.sum()),
        "mode": det.mode, "rec_weight": det.rec_weight, "epochs": report.epochs, "stopped_by": report.stopped_by,
        "fit_s": round(fit_s, 1), "score_s": round(score_s, 1), "codes": codes,
        "effect_255": [round(det.effect[c] * 255, 2) for c in codes],
        "auroc": {k: round(float(metrics.auroc(labels, comps[k])), 4) for k in ("OIAD", "SC_ssim", "SC_mse", "recon")},
        **strip_stats(res.extras["morph_strips"]),
        "per_code_excursion_spread": float(np.median(sc_mse.max(axis=1) - sc_mse.min(axis=1))),
    }
    # SC_mse per code from the strips' sibling metric: the window shows SC_ssim; record SC_mse spread too.
    return out


def markdown(runs: list[dict], meta: dict) -> str:
    lines = [
        f"`{meta['command']}` (last run {meta['when']}; {meta['cpu']}, {meta['threads']} thread; each row "
        "says when it ran and the 1/5/15-min load average before it, on 2 cores shared with other jobs). OIAD "
        "with its defaults (mode auto = patch: 32 px patches of the 64 px image, "
        "stride 16; m = 100 morphs; top-5 codes ranked by effect; widened code ranges; rec_weight auto) except "
        f"time_budget = {meta['budget']:.0f} s of training. Test images: up to {meta['per_class']} good and "
        f"{meta['per_class']} defect per category (seeded pick).",
        "",
        "| category | train | test (defect) | epochs | rec_weight | strip std top code /255 | per code rank | "
        "SC_ssim spread across codes | AUROC OIAD | SC_ssim | SC_mse | recon | fit s | score s | "
        "finished (load before) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        a = r["auroc"]
        lines.append(
            f"| {r['category']} | {r['n_train']} | {r['n_test']} ({r['n_defect']}) | {r['epochs']} | "
            f"{r['rec_weight']:.0f} | {r['strip_std_top_code']:.1f} | {r['strip_std_per_code_rank']} | "
            f"{100 * r['sc_ssim_spread_median']:.1f} % | {a['OIAD']:.3f} | {a['SC_ssim']:.3f} | {a['SC_mse']:.3f} | "
            f"{a['recon']:.3f} | {r['fit_s']:.0f} | {r['score_s']:.0f} | {r.get('when', '')} "
            f"({r.get('load_before', '')}) |")
    lines += [
        "",
        "Strip std: mean over pixels of the std across the 8 morphs of a strip (the worst patch of each test "
        "image), in grey levels; the issue's bar is 5/255 for the top code. SC spread: per image (max - min) / "
        "mean of the selected codes' SC_ssim, median over images; the bar is 1 %. OIAD targets semantic / "
        "global anomalies (a digit that is not a 1); on these surface defects it is a weak detector: use "
        "PaDiM or PatchCore for them (see the sections above).",
        "",
        "Before issue 18 (main, mode=image at 64 px, relevance/tightness ranking, validation min..max ranges, "
        "rec_weight 50): the issue measured a strip std of 0.5-2.3/255 and every code with the same SC_ssim to "
        "4 decimals. An earlier run of this benchmark with the auto rec_weight at sigma = 1/4 of the patch "
        "contrast (same day, same budget; bottle, magnetic_tile, elpv): top-code strip std 26.4 / 19.9 / 3.9, "
        "SC spread 15.0 / 10.0 / 1.3 %, AUROC 0.692 / 0.598 / 0.672, so the default became 1/8 (the table). "
        "Screenshots of the strips in the window (1366 x 768, QWidget.grab(), models of the table's run): "
        "docs/screenshots/oiad_strips_bottle.png, docs/screenshots/oiad_strips_magnetic_tile.png "
        "(benchmarks/screenshot_oiad_strips.py).",
        "",
        "The table predates main's gain-normalisation ceiling (commit 22c215f); bottle rerun after merging it "
        "(same command with --categories mvtec_bottle --no-write, 15:57 UTC, load 8.3): 32 epochs, rec_weight "
        "489, top-code strip std 16.1/255, SC spread 7.8 %, AUROC OIAD 0.790 (SC_ssim 0.802, SC_mse 0.740, "
        "recon 0.673).",
    ]
    return "\n".join(lines)


def rewrite_section() -> None:
    """docs/benchmarks.md's section from docs/bench-runs/oiad.json as it is (no runs)."""
    data = json.loads((DOCS / "bench-runs" / "oiad.json").read_text())
    replace_section(DOCS / "benchmarks.md", SECTION, markdown(data["runs"], data["meta"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--categories", nargs="+", default=CATEGORIES)
    ap.add_argument("--budget", type=float, default=150.0, help="training seconds per category")
    ap.add_argument("--per-class", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--save-models", type=Path, help="save each trained model here as <category>.pt")
    ap.add_argument("--rewrite", action="store_true", help="only rewrite the Markdown section from the JSON")
    args = ap.parse_args()
    if args.rewrite:
        rewrite_section()
        return
    torch.set_num_threads(args.threads)
    meta = {"command": "python benchmarks/oiad_strips_bench.py " + " ".join(sys.argv[1:]),
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": platform.processor() or "cpu",
            "threads": args.threads, "load_before": " ".join(f"{v:.2f}" for v in os.getloadavg()),
            "budget": args.budget, "per_class": args.per_class}
    runs = []
    for name in args.categories:
        if not (DATA / name).is_dir():
            print(f"{name}: not found under {DATA}, skipped")
            continue
        load = " ".join(f"{v:.2f}" for v in os.getloadavg())
        r = run_category(name, args.budget, args.per_class, args.seed, args.save_models)
        r.update({"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_before": load,
                  "load_after": " ".join(f"{v:.2f}" for v in os.getloadavg()), "budget": args.budget,
                  "per_class": args.per_class})
        print(json.dumps(r), flush=True)
        runs.append(r)
    meta["load_after"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    if args.no_write or not runs:
        return
    out = DOCS / "bench-runs" / "oiad.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.is_file():  # merge by category: a category can be rerun alone
        new = {r["category"] for r in runs}
        old = [r for r in json.loads(out.read_text())["runs"] if r["category"] not in new]
        runs = sorted(old + runs, key=lambda r: CATEGORIES.index(r["category"]) if r["category"] in CATEGORIES else 99)
    out.write_text(json.dumps({"meta": meta, "runs": runs}, indent=1) + "\n")
    replace_section(DOCS / "benchmarks.md", SECTION, markdown(runs, meta))


if __name__ == "__main__":
    main()
