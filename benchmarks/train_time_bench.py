"""Training time of a detector with its defaults on the dev categories: wall and CPU seconds, threads and the
machine load before and after, appended to docs/bench-runs/train_time.json (issue 13: the recommended detector
must train within 3 minutes per category on 2 CPU threads).

    python -m benchmarks.train_time_bench --detector recommended --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from core.data.folders import scan_folder
from core.evaluate import train_detector
from core.project import sets_from_folder

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "docs" / "bench-runs" / "train_time.json"
CATEGORIES = ("mvtec_bottle", "magnetic_tile", "elpv")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detector", default="recommended")
    ap.add_argument("--categories", nargs="+", default=list(CATEGORIES))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = json.loads(RESULTS.read_text())["rows"] if RESULTS.exists() else []
    for category in args.categories:
        sets = sets_from_folder(scan_folder(DATA / category))
        before = [round(x, 2) for x in os.getloadavg()]
        t0, c0 = time.perf_counter(), time.process_time()
        detector, train = train_detector(sets, args.detector, {}, log=lambda m: None)
        row = {"category": category, "detector": args.detector, "threads": torch.get_num_threads(),
               "n_train": len(train.images), "train_seconds": round(time.perf_counter() - t0, 1),
               "train_cpu_seconds": round(time.process_time() - c0, 1), "load_before": before,
               "load_after": [round(x, 2) for x in os.getloadavg()],
               "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        print(json.dumps(row), flush=True)
        rows.append(row)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"rows": rows}, indent=1))


if __name__ == "__main__":
    main()
