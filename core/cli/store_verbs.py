"""Command-line verbs for the label store: `export`, `import-gt` and `label`.

Hooked into the parser (core/cli/entry.py) with add_commands(subparsers). Each verb returns an exit status;
errors a user can cause (missing or locked store, existing target, unknown image) print one line naming the
file and return 2, like the rest of the command line, and never a traceback (unless --debug is set).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.cli.detector_verbs import pixel_count
from core.data.folders import FolderError
from core.data.images import MAX_PIXELS_ENV, set_max_pixels
from core.export import ExportError, ExportFilter, open_and_export
from core.project.opening import open_project
from core.store import Store, StoreError, UnknownImageError
from core.vocabulary import LABEL_SOURCES, LABELS

USER_ERROR = 2
_MAX_LISTED = 20


def _guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """One line on stderr instead of a traceback for the errors a user causes."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (StoreError, ExportError, FolderError) as exc:
            if getattr(args, "debug", False):
                raise
            print(f"error: {exc}", file=sys.stderr)
        except (ValueError, OSError) as exc:
            if getattr(args, "debug", False):
                raise
            where = getattr(exc, "filename", None) or getattr(args, "store", "")
            print(f"error: {where}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}",
                  file=sys.stderr)
        return USER_ERROR

    run.__name__ = func.__name__
    run.__doc__ = func.__doc__
    return run


def _report_skipped(skipped: list[tuple[str, str]]) -> None:
    """Every skipped file, once, with its reason: a user must be able to find each one."""
    for path, reason in skipped:
        print(f"skipped: {path}: {reason}", file=sys.stderr)
    if len(skipped) > _MAX_LISTED:
        print(f"{len(skipped)} files skipped (listed above)", file=sys.stderr)


@_guarded
def cmd_export(args: argparse.Namespace) -> int:
    filt = ExportFilter(labels=tuple(args.label) if args.label else ExportFilter.labels,
                        defect_types=tuple(args.defect_type) if args.defect_type else None,
                        run_id=args.run, component=args.component,
                        min_score=args.min_score, max_score=args.max_score)
    result = open_and_export(args.store, args.out, filt, overwrite=args.overwrite)
    _report_skipped(result.skipped)
    for defect, folder in sorted(result.renamed_folders.items()):
        print(f"note: defect type {defect!r} exported to folder {folder!r}", file=sys.stderr)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items())) or "nothing matched the filter"
    print(f"exported {result.n_images} images and {result.n_masks} masks to {result.out_dir} ({counts})")
    return 0


@_guarded
def cmd_import_gt(args: argparse.Namespace) -> int:
    set_max_pixels(args.max_pixels)  # the import decodes every file to skip those that cannot be shown
    folder = Path(args.folder)
    if not folder.is_dir():
        raise StoreError(f"{folder}: no such folder")
    store_path = Path(args.store)
    if store_path.exists():
        store = Store.open(store_path, root=args.root)
    else:  # default project root: the folder that holds the image folder, so paths keep its name
        store = Store.create(store_path, args.root or folder.absolute().parent)
    with store:
        res = store.import_mvtec(folder)
    _report_skipped(res.skipped)
    for path in res.kept_human[:_MAX_LISTED]:
        print(f"kept human label: {path}", file=sys.stderr)
    if res.missing_masks:
        print(f"note: {len(res.missing_masks)} defect image(s) have no mask in {folder / 'ground_truth'}",
              file=sys.stderr)
    print(f"imported {res.added + res.existing} images ({res.added} new) into {store_path}: {res.labeled} labels "
          f"set, {res.unchanged} unchanged, {len(res.kept_human)} human labels kept, {res.masks} masks")
    return 0


def _label_targets(args: argparse.Namespace) -> list[str]:
    """IMAGE, or the lines of --from-file (blank lines and # comments skipped)."""
    if args.from_file:
        text = Path(args.from_file).read_text(encoding="utf-8")
        targets = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if args.image:
            targets.insert(0, args.image)
        if not targets:
            raise StoreError(f"{args.from_file}: lists no images")
        return targets
    if not args.image:
        raise StoreError("name an IMAGE or give --from-file FILE (one image path per line)")
    return [args.image]


