"""Where the main window goes on the screen: pure functions of rectangles, so they are tested without a screen.

- first start (no saved layout): at most the screen's available area, centred; the whole area on a small
  screen (1366 x 768 needs every pixel), a margin round it on a large one;
- a saved geometry from another monitor or resolution is shrunk and moved inside the available area;
- the docks share the width in proportion: the gallery gets room for two or three columns of tiles, the
  Model dock for its plots, the viewer the rest.
"""

from __future__ import annotations

from PySide6.QtCore import QMargins, QPoint, QRect, QSize

# Up to this size the window takes the whole available area; above it, this fraction of it.
SMALL_SCREEN = QSize(1440, 900)
LARGE_FRACTION = 0.9
# A window as large as a 1440p monitor shows everything; on a 4K monitor more size only adds empty plots.
LARGEST = QSize(2560, 1440)
# The window manager's title bar and borders, before the window has been shown and they can be measured.
FRAME_ESTIMATE = QMargins(2, 32, 2, 2)

GALLERY_SHARE, MODEL_SHARE = 0.22, 0.36
GALLERY_MAX, MODEL_MIN, MODEL_MAX = 560, 380, 900


def _fit(length: int, small: int, largest: int) -> int:
    return length if length <= small else min(round(length * LARGE_FRACTION), largest)


def first_start_geometry(available: QRect, frame: QMargins = FRAME_ESTIMATE) -> QRect:
    """The window's client rectangle on first start: its frame within `available`, centred."""
    outer = QSize(_fit(available.width(), SMALL_SCREEN.width(), LARGEST.width()),
                  _fit(available.height(), SMALL_SCREEN.height(), LARGEST.height()))
    client = QSize(outer.width() - frame.left() - frame.right(), outer.height() - frame.top() - frame.bottom())
    left = available.x() + (available.width() - outer.width()) // 2 + frame.left()
    top = available.y() + (available.height() - outer.height()) // 2 + frame.top()
    return QRect(QPoint(left, top), client)


def clamp_geometry(saved: QRect, available: QRect, frame: QMargins = FRAME_ESTIMATE) -> QRect:
    """A restored client rectangle that no longer fits (another monitor, a lower resolution) shrunk to the
    available area and moved inside it; one that fits is returned unchanged."""
    room = QSize(available.width() - frame.left() - frame.right(),
                 available.height() - frame.top() - frame.bottom())
    size = saved.size().boundedTo(room)
    lo_x, lo_y = available.x() + frame.left(), available.y() + frame.top()
    hi_x, hi_y = lo_x + room.width() - size.width(), lo_y + room.height() - size.height()
    x = min(max(saved.x(), lo_x), hi_x)
    y = min(max(saved.y(), lo_y), hi_y)
    return QRect(QPoint(x, y), size)


def dock_widths(total_width: int, gallery_min: int = 0, model_min: int = MODEL_MIN) -> tuple[int, int]:
    """(gallery, Model dock) widths for a window `total_width` wide: shares of it, within each dock's limits."""
    gallery = min(max(round(total_width * GALLERY_SHARE), gallery_min), GALLERY_MAX)
    model = min(max(round(total_width * MODEL_SHARE), model_min), MODEL_MAX)
    return gallery, model
