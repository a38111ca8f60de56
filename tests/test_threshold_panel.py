"""ThresholdPanel and ThresholdModel stay in sync both ways; mouse drags on the histogram line and the ROC target
are live while moving and commit once on release; the panel renders offscreen."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QImage, QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from core import metrics
from core.threshold import ThresholdModel
from inspector_gui.threshold_panel import FRAME_MS, SLIDER_STEPS, ThresholdPanel


def demo_model(seed: int = 0) -> ThresholdModel:
    rng = np.random.default_rng(seed)
    scores = np.r_[rng.normal(0, 1, 500), rng.normal(2.5, 1, 60), rng.normal(1.5, 0.6, 20), rng.normal(0.5, 1.2, 200)]
    labels = np.array(["good"] * 500 + ["defect"] * 60 + ["suspicious"] * 20 + ["unlabeled"] * 200, dtype=object)
    return ThresholdModel(scores, labels, t1=1.0)


@pytest.fixture
def panel(qtbot) -> ThresholdPanel:
    widget = ThresholdPanel(demo_model())
    qtbot.addWidget(widget)
    widget.resize(900, 600)
    widget.show()
    qtbot.waitExposed(widget)
    QApplication.processEvents()
    return widget


@pytest.fixture
def commits(panel: ThresholdPanel) -> list[tuple[float, float, str]]:
    got: list[tuple[float, float, str]] = []

    def record(t1: float, t2: float, method: str) -> None:
        got.append((t1, t2, method))

    panel.committed.connect(record)
    return got


def table_counts(panel: ThresholdPanel) -> list[list[int]]:
    t = panel.table
    return [[int(t.item(r, c).text()) for c in range(t.columnCount())] for r in range(t.rowCount())]


def model_counts(model: ThresholdModel) -> list[list[int]]:
    st = model.stats()
    return [[st.counts[lab][col] for col in ("pass", "review", "fail")]
            for lab in ("good", "defect", "suspicious", "unlabeled")]


def assert_views_show_model(panel: ThresholdPanel) -> None:
    m = panel.model
    assert panel.histogram.t1_line.value() == pytest.approx(m.t1)
    assert panel.t1.spin.value() == pytest.approx(m.t1, abs=10 ** -panel.t1.spin.decimals())
    lo, hi = m.score_range()
    assert panel.t1.slider.value() == round((m.t1 - lo) / (hi - lo) * SLIDER_STEPS)
    assert table_counts(panel) == model_counts(m)
    st = m.stats()
    assert f"F1 {st.f1:.3f}" in panel.metrics_label.text() and f"TPR {st.tpr:.3f}" in panel.metrics_label.text()
    pos = panel.roc.target.pos()
    assert (pos.x(), pos.y()) == pytest.approx(m.operating_point(m.t1))
    assert panel.band_check.isChecked() == m.review_band == panel.histogram.t2_line.isVisible()
    if m.review_band:
        assert panel.histogram.t2_line.value() == pytest.approx(m.t2)
        assert panel.histogram.band.getRegion() == pytest.approx((m.t1, m.t2))


def drag(qtbot, view, start: QPointF, end: QPointF, steps: int = 12, release: bool = True) -> None:
    """Press at `start`, move in steps, release at `end` (points in the plot's data coordinates)."""
    vb = view.getPlotItem().getViewBox()
    viewport = view.viewport()
    p0 = QPointF(view.mapFromScene(vb.mapViewToScene(start)))
    p1 = QPointF(view.mapFromScene(vb.mapViewToScene(end)))
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p0.toPoint())
    for k in range(1, steps + 1):
        p = p0 + (p1 - p0) * (k / steps)
        move = QMouseEvent(QEvent.Type.MouseMove, p, viewport.mapToGlobal(p), Qt.MouseButton.NoButton,
                           Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(viewport, move)
        qtbot.wait(2)
    if release:
        QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p1.toPoint())


