import numpy as np

from inspector_gui.morph_strip import MorphStripPanel, strip_image


def test_strips_show_one_row_per_code_with_the_verdict(qtbot):
    panel = MorphStripPanel()
    qtbot.addWidget(panel)
    rng = np.random.default_rng(0)
    strips = [{"code": 3, "morphs": rng.random((8, 16, 16)), "sc": 0.5, "interval": (0.1, 0.9), "metric": "SC_mse"},
              {"code": 7, "morphs": rng.random((8, 16, 16, 3)), "sc": 2.0, "interval": (0.1, 0.9)}]
    panel.set_strips(strips)
    assert len(panel.rows) == 2 and not panel.isHidden()
    assert "inside" in panel.rows[0][0].text() and "OUTSIDE" in panel.rows[1][0].text()
    assert panel.rows[0][1].pixmap().width() == 8 * 64  # eight 16 px morphs scaled to 64 px high
    # another image's strips replace these at once (no event loop ran, so old labels still exist)
    panel.show()
    old = [w for row in panel.rows for w in row]
    panel.set_strips(strips[:1])
    assert len(panel.rows) == 1 and all(w.isHidden() for w in old)
    panel.set_strips(None)
    assert panel.rows == [] and panel.isHidden()


def test_strip_image_keeps_pixels():
    morphs = np.zeros((2, 4, 4))
    morphs[1] = 1.0
    img = strip_image(morphs, height=4)
    assert (img.width(), img.height()) == (8, 4)
    assert img.pixelColor(0, 0).value() == 0 and img.pixelColor(7, 3).value() == 255
