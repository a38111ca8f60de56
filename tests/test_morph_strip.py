import numpy as np
import pytest

from core.detectors.results import MapGeometry
from inspector_gui.morph_strip import TILE, MorphStripPanel, diff_limit, diverging, strip_image
from inspector_gui.viewer import ImageViewer


def strip(code: int, sc: float, rng, shape=(16, 16), shift: float = 0.0) -> dict:
    recon = rng.random(shape).astype(np.float32) * 0.5
    morphs = np.stack([np.clip(recon + shift * (k - 3.5) / 3.5, 0, 1) for k in range(8)]).astype(np.float32)
    return {"code": code, "morphs": morphs, "sc": sc, "interval": (0.1, 0.9), "metric": "SC_ssim",
            "values": [float(v) for v in np.linspace(-2, 2, 8)], "range": (-3.0, 3.0), "source": recon + 0.01,
            "recon": recon, "cell": (1, 2), "box": (16.0, 8.0, 48.0, 40.0)}


def test_rows_show_source_recon_morphs_and_shared_range_differences(qtbot):
    panel = MorphStripPanel()
    qtbot.addWidget(panel)
    rng = np.random.default_rng(0)
    strips = [strip(3, 0.5, rng, shift=0.2), strip(7, 2.0, rng, shape=(16, 16, 3), shift=0.05)]
    panel.set_strips(strips)
    assert len(panel.rows) == 2 and not panel.isHidden()
    row = panel.rows[0]
    assert len(row.tiles) == 10 and len(row.diffs) == 8  # source, recon, 8 morphs; a difference per morph
    assert all(t.pixmap().width() >= 96 and t.pixmap().height() >= 96 for t in row.tiles + row.diffs)
    assert "inside" in row.text.text() and "OUTSIDE" in panel.rows[1].text.text()
    assert row.bar.inside and not panel.rows[1].bar.inside
    # One colour range for every row: the 99th percentile of |morph - recon| over all codes, stated in the header.
    assert panel.limit == diff_limit(strips) and 0.15 < panel.limit <= 0.2 + 1e-6
    assert f"-{panel.limit:.3f}" in panel.header.text() and f"+{panel.limit:.3f}" in panel.header.text()
    assert "row 1, col 2" in panel.header.text()
    # the unchanged middle of the weak code's traversal is near white, the strong code's ends are saturated
    img = panel.rows[0].diffs[0].pixmap().toImage()
    assert img.pixelColor(5, 5).blue() > 200 and img.pixelColor(5, 5).red() < 60  # morph 1 is darker: blue
    # another patch's strips replace these at once (no event loop ran, so old labels still exist)
    panel.show()
    old = [w for r in panel.rows for w in r.widgets]
    panel.set_strips(strips[:1])
    assert len(panel.rows) == 1 and all(w.isHidden() for w in old)
    panel.set_strips(None)
    assert panel.rows == [] and panel.isHidden()


def test_strips_without_source_still_show(qtbot):
    panel = MorphStripPanel()
    qtbot.addWidget(panel)
    panel.set_strips([{"code": 1, "morphs": np.zeros((4, 8, 8)), "sc": 0.5, "interval": (0.0, 1.0)}])
    assert len(panel.rows[0].tiles) == 4 and panel.rows[0].diffs == [] and "whole image" in panel.header.text()


def test_diverging_colours_and_strip_image():
    d = np.array([[-1.0, 0.0, 0.5, 2.0]])
    rgb = diverging(d, 1.0)
    assert tuple(rgb[0, 0]) == (0, 0, 255) and tuple(rgb[0, 1]) == (255, 255, 255)
    assert tuple(rgb[0, 3]) == (255, 0, 0) and rgb[0, 2, 0] == 255 and 120 < rgb[0, 2, 1] < 135
    morphs = np.zeros((2, 4, 4))
    morphs[1] = 1.0
    img = strip_image(morphs, height=4)
    assert (img.width(), img.height()) == (8, 4)
    assert img.pixelColor(0, 0).value() == 0 and img.pixelColor(7, 3).value() == 255
    assert strip_image(morphs).height() == TILE


