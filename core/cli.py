"""The batch command line: `anomaly-inspector train | score | evaluate | demo | detectors`.

Every verb runs the same core the window uses. Errors a user can cause print one line naming the file and
exit with status 2; nothing prints a traceback unless --debug is given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.data.folders import FolderError, scan_folder
from core.detectors.base import DetectorError
from core.detectors.registry import available, detector_class, parse_settings
from core.progress_text import TextProgress

DEMO_DETECTOR = "vae"
# A CPU-sized patch VAE for the 128 px demo images (paper: 96 px patches, N_c = 32, N_z = 50 on 640 px).
DEMO_SETTINGS: dict[str, Any] = {"patch_size": 32, "stride": 8, "n_conv": 4, "base_channels": 16, "latent": 16,
                                 "epochs": 40, "patches_per_image": 32}


class UserError(Exception):
    """Bad input from the person at the keyboard: printed as one line."""


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    params = parse_settings(args.detector, args.set or [])
    schema = {p.name for p in detector_class(args.detector).PARAMS}
    if args.time_budget is not None:
        if "time_budget" not in schema:
            print(f"note: {args.detector} trains in one pass; --time-budget does not apply", file=sys.stderr)
        else:
            params["time_budget"] = float(args.time_budget)
    if args.device and "device" in schema:
        params["device"] = args.device
    return params


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


def cmd_train(args: argparse.Namespace) -> int:
    from core.evaluate import train_detector

    folder = scan_folder(args.data)
    with TextProgress("training") as bar:
        detector, train = train_detector(folder, args.detector, _settings(args), progress=bar, log=_log)
    detector.save(args.out)
    rep = detector.fit_report
    print(f"trained {detector.name} on {len(train.images)} images in {rep.seconds:.1f} s "
          f"({rep.epochs} epochs, stopped by {rep.stopped_by}); saved {args.out}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from core.evaluate import load_items
    from core.modelio import load_detector

    detector = load_detector(args.model)
    folder = scan_folder(args.data)
    items = folder.test if args.split == "test" else folder.items
    loaded = load_items(items, _log)
    with TextProgress("scoring") as bar:
        result = detector.score(loaded.images, progress=bar)
    rows = [{"path": it.path, "label": it.label, "defect_type": it.defect_type,
             "score": float(result.scores[i]),
             **{f"{k}": float(v[i]) for k, v in result.components.items()}}
            for i, it in enumerate(loaded.items)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        import csv

        with out.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["path"])
            writer.writeheader()
            writer.writerows(rows)
    else:
        out.write_text(json.dumps({"model": str(args.model), "detector": detector.name,
                                   "default_component": result.default_component, "images": rows,
                                   "skipped_files": [str(s) for s in loaded.skipped]}, indent=1))
    print(f"scored {len(rows)} images ({len(loaded.skipped)} skipped); wrote {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    _run_evaluation(args.data, args.detector, _settings(args), args, "evaluate")
    return 0


def _run_evaluation(data: str | Path, name: str, settings: dict[str, Any], args: argparse.Namespace,
                    label: str) -> tuple[dict[str, Any], Any]:
    """evaluate + optional report and model files + the printed table (the evaluate and demo verbs)."""
    from core.evaluate import evaluate

    with TextProgress(label) as bar:
        report, detector, _, _ = evaluate(data, name, settings, progress=bar, log=_log)
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report, indent=2))
    if args.out:
        detector.save(args.out)
    print_summary(report)
    return report, detector


def print_summary(report: dict[str, Any]) -> None:
    print(f"{report['detector']}: {report['n_train']} training images, {report['n_test']} test images "
          f"({report['n_test_defect']} defective); trained in {report['train_seconds']} s "
          f"(stopped by {report['stopped_by']}); scored {report['score_images_per_second']} images/s")
    auroc, aupr = report.get("image_auroc", {}), report.get("image_aupr", {})
    pix = report.get("pixel_auroc", {})
    print(f"{'component':<10} {'AUROC':>7} {'AUPR':>7} {'pixel AUROC':>12}")
    for name in auroc:
        mark = "  (default)" if name == report["default_component"] else ""
        pixel = f"{pix[name]:.3f}" if name in pix else "-"
        print(f"{name:<10} {auroc[name]:>7.3f} {aupr[name]:>7.3f} {pixel:>12}{mark}")


def cmd_demo(args: argparse.Namespace) -> int:
    from core.data.synthetic import demo_dataset

    root = demo_dataset(args.data)
    print(f"demo data: {root}  (synthetic machined parts, defects: scratch, blowhole, erased)")
    settings = {**DEMO_SETTINGS, **parse_settings(DEMO_DETECTOR, args.set or [])}
    report, detector = _run_evaluation(root, DEMO_DETECTOR, settings, args, "demo")
    a = report["image_auroc"]
    print(f"unregularized score M vs ordinary score L: AUROC {a['M']:.3f} vs {a['L']:.3f} (paper 000's claim: "
          f"M is robust to heterogeneous complexity)")
    if args.no_gui:
        return 0
    return _open_window(root, detector=detector, preset=(DEMO_DETECTOR, settings))


def _open_window(path: str | Path | None, **kwargs: Any) -> int:
    """The window, where a display exists; the GUI package is imported only here (core stays Qt-free)."""
    # After the demo (kwargs carry its model) a missing window is only a note; asked for directly, an error.
    failed = 0 if kwargs else 2
    try:
        from inspector_gui.app import display_available, run_app
    except ImportError as exc:
        print(f"the window is not available ({exc}); the command line works without it", file=sys.stderr)
        return failed
    if not display_available():
        print("no display found (DISPLAY / WAYLAND_DISPLAY unset): not opening the window", file=sys.stderr)
        return failed
    return run_app(path, **kwargs)


def cmd_detectors(args: argparse.Namespace) -> int:
    for name in available():
        cls = detector_class(name)
        print(f"{name}: components {', '.join(cls.components)} (default {cls.default_component})")
        if args.verbose:
            for p in cls.PARAMS:
                print(f"    {p.name} = {p.default!r}   {p.help}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anomaly-inspector",
        description="Train unsupervised anomaly detectors on good part images, score, evaluate and export.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def detector_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("data", help="image folder (MVTec AD layout: train/good, test/<defect>, ground_truth)")
        p.add_argument("--detector", "-d", default="vae",
                       help=f"method name (default vae); one of: {', '.join(available())}")
        p.add_argument("--set", "-s", action="append", metavar="KEY=VALUE",
                       help="a detector setting, repeatable (see `anomaly-inspector detectors -v`)")
        p.add_argument("--time-budget", type=float, metavar="SECONDS",
                       help="stop training after this many seconds (the report says what stopped it)")
        p.add_argument("--device", help="torch device: auto (default), cpu, cuda, mps")

    p = sub.add_parser("train", help="train a detector on a folder's good images and save the model")
    detector_options(p)
    p.add_argument("--out", "-o", required=True, help="model file to write")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("score", help="score a folder's images with a saved model")
    p.add_argument("data", help="image folder")
    p.add_argument("--model", "-m", required=True, help="model file written by `train`")
    p.add_argument("--out", "-o", required=True, help="results file: .json (default) or .csv")
    p.add_argument("--split", choices=("test", "all"), default="all",
                   help="which images of an MVTec folder to score (default: all)")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("evaluate", help="train on DATA/train/good, score DATA/test, report metrics as JSON")
    detector_options(p)
    p.add_argument("--report", "-r", help="JSON report to write")
    p.add_argument("--out", "-o", help="also save the trained model here")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("demo", help="generate the built-in demo data set and evaluate the patch VAE on it")
    p.add_argument("--data", help="where to put the demo data (default: a cache folder)")
    p.add_argument("--set", "-s", action="append", metavar="KEY=VALUE", help="override a demo VAE setting")
    p.add_argument("--report", "-r", help="JSON report to write")
    p.add_argument("--out", "-o", help="also save the trained model here")
    p.add_argument("--no-gui", action="store_true", help="do not open the window afterwards")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("detectors", help="list the detectors and their settings")
    p.add_argument("--verbose", "-v", action="store_true", help="show every setting with its default")
    p.set_defaults(func=cmd_detectors)

    _add_optional_commands(sub)
    return parser


def _add_optional_commands(sub: Any) -> None:
    """Verbs that live in their own modules (label store, export)."""
    from core.store_cli import add_store_commands

    add_store_commands(sub)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    # Bare command, or a folder / store path instead of a verb: open the window on it.
    commands = {name for action in parser._subparsers._group_actions for name in action.choices}
    if not argv or (argv[0] not in commands and not argv[0].startswith("-")):
        target = argv[0] if argv else None
        if target is not None and not Path(target).exists():
            print(f"error: {target}: no such folder or store file (commands: {', '.join(sorted(commands))})",
                  file=sys.stderr)
            return 2
        return _open_window(target)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (FolderError, DetectorError, UserError, ValueError, OSError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
