"""`anomaly-inspector demo`: generate the built-in demo data, evaluate the patch VAE on it, open the window."""

from __future__ import annotations

import argparse
from typing import Any

from core.cli.detector_verbs import run_evaluation
from core.data.synthetic import demo_dataset
from core.detectors.registry import parse_settings

DEMO_DETECTOR = "vae"
# A CPU-sized patch VAE for the 128 px demo images (paper: 96 px patches, N_c = 32, N_z = 50 on 640 px).
DEMO_SETTINGS: dict[str, Any] = {"patch_size": 32, "stride": 8, "n_conv": 4, "base_channels": 16, "latent": 16,
                                 "epochs": 40, "patches_per_image": 32}


def cmd_demo(args: argparse.Namespace) -> int:
    root = demo_dataset(args.data)
    print(f"demo data: {root}  (synthetic machined parts, defects: scratch, blowhole, erased)")
    settings = {**DEMO_SETTINGS, **parse_settings(DEMO_DETECTOR, args.set or [])}
    report, detector = run_evaluation(root, DEMO_DETECTOR, settings, args, "demo")
    a = report["image_auroc"]
    print(f"unregularized score M vs ordinary score L: AUROC {a['M']:.3f} vs {a['L']:.3f} (paper 000's claim: "
          f"M is robust to heterogeneous complexity)")
    if args.no_gui:
        return 0
    return args.open_window(root, detector=detector, preset=(DEMO_DETECTOR, settings))


def add_commands(sub: Any) -> None:
    p = sub.add_parser("demo", help="generate the built-in demo data set and evaluate the patch VAE on it")
    p.add_argument("--data", help="where to put the demo data (default: a cache folder)")
    p.add_argument("--set", "-s", action="append", metavar="KEY=VALUE", help="override a demo VAE setting")
    p.add_argument("--report", "-r", help="JSON report to write")
    p.add_argument("--out", "-o", help="also save the trained model here")
    p.add_argument("--no-gui", action="store_true", help="do not open the window afterwards")
    p.set_defaults(func=cmd_demo)
