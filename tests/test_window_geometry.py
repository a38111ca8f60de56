"""Where the window goes: first-start size from the available screen, clamping of a saved geometry, dock shares;
and a real window on a small (1366 x 768) screen, in a child process with its own offscreen screen size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PySide6.QtCore import QMargins, QRect

from inspector_gui.window_geometry import clamp_geometry, dock_widths, first_start_geometry

NO_FRAME = QMargins(0, 0, 0, 0)
FRAME = QMargins(2, 32, 2, 2)


def outer(client: QRect, frame: QMargins = FRAME) -> QRect:
    return client.marginsAdded(frame)


def test_a_small_screen_gets_all_of_its_available_area():
    available = QRect(0, 0, 1366, 728)  # 1366 x 768 less a 40 px task bar
    client = first_start_geometry(available, FRAME)
    assert outer(client) == available


def test_a_large_screen_gets_a_centred_window_with_a_margin():
    available = QRect(0, 0, 1920, 1040)
    frame = outer(first_start_geometry(available, FRAME))
    assert available.contains(frame)
    assert frame.width() == round(0.9 * 1920) and frame.height() == round(0.9 * 1040)
    assert frame.center().x() == pytest.approx(available.center().x(), abs=1)
    assert frame.center().y() == pytest.approx(available.center().y(), abs=1)


def test_first_start_on_a_second_monitor_and_a_huge_one():
    right = QRect(1920, 0, 1600, 1000)  # the display, right of a first monitor
    frame = outer(first_start_geometry(right, FRAME))
    assert right.contains(frame) and frame.width() <= 1600
    huge = QRect(0, 0, 3840, 2160)
    client = first_start_geometry(huge, NO_FRAME)
    assert client.width() == 2560 and client.height() == 1440 and huge.contains(client)


def test_a_saved_geometry_that_no_longer_fits_is_shrunk_and_moved_inside():
    small = QRect(0, 0, 1366, 768)
    saved = QRect(300, 200, 1679, 1000)  # saved on a bigger monitor
    fixed = clamp_geometry(saved, small, FRAME)
    assert small.contains(outer(fixed))
    assert fixed.width() == 1366 - 4 and fixed.height() == 768 - 34
    off_screen = QRect(2500, 1200, 800, 600)  # on a monitor that is gone
    moved = clamp_geometry(off_screen, small, FRAME)
    assert moved.size() == off_screen.size() and small.contains(outer(moved))


def test_a_saved_geometry_that_fits_is_kept():
    available = QRect(0, 0, 1920, 1040)
    saved = QRect(100, 80, 1200, 800)
    assert clamp_geometry(saved, available, FRAME) == saved


def test_docks_share_the_width_in_proportion_within_their_limits():
    g_small, m_small = dock_widths(1362, gallery_min=162, model_min=376)
    g_big, m_big = dock_widths(1724, gallery_min=162, model_min=376)
    assert 162 <= g_small < g_big and 376 <= m_small < m_big
    assert 1362 - g_small - m_small >= 450  # the viewer keeps the largest share on a small screen
    g_tiny, m_tiny = dock_widths(700, gallery_min=162, model_min=376)
    assert (g_tiny, m_tiny) == (162, 376)  # never below a dock's minimum
    assert dock_widths(5000)[0] <= 560 and dock_widths(5000)[1] <= 900


# The child opens the window on a screen of the given size (a fresh settings file: first start), then
# reports the frame, the minimum size, the docks, and any control that lies outside the window or is
# squeezed below its minimum width. A second window restores a geometry saved larger than the screen.
CHILD = textwrap.dedent("""
    import json, sys
    from PySide6.QtCore import QRect, QSettings
    from PySide6.QtWidgets import (QAbstractButton, QAbstractItemView, QAbstractSpinBox, QApplication,
                                   QComboBox, QLineEdit, QScrollArea, QSlider, QWidget)
    app = QApplication([])
    from inspector_gui.main_window import MainWindow

    def settle():
        for _ in range(30):
            app.processEvents()

    def in_scroll_area(w):
        p = w.parentWidget()
        while p is not None:
            if isinstance(p, (QScrollArea, QAbstractItemView)):
                return True
            p = p.parentWidget()
        return False

    def problems(win):
        out = []
        frame = win.frameGeometry()
        kinds = (QAbstractButton, QComboBox, QAbstractSpinBox, QSlider, QLineEdit)
        for w in win.findChildren(QWidget):
            if not isinstance(w, kinds) or not w.isVisible() or in_scroll_area(w):
                continue
            rect = QRect(w.mapToGlobal(w.rect().topLeft()), w.size())
            name = w.objectName() or type(w).__name__ + ":" + (getattr(w, "text", lambda: "")() or "")
            if not frame.contains(rect):
                out.append(f"{name} outside the window at {rect.getRect()}")
            if w.width() < w.minimumSizeHint().width() - 1:
                out.append(f"{name} squeezed to {w.width()} < {w.minimumSizeHint().width()}")
        return out

    settings = QSettings(sys.argv[1], QSettings.Format.IniFormat)
    win = MainWindow(settings)
    win.show()
    settle()
    report = {"available": app.primaryScreen().availableGeometry().getRect(),
              "frame": win.frameGeometry().getRect(),
              "minimum": [win.minimumSizeHint().width(), win.minimumSizeHint().height()],
              "gallery": win.gallery_dock.width(), "one_tile": win.gallery.view.one_tile_width(),
              "model": win.model_dock.width(), "centre": win.centralWidget().width(), "problems": {}}
    for tab in (win.training, win.threshold):
        win.tabs.setCurrentWidget(tab)
        settle()
        report["problems"][type(tab).__name__] = problems(win)
    win.setGeometry(QRect(0, 0, 2400, 1400))  # as if saved on a much larger monitor
    settle()
    win.close()
    again = MainWindow(QSettings(sys.argv[1], QSettings.Format.IniFormat))
    again.show()
    settle()
    report["restored"] = again.frameGeometry().getRect()
    again.close()
    print("REPORT" + json.dumps(report))
