"""The About box, the window title and the application icon: which version runs, on which Qt, torch and
numpy, and on which compute device (core/versions.py, plus Qt's versions here)."""

from __future__ import annotations

import html

import PySide6
from PySide6.QtCore import Qt, qVersion
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

import resources
from core import versions


def qt_versions() -> dict[str, str]:
    return {"Qt": qVersion(), "PySide6": PySide6.__version__}


def version_lines() -> list[str]:
    """What `anomaly-inspector --version` prints: the engine's lines with Qt's added."""
    return versions.version_lines(qt_versions())


def window_title() -> str:
    """"Anomaly Inspector 0.1.0 (cpu)": the version and the device at a glance in every screenshot."""
    return f"Anomaly Inspector {versions.app_version()} ({versions.compute_device()})"


def app_icon() -> QIcon:
    """The icon at every packaged size, so the window manager never scales a 256 px image down to 16."""
    icon = QIcon()
    for size in resources.ICON_SIZES:
        pixmap = QPixmap()
        if pixmap.loadFromData(resources.icon_png(size), "PNG"):
            icon.addPixmap(pixmap)
    return icon


def about_html() -> str:
    lines = version_lines()
    rows = "".join(f"<tr><td>{html.escape(name)}</td><td>{html.escape(value)}</td></tr>"
                   for name, _, value in (line.partition(" ") for line in lines[1:]))
    return (f"<h3>{html.escape(lines[0])}</h3>"
            "<p>Unsupervised visual anomaly detection: train on good parts, score, threshold, label, export.</p>"
            f"<table cellspacing='6'>{rows}</table>")


class AboutDialog(QDialog):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("About Anomaly Inspector")
        self.setWindowIcon(app_icon())
        layout = QVBoxLayout(self)
        header = QLabel()
        header.setPixmap(app_icon().pixmap(64, 64))
        layout.addWidget(header, alignment=Qt.AlignmentFlag.AlignHCenter)
        self.text = QLabel(about_html())
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.text)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)


def show_about(parent: QWidget | None = None) -> AboutDialog:
    """Open the About box without blocking (open(), not exec(): tests and the event loop go on)."""
    dialog = AboutDialog(parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.open()
    return dialog
