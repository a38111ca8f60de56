"""Labeled anomaly sets out of the store, in the layout anomaly-detection tools read (anomalib Folder /
MVTec-like), with a manifest saying where every file came from and why it is in the set.

    OUT/good/<file>                  label good
    OUT/<defect type>/<file>         label defect with a defect type (name sanitised, see safe_name)
    OUT/defect/<file>                label defect without a defect type
    OUT/suspicious/<file>            label suspicious (any defect type is kept in the manifest)
    OUT/unlabeled/<file>             only if unlabeled images are asked for
    OUT/masks/<folder>/<stem>_mask<ext>   ground-truth masks of defect images that have one
    OUT/manifest.csv, OUT/manifest.json

Why it is careful: exports are handed to other people and tools, so a half-written folder must never look
like a finished one (everything is written to a temporary folder beside the target and renamed into
place), and label text typed by users (defect types, file names) must never steer a write outside the
target (every path component is sanitised, and each final path is checked to lie inside the target).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.store import Store, StoreError, ThresholdRecord, UnknownRunError
from core.store.stamps import utc_now
from core.vocabulary import LABELS

EXPORT_FORMAT = "anomaly-inspector-export"
MANIFEST_FIELDS = ("export_path", "source_path", "sha256", "label", "defect_type", "note", "score", "component",
                   "run", "threshold_t1", "threshold_t2", "threshold_method", "labeler", "labeled_at",
                   "label_source", "mask_path", "mask_source")
# Folder names with a fixed meaning in the layout; a defect type that sanitises to one of these is
# prefixed so that e.g. a defect type "good" can never be mixed into the good images.
RESERVED_FOLDERS = frozenset({"good", "defect", "suspicious", "unlabeled", "masks"})
_WINDOWS_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
                              | {f"COM{i}" for i in range(10)} | {f"LPT{i}" for i in range(10)}
                              | {f"COM{c}" for c in "¹²³"} | {f"LPT{c}" for c in "¹²³"})
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_MAX_NAME = 120


class ExportError(Exception):
    """The export cannot be made (target exists, bad filter, ...); the message names the file."""


class ExportCancelled(ExportError):
    """should_stop() asked to stop; nothing was left behind."""


@dataclass(frozen=True)
class ExportFilter:
    """Which images go into the set. A score band (min_score/max_score) or run_id keeps only images the
    run scored; run_id "latest" means the newest run. component defaults to the run's default."""

    labels: tuple[str, ...] = ("good", "defect", "suspicious")
    defect_types: tuple[str, ...] | None = None  # None: every defect type (and none)
    run_id: str | None = None
    component: str | None = None
    min_score: float | None = None
    max_score: float | None = None


@dataclass
class ExportResult:
    out_dir: Path
    n_images: int = 0
    n_masks: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # per output folder
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (source file, reason)
    renamed_folders: dict[str, str] = field(default_factory=dict)  # defect type -> folder, when they differ


def safe_name(name: str, fallback: str = "_") -> str:
    """One path component that is safe on Linux, macOS and Windows and cannot climb out of its folder.

    Separators and characters Windows forbids become "_", leading/trailing dots and spaces are removed
    (so "..", "." and "../x" cannot act as relative paths), reserved device names (CON, NUL, COM1 ...,
    also with an extension) get a "_" prefix, empty results become `fallback`, and the length is capped.
    """
    text = unicodedata.normalize("NFC", str(name))
    text = _UNSAFE.sub("_", text)
    text = text.strip(" .")
    if not text:
        return fallback
    if text.split(".")[0].rstrip(" ").upper() in _WINDOWS_RESERVED:
        text = "_" + text
    if len(text) > _MAX_NAME:
        stem, dot, ext = text.rpartition(".")
        text = (stem[:_MAX_NAME - len(ext) - 1] + "." + ext) if dot and len(ext) <= 10 else text[:_MAX_NAME]
        text = text.rstrip(" .") or fallback
    return text


def _inside(base: Path, candidate: Path) -> bool:
    base_r, cand_r = os.path.realpath(base), os.path.realpath(candidate)
    return os.path.commonpath([base_r, cand_r]) == base_r and cand_r != base_r


