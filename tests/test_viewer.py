"""ImageViewer: overlay placement and values, controls, hover read-out, mask contour (offscreen Qt)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QMouseEvent, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from core.detectors.results import MapGeometry, geometry_from_layout, map_layout, pixel_map
from inspector_gui.viewer import HOVER_HINT, ImageViewer
from inspector_gui.viewer_maps import mask_contour, patch_cell

# An 80 x 80 image processed at 40 x 40 (scale 2), 16 px patches every 8 px: a 4 x 4 grid.
GEOM = MapGeometry(input_shape=(40, 40), original_shape=(80, 80), patch=16, stride=8)
HOT = (1, 2)  # processed rows 8..24, cols 16..32 -> original rows 16..48, cols 32..64


def _maps() -> dict[str, np.ndarray]:
    idx = np.arange(16, dtype=np.float32).reshape(4, 4)  # every cell a different value
    m = idx.copy()
    m[HOT] = 100.0
    lo = -10.0 * idx - 1.0
    lo[3, 0] = 50.0  # L is hot somewhere else, so switching component must move the hot spot
    return {"M": m, "L": lo, "D": idx * 0.5 + 0.25}


def _image(channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.random((80, 80, channels), dtype=np.float32) * 0.5


@pytest.fixture
def viewer(qtbot):
    w = ImageViewer()
    qtbot.addWidget(w)
    w.resize(700, 600)
    w.show()
    qtbot.waitExposed(w)
    return w


def _viewport_point(w: ImageViewer, x: float, y: float) -> QPoint:
    """Where the image point (x, y) (column, row) is on the graphics view's viewport."""
    QApplication.processEvents()  # let the view apply a pending range / aspect-lock change first
    scene = w.view_box.mapViewToScene(QPointF(x, y))
    return w.graphics.mapFromScene(scene)


def _hover(qtbot, w: ImageViewer, x: float, y: float) -> str:
    """A real mouse move over the image point (x, y); returns the hover text the viewer emitted."""
    qtbot.wait(40)  # pyqtgraph's scene drops moves closer together than its rate limit
    with qtbot.waitSignal(w.hoverInfo, timeout=2000) as sig:
        QTest.mouseMove(w.graphics.viewport(), _viewport_point(w, x, y))
    return sig.args[0]


def _rendered(w: ImageViewer, x: float, y: float) -> QColor:
    p = _viewport_point(w, x, y)
    pix = w.graphics.viewport().grab().toImage()
    return pix.pixelColor(p)


def test_overlay_has_original_shape_and_hot_pixels_inside_hot_patch(viewer):
    viewer.set_components(["L", "M", "D"], "M")
    viewer.set_image(_image(), _maps(), GEOM)
    assert viewer.component() == "M"
    assert [viewer.component_box.itemText(i) for i in range(3)] == ["M", "L", "D"]  # default first
    data = viewer.overlay_item.image
    assert data.shape == (80, 80)
    rows, cols = np.nonzero(data >= data.max() * 0.99)
    assert rows.size > 0
    assert rows.min() >= 16 and rows.max() < 48 and cols.min() >= 32 and cols.max() < 64
    assert viewer.overlay_item.isVisible()


def test_switching_component_changes_overlay_and_uses_cache(viewer, qtbot):
    viewer.set_image(_image(), _maps(), GEOM)
    m_data = viewer.overlay_item.image.copy()
    with qtbot.waitSignal(viewer.componentChanged, timeout=1000) as sig:
        viewer.set_component("L")
    assert sig.args == ["L"]
    l_data = viewer.overlay_item.image
    np.testing.assert_allclose(l_data, pixel_map(_maps()["L"], GEOM), rtol=1e-6)
    assert not np.allclose(l_data, m_data)
    # L's hot cell (3, 0) -> original rows 48..80, cols 0..32
    r, c = np.unravel_index(np.argmax(l_data), l_data.shape)
    assert r >= 48 and c < 32
    misses = viewer._cache.misses
    viewer.set_component("M")
    viewer.set_image(_image(), {k: v.copy() for k, v in _maps().items()}, GEOM)  # same maps, new arrays
    viewer.set_component("L")
    assert viewer._cache.misses == misses  # nothing recomputed
    np.testing.assert_array_equal(viewer.overlay_item.image, l_data)
    with pytest.raises(ValueError):
        viewer.set_component("nope")


