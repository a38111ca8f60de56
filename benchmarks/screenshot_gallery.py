"""Render docs/screenshots/gallery.png: the built-in demo set in the gallery widget, offscreen.

    /work/venv/bin/python -m benchmarks.screenshot_gallery [--out docs/screenshots/gallery.png]

The scores are made up (defects score higher, with overlap, a few images unscored) and a few labels are set,
so the picture shows every kind of tile: each badge colour, defect types, the review band frame, a selected
tile and the placeholder of a file that cannot be decoded.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from benchmarks.gallery_bench import binding_drops_none  # noqa: E402
from core.data.folders import scan_folder  # noqa: E402
from core.data.synthetic import DemoSpec, generate  # noqa: E402
from inspector_gui.gallery import GalleryWidget  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def wait_for_thumbnails(app: QApplication, widget: GalleryWidget, timeout: float = 20.0) -> bool:
    """Process events until every tile on screen shows its thumbnail (or its broken-file placeholder)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        app.processEvents()
        visible = widget.view.visible_paths()
        if visible and all(widget.model.thumbnail_state(p) in ("ready", "broken") for p in visible):
            for _ in range(5):  # let the coalesced dataChanged repaint the tiles
                app.processEvents()
                time.sleep(0.03)
            return True
        time.sleep(0.01)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots" / "gallery.png")
    parser.add_argument("--size", default="1000x700", help="window size WxH")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))

    app = QApplication.instance() or QApplication(sys.argv[:1])
    if binding_drops_none():
        print("this PySide6 build loses a reference to None on every void Qt call under this Python: the process "
              "would abort while painting (use PySide6 6.11.2 or Python >= 3.12)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        root = generate(Path(tmp) / "demo", DemoSpec())
        broken = root / "test" / "good" / "999_truncated.png"
        broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # a PNG header and nothing else
        folder = scan_folder(root)
        items = folder.items
        rng = np.random.default_rng(0)
        is_defect = np.array([it.label == "defect" for it in items])
        scores = np.where(is_defect, rng.normal(1.55, 0.3, len(items)), rng.normal(1.0, 0.18, len(items)))
        scores[rng.random(len(items)) < 0.05] = np.nan  # a few images not scored yet
        paths = [it.path for it in items]
        scores[paths.index(str(broken))] = 1.7

        widget = GalleryWidget()
        model = widget.model
        # Review labels start empty; the folder's good/defect is ground truth, not a review decision.
        model.set_items(paths, [it.split for it in items], None, [None] * len(items))
        model.set_scores(scores)
        model.set_review_band(1.25, 1.45)
        for rank, path in enumerate(widget.proxy.paths()[:40]):
            item = items[paths.index(path)]
            if item.label == "defect" and rank % 3 != 2:
                model.set_label(model.row_of(path), "defect", item.defect_type or "")
            elif item.label == "defect":
                model.set_label(model.row_of(path), "suspicious")
            elif rank % 4 == 1:
                model.set_label(model.row_of(path), "good")
        widget.resize(width, height)
        widget.show()
        widget.view.select_path(widget.proxy.paths()[2])
        ok = wait_for_thumbnails(app, widget)
        image = widget.grab()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        image.save(str(args.out))
        print(f"wrote {args.out} ({image.width()}x{image.height()}); thumbnails complete: {ok}; "
              f"{widget.count_label.text()}")
        model.shutdown()
        widget.close()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