def _is_previous_export(path: Path) -> bool:
    """Only an empty folder or one holding our manifest may be replaced by --overwrite: a mistyped
    target such as a home folder must never be deleted."""
    if not path.is_dir() or path.is_symlink():
        return False
    if not any(path.iterdir()):
        return True
    try:
        return json.loads((path / "manifest.json").read_text(encoding="utf-8")).get("format") == EXPORT_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _score_text(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else repr(float(value))


def export_labeled(store: Store, out_dir: str | Path, filt: ExportFilter | None = None, *,
                   overwrite: bool = False, progress: Callable[[int, int], None] | None = None,
                   should_stop: Callable[[], bool] | None = None) -> ExportResult:
    """Copy the chosen images (and masks) into `out_dir`, atomically. Missing source files are listed in
    `skipped` and the rest is exported. Raises ExportError if the target exists and `overwrite` is
    not set (or the target is not an earlier export), ExportCancelled if should_stop() becomes true."""
    filt = filt or ExportFilter()
    out_dir = Path(os.path.abspath(out_dir))
    bad = [lab for lab in filt.labels if lab not in LABELS]
    if bad:
        raise ExportError(f"{store.path}: unknown label(s) {', '.join(bad)}; choose from {', '.join(LABELS)}")
    if out_dir.exists() or out_dir.is_symlink():
        if not overwrite:
            raise ExportError(f"{out_dir}: already exists; choose another folder or overwrite it")
        if not _is_previous_export(out_dir):
            raise ExportError(f"{out_dir}: exists and is not an earlier export (no {EXPORT_FORMAT} "
                              f"manifest.json); refusing to replace it")

    run_id, component, scores, threshold = _run_context(store, filt)
    images = {rec.id: rec for rec in store.images()}
    chosen = []
    for rec in store.labels():
        if rec.label not in filt.labels:
            continue
        if filt.defect_types is not None and rec.defect_type not in filt.defect_types:
            continue
        score = None if scores is None else float(scores[rec.image_id])
        if filt.run_id is not None or filt.min_score is not None or filt.max_score is not None:
            if score is None or math.isnan(score):
                continue
            if filt.min_score is not None and score < filt.min_score:
                continue
            if filt.max_score is not None and score > filt.max_score:
                continue
        chosen.append((rec, images[rec.image_id], score))

    result = ExportResult(out_dir)
    folders = _folder_names(rec.defect_type for rec, _, _ in chosen if rec.label == "defect" and rec.defect_type)
    result.renamed_folders = {k: v for k, v in folders.items() if k != v}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        rows = _copy_all(store, tmp, chosen, folders, run_id, component, threshold, result, progress, should_stop)
        _write_manifests(tmp, rows, store, filt, run_id, component)
        _swap_in(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def _run_context(store: Store, filt: ExportFilter
                 ) -> tuple[str | None, str | None, Any, ThresholdRecord | None]:
    """Which run supplies the score/threshold columns: the filter's run, else the newest run, else none."""
    if (filt.min_score is not None or filt.max_score is not None) and filt.run_id is None:
        raise ExportError(f"{store.path}: a score band needs a run (give the run id, or \"latest\")")
    run_id = store.latest_run() if filt.run_id in (None, "latest") else filt.run_id
    if filt.run_id == "latest" and run_id is None:
        raise ExportError(f"{store.path}: holds no runs, so there is no latest run to filter by")
    if run_id is None:
        return None, None, None, None
    try:
        info = store.run_info(run_id)
    except UnknownRunError as exc:
        raise ExportError(str(exc)) from exc
    component = filt.component or info.default_component
    if component not in info.components:
        raise ExportError(f"{store.path}: run {run_id} has no score component {component!r} "
                          f"(it has {', '.join(info.components)})")
    return run_id, component, store.scores(run_id, component), store.threshold(run_id)


def _folder_names(defect_types: Iterable[str]) -> dict[str, str]:
    """A distinct safe folder per distinct defect type (two types that sanitise alike get a suffix)."""
    out: dict[str, str] = {}
    used = set()
    for dt in sorted(set(defect_types)):
        name = safe_name(dt)
        if name.casefold() in RESERVED_FOLDERS:
            name = f"defect_{name}"
        base, k = name, 1
        while name.casefold() in used:
            k += 1
            name = f"{base}_{k}"
        used.add(name.casefold())
        out[dt] = name
    return out


def _unique_file(name: str, used: set[str]) -> str:
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    candidate, k = name, 1
    while candidate.casefold() in used:  # casefold: Windows and macOS folders ignore case
        k += 1
        candidate = f"{stem}_{k}.{ext}" if ext else f"{stem}_{k}"
    used.add(candidate.casefold())
    return candidate


def _copy_all(store: Store, tmp: Path, chosen: list, folders: dict[str, str], run_id: str | None,
              component: str | None, threshold: ThresholdRecord | None, result: ExportResult,
              progress: Callable[[int, int], None] | None,
              should_stop: Callable[[], bool] | None) -> list[dict[str, str]]:
    used: dict[str, set[str]] = {}
    rows = []
    for k, (rec, img, score) in enumerate(chosen):
        if should_stop is not None and should_stop():
            raise ExportCancelled(f"export to {result.out_dir} cancelled; nothing was written")
        folder = folders[rec.defect_type] if rec.label == "defect" and rec.defect_type else rec.label
        src = store.root / img.path
        if not src.is_file():
            result.skipped.append((str(src), "image file not found"))
            continue
        name = _unique_file(safe_name(Path(img.path).name, fallback="image"), used.setdefault(folder, set()))
        dst = tmp / folder / name
        mask_rel, mask_src = "", ""
        if not _inside(tmp, dst):  # cannot happen after safe_name; a last line of defence
            raise ExportError(f"{dst}: would be written outside the export folder")
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
            if rec.label == "defect" and img.mask_path:
                msrc = store.root / img.mask_path
                if msrc.is_file():
                    mname = safe_name(f"{Path(name).stem}_mask{Path(img.mask_path).suffix}", fallback="mask")
                    mdst = tmp / "masks" / folder / mname
                    if not _inside(tmp, mdst):
                        raise ExportError(f"{mdst}: would be written outside the export folder")
                    mdst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(msrc, mdst)
                    mask_rel, mask_src = mdst.relative_to(tmp).as_posix(), img.mask_path
                    result.n_masks += 1
                else:
                    result.skipped.append((str(msrc), "mask file not found; image exported without it"))
        except OSError as exc:
            result.skipped.append((str(src), f"could not copy ({exc.strerror or exc})"))
            continue
        result.n_images += 1
        result.counts[folder] = result.counts.get(folder, 0) + 1
        rows.append({
            "export_path": dst.relative_to(tmp).as_posix(), "source_path": img.path, "sha256": img.sha256,
            "label": rec.label, "defect_type": rec.defect_type, "note": rec.note,
            "score": _score_text(score), "component": component or "", "run": run_id or "",
            "threshold_t1": _score_text(threshold.t1) if threshold else "",
            "threshold_t2": _score_text(threshold.t2) if threshold else "",
            "threshold_method": threshold.method if threshold else "",
            "labeler": rec.who, "labeled_at": rec.time, "label_source": rec.source,
            "mask_path": mask_rel, "mask_source": mask_src})
        if progress is not None:
            progress(k + 1, len(chosen))
    return rows


def _write_manifests(tmp: Path, rows: list[dict[str, str]], store: Store, filt: ExportFilter,
                     run_id: str | None, component: str | None) -> None:
    with open(tmp / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    doc = {"format": EXPORT_FORMAT, "version": 1, "created": utc_now(), "store": str(store.path),
           "project_root": str(store.root), "filter": asdict(filt), "run": run_id, "component": component,
           "items": [{k: (float(v) if k in ("score", "threshold_t1", "threshold_t2") and v else v)
                      for k, v in row.items()} for row in rows]}
    (tmp / "manifest.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False), encoding="utf-8")


def _swap_in(tmp: Path, out_dir: Path) -> None:
    """Rename the finished folder into place. Replacing an earlier export takes two renames (old aside,
    new in) and then deletes the old one; a crash between them leaves both folders, never a mix."""
    if not (out_dir.exists() or out_dir.is_symlink()):
        os.replace(tmp, out_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    old.rmdir()
    os.replace(out_dir, old)
    try:
        os.replace(tmp, out_dir)
    except OSError:
        os.replace(old, out_dir)  # put the earlier export back
        raise
    shutil.rmtree(old, ignore_errors=True)


def open_and_export(store_path: str | Path, out_dir: str | Path, filt: ExportFilter | None = None, *,
                    overwrite: bool = False) -> ExportResult:
    """Command-line entry: opens the store read-only (so it works while a window has it open, from the
    writer's last flushed state) and exports."""
    try:
        store = Store.open(store_path, readonly=True)
    except StoreError as exc:
        raise ExportError(str(exc)) from exc
    with store:
        return export_labeled(store, out_dir, filt, overwrite=overwrite)