def test_opacity_and_colormap_apply(viewer):
    viewer.set_image(_image(), _maps(), GEOM)
    viewer.set_opacity(0.3)
    assert viewer.overlay_item.opacity() == pytest.approx(0.3)
    assert viewer.opacity_slider.value() == 30 and viewer.opacity() == pytest.approx(0.3)
    viewer.opacity_slider.setValue(80)  # the slider drives the item too
    assert viewer.overlay_item.opacity() == pytest.approx(0.8)

    viewer.set_colormap("viridis")
    expected = pg.colormap.get("viridis").getLookupTable(nPts=256, alpha=False)
    np.testing.assert_array_equal(viewer.overlay_item.lut, expected)
    assert viewer.colormap_box.currentText() == "viridis"
    viewer.colormap_box.setCurrentText("magma")
    np.testing.assert_array_equal(viewer.overlay_item.lut, pg.colormap.get("magma").getLookupTable(nPts=256,
                                                                                                  alpha=False))
    # the overlay is really drawn with the colormap: at full opacity the hottest pixel has the LUT's top colour
    viewer.set_opacity(1.0)
    viewer.set_normalization("per_image")
    lut = pg.colormap.get("magma").getLookupTable(nPts=256, alpha=False)
    r, c = np.unravel_index(np.argmax(viewer.overlay_item.image), (80, 80))
    hot = _rendered(viewer, c + 0.5, r + 0.5)
    assert np.abs(np.array([hot.red(), hot.green(), hot.blue()]) - lut[-1]).max() <= 3
    r, c = np.unravel_index(np.argmin(viewer.overlay_item.image), (80, 80))
    cold = _rendered(viewer, c + 0.5, r + 0.5)
    assert np.abs(np.array([cold.red(), cold.green(), cold.blue()]) - lut[0]).max() <= 3
    with pytest.raises(ValueError):
        viewer.set_colormap("jet-ish")


def test_per_image_and_shared_normalisation_levels(viewer):
    viewer.set_image(_image(), _maps(), GEOM)
    dense = pixel_map(_maps()["M"], GEOM)
    viewer.set_normalization("per_image")
    assert viewer.levels() == pytest.approx((float(dense.min()), float(dense.max())))
    assert tuple(viewer.overlay_item.levels) == pytest.approx(viewer.levels())

    viewer.set_shared_range("M", -2.0, 40.0)
    assert viewer.levels() == pytest.approx((float(dense.min()), float(dense.max())))  # still per image
    viewer.set_normalization("shared")
    assert viewer.levels() == pytest.approx((-2.0, 40.0))
    assert tuple(viewer.overlay_item.levels) == pytest.approx((-2.0, 40.0))
    assert viewer.color_bar.levels() == pytest.approx((-2.0, 40.0))
    assert "-2" in viewer.range_label.text() and "40" in viewer.range_label.text()

    # a component without a shared range falls back to its own min-max, and says so
    viewer.set_component("D")
    d = pixel_map(_maps()["D"], GEOM)
    assert viewer.levels() == pytest.approx((float(d.min()), float(d.max())))
    assert "no shared range" in viewer.range_label.text()


