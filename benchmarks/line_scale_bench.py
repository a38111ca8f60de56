"""Line-scale folders: peak memory and speed of `evaluate` and `score` as a folder of 5 MP frames grows.

Generates a line folder (MVTec layout, so evaluate has a training set and ground truth) of 2448 x 2048 RGB
JPEG frames: a textured part surface with, on defective frames, a 3 px scratch or a 9 px pit (with masks).
Then, for each detector and folder size, runs `anomaly-inspector evaluate` and `anomaly-inspector score` in a
child process and records the child's peak RSS (wait4's ru_maxrss), frames per second and the share of scoring
time spent decoding. Smaller sizes are symlinked subsets of the largest, so each size sees the same frames.

    python benchmarks/line_scale_bench.py                          # padim, patchcore 200 / 2000; vae 50 / 500
    python benchmarks/line_scale_bench.py --quick                  # 20 / 100 frames, to try it out

Results: docs/benchmarks.md (section "line-scale folders") and docs/bench-runs/line_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.markdown_section import replace_section  # noqa: E402

H, W = 2048, 2448
N_TRAIN = 30
DEFECT_SHARE = 0.3
# Detectors and the two test-set sizes each is measured at (the figures), and its settings.
PLAN = {
    "padim": ((200, 2000), []),
    "patchcore": ((200, 2000), []),
    "vae": ((50, 500), ["--set", "image_size=256", "--time-budget", "60"]),
}


def frame(seed: int, defect: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    """A machined-surface frame: low-frequency shading, fine grain and brushing lines; optionally a defect."""
    rng = np.random.default_rng(seed)
    shade = cv2.resize(rng.normal(0, 1, (8, 10)).astype(np.float32), (W, H), interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0, 1, (H // 4, W // 4)).astype(np.float32)
    grain = cv2.resize(grain, (W, H), interpolation=cv2.INTER_LINEAR)
    brush = np.sin(np.arange(W, dtype=np.float32) * 0.9)[None, :] * 3
    base = 128 + 10 * shade + 6 * grain + brush
    img = np.repeat(base[:, :, None], 3, axis=2) * np.array([1.0, 0.97, 0.92], np.float32)
    mask = None
    if defect is not None:
        mask = np.zeros((H, W), np.uint8)
        y, x = int(rng.integers(300, H - 300)), int(rng.integers(300, W - 300))
        if defect == "scratch":
            angle = rng.uniform(0, np.pi)
            length = int(rng.integers(120, 300))
            x2, y2 = int(x + length * np.cos(angle)), int(y + length * np.sin(angle))
            cv2.line(mask, (x, y), (x2, y2), 255, 3)
            img[mask > 0] -= 45
        else:
            cv2.circle(mask, (x, y), 4, 255, -1)  # 9 px across
            img[mask > 0] -= 60
    return np.clip(img, 0, 255).astype(np.uint8), mask


def write_frame(root: Path, split: str, kind: str, k: int, seed: int) -> None:
    img, mask = frame(seed, None if kind == "good" else kind)
    folder = root / split / kind
    cv2.imwrite(str(folder / f"{k:05d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if mask is not None:
        cv2.imwrite(str(root / "ground_truth" / kind / f"{k:05d}_mask.png"), mask)


def generate(root: Path, n_test: int) -> Path:
    """The largest folder once (skipped if it is already there with the right count)."""
    stamp = root / ".complete"
    if stamp.is_file() and stamp.read_text() == str(n_test):
        return root
    for d in ("train/good", "test/good", "test/scratch", "test/pit", "ground_truth/scratch", "ground_truth/pit"):
        (root / d).mkdir(parents=True, exist_ok=True)
    jobs = [("train", "good", k, k) for k in range(N_TRAIN)]
    rng = np.random.default_rng(1)
    for k in range(n_test):
        kind = ("scratch" if rng.random() < 0.5 else "pit") if rng.random() < DEFECT_SHARE else "good"
        jobs.append(("test", kind, k, 10_000 + k))
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # OpenCV releases the GIL while encoding
        list(pool.map(lambda j: write_frame(root, *j), jobs))
    stamp.write_text(str(n_test))
    return root


def subset(full: Path, dest: Path, n_test: int) -> Path:
    """The first n_test test frames of `full` (and all training frames), as symlinks."""
    if dest.exists():
        return dest
    tests = sorted((full / "test").glob("*/*.jpg"), key=lambda p: p.name)[:n_test]
    for p in sorted((full / "train" / "good").glob("*.jpg")) + tests:
        rel = p.relative_to(full)
        (dest / rel.parent).mkdir(parents=True, exist_ok=True)
        (dest / rel).symlink_to(p)
        if rel.parts[0] == "test" and rel.parts[1] != "good":
            m = full / "ground_truth" / rel.parts[1] / f"{p.stem}_mask.png"
            (dest / "ground_truth" / rel.parts[1]).mkdir(parents=True, exist_ok=True)
            (dest / "ground_truth" / rel.parts[1] / m.name).symlink_to(m)
    return dest


def run_child(argv: list[str]) -> tuple[int, float, float]:
    """Run the command line in a child; (exit code, wall seconds, peak RSS in MB)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", *argv], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code:
        print(err[-2000:], file=sys.stderr)
    return code, wall, usage.ru_maxrss / 1024  # ru_maxrss is in KB on Linux


