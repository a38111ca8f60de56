"""Time one drag step of the threshold panel at 100k images; the goal is <= 16 ms (one 60 Hz frame).

A step is what a mouse move during a drag costs once the frame timer fires: the line (or ROC target) moves,
the panel's coalesced update runs (model update + every view: lines, band, sliders, spin boxes, ROC points,
confusion matrix, metric labels), then the whole panel is repainted synchronously (`repaint()` +
`processEvents()`, offscreen). Paint events on both plot viewports are counted to show the plots really
were redrawn in every step. Results go to docs/threshold-drag.md.

    QT_QPA_PLATFORM=offscreen python -m benchmarks.threshold_drag_bench [--n 100000] [--steps 200]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pyqtgraph as pg  # noqa: E402
import PySide6  # noqa: E402
from PySide6.QtCore import QEvent, QObject  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.threshold import ThresholdModel  # noqa: E402
from inspector_gui.threshold_panel import ThresholdPanel  # noqa: E402

DOC = ROOT / "docs" / "threshold-drag.md"


class PaintCounter(QObject):
    """Counts paint events on the widgets it is installed on."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Type.Paint:
            self.count += 1
        return False


def guard_singleton_refcounts() -> list | None:
    """Work around a PySide6 6.12.0 bug on Python < 3.12 (not in 6.11.3; Python >= 3.12 makes these objects
    immortal): every `Signal.emit()` drops one reference to True, and every Python override of a void Qt
    virtual (pyqtgraph's paint(), paintEvent() ...) drops one to None. A drag step here does about a hundred
    of those, and the interpreter aborts ("none_dealloc" / "bool_dealloc") once a count reaches zero, within
    about a hundred steps. Holding extra references lets the benchmark measure the panel; the application
    itself needs PySide6 != 6.12.0 (or Python >= 3.12)."""
    import shiboken6

    if sys.version_info >= (3, 12) or not shiboken6.__version__.startswith("6.12.0"):
        return None
    import ctypes

    guard = [None, True, False] * 2_000_000
    # Never freed, not even at interpreter exit: freeing it would hand back references Qt already dropped.
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(guard))
    return guard


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """60 % good N(0, 1), 8 % defect N(2.5, 1), 2 % suspicious, 30 % unlabeled (a mix of both)."""
    rng = np.random.default_rng(seed)
    names = np.array(["good", "defect", "suspicious", "unlabeled"], dtype=object)
    labels = names[rng.choice(4, n, p=[0.60, 0.08, 0.02, 0.30])]
    defect_like = (labels == "defect") | ((labels != "good") & (rng.random(n) < 0.2))
    scores = rng.normal(0.0, 1.0, n) + 2.5 * defect_like
    return scores, labels


def percentiles(ms: np.ndarray) -> dict[str, float]:
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "max": float(ms.max()),
            "mean": float(ms.mean())}