def test_model_changes_move_every_view_without_committing(panel, commits):
    m = panel.model
    assert_views_show_model(panel)
    before = table_counts(panel)
    m.set_t1(0.3)
    assert_views_show_model(panel)
    assert table_counts(panel) != before
    m.set_review_band(True, width=1.2)
    assert_views_show_model(panel)
    assert panel.t2.isEnabled() and panel.t2.spin.value() == pytest.approx(1.5)
    assert panel.roc.t2_marker.data["x"][0] == pytest.approx(m.operating_point(m.t2)[0])
    m.apply_preset("f1_max")
    assert panel.method_label.text() == "method: f1_max"
    assert_views_show_model(panel)
    # A relabel redraws the histogram and the matrix.
    i = 0 if m.scores[0] >= m.t1 else int(np.flatnonzero((m.scores >= m.t1) & (m.labels == "good"))[0])
    good_hist = panel.histogram.curves["good"].yData.sum()
    m.set_label(i, "defect")
    assert panel.histogram.curves["good"].yData.sum() == good_hist - 1
    assert_views_show_model(panel)
    assert commits == []


def test_spinbox_and_slider_write_to_the_model_and_commit(panel, commits):
    m = panel.model
    panel.t1.spin.setValue(0.75)
    assert m.t1 == pytest.approx(0.75) and m.method == "manual"
    assert commits == [(pytest.approx(0.75), pytest.approx(0.75), "manual")]
    assert_views_show_model(panel)
    panel.t1.slider.setValue(700)  # not held down: a keyboard / page step, committed at once
    assert m.t1 == pytest.approx(panel.t1.slider_value())
    assert len(commits) == 2 and commits[-1][0] == pytest.approx(m.t1)
    assert panel.t1.spin.value() == pytest.approx(m.t1, abs=1e-3)


def test_band_checkbox_and_t2_spinbox(panel, commits):
    m = panel.model
    panel.band_check.setChecked(True)
    assert m.review_band and m.t2 > m.t1 and panel.t2.isEnabled()
    assert len(commits) == 1 and commits[0][1] == pytest.approx(m.t2)
    panel.t2.spin.setValue(m.t1 - 0.5)  # below T1: the model stops T2 at T1 and the spin box snaps back
    assert m.t2 == m.t1 and panel.t2.spin.value() == pytest.approx(m.t1, abs=1e-3)
    panel.band_check.setChecked(False)
    assert not m.review_band and not panel.histogram.t2_line.isVisible() and not panel.t2.isEnabled()
    assert len(commits) == 3


def test_presets_match_core_metrics_and_report_errors(panel, commits):
    m = panel.model
    panel.preset_combo.setCurrentIndex(panel.preset_combo.findData("max_fpr"))
    assert panel.preset_param.isEnabled() and panel.preset_param.value() == 0.01
    panel.preset_param.setValue(0.05)
    panel.apply_button.click()
    lab = np.isin(m.labels, ["good", "defect"])
    expected = metrics.threshold_for_max_fpr(m.labels[lab] == "defect", m.scores[lab], 0.05)
    assert m.t1 == expected and commits == [(expected, expected, "max_fpr(0.05)")]
    assert_views_show_model(panel)
    panel.preset_combo.setCurrentIndex(panel.preset_combo.findData("f1_max"))
    assert not panel.preset_param.isEnabled()
    # Without defect labels F1-max is impossible: say so, change nothing, commit nothing.
    for i in np.flatnonzero(m.labels == "defect"):
        m.set_label(i, "unlabeled")
    panel.apply_button.click()
    assert "needs images labeled good and images labeled defect" in panel.message.text()
    assert m.t1 == expected and len(commits) == 1
    assert not panel.roc.target.isVisible() and "ROC needs" in panel.roc.message.toPlainText()


def test_drag_histogram_line_is_live_and_commits_once_on_release(panel, commits, qtbot):
    m = panel.model
    line = panel.histogram.t1_line
    before = table_counts(panel)
    finished = []
    line.sigPositionChangeFinished.connect(finished.append)
    y_mid = panel.histogram.getPlotItem().getViewBox().viewRange()[1][1] / 2
    drag(qtbot, panel.histogram, QPointF(1.0, y_mid), QPointF(2.0, y_mid), release=False)
    # Live: the model (and matrix) follow within a frame, before the button is released; nothing committed yet.
    qtbot.waitUntil(lambda: m.t1 > 1.5, timeout=1000)
    assert table_counts(panel) != before and commits == []
    QTest.mouseRelease(panel.histogram.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                       panel.histogram.mapFromScene(panel.histogram.getPlotItem().getViewBox().mapViewToScene(
                           QPointF(2.0, y_mid))))
    qtbot.wait(3 * FRAME_MS)
    assert len(finished) == 1 and len(commits) == 1
    # Mouse positions are whole pixels: the line lands within a pixel's worth of score of the target.
    px = panel.histogram.getPlotItem().getViewBox().viewPixelSize()[0]
    assert m.t1 == pytest.approx(2.0, abs=2 * px)
    assert commits[0] == (m.t1, m.t2, "manual")
    assert_views_show_model(panel)
    assert table_counts(panel)[1][2] > before[1][2] or table_counts(panel)[0][0] > before[0][0]