def measure(data: Path, detector: str, extra: list[str], work: Path) -> dict:
    report, model = work / f"{data.name}-{detector}.json", work / f"{data.name}-{detector}.ai"
    code, wall, rss = run_child(["evaluate", str(data), "-d", detector, *extra, "-r", str(report), "-o", str(model)])
    if code:
        return {"detector": detector, "error": f"evaluate exited {code}"}
    r = json.loads(report.read_text())
    scores = work / f"{data.name}-{detector}-scores.csv"
    code2, wall2, rss2 = run_child(["score", str(data), "-m", str(model), "-o", str(scores), "--split", "judged"])
    n = r["n_test"]
    return {"detector": detector, "n_test": n, "n_train": r["n_train"],
            "image_auroc": r["image_auroc"].get(r["default_component"]),
            "pixel_auroc": (r.get("pixel_auroc") or {}).get(r["default_component"]),
            "evaluate_seconds": round(wall, 1), "evaluate_peak_rss_mb": round(rss),
            "score_frames_per_second": r["score_images_per_second"], "score_decode_share": r["score_decode_share"],
            "score_cmd_seconds": round(wall2, 1), "score_cmd_frames_per_second": round(n / max(wall2, 1e-9), 2),
            "score_cmd_peak_rss_mb": round(rss2), "score_cmd_exit": code2}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/line-scale"), help="where frames and outputs go")
    ap.add_argument("--quick", action="store_true", help="20 / 100 frames for every detector")
    ap.add_argument("--detectors", default=",".join(PLAN), help="comma-separated subset of " + ",".join(PLAN))
    ap.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    args = ap.parse_args(argv)
    plan = {d: (((20, 100) if args.quick else PLAN[d][0]), PLAN[d][1]) for d in args.detectors.split(",")}
    largest = max(max(sizes) for sizes, _ in plan.values())
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    full = generate(args.work / f"frames-{largest}", largest)
    print(f"frames ready in {time.perf_counter() - t0:.0f} s: {full}", flush=True)
    rows = []
    for detector, (sizes, extra) in plan.items():
        for n in sizes:
            data = subset(full, args.work / f"line-{n}", n)
            row = measure(data, detector, extra, args.work)
            row["size"] = n
            rows.append(row)
            print(json.dumps(row), flush=True)
    meta = {"frame": f"{W} x {H} RGB JPEG q90", "n_train": N_TRAIN, "threads": os.cpu_count(),
            "loadavg": os.getloadavg(), "time": time.strftime("%Y-%m-%d %H:%M")}
    out = ROOT / "docs" / "bench-runs" / ("line_scale_quick.json" if args.quick else "line_scale.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.is_file():  # a run of some detectors keeps the others' rows from the previous run
        measured = {r["detector"] for r in rows}
        kept = [r for r in json.loads(out.read_text()).get("rows", []) if r["detector"] not in measured]
        rows = kept + rows
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    if not args.no_docs:
        replace_section(ROOT / "docs" / "benchmarks.md", "line-scale folders", table(rows, meta, args.quick))
    return 0


def table(rows: list[dict], meta: dict, quick: bool) -> str:
    lines = [f"`python benchmarks/line_scale_bench.py{' --quick' if quick else ''}` ({meta['time']}; "
             f"{meta['frame']} frames, {meta['n_train']} training frames, 30 % defective (3 px scratch or 9 px pit); "
             f"{meta['threads']} CPU threads, load average at the end {meta['loadavg'][0]:.1f}). Peak RSS is the "
             "child process's (the whole Python process, torch included).", "",
             "| detector | test frames | evaluate peak RSS (MB) | score peak RSS (MB) | scoring frames/s | "
             "decode share of scoring | image AUROC | pixel AUROC |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['detector']} | {r['size']} | {r['error']} | | | | | |")
            continue
        pix = f"{r['pixel_auroc']:.3f}" if r["pixel_auroc"] is not None else "-"
        lines.append(f"| {r['detector']} | {r['n_test']} | {r['evaluate_peak_rss_mb']} | {r['score_cmd_peak_rss_mb']} "
                     f"| {r['score_frames_per_second']} | {r['score_decode_share']:.0%} | {r['image_auroc']:.3f} | "
                     f"{pix} |")
    by = {}
    for r in rows:
        if "error" not in r:
            by.setdefault(r["detector"], []).append(r)
    lines.append("")
    for det, rs in by.items():
        if len(rs) == 2:
            a, b = sorted(rs, key=lambda r: r["size"])
            ev = b["evaluate_peak_rss_mb"] / a["evaluate_peak_rss_mb"]
            sc = b["score_cmd_peak_rss_mb"] / a["score_cmd_peak_rss_mb"]
            lines.append(f"- {det}: peak RSS at {b['size']} frames is {ev:.2f}x that at {a['size']} (evaluate), "
                         f"{sc:.2f}x (score).")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
