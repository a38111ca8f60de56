"""The detector verbs: `train`, `score`, `evaluate` and `detectors`."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from core.data.images import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, parse_pixels, set_max_pixels
from core.detectors.registry import RECOMMENDED, available, detector_class, parse_settings
from core.evaluate import SkipReport, evaluate, judge_held_out, score_in_chunks, score_into_store, train_detector
from core.modelio import load_detector
from core.progress_text import TextProgress
from core.project import image_sets, project_items, sets_from_store, store_items
from core.project.labeled_split import judged_for_model, require_for, sets_for
from core.project.opening import open_project


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


def pixel_count(text: str) -> int:
    """argparse type of --max-pixels: the parser prints the plain reason for a bad value."""
    try:
        return parse_pixels(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _use_pixel_limit(args: argparse.Namespace) -> None:
    """--max-pixels for this run (None: $ANOMALY_INSPECTOR_MAX_PIXELS or the default)."""
    set_max_pixels(getattr(args, "max_pixels", None))


def _print_skip_count(n: int) -> None:
    if n:
        print(f"{n} file(s) skipped: they cannot be read as images (each named above)", file=sys.stderr)


def cmd_train(args: argparse.Namespace) -> int:
    _use_pixel_limit(args)
    cls = detector_class(args.detector)
    sets = sets_for(image_sets(args.data), cls)  # supervised: from the stored labels, a share of each held out
    if cls.supervised:
        require_for(sets, cls, args.detector)  # too few labels: one plain line, before any work
    _log(f"{sets.where}: {sets.summary()}")
    skips = SkipReport(_log)
    settings = _settings(args)
    with TextProgress("training") as bar:
        detector, train = train_detector(sets, args.detector, settings, progress=bar, log=_log,
                                         skips=skips)
    held = None
    if cls.supervised and sets.judged:  # its report: the held-out labeled images only
        held = judge_held_out(detector, sets, log=_log)
        detector.metadata["held_out_report"] = held
    detector.save(args.out)
    rep = detector.fit_report
    _print_skip_count(len(skips.skipped))
    print(f"trained {detector.name} on {len(train.images)} images in {rep.seconds:.1f} s "
          f"({rep.epochs} epochs, stopped by {rep.stopped_by}); saved {args.out}")
    if held is not None:
        comp = detector.default_component
        figures = (f"AUROC {held['image_auroc'][comp]:.3f}, AUPR {held['image_aupr'][comp]:.3f}, "
                   f"F1-max {held['f1_max'][comp]:.3f}" if comp in held["image_auroc"] else held.get("note", ""))
        print(f"held out: {held['n_judged'] - held['n_judged_defect']} good and {held['n_judged_defect']} defect "
              f"labeled images not trained on: {figures}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    _use_pixel_limit(args)
    detector = load_detector(args.model)
    if getattr(args, "cluster", None):  # Dask only when asked for: the desktop never needs it
        from core.cluster.command import score_on_cluster

        return score_on_cluster(args, detector, score_into_project)
    if not args.out:
        return score_into_project(args, detector)
    items = (judged_for_model(image_sets(args.data), detector.metadata) if args.split in ("judged", "test")
             else project_items(args.data))
    with TextProgress("scoring") as bar:
        chunked = score_in_chunks(detector, items, progress=bar, log=_log, keep_maps=False)  # scores only
    result, loaded = chunked.result, chunked.scored
    _print_skip_count(len(loaded.skipped))
    drift = detector.drift_warning(result)
    if drift is not None:
        _log(f"warning: {drift.message}")
    rows = [{"path": it.path, "label": it.label, "defect_type": it.defect_type,
             "score": float(result.scores[i]),
             **{f"{k}": float(v[i]) for k, v in result.components.items()}}
            for i, it in enumerate(loaded.items)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        with out.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["path"])
            writer.writeheader()
            writer.writerows(rows)
    else:
        out.write_text(json.dumps({"model": str(args.model), "detector": detector.name,
                                   "default_component": result.default_component, "images": rows,
                                   "drift_warning": drift.to_json() if drift else None,
                                   "skipped_files": [str(s) for s in loaded.skipped]}, indent=1))
    print(f"scored {len(rows)} images ({len(loaded.skipped)} skipped); wrote {out}")
    return 0


def score_into_project(args: argparse.Namespace, detector: Any, scorer: Any = score_into_store) -> int:
    """`score DATA --model M` without --out: into a run of the project store (DATA's own, or --store), a chunk
    at a time; an interrupted run is resumed with --resume. `scorer`: score_into_store or a cluster's."""
    data = Path(args.data)
    with open_project(args.store or data) as store:
        items = store_items(store)
        if args.store and data.is_dir():  # a new day's folder into an existing project
            added = store.add_folder(data)
            for path, reason in added.skipped:
                _log(f"skipped: {path}: {reason}")
            inside = data.resolve()
            items = [it for it in store_items(store) if Path(it.path).resolve().is_relative_to(inside)]
        if args.split in ("judged", "test"):  # a supervised model: the labeled images it did not train on
            judged = {store.image_id(it.path) for it in judged_for_model(sets_from_store(store), detector.metadata)}
            items = [it for it in items if store.image_id(it.path) in judged]
        resume = args.resume
        if resume == "latest":
            incomplete = [r for r in store.list_runs() if not r.complete]
            resume = incomplete[-1].run_id if incomplete else None
        state: dict[str, str] = {}
        try:
            with TextProgress("scoring") as bar:
                run = scorer(store, detector, items, run_id=resume, progress=bar, log=_log,
                             on_chunk=lambda run_id, *_: state.setdefault("run", run_id))
        except KeyboardInterrupt:
            if "run" in state:
                print(f"interrupted: what was scored is kept in {store.path} ({state['run']}); resume with "
                      f"`anomaly-inspector score {args.data} --model {args.model} --resume {state['run']}"
                      f"{' --cluster ' + args.cluster if getattr(args, 'cluster', None) else ''}`",
                      file=sys.stderr)
            raise
        info = store.run_info(run)
    print(f"scored {info.n_images} images with {detector.name} into {store.path} ({run})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    _use_pixel_limit(args)
    report, _ = run_evaluation(args.data, args.detector, _settings(args), args, "evaluate")
    _print_skip_count(len(report["skipped_files"]))
    return 0


def run_evaluation(data: str | Path, name: str, settings: dict[str, Any], args: argparse.Namespace,
                    label: str) -> tuple[dict[str, Any], Any]:
    """evaluate + optional report and model files + the printed table (the evaluate and demo verbs)."""
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
    left = ", ".join(f"{n} {k}" for k, n in report.get("left_out", {}).items() if n)
    print(f"{report['detector']}: trained on {report['n_train']} good images, judged {report['n_test']} labeled "
          f"images not used for training ({report['n_test_defect']} defective"
          f"{'; left out ' + left if left else ''}); trained in {report['train_seconds']} s "
          f"(stopped by {report['stopped_by']}); scored {report['score_images_per_second']} images/s")
    auroc, aupr = report.get("image_auroc", {}), report.get("image_aupr", {})
    pix = report.get("pixel_auroc", {})
    print(f"{'component':<10} {'AUROC':>7} {'AUPR':>7} {'pixel AUROC':>12}")
    for name in auroc:
        mark = "  (default)" if name == report["default_component"] else ""
        pixel = f"{pix[name]:.3f}" if name in pix else "-"
        print(f"{name:<10} {auroc[name]:>7.3f} {aupr[name]:>7.3f} {pixel:>12}{mark}")
    if report.get("drift_warning"):
        print(f"warning: {report['drift_warning']['message']}", file=sys.stderr)


def cmd_detectors(args: argparse.Namespace) -> int:
    for name in available():
        cls = detector_class(name)
        print(f"{name}: components {', '.join(cls.components)} (default {cls.default_component})")
        if args.verbose:
            for p in cls.PARAMS:
                print(f"    {p.name} = {p.default!r}   {p.help}")
    return 0


def add_commands(sub: Any) -> None:
    """Add `train`, `score`, `evaluate` and `detectors` to an argparse subparsers object."""

    def pixel_limit_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--max-pixels", type=pixel_count, metavar="PIXELS",
                       help=f"skip images whose header says they are larger (e.g. 400M; default "
                            f"${MAX_PIXELS_ENV} or {DEFAULT_MAX_PIXELS // 1_000_000}M): guards against "
                            f"decompression bombs")

    def detector_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("data", help="image folder (MVTec AD, Folder layout or flat; its project store decides "
                                    "when it has one) or a project store (.h5)")
        p.add_argument("--detector", "-d", default=RECOMMENDED,
                       help=f"method name (default {RECOMMENDED}: PaDiM with lighting normalisation and "
                            f"appearance clusters, the best on the dev data); one of: {', '.join(available())}")
        p.add_argument("--set", "-s", action="append", metavar="KEY=VALUE",
                       help="a detector setting, repeatable (see `anomaly-inspector detectors -v`)")
        p.add_argument("--time-budget", type=float, metavar="SECONDS",
                       help="stop training after this many seconds (the report says what stopped it)")
        p.add_argument("--device", help="torch device: auto (default), cpu, cuda, mps")
        pixel_limit_option(p)

    p = sub.add_parser("train", help="train a detector on the project's training set (good images marked for "
                                     "training) and save the model")
    detector_options(p)
    p.add_argument("--out", "-o", required=True, help="model file to write")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("score", help="score a folder's images with a saved model")
    p.add_argument("data", help="image folder or project store (.h5)")
    p.add_argument("--model", "-m", required=True, help="model file written by `train`")
    p.add_argument("--out", "-o", help="results file: .json (default) or .csv; without it the scores go into "
                                      "a run of the project store, a chunk at a time (resumable)")
    p.add_argument("--store", help="score into this project store (DATA's images are added to it first)")
    p.add_argument("--resume", metavar="RUN", help="continue an interrupted run ('latest': the newest "
                                                    "incomplete one): only images it has not scored are scored")
    p.add_argument("--split", choices=("judged", "test", "all"), default="all",
                   help="all images (default), or only the judged set: labeled images not used for training "
                        "('test' is the same)")
    pixel_limit_option(p)
    p.add_argument("--cluster", metavar="local:N|tcp://HOST:PORT",
                   help="score on Dask: N worker processes here, or a running `dask scheduler` whose workers "
                        "see the images at the same paths (needs `pip install -e .[cluster]`); --out then "
                        "takes .csv or .parquet")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("evaluate", help="train on the training set, score the judged set (labeled images not "
                                        "used for training), report metrics as JSON")
    detector_options(p)
    p.add_argument("--report", "-r", help="JSON report to write")
    p.add_argument("--out", "-o", help="also save the trained model here")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("detectors", help="list the detectors and their settings")
    p.add_argument("--verbose", "-v", action="store_true", help="show every setting with its default")
    p.set_defaults(func=cmd_detectors)
