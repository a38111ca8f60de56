"""Render the threshold panel with realistic synthetic data to docs/screenshots/threshold_panel.png.

Offscreen `widget.grab()` renders the same pixels as a window, so this needs no display:

    QT_QPA_PLATFORM=offscreen python -m benchmarks.screenshot_threshold_panel [out.png]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "screenshots" / "threshold_panel.png"


def demo_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """500 good N(0, 1), 60 defect N(2.5, 1), 20 suspicious near the boundary, 200 unlabeled (a mix)."""
    rng = np.random.default_rng(seed)
    parts = [("good", rng.normal(0.0, 1.0, 500)), ("defect", rng.normal(2.5, 1.0, 60)),
             ("suspicious", rng.normal(1.5, 0.6, 20)),
             ("unlabeled", np.r_[rng.normal(0.0, 1.0, 180), rng.normal(2.5, 1.0, 20)])]
    scores = np.concatenate([s for _, s in parts])
    labels = np.concatenate([np.full(len(s), name, dtype=object) for name, s in parts])
    return scores, labels


def render(out: Path, size: tuple[int, int] = (900, 600)) -> Path:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from core.threshold import ThresholdModel
    from inspector_gui.threshold_panel import ThresholdPanel

    app = QApplication.instance() or QApplication([])
    model = ThresholdModel(*demo_data())
    model.apply_preset("f1_max")
    model.set_review_band(True, width=0.8)
    panel = ThresholdPanel(model)
    panel.resize(*size)
    panel.show()
    for _ in range(3):  # let layouts settle and pyqtgraph finish its deferred range updates
        app.processEvents()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not panel.grab().save(str(out)):
        raise OSError(f"could not write {out}")
    panel.close()
    return out


if __name__ == "__main__":
    print(render(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT))