""")


def open_on_screen(tmp_path: Path, width: int, height: int) -> dict:
    config = tmp_path / "screen.json"
    config.write_text(json.dumps({"screens": [{"name": "s", "x": 0, "y": 0, "width": width, "height": height,
                                               "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}]}))
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={config}", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "settings.ini")], capture_output=True,
                         text=True, timeout=240, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("REPORT"))
    return json.loads(line[len("REPORT"):])


def test_first_start_on_a_1366x768_screen_fits_and_every_control_is_reachable(tmp_path):
    r = open_on_screen(tmp_path, 1366, 768)
    available = QRect(*r["available"])
    assert available.contains(QRect(*r["frame"])), r
    assert r["minimum"][0] <= 1366 and r["minimum"][1] <= 768 - 40, r  # fits even with a task bar
    assert r["gallery"] >= r["one_tile"] and r["model"] >= 376 and r["centre"] >= 400, r
    assert r["problems"] == {"TrainingPanel": [], "ThresholdPanel": []}, r["problems"]
    assert available.contains(QRect(*r["restored"])), r  # a saved geometry larger than the screen is clamped


def test_tile_scores_drop_digits_rather_than_being_cut(qtbot):
    from PySide6.QtGui import QFont, QFontMetrics

    from inspector_gui.gallery_delegate import fitted_score

    fm = QFontMetrics(QFont())
    assert fitted_score(52090.0, fm, 1000) == "5.209e4"
    assert fitted_score(52090.0, fm, fm.horizontalAdvance("5.21e4")) == "5.21e4"
    assert fitted_score(52090.0, fm, fm.horizontalAdvance("5e4")) == "5e4"
    assert fitted_score(float("nan"), fm, 5) == "—"


def test_flow_layout_wraps_and_asks_only_for_its_widest_item(qtbot):
    from PySide6.QtWidgets import QPushButton, QWidget

    from inspector_gui.flow_layout import FlowLayout, joined

    host = QWidget()
    qtbot.addWidget(host)
    layout = FlowLayout(host)
    buttons = [QPushButton(f"button number {i}") for i in range(6)]
    for b in buttons[:4]:
        layout.addWidget(b)
    pair = joined(*buttons[4:])
    layout.addWidget(pair)
    widest = max(b.sizeHint().width() for b in buttons[:4])
    # its minimum is its widest item (the pair), not the whole row
    assert layout.minimumSize().width() == pair.minimumSizeHint().width() < layout.sizeHint().width() / 2
    assert layout.heightForWidth(10_000) < layout.heightForWidth(widest + 10)  # narrower: more rows
    host.resize(2 * widest + 20, layout.heightForWidth(2 * widest + 20))
    host.show()
    qtbot.waitExposed(host)
    rows = {b.y() for b in buttons[:4]}
    assert len(rows) == 2 and all(b.geometry().right() <= host.width() for b in buttons[:4])
    assert buttons[4].mapTo(host, buttons[4].rect().topLeft()).y() == buttons[5].mapTo(
        host, buttons[5].rect().topLeft()).y()  # a joined pair stays on one row
