"""The session's events as Qt signals: core.session emits on its store thread or a job thread; these signals
are connected queued, so the window's slots always run on the UI thread (only it may touch widgets)."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from core.session import ReviewSession


class SessionBridge(QObject):
    opened = Signal(object)  # the ReviewSession
    failed = Signal(str)
    labelsSaved = Signal(list)  # LabelRecords
    trainingSaved = Signal(list, bool, int)  # image ids, used for training now, training set size
    thresholdSaved = Signal(str, float, float, str)
    runGrew = Signal(str)  # a chunk of this run is in the store
    driftWarning = Signal(str, str)  # run id, the plain message (once per run)

    def __init__(self, session: ReviewSession, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        events = session.events
        events.connect("opened", self.opened.emit)
        events.connect("failed", self.failed.emit)
        events.connect("labels_saved", self.labelsSaved.emit)
        events.connect("training_saved", self.trainingSaved.emit)
        events.connect("threshold_saved", self.thresholdSaved.emit)
        events.connect("run_grew", self.runGrew.emit)
        events.connect("drift_warning", self.driftWarning.emit)