def test_viewer_outlines_the_patch_and_reports_clicks(qtbot):
    viewer = ImageViewer()
    qtbot.addWidget(viewer)
    img = np.zeros((64, 64, 1), np.float32)
    grid = np.arange(9, dtype=np.float32).reshape(3, 3)
    viewer.set_image(img, {"OIAD": grid}, MapGeometry((64, 64), (64, 64), 32, 16))
    viewer.set_outline((16.0, 8.0, 48.0, 40.0))
    assert viewer.outline() == (16.0, 8.0, 48.0, 40.0)
    assert viewer.cell_at(40.0, 40.0) == (2, 2) and viewer.cell_at(1.0, 1.0) == (0, 0)
    seen = []
    viewer.imageClicked.connect(lambda x, y: seen.append((x, y)))
    viewer.imageClicked.emit(3.0, 4.0)
    assert seen == [(3.0, 4.0)]
    viewer.set_outline(None)
    assert viewer.outline() is None
    viewer.set_image(img, {"OIAD": img[:, :, 0]}, MapGeometry((64, 64), (64, 64), 1, 1))
    assert viewer.cell_at(5.0, 5.0) is None  # a pixel map has no patches to pick


def test_window_outlines_the_strips_patch_and_a_click_shows_another(qtbot, tmp_path, tiny_demo):
    """OIAD in patch mode in the window: the shown image's strips belong to its worst patch, which the viewer
    outlines; clicking another patch shows that patch's strips and moves the outline."""
    import shutil

    from PySide6.QtCore import QSettings

    from core.data.images import decode_image
    from core.detectors.oiad import OIAD
    from inspector_gui.main_window import MainWindow

    data = tmp_path / "parts"
    shutil.copytree(tiny_demo, data)
    train = [decode_image(p) for p in sorted((data / "train" / "good").glob("*.png"))]
    det = OIAD(image_size=32, patch=16, patch_stride=8, width=8, latent=4, disc_hidden=16, disc_layers=1, epochs=2,
               batch_size=8, patches_per_image=2, n_morphs=4, codes="top-2", strip_length=4)
    det.fit(train)
    win = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    win.setProperty("quiet_errors", True)
    win.confirm = lambda title, question: True
    qtbot.addWidget(win)
    win.open_path(data)
    qtbot.waitUntil(lambda: win.store is not None, timeout=60_000)
    win.score_with(det)
    qtbot.waitUntil(lambda: win.run is not None and win.run.model is not None and not win.job.running,
                    timeout=240_000)
    target = sorted((data / "test").glob("*/*.png"))[-1]
    win.show_image_id(win.store.image_id(target))
    rows = win.morphs.rows
    assert len(rows) == 2 and len(rows[0].tiles) == 2 + 4 and len(rows[0].diffs) == 4
    first = win.viewer.outline()
    cell = win.session.extras_for(win.current_id, "morph_strips")[0]["cell"]
    assert first is not None and cell is not None
    assert first[2] - first[0] == pytest.approx(16 * 64 / 32)  # a 16 px patch of the 32 px image, on 64 px
    other = (0, 0) if tuple(cell) != (0, 0) else (2, 2)
    x, y = (other[1] * 8 + 8) * 2.0, (other[0] * 8 + 8) * 2.0  # the patch centre in the 64 px image
    win.show_strips_at(x, y)
    assert win.morphs.rows[0] is not rows[0] and f"row {other[0]}, col {other[1]}" in win.morphs.header.text()
    box = win.viewer.outline()
    assert box == pytest.approx((other[1] * 16.0, other[0] * 16.0, other[1] * 16.0 + 32, other[0] * 16.0 + 32))
    win.close()


def test_training_panel_says_what_oiad_is_for(qtbot):
    from inspector_gui.training_panel import TrainingPanel

    panel = TrainingPanel(default_detector="oiad")
    qtbot.addWidget(panel)
    text = panel.detector_help.text()
    assert "semantic" in text and "AUROC" in text and "{" not in text and not panel.detector_help.isHidden()
    panel.detector.setCurrentText("vae")  # a detector without a summary: no stale text
    assert panel.detector_help.text() == "" and panel.detector_help.isHidden()
