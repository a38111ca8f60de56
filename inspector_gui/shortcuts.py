"""Every keyboard shortcut of the window, declared once: the actions, the help overlay and the tests read
this table (labelme keeps its shortcuts in one config table for the same reason)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shortcut:
    action: str  # the key the main window's handlers are registered under
    keys: tuple[str, ...]  # QKeySequence strings
    text: str  # shown in the help overlay and menus


SHORTCUTS: tuple[Shortcut, ...] = (
    Shortcut("label_good", ("G", "1"), "Label good"),
    Shortcut("label_defect", ("D", "2"), "Label defect"),
    Shortcut("label_suspicious", ("S", "3"), "Label suspicious"),
    Shortcut("label_clear", ("C", "0"), "Clear the label (unlabeled)"),
    Shortcut("use_for_training", ("T",), "Label the selected images good and use them for training"),
    Shortcut("stop_training_use", ("Shift+T",), "Stop using the selected images for training (judge them)"),
    Shortcut("next_image", ("Right", "J"), "Next image"),
    Shortcut("previous_image", ("Left", "K"), "Previous image"),
    Shortcut("undo", ("Ctrl+Z",), "Undo the last label"),
    Shortcut("redo", ("Ctrl+Shift+Z", "Ctrl+Y"), "Redo"),
    Shortcut("toggle_overlay", ("H",), "Show / hide the heat map"),
    Shortcut("toggle_mask", ("M",), "Show / hide the ground-truth contour"),
    Shortcut("open_folder", ("Ctrl+O",), "Open an image folder"),
    Shortcut("export", ("Ctrl+E",), "Export labeled images"),
    Shortcut("score_folder", ("Ctrl+Shift+S",), "Score a folder with a saved model (into this project)"),
    Shortcut("resume_run", ("Ctrl+Shift+R",), "Resume the interrupted run (cancelled or crashed)"),
    Shortcut("help", ("F1", "?"), "Show this help"),
)


def by_action() -> dict[str, Shortcut]:
    return {s.action: s for s in SHORTCUTS}


def help_html() -> str:
    rows = "".join(f"<tr><td><b>{' / '.join(s.keys)}</b></td><td>&nbsp;&nbsp;{s.text}</td></tr>" for s in SHORTCUTS)
    return f"<h3>Keyboard shortcuts</h3><table>{rows}</table>"