def run(n: int, steps: int, repeats: int = 3, warmup: int = 10) -> dict:
    app = QApplication.instance() or QApplication([])
    guard_singleton_refcounts()
    scores, labels = synthetic(n)
    t = time.perf_counter()
    model = ThresholdModel(scores, labels)
    build_ms = (time.perf_counter() - t) * 1e3
    panel = ThresholdPanel(model)
    panel.resize(900, 600)
    panel.show()
    for _ in range(3):
        app.processEvents()
    counter = PaintCounter()
    panel.histogram.viewport().installEventFilter(counter)
    panel.roc.viewport().installEventFilter(counter)
    roc_points = len(model.roc().x)

    def step(move, value) -> tuple[float, float, float]:
        c0, t0 = time.process_time(), time.perf_counter()
        move(value)  # what the mouse does: the item moves and emits sigPositionChanged
        panel.flush_pending()  # what the frame timer then runs
        t1 = time.perf_counter()
        panel.repaint()
        app.processEvents()
        t2, c2 = time.perf_counter(), time.process_time()
        return (t1 - t0) * 1e3, (t2 - t0) * 1e3, (c2 - c0) * 1e3

    results = {}
    lo, hi = np.percentile(scores, [1, 99.9])
    sweep = np.r_[np.linspace(lo, hi, steps // 2), np.linspace(hi, lo, steps - steps // 2)]
    roc = model.roc()
    # ROC drag: a path across the curve's points (fpr, tpr), slightly off the curve like a real mouse.
    idx = np.linspace(1, len(roc.x) - 1, steps).astype(int)
    roc_path = np.c_[roc.x[idx] + 0.01, roc.y[idx] - 0.01]
    cases = {
        "histogram T1 line": (panel.histogram.t1_line.setValue, sweep),
        "ROC target": (lambda p: panel.roc.target.setPos(float(p[0]), float(p[1])), roc_path),
    }
    # Each drag is measured `repeats` times, interleaved, so the table shows how much the machine's load
    # moves the numbers from one run to the next.
    for name, (move, values) in [(f"{name} (run {r + 1})", case) for r in range(repeats)
                                 for name, case in cases.items()]:
        for v in values[:warmup]:
            step(move, v)
        before_paints = counter.count
        update, total, cpu = [], [], []
        changes = []
        model.events.connect(changes.append)
        for v in values:
            u, tt, c = step(move, v)
            update.append(u)
            total.append(tt)
            cpu.append(c)
        model.events.disconnect(changes.append)
        results[name] = {"update": percentiles(np.array(update)), "total": percentiles(np.array(total)),
                         "cpu": percentiles(np.array(cpu)),
                         "paints": counter.count - before_paints, "model_changes": len(changes),
                         "steps": len(values)}
    panel.close()
    return {"n": n, "steps": steps, "build_ms": build_ms, "roc_points": roc_points, "cases": results}


def write_doc(res: dict, command: str, load_before: tuple, load_after: tuple, note: str = "") -> None:
    lines = [
        "# Threshold panel: drag step time",
        "",
        f"Measured {dt.datetime.now().strftime('%Y-%m-%d %H:%M')} with `{command}`.",
        "",
        f"{res['n']:,} synthetic scores (60 % good N(0,1), 8 % defect N(2.5,1), 2 % suspicious, 30 % unlabeled); "
        f"ROC curve of {res['roc_points']:,} points; panel 900 x 600, offscreen (QT_QPA_PLATFORM=offscreen). "
        f"Model build (sort per label group, histograms): {res['build_ms']:.0f} ms.",
        "",
        "One step = move the item (emits sigPositionChanged) + the panel's coalesced update (model update and "
        "every view) + a synchronous repaint of the whole panel (`repaint()` + `processEvents()`). "
        "Goal: <= 16 ms per step.",
        "",
        "| drag | steps | update, wall p50 / p99 / max (ms) | **step incl. repaint, wall** p50 / p99 / max (ms) "
        "| step, CPU time p50 / p99 / max (ms) | plot repaints |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in res["cases"].items():
        u, t, c = r["update"], r["total"], r["cpu"]
        lines.append(f"| {name} | {r['steps']} | {u['p50']:.2f} / {u['p99']:.2f} / {u['max']:.2f} | "
                     f"**{t['p50']:.2f} / {t['p99']:.2f} / {t['max']:.2f}** | "
                     f"{c['p50']:.2f} / {c['p99']:.2f} / {c['max']:.2f} | {r['paints']} |")
    verdicts = []
    for name, r in res["cases"].items():
        wall_ok = [k for k in ("p50", "p99", "max") if r["total"][k] <= 16.0]
        verdicts.append(f"{name}: wall time within 16 ms at {', '.join(wall_ok) or 'none of p50 / p99 / max'}; "
                        f"CPU time p99 {r['cpu']['p99']:.1f} ms")
    lines += [
        "",
        "Result against the 16 ms goal — " + "; ".join(verdicts) + ".",
        "",
        "\"plot repaints\" counts paint events on the two plot viewports during the timed steps (two per step "
        "means both plots were redrawn every step). CPU time is this process's, so it shows the panel's own cost "
        "when other work competes for the cores; wall time is what the user waits.",
        "",
        "What keeps a step cheap: the model answers a threshold change with two `searchsorted` calls per label "
        "group; drag events are coalesced to one update per 16 ms frame; the histogram and ROC curves are cached "
        "as pixmaps (`QGraphicsItem.DeviceCoordinateCache`), which are only redrawn when their data or the zoom "
        "changes. (In one A/B run while writing the panel, turning that cache off raised the CPU time per step "
        "from about 5.5 ms to about 8 ms.)",
        "",
        "PySide6 6.12.0 on Python 3.11 drops a reference to `True` at every `Signal.emit()` and one to `None` at "
        "every call of a Python override of a void Qt virtual (pyqtgraph's `paint()`, `paintEvent()` ...); the "
        "interpreter aborts (`none_dealloc` / `bool_dealloc`) after a few thousand of them, which is about a "
        "hundred drag steps. PySide6 6.11.3 does not. The benchmark holds extra references to those objects "
        "(`guard_singleton_refcounts`) so it can run on the installed 6.12.0; the application needs "
        "PySide6 != 6.12.0 or Python >= 3.12.",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}, "
        f"PySide6 {PySide6.__version__}, pyqtgraph {pg.__version__}, numpy {np.__version__}. "
        f"Load average before / after: {load_before[0]:.2f} / {load_after[0]:.2f}" + (f" ({note})." if note else "."),
        "",
    ]
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-doc", action="store_true", help="print only")
    ap.add_argument("--note", default="", help="context for the doc, e.g. what else was running")
    args = ap.parse_args()
    load_before = os.getloadavg()
    res = run(args.n, args.steps, args.repeats)
    load_after = os.getloadavg()
    for name, r in res["cases"].items():
        print(name, {k: {kk: round(vv, 2) for kk, vv in v.items()} for k, v in r.items() if isinstance(v, dict)},
              "paints", r["paints"], "model changes", r["model_changes"])
    if not args.no_doc:
        command = "QT_QPA_PLATFORM=offscreen python -m benchmarks.threshold_drag_bench" + (
            f" --n {args.n}" if args.n != 100_000 else "") + (f" --steps {args.steps}" if args.steps != 200 else "") + (
            f" --repeats {args.repeats}" if args.repeats != 3 else "")
        if args.note:
            command += f" --note {args.note!r}"
        write_doc(res, command, load_before, load_after, args.note)
        print(DOC)


if __name__ == "__main__":
    main()
