"""Screenshot of the image viewer on the built-in demo data: docs/screenshots/viewer.png.

Trains a tiny patch VAE on the demo set (about 10-20 s on a laptop CPU), scores the test split, and grabs
the viewer showing the M heat map of one defective image with its ground-truth contour and the hover
read-out of the patch on the defect. Offscreen: no display needed.

    python benchmarks/screenshot_viewer.py                      # docs/screenshots/viewer.png
    python benchmarks/screenshot_viewer.py --image test/blowhole/003.png --out /tmp/v.png
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import QPointF  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from core.data.folders import scan_folder  # noqa: E402
from core.data.images import decode_image, decode_mask  # noqa: E402
from core.data.synthetic import generate  # noqa: E402
from core.detectors.registry import create  # noqa: E402
from core.detectors.results import shared_map_ranges  # noqa: E402
from core.project import sets_from_folder  # noqa: E402
from inspector_gui.viewer import ImageViewer  # noqa: E402

VAE = {"patch_size": 32, "stride": 8, "n_conv": 4, "base_channels": 16, "latent": 16, "epochs": 5,
       "patches_per_image": 16}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", default="test/scratch/000.png", help="test image, relative to the demo root")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots" / "viewer.png")
    ap.add_argument("--size", default="900x700", help="widget size WxH")
    ap.add_argument("--epochs", type=int, default=VAE["epochs"], help="VAE epochs (5: a quick, rough model)")
    args = ap.parse_args(argv)
    # One thread: a second process on a 2-core machine makes 2 torch threads collapse (see DESIGN.md).
    torch.set_num_threads(1)

    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        root = generate(Path(tmp) / "demo")
        sets = sets_from_folder(scan_folder(root))
        train = [decode_image(it.path) for it in sets.train]
        test_items = sets.judged
        test = [decode_image(it.path) for it in test_items]

        t0 = time.perf_counter()
        det = create("vae", **{**VAE, "epochs": args.epochs})
        report = det.fit(train)
        t1 = time.perf_counter()
        result = det.score(test)
        t2 = time.perf_counter()
        print(f"trained {report.epochs} epochs in {t1 - t0:.1f} s ({report.stopped_by}); "
              f"scored {len(test)} images in {t2 - t1:.1f} s")

        wanted = (root / args.image).resolve()
        row = next((k for k, it in enumerate(test_items) if Path(it.path).resolve() == wanted), None)
        if row is None:
            print(f"{args.image}: not a test image of the demo set", file=sys.stderr)
            return 2
        item = test_items[row]
        mask = decode_mask(item.mask_path) if item.mask_path else None

        viewer = ImageViewer()
        w, h = (int(v) for v in args.size.split("x"))
        viewer.resize(w, h)
        viewer.show()
        # The caller's job in the app: one colour range per component over the whole run.
        for comp, (lo, hi) in shared_map_ranges(result.maps).items():
            viewer.set_shared_range(comp, lo, hi)
        viewer.set_components(list(result.components), result.default_component)
        maps = {name: grids[row] for name, grids in result.maps.items()}
        viewer.set_image(test[row], maps, result.geometry[row], mask,
                         title=f"{args.image}   M = {result.components['M'][row]:.1f}")
        viewer.set_component("M")
        viewer.set_opacity(0.55)
        viewer.set_mask_visible(True)
        app.processEvents()

        # Hover over the defect (mask centroid, or the hottest pixel without a mask) for the read-out.
        if mask is not None and mask.any():
            ys, xs = np.nonzero(mask)
            x, y = float(xs.mean()) + 0.5, float(ys.mean()) + 0.5
        else:
            dense = viewer.overlay_item.image
            y, x = (float(v) + 0.5 for v in np.unravel_index(np.argmax(dense), dense.shape))
        vp = viewer.graphics.viewport()
        QTest.mouseMove(vp, viewer.graphics.mapFromScene(viewer.view_box.mapViewToScene(QPointF(x, y))))
        app.processEvents()
        print("hover:", viewer.hover_label.text())

        args.out.parent.mkdir(parents=True, exist_ok=True)
        if not viewer.grab().save(str(args.out)):
            print(f"{args.out}: could not write the PNG", file=sys.stderr)
            return 1
        print(f"wrote {args.out}")
        viewer.close()
        viewer.deleteLater()
        app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