@_guarded
def cmd_label(args: argparse.Namespace) -> int:
    if args.train and args.label != "good":
        raise StoreError(f"only good images train: --train needs the label good, not {args.label!r}")
    targets = _label_targets(args)
    with open_project(args.store) as store:
        ids, unknown = [], []
        for target in targets:
            try:
                ids.append(store.image_id(target))
            except UnknownImageError:
                unknown.append(target)
        for target in unknown[:_MAX_LISTED]:
            print(f"skipped: {target}: not an image of the project {store.path}", file=sys.stderr)
        if len(unknown) > _MAX_LISTED:
            print(f"skipped: ... and {len(unknown) - _MAX_LISTED} more", file=sys.stderr)
        try:
            recs = store.set_labels([(i, args.label, args.defect_type, args.note) for i in ids],
                                    source=args.source, run_id=args.run) if ids else []
        except ValueError as exc:
            raise StoreError(f"{store.path}: {exc}") from exc
        if args.train or args.no_train:
            store.set_split(ids, "train" if args.train else "test")
        if len(recs) == 1:
            rec = recs[0]
            extra = f" ({rec.defect_type})" if rec.defect_type else ""
            print(f"{store.image(rec.image_id).path}: {rec.label}{extra}, by {rec.who} at {rec.time} [{rec.source}]"
                  + ("; used for training" if args.train else ""))
        elif recs:
            print(f"labeled {len(recs)} images {args.label} in {store.path}"
                  + ("; used for training" if args.train else ""))
    return USER_ERROR if unknown else 0


def add_commands(subparsers: Any) -> None:
    """Add `export`, `import-gt` and `label` to an argparse subparsers object (from add_subparsers())."""
    p = subparsers.add_parser(
        "export", help="copy labeled images into a good/ + <defect>/ folder set with a manifest",
        description="Export labeled images in the MVTec / anomalib Folder layout (good/, one folder per defect "
                    "type, defect/ for defects without a type, suspicious/, masks/<defect>/) plus "
                    "manifest.csv and manifest.json. Written to a temporary folder and renamed into place.")
    p.add_argument("store", help="the project's .h5 label store")
    p.add_argument("--out", "-o", required=True, help="export folder (must not exist unless --overwrite)")
    p.add_argument("--label", action="append", choices=LABELS,
                   help="labels to export (repeatable; default: good, defect, suspicious)")
    p.add_argument("--defect-type", action="append", help="only these defect types (repeatable)")
    p.add_argument("--run", help="run id for scores and thresholds ('latest' for the newest run); "
                                 "only images it scored are exported")
    p.add_argument("--component", help="score component of the run (default: the run's default)")
    p.add_argument("--min-score", type=float, help="keep images scoring at least this (needs --run)")
    p.add_argument("--max-score", type=float, help="keep images scoring at most this (needs --run)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export in the target folder")
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser(
        "import-gt", help="import MVTec-layout ground truth as labels (source 'import')",
        description="Read FOLDER/train/good, FOLDER/test/<good|defect>/ and FOLDER/ground_truth/<defect>/ "
                    "into the store (created if missing). Labels a person has set are kept.")
    p.add_argument("store", help="the project's .h5 label store (created if missing)")
    p.add_argument("folder", help="MVTec AD category folder (holds train/ and test/)")
    p.add_argument("--root", help="project root that image paths are stored relative to "
                                  "(default for a new store: the folder holding FOLDER)")
    p.add_argument("--max-pixels", type=pixel_count, metavar="PIXELS",
                   help=f"skip images whose header says they are larger (e.g. 400M; default ${MAX_PIXELS_ENV} "
                        "or 256M)")
    p.set_defaults(func=cmd_import_gt)

    p = subparsers.add_parser(
        "label", help="label images of a project (a folder or its store), optionally for training",
        description="Set labels; they are on disk when the command returns. A folder without a project store "
                    "gets one (anomaly_inspector.h5 inside it). With --train the images are also marked for "
                    "training: the training set is the images labeled good and marked for training; every other "
                    "labeled image is judged (thresholds, evaluate). Unknown images are named and skipped (exit "
                    "status 2), the rest are labeled.")
    p.add_argument("store", metavar="FOLDER|STORE", help="an image folder or a project store (.h5)")
    p.add_argument("image", nargs="?",
                   help="image path (as stored, relative to the project root, or a path to the file)")
    p.add_argument("label", choices=LABELS)
    p.add_argument("--from-file", metavar="FILE", help="label every image listed in FILE (one path per line)")
    train = p.add_mutually_exclusive_group()
    train.add_argument("--train", action="store_true", help="also mark the images for training (label good)")
    train.add_argument("--no-train", action="store_true", help="stop using the images for training (judge them)")
    p.add_argument("--defect-type", help="defect type (for defect / suspicious)")
    p.add_argument("--note", help="free note (default: keep the current note)")
    p.add_argument("--source", choices=LABEL_SOURCES, default="human", help="who decided (default: human)")
    p.add_argument("--run", help="run id behind a model verdict (with --source model)")
    p.set_defaults(func=cmd_label)
