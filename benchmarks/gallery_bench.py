"""Gallery speed with 10k images: open (set_items + set_scores), first screen painted, sort, filter, scroll.

    /work/venv/bin/python -m benchmarks.gallery_bench [--n 10000] [--files 200] [--image-size 256] [--repeats 3]

Writes docs/gallery-bench.md. The goal (from the issue): 10k images open and paint their first screen in about a
second. Images: `--files` real PNGs (grey machined-part-like texture, `--image-size` px) written once, then
linked under `--n` distinct names (symlinks), so every path is decoded on its own, as in a real folder.
Runs offscreen at 1200 x 800. Each repeat builds a new widget and model (cold thumbnail cache; the OS file
cache is warm after the first repeat, which the table reports separately).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import PySide6  # noqa: E402
from PySide6.QtCore import (  # noqa: E402
    QAbstractListModel,
    QEvent,
    QModelIndex,
    QObject,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtWidgets import QApplication  # noqa: E402

from inspector_gui.gallery import GalleryWidget  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "gallery-bench.md"


class PaintCounter(QObject):
    """Counts paint events of the view's viewport (installed as an event filter)."""

    def __init__(self) -> None:
        super().__init__()
        self.paints = 0

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.paints += 1
        return False


def make_files(folder: Path, n_files: int, n_paths: int, size: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    real = []
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for i in range(n_files):
        pitch = rng.uniform(3, 8)
        img = 120 + 30 * np.sin(2 * np.pi * (xx * rng.uniform(0.5, 1) + yy * rng.uniform(0, 0.5)) / pitch)
        img += rng.normal(0, 6, img.shape)
        path = folder / "files" / f"src_{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.clip(img, 0, 255).astype(np.uint8))
        real.append(path)
    paths = []
    for j in range(n_paths):
        link = folder / "links" / f"{j // 1000:02d}" / f"part_{j:05d}.png"
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(real[j % n_files], link)
        paths.append(str(link))
    return paths


def pump_until(app: QApplication, done, timeout: float = 60.0) -> bool:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        app.processEvents()
        if done():
            return True
        time.sleep(0.001)
    return False


def screen_ready(widget: GalleryWidget) -> bool:
    visible = widget.view.visible_paths()
    return bool(visible) and all(widget.model.thumbnail_state(p) in ("ready", "broken") for p in visible)


def binding_drops_none() -> bool:
    """True when void Qt calls lose a reference to None (PySide6 6.12.0 on Python 3.11, measured here).

    Such a process aborts ("deallocating None") after a few thousand painted items, so the benchmark refuses
    to start instead of dying half-way. Python >= 3.12 makes None immortal, which hides the fault.
    """
    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(200):
        probe.setObjectName("probe")
    return sys.version_info < (3, 12) and sys.getrefcount(None) < before - 100


def python_lessthan_sort_seconds(n: int) -> float:
    """For comparison: QSortFilterProxyModel's own sort of n rows with a Python lessThan on precomputed ranks."""
    ranks = np.random.default_rng(0).permutation(n).tolist()

    class Source(QAbstractListModel):
        def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
            return 0 if parent.isValid() else n

        def data(self, index: QModelIndex, role: int = 0) -> object:
            return index.row()

    class RankProxy(QSortFilterProxyModel):
        def lessThan(self, left: QModelIndex, right: QModelIndex) -> bool:
            return ranks[left.row()] < ranks[right.row()]

    source, proxy = Source(), RankProxy()
    proxy.setSourceModel(source)
    proxy.rowCount()
    t = time.perf_counter()
    proxy.sort(0, Qt.SortOrder.AscendingOrder)
    proxy.rowCount()
    return time.perf_counter() - t


def run_once(app: QApplication, paths: list[str], rng: np.random.Generator) -> dict[str, float]:
    n = len(paths)
    splits = np.where(rng.random(n) < 0.3, "train", "test").tolist()
    labels = rng.choice(["unlabeled", "good", "defect", "suspicious"], n, p=[0.7, 0.15, 0.1, 0.05]).tolist()
    defects = [rng.choice(["scratch", "hole", "dent"]) if lab == "defect" else "" for lab in labels]
    scores = rng.gamma(2.0, 1.0, n)
    scores[rng.random(n) < 0.02] = np.nan

    widget = GalleryWidget()  # the window exists before a folder is opened, as in the application
    widget.resize(1200, 800)
    widget.show()
    pump_until(app, lambda: widget.isVisible(), 5)
    counter = PaintCounter()
    widget.view.viewport().installEventFilter(counter)
    model, proxy, view = widget.model, widget.proxy, widget.view
    out: dict[str, float] = {}

    t0 = time.perf_counter()
    model.set_items(paths, splits, labels, defects)
    t1 = time.perf_counter()
    model.set_scores(scores)
    t2 = time.perf_counter()
    out["set_items"] = t1 - t0
    out["set_scores"] = t2 - t1
    paints = counter.paints
    pump_until(app, lambda: counter.paints > paints and bool(view.visible_paths()))
    out["first_paint"] = time.perf_counter() - t0
    pump_until(app, lambda: screen_ready(widget))
    paints = counter.paints
    pump_until(app, lambda: counter.paints > paints, 2)  # the repaint that shows the last thumbnails
    out["first_screen"] = time.perf_counter() - t0
    out["visible_tiles"] = len(view.visible_paths())
    out["decoded_at_first_screen"] = model.loader.decoded_count

    t = time.perf_counter()
    proxy.set_sort("score", descending=False)
    proxy.rowCount()
    out["sort_score_model"] = time.perf_counter() - t
    app.processEvents()
    out["sort_score_with_view"] = time.perf_counter() - t
    t = time.perf_counter()
    proxy.set_sort("name", descending=False)
    proxy.rowCount()
    out["sort_name_model"] = time.perf_counter() - t
    t = time.perf_counter()
    proxy.set_sort("score", descending=True)
    proxy.rowCount()
    app.processEvents()
    out["sort_score_back"] = time.perf_counter() - t

    t = time.perf_counter()
    proxy.set_label_filter({"defect", "suspicious"})
    out["filter_label_shown"] = proxy.rowCount()
    out["filter_label"] = time.perf_counter() - t
    t = time.perf_counter()
    proxy.set_split_filter("test")
    proxy.set_defect_type_filter("scratch")
    out["filter_split_defect_shown"] = proxy.rowCount()
    out["filter_split_defect"] = time.perf_counter() - t
    t = time.perf_counter()
    proxy.set_label_filter(None)
    proxy.set_split_filter(None)
    proxy.set_defect_type_filter(None)
    out["filter_clear_shown"] = proxy.rowCount()
    out["filter_clear"] = time.perf_counter() - t
    model.set_review_band(2.0, 2.5)
    t = time.perf_counter()
    proxy.set_review_only(True)
    out["filter_review_shown"] = proxy.rowCount()
    out["filter_review"] = time.perf_counter() - t
    proxy.set_review_only(False)
    app.processEvents()

    t = time.perf_counter()
    model.set_label(n // 2, "defect", "scratch")
    out["set_label"] = time.perf_counter() - t

    bar = view.verticalScrollBar()
    pump_until(app, lambda: bar.maximum() > 0, 10)  # batched layout finishes in the background
    t = time.perf_counter()
    bar.setValue(bar.maximum() // 2)
    pump_until(app, lambda: screen_ready(widget))
    out["scroll_middle_screen"] = time.perf_counter() - t
    out["decoded_total"] = model.loader.decoded_count

    model.shutdown()
    widget.close()
    widget.deleteLater()
    app.processEvents()
    return out


ROWS = [
    ("set_items", "set_items (paths, splits, labels, defect types)", "ms"),
    ("set_scores", "set_scores (+ re-sort by score)", "ms"),
    ("first_paint", "open -> first paint of the view (placeholders)", "ms"),
    ("first_screen", "open -> first screen with all its thumbnails", "ms"),
    ("sort_score_model", "sort by score, ascending (model + proxy)", "ms"),
    ("sort_score_with_view", "same, including the view's relayout", "ms"),
    ("sort_name_model", "sort by name (model + proxy)", "ms"),
    ("sort_score_back", "sort back to score descending, with the view", "ms"),
    ("filter_label", "filter label in {defect, suspicious}", "ms"),
    ("filter_split_defect", "then split = test and defect type = scratch", "ms"),
    ("filter_clear", "clear those three filters", "ms"),
    ("filter_review", "review band only", "ms"),
    ("set_label", "set_label of one image", "ms"),
    ("scroll_middle_screen", "jump to the middle -> that screen's thumbnails", "ms"),
    ("visible_tiles", "tiles on the first screen", "n"),
    ("decoded_at_first_screen", "thumbnails decoded by then", "n"),
    ("decoded_total", "thumbnails decoded in the whole run", "n"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--note", default="", help="a sentence for the report, e.g. about the environment")
    args = parser.parse_args(argv)

    app = QApplication.instance() or QApplication(sys.argv[:1])
    if binding_drops_none():
        print(f"PySide6 {PySide6.__version__} on Python {platform.python_version()} loses a reference to None on "
              "every void Qt call; this process would abort after a few thousand painted tiles. Use PySide6 6.11.2 "
              "or Python >= 3.12.", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="gallery_bench_"))
    load_before = os.getloadavg()
    try:
        t = time.perf_counter()
        paths = make_files(tmp, args.files, args.n, args.image_size)
        prep = time.perf_counter() - t
        rng = np.random.default_rng(0)
        runs = [run_once(app, paths, rng) for _ in range(args.repeats)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lessthan = python_lessthan_sort_seconds(args.n)
    load_after = os.getloadavg()

    names = ["run 1 (cold)"] + [f"run {i + 1}" for i in range(1, len(runs))] + ["median"]
    header = "| step | " + " | ".join(names) + " |\n|---|" + "---:|" * len(names) + "\n"
    lines = []
    for key, text, unit in ROWS:
        vals = [r[key] for r in runs]
        fmt = (lambda v: f"{v * 1000:.0f} ms") if unit == "ms" else (lambda v: f"{v:.0f}")
        lines.append(f"| {text} | " + " | ".join(fmt(v) for v in vals) + f" | {fmt(statistics.median(vals))} |")
    when = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    shown = [a if " " not in a else repr(a) for a in (argv if argv is not None else sys.argv[1:])]
    cmd = f"{sys.executable} -m benchmarks.gallery_bench " + " ".join(shown)
    doc = f"""# Gallery benchmark

Command: `{cmd.strip()}`
Date: {when}
Machine: {platform.platform()}, Python {platform.python_version()}, PySide6 {PySide6.__version__},
{os.cpu_count()} cores, load average {load_before[0]:.2f} before / {load_after[0]:.2f} after
(a long benchmark of another component was running on the same machine).{(chr(10) + args.note) if args.note else ""}
Data: {args.n} image paths (symlinks to {args.files} distinct {args.image_size} x {args.image_size} grey PNGs,
written in {prep:.1f} s), window 1200 x 800 offscreen; a new widget and model for every run, so each run starts
with an empty thumbnail cache (the first run also has a cold OS file cache). "open" starts at `set_items`.

{header}{chr(10).join(lines)}

Goal: 10k images open and show their first screen in about a second — the "open -> first screen" row.
Sorting is done by the model (numpy argsort + one layoutChanged) and filtering by one precomputed numpy mask.
For comparison, in the same run: QSortFilterProxyModel's own sort of {args.n} rows with a Python `lessThan`
(reading precomputed ranks) took {lessthan * 1000:.0f} ms.
"""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(doc, encoding="utf-8")
    print(doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
