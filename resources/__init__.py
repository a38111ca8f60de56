"""The application's files that are not code: icon (SVG and PNG sizes) and the Linux desktop entry.

Everything is read through `importlib.resources`, so the same calls work from a source checkout, an installed
wheel and the PyInstaller bundle (where the folder is copied beside the frozen modules). Qt-free: the window
turns these bytes into a QIcon (inspector_gui/about.py).
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

ICON_NAME = "anomaly-inspector"
# The sizes freedesktop icon themes and window managers ask for; packaging/render_icons.py renders them.
ICON_SIZES: tuple[int, ...] = (16, 24, 32, 48, 64, 128, 256)
DESKTOP_ENTRY = f"{ICON_NAME}.desktop"


def resource(name: str) -> Traversable:
    """A file of this package by its relative path, e.g. "icons/anomaly-inspector.svg"."""
    item = files(__name__)
    for part in name.split("/"):
        item = item.joinpath(part)
    if not item.is_file():
        raise FileNotFoundError(f"resource {name!r} is missing from the installed application ({files(__name__)})")
    return item


def read_bytes(name: str) -> bytes:
    return resource(name).read_bytes()


def read_text(name: str) -> str:
    return resource(name).read_text(encoding="utf-8")


def icon_svg() -> bytes:
    return read_bytes(f"icons/{ICON_NAME}.svg")


def icon_png_name(size: int) -> str:
    return f"icons/{ICON_NAME}-{size}.png"


def icon_png(size: int) -> bytes:
    """The icon rendered at `size` x `size` pixels (one of ICON_SIZES)."""
    if size not in ICON_SIZES:
        raise ValueError(f"no {size} px icon; sizes: {ICON_SIZES}")
    return read_bytes(icon_png_name(size))


def desktop_entry() -> str:
    return read_text(DESKTOP_ENTRY)