def test_hover_reports_every_component_of_the_patch(viewer, qtbot):
    viewer.set_components(["M", "L", "D"], "M")
    viewer.set_image(_image(), _maps(), GEOM)
    # original (x 33, y 47) -> processed (16.5, 23.5): nearest window centre is cell (2, 1), centre (24, 16)
    text = _hover(qtbot, viewer, 33.5, 47.5)
    assert text.startswith("x 33 y 47 | patch (2, 1):"), text
    assert "M 9" in text and "L -91" in text and "D 4.75" in text
    assert viewer.hover_label.text() == text
    # a point in the hot patch reports the hot value
    assert "patch (1, 2): M 100.0  L -61  D 3.25" in _hover(qtbot, viewer, 48.5, 32.5)
    assert _hover(qtbot, viewer, 70.5, 79.5).startswith("x 70 y 79 | patch (3, 3): M 15  L -151")  # last row
    # leaving the image clears the read-out
    assert _hover(qtbot, viewer, 95.0, 40.0) == ""
    assert viewer.hover_label.text() == HOVER_HINT


def test_patch_cell_nearest_centre_and_edges():
    g = MapGeometry((40, 40), (40, 40), 16, 8)
    assert patch_cell(0.0, 0.0, (4, 4), g) == (0, 0)
    assert patch_cell(39.9, 39.9, (4, 4), g) == (3, 3)
    assert patch_cell(12.1, 3.0, (4, 4), g) == (0, 1)  # x 12.1: centres at 8 and 16, 16 is nearer
    assert patch_cell(11.9, 3.0, (4, 4), g) == (0, 0)
    # strip no window starts in (45 - 16) % 8 = 5 px: belongs to the last column
    g2 = MapGeometry((45, 45), (45, 45), 16, 8)
    assert patch_cell(44.5, 0.0, (4, 4), g2) == (0, 3)


def test_mask_contour_toggles(viewer):
    mask = np.zeros((80, 80), bool)
    mask[20:30, 50:60] = True
    viewer.set_image(_image(), _maps(), GEOM, mask=mask)
    assert viewer.contour_item.isVisible() and viewer.mask_check.isEnabled()
    xs, ys = viewer.contour_item.getData()
    assert xs is not None and len(xs) > 4
    fx, fy = xs[np.isfinite(xs)], ys[np.isfinite(ys)]
    assert fx.min() >= 50 and fx.max() <= 60 and fy.min() >= 20 and fy.max() <= 30
    viewer.set_mask_visible(False)
    assert not viewer.contour_item.isVisible() and not viewer.mask_check.isChecked()
    viewer.mask_check.setChecked(True)
    assert viewer.contour_item.isVisible() and viewer.mask_visible()
    viewer.set_image(_image(), _maps(), GEOM)  # no mask for this image
    assert not viewer.contour_item.isVisible() and not viewer.mask_check.isEnabled()


def test_mask_contour_scales_to_image():
    mask = np.zeros((40, 40), np.uint8)
    mask[10:20, 10:20] = 255
    xs, ys = mask_contour(mask, (80, 80))
    fx, fy = xs[np.isfinite(xs)], ys[np.isfinite(ys)]
    # mask pixels 10..19 -> image 20..40; the outline runs just inside the pixel edges (< 0.5 px)
    assert 20.0 < fx.min() < 20.5 and 39.5 < fx.max() < 40.0
    assert 20.0 < fy.min() < 20.5 and 39.5 < fy.max() < 40.0
    # a one-pixel-wide line gets a loop around it, not a line through its centres
    line = np.zeros((10, 10), bool)
    line[2:8, 4] = True
    xs, _ = mask_contour(line, (10, 10))
    fx = xs[np.isfinite(xs)]
    assert fx.min() < 4.2 and fx.max() > 4.8


