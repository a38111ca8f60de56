"""The label - train - review banner above the viewer: a non-modal offer to train the supervised cnn once enough
defects are labeled, or to retrain on labels set since the shown run (core.session.label_loop decides and
words it). It never blocks: labeling goes on while it is shown, "Not now" hides that offer until it changes."""

from __future__ import annotations

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from core.session.label_loop import TrainingOffer


class LoopBanner(QFrame):
    """Emits accepted(offer) and dismissed(key)."""

    accepted = Signal(object)
    dismissed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("loop_banner")
        self.setStyleSheet("#loop_banner { background: #e3f0fb; border: 1px solid #8bb8e0; border-radius: 3px; }")
        self.offer: TrainingOffer | None = None
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.action_button = QPushButton()
        self.action_button.clicked.connect(self._on_accept)
        self.dismiss_button = QPushButton("Not now")
        self.dismiss_button.setToolTip("Hide this offer until there is a new run or a different one")
        self.dismiss_button.clicked.connect(self._on_dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.addWidget(self.message, 1)
        layout.addWidget(self.action_button)
        layout.addWidget(self.dismiss_button)
        self.hide()

    def show_offer(self, offer: TrainingOffer | None) -> None:
        """Show `offer` (None hides the banner)."""
        self.offer = offer
        if offer is None:
            self.hide()
            return
        self.message.setText(offer.message)
        self.action_button.setText(offer.button)
        self.action_button.setEnabled(True)
        self.show()

    def set_busy(self, busy: bool) -> None:
        """While a job runs the offer cannot be taken (one job at a time)."""
        self.action_button.setEnabled(not busy)

    @Slot()
    def _on_accept(self) -> None:
        if self.offer is not None:
            self.accepted.emit(self.offer)

    @Slot()
    def _on_dismiss(self) -> None:
        if self.offer is not None:
            self.dismissed.emit(self.offer.key)
        self.show_offer(None)
