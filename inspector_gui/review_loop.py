"""The window's side of the label - train - review loop (the decisions are core.session.label_loop's):

- the banner above the viewer offers to train the supervised cnn once enough defects are labeled, or to retrain
  on the labels set since the shown run; its button starts the job through the training panel (so the form's
  settings apply and a refusal is said the same way);
- the gallery's "Review next" order gets its keys here: recomputed when scores arrive (a run lands or grows),
  when the review band changes and when the order is chosen; not on every label, so a tile does not jump away
  under the cursor while the engineer labels.

Checks are coalesced (one per LOOP_CHECK_MS) because labels arrive one by one and a growing run refreshes often.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Slot

from core.session.label_loop import TrainingOffer, offer_for, review_keys_for
from inspector_gui.loop_banner import LoopBanner

LOOP_CHECK_MS = 150


class ReviewLoop(QObject):
    def __init__(self, win: Any) -> None:
        super().__init__(win)
        self.win = win
        self.banner = LoopBanner()
        win.centralWidget().layout().insertWidget(0, self.banner)
        self.dismissed: set[str] = set()
        self._keys_band: tuple[float, float] | None = None  # the band the current keys were computed with
        self._keys_scores: np.ndarray | None = None  # and the scores
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(LOOP_CHECK_MS)
        self._timer.timeout.connect(self.check_offer)
        self._keys_timer = QTimer(self)
        self._keys_timer.setSingleShot(True)
        self._keys_timer.setInterval(0)
        self._keys_timer.timeout.connect(self.update_review_keys)
        self.banner.accepted.connect(self.take_offer)
        self.banner.dismissed.connect(self.dismissed.add)
        queued = Qt.ConnectionType.QueuedConnection
        for signal in (win.bridge.labelsSaved, win.bridge.trainingSaved, win.bridge.opened):
            signal.connect(self.schedule_check, queued)
        gallery = win.gallery.model
        gallery.scoresChanged.connect(self._on_scores)
        gallery.reviewBandChanged.connect(self._on_band)
        gallery.sortChanged.connect(self._on_sort)

    # ---------------------------------------------------------------- the offer
    @Slot()
    def schedule_check(self, *args: object) -> None:
        if not self._timer.isActive():
            self._timer.start()

    @Slot()
    def check_offer(self) -> None:
        """Show what core offers now (hidden when nothing, or when the engineer said "Not now" to it)."""
        offer = offer_for(self.win.session)
        self.banner.show_offer(offer if offer is not None and offer.key not in self.dismissed else None)
        self.banner.set_busy(self.win.job is not None and self.win.job.running)

    @Slot(object)
    def take_offer(self, offer: TrainingOffer) -> None:
        win = self.win
        if win.job is not None and win.job.running:
            win.statusBar().showMessage("A job is running; the offer waits until it ends.")
            return
        panel = win.training
        if offer.action == "retrain" and win.run is not None and win.run.detector == offer.detector:
            params = win.store.run_info(win.run.run_id).params
            panel.set_settings(offer.detector, {k: v for k, v in params.items() if k in panel._editors})
        elif panel.detector.currentText() != offer.detector:
            panel.detector.setCurrentText(offer.detector)  # its default settings
        if offer.mark_for_training:  # an unsupervised retrain learns from the new good labels
            if win.session.mark_for_training(list(offer.mark_for_training), True).result() is None:
                return  # not saved: the session said why (failed event)
        self.dismissed.add(offer.key)
        self.banner.show_offer(None)
        panel.train_button.click()  # the panel checks its settings and asks the window to train

    # ---------------------------------------------------------------- the review order
    @Slot()
    def _on_scores(self) -> None:
        # A refresh that brings no new score (a late progressive refresh) must not reorder what is being labeled.
        if self._keys_scores is None or not np.array_equal(self.win.gallery.model.scores(), self._keys_scores,
                                                           equal_nan=True):
            self._keys_timer.start()  # after the window has refreshed the threshold panel for these scores
        self.schedule_check()

    @Slot(float, float)
    def _on_band(self, t1: float, t2: float) -> None:
        if self.win.gallery.model.review_band() != self._keys_band:  # moved, not merely committed again
            self.update_review_keys()

    @Slot(str, bool)
    def _on_sort(self, key: str, descending: bool) -> None:
        if key == "review":
            self.update_review_keys()

    def update_review_keys(self) -> None:
        """The "review next" keys from the shown run's scores, the labels and the committed review band."""
        model = self.win.gallery.model
        band = self._keys_band = model.review_band()
        self._keys_scores = model.scores()
        if band is None:  # no band committed yet: the threshold panel's current thresholds
            band = (self.win.threshold_model.t1, self.win.threshold_model.t2)
        keys = review_keys_for(self.win.session, *band)
        if keys is not None and keys.shape[0] == model.rowCount():
            model.set_review_keys(keys)