@pytest.mark.parametrize("channels", [1, 3])
def test_gray_and_rgb_images_display_in_orientation(viewer, channels):
    img = np.zeros((60, 90, channels), np.float32)
    img[:30, 45:] = 1.0  # bright top-right quadrant only
    if channels == 3:
        img[:30, 45:] = (1.0, 0.0, 0.0)  # red
        img[30:, :45] = (0.0, 0.0, 1.0)  # blue bottom-left
    viewer.set_image(img, title="part.png")
    assert viewer.title_label.text() == "part.png"
    shown = viewer.image_item.image
    assert shown.shape == ((60, 90) if channels == 1 else (60, 90, 3))
    tr = _rendered(viewer, 80.5, 5.5)   # top-right in image coordinates (x = column, y = row)
    bl = _rendered(viewer, 5.5, 55.5)
    tl = _rendered(viewer, 5.5, 5.5)
    if channels == 1:
        assert tr.red() > 240 and tr.green() > 240 and tl.red() < 15
    else:
        assert (tr.red(), tr.green(), tr.blue()) == (255, 0, 0)
        assert (bl.red(), bl.green(), bl.blue()) == (0, 0, 255)
        assert (tl.red(), tl.green(), tl.blue()) == (0, 0, 0)


def test_no_maps_shows_plain_image_and_pixel_hover(viewer, qtbot):
    viewer.set_image(_image(), _maps(), GEOM)
    viewer.set_image(_image(3))
    assert not viewer.overlay_item.isVisible()
    assert viewer.levels() is None and not viewer.component_box.isEnabled()
    assert viewer.range_label.text() == "no heat map"
    assert _hover(qtbot, viewer, 10.5, 20.5) == "x 10 y 20"
    viewer.clear()
    assert viewer.image_item.image is None and not viewer.overlay_item.isVisible()


def test_pixel_maps_without_geometry(viewer):
    dense = np.zeros((80, 80), np.float32)
    dense[5, 7] = 3.0
    viewer.set_image(_image(), {"score": dense})
    assert viewer.component() == "score"
    np.testing.assert_array_equal(viewer.overlay_item.image, dense)
    with pytest.raises(ValueError):
        viewer.set_image(_image(), {"score": np.zeros((4, 4), np.float32)})


def test_wheel_zooms_and_drag_pans(viewer, qtbot):
    viewer.set_image(_image())
    vp = viewer.graphics.viewport()
    centre = _viewport_point(viewer, 40.0, 40.0)
    before = viewer.view_box.viewRange()
    wheel = QWheelEvent(QPointF(centre), QPointF(vp.mapToGlobal(centre)), QPoint(0, 0), QPoint(0, 240),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(vp, wheel)
    zoomed = viewer.view_box.viewRange()
    assert zoomed[0][1] - zoomed[0][0] < 0.9 * (before[0][1] - before[0][0])  # wheel forward zooms in

    start = _viewport_point(viewer, 40.0, 40.0)
    end = start + QPoint(60, 0)
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for k in range(1, 7):
        qtbot.wait(20)
        pos = start + QPoint(10 * k, 0)
        move = QMouseEvent(QEvent.Type.MouseMove, QPointF(pos), QPointF(vp.mapToGlobal(pos)),
                           Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(vp, move)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    panned = viewer.view_box.viewRange()
    assert panned[0][0] < zoomed[0][0] - 1.0  # dragging right shows what lies to the left
    assert viewer.view_box.state["aspectLocked"] and viewer.view_box.yInverted()


def test_map_layout_round_trip_gives_back_each_images_geometry():
    resized = [MapGeometry((64, 64), (300, 200), 16, 8), MapGeometry((64, 64), (100, 120), 16, 8)]
    layout = map_layout(resized)
    for g in resized:
        assert geometry_from_layout(layout, {}, g.original_shape) == g
    native = [MapGeometry((300, 200), (300, 200), 1, 1), MapGeometry((100, 120), (100, 120), 1, 1)]
    layout = map_layout(native)
    assert layout["input_shape"] is None
    for g in native:
        assert geometry_from_layout(layout, {}, g.original_shape) == g
    # runs stored before layouts existed: the patch settings stand in
    old = geometry_from_layout({}, {"image_size": 128, "patch_size": 32, "stride": 8}, (256, 256))
    assert old == MapGeometry((128, 128), (256, 256), 32, 8)
