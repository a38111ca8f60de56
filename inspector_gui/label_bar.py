"""The labeling bar under the viewer: good / defect / suspicious / clear, defect type, note, auto-advance,
and the current image's saved label. Buttons show their shortcut from the one shortcut table."""

from __future__ import annotations

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QLineEdit, QPushButton, QWidget

from core.vocabulary import LABEL_COLOURS
from inspector_gui.flow_layout import FlowLayout, joined
from inspector_gui.shortcuts import by_action

_BUTTONS = (("good", "label_good"), ("defect", "label_defect"), ("suspicious", "label_suspicious"),
            ("unlabeled", "label_clear"))


class LabelBar(QWidget):
    """Emits labelRequested(label); the window saves it with the current defect type and note."""

    labelRequested = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        keys = by_action()
        layout = FlowLayout(self)  # wraps onto a second row rather than widening the window past a small screen
        layout.setContentsMargins(4, 2, 4, 2)
        self.buttons: dict[str, QPushButton] = {}
        for label, action in _BUTTONS:
            text = "Clear" if label == "unlabeled" else label.capitalize()
            button = QPushButton(f"{text}  [{keys[action].keys[0]}]")
            button.setStyleSheet(f"QPushButton {{ color: {LABEL_COLOURS[label]}; font-weight: bold; }}")
            button.setToolTip(keys[action].text)
            button.setProperty("label", label)
            button.clicked.connect(self._on_button)
            self.buttons[label] = button
            layout.addWidget(button)
        self.defect_type = QComboBox()
        self.defect_type.setEditable(True)
        self.defect_type.setMinimumWidth(120)
        self.defect_type.setToolTip("Defect type saved with defect / suspicious labels")
        self.note = QLineEdit()
        self.note.setPlaceholderText("note")
        self.note.setMinimumWidth(160)
        self.auto_advance = QCheckBox("auto-advance")
        self.auto_advance.setChecked(True)
        self.current = QLabel("—")
        self.current.setMinimumWidth(160)
        layout.addWidget(joined(QLabel("type"), self.defect_type))
        layout.addWidget(self.note)
        layout.addWidget(self.auto_advance)
        layout.addWidget(self.current)

    @Slot()
    def _on_button(self) -> None:
        self.labelRequested.emit(self.sender().property("label"))

    def set_defect_types(self, names: list[str]) -> None:
        current = self.defect_type.currentText()
        self.defect_type.clear()
        self.defect_type.addItems([""] + sorted(set(n for n in names if n)))
        self.defect_type.setCurrentText(current)

    def show_label(self, label: str, defect_type: str = "", note: str = "") -> None:
        """Show the saved state of the current image (not the fields' draft values)."""
        text = label + (f" ({defect_type})" if defect_type else "")
        self.current.setText(f"<b style='color:{LABEL_COLOURS.get(label, '#000')}'>{text}</b>")
        self.note.setText(note)
        if defect_type:
            self.defect_type.setCurrentText(defect_type)