def test_drag_t1_past_t2_stops_at_t2(panel, commits, qtbot):
    m = panel.model
    m.set_thresholds(0.5, 1.5)
    y_mid = panel.histogram.getPlotItem().getViewBox().viewRange()[1][1] / 2
    drag(qtbot, panel.histogram, QPointF(0.5, y_mid), QPointF(3.0, y_mid))
    qtbot.wait(3 * FRAME_MS)
    assert (m.t1, m.t2) == (1.5, 1.5) and panel.histogram.t1_line.value() == 1.5
    assert commits == [(1.5, 1.5, "manual")]


def test_drag_roc_target_snaps_to_the_curve_and_sets_the_threshold(panel, commits, qtbot):
    m = panel.model
    start = m.operating_point()
    t_before = m.t1
    drag(qtbot, panel.roc, QPointF(*start), QPointF(0.35, 0.9))
    qtbot.wait(3 * FRAME_MS)
    assert m.t1 < t_before  # more false alarms accepted -> lower threshold
    fpr, tpr = m.operating_point()
    curve = m.roc()
    assert np.any((curve.x == fpr) & (curve.y == tpr))  # on the curve
    pos = panel.roc.target.pos()
    assert (pos.x(), pos.y()) == pytest.approx((fpr, tpr))
    # The nearest curve point to where the mouse let go (up to two pixels of mouse rounding).
    px, py = panel.roc.getPlotItem().getViewBox().viewPixelSize()
    nearest = np.min(np.hypot(curve.x - 0.35, curve.y - 0.9))
    assert np.hypot(fpr - 0.35, tpr - 0.9) <= nearest + 2 * np.hypot(px, py)
    assert len(commits) == 1 and commits[0] == (m.t1, m.t2, "manual")
    assert_views_show_model(panel)


def test_panel_on_an_empty_model_fills_in_when_data_arrives(qtbot):
    model = ThresholdModel(np.zeros(0), np.zeros(0, dtype=object))
    widget = ThresholdPanel(model)
    qtbot.addWidget(widget)
    assert table_counts(widget) == [[0, 0, 0]] * 4
    model.set_thresholds(0.5)
    src = demo_model()
    model.set_data(src.scores, src.labels)
    assert_views_show_model(widget)
    assert widget.histogram.curves["defect"].yData.sum() == 60


def test_screenshot_is_non_trivial(panel, tmp_path):
    panel.model.set_review_band(True, width=0.8)
    path = tmp_path / "threshold_panel.png"
    assert panel.grab().save(str(path))
    img = QImage(str(path))
    assert (img.width(), img.height()) == (900, 600)
    assert path.stat().st_size > 20_000
    # Sample a grid of pixels: many distinct colours, including the histogram's green and red.
    colours = {img.pixelColor(x, y).name() for x in range(0, 900, 6) for y in range(0, 600, 6)}
    assert len(colours) > 40
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in colours])
    assert np.any((rgb[:, 1] > 120) & (rgb[:, 0] < 100) & (rgb[:, 2] < 100))  # green (good)
    assert np.any((rgb[:, 0] > 180) & (rgb[:, 1] < 80) & (rgb[:, 2] < 80))  # red (defect / ROC)


def test_t2_line_label_shows_the_value_once_the_band_is_turned_on(panel):
    m = panel.model
    m.set_review_band(True)
    QApplication.processEvents()
    assert panel.histogram.t2_line.label.textItem.toPlainText() == f"T2 {m.t2:.4g}"
