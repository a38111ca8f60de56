"""The one owner of the open label store, living in its own thread: every write (labels, runs,
thresholds) goes through here so an fsync never stalls the window. Reads of cached state (labels,
image list) are lock-protected inside Store and may be called from the main thread.

Requests arrive as queued signal calls to the slots; answers leave as signals. A failure is reported
with the store's own message (which names the file), and the next request is served as usual.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QThread, Signal, Slot

from core.data.folders import FolderError
from core.project.opening import open_project
from core.store import Store, StoreError


class StoreService(QObject):
    opened = Signal(object)  # the Store
    labelSaved = Signal(int, str, str, str)  # image id, label, defect type, note
    trainingSaved = Signal(list, bool)  # image ids, now used for training (True) or judged (False)
    thresholdSaved = Signal(str, float, float, str)
    failed = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.store: Store | None = None
        self._thread = QThread()
        self._thread.setObjectName("store")
        self.moveToThread(self._thread)
        self._thread.start()

    # ------------------------------------------------------------------ requests (run in the store thread)
    @Slot(str, str)
    def open_project(self, folder_or_store: str, layout: str) -> None:
        """Open a store file, or the project store of an image folder (created and filled on first use from
        what the folder's layout says: core.project.opening)."""
        try:
            self._close()
            # Files that do not decode stay in the project: the gallery shows each as a broken tile with its
            # reason (and opening a big folder does not decode every file twice).
            self.store = open_project(folder_or_store, check_images=False)
            self.opened.emit(self.store)
        except (StoreError, FolderError, OSError, ValueError) as exc:
            self.store = None
            self.failed.emit(str(exc))

    @Slot(int, str, str, str)
    def set_label(self, image_id: int, label: str, defect_type: str, note: str) -> None:
        if not self._ready():
            return
        try:
            rec = self.store.set_label(image_id, label, defect_type=defect_type or None, note=note)
            self.labelSaved.emit(image_id, rec.label, rec.defect_type, rec.note)
        except (StoreError, OSError, ValueError) as exc:
            self.failed.emit(f"label not saved: {exc}")

    @Slot(list, bool)
    def set_training(self, image_ids: list, use: bool) -> None:
        """Use the images for training (labeled good first, by a person) or stop using them (they are then
        judged). One commit for the labels, one for the splits; both are on disk when the signals leave."""
        if not self._ready():
            return
        try:
            if use:
                relabel = [i for i in image_ids if self.store.label(i).label != "good"]
                for rec in self.store.set_labels([(i, "good", None, None) for i in relabel]):
                    self.labelSaved.emit(rec.image_id, rec.label, rec.defect_type, rec.note)
            self.store.set_split(image_ids, "train" if use else "test")
            self.trainingSaved.emit(list(image_ids), use)
        except (StoreError, OSError, ValueError) as exc:
            self.failed.emit(f"training set not saved: {exc}")

    @Slot(str, float, float, str)
    def set_threshold(self, run_id: str, t1: float, t2: float, method: str) -> None:
        if not self._ready():
            return
        try:
            rec = self.store.set_threshold(run_id, t1, t2, method)
            self.thresholdSaved.emit(run_id, rec.t1, rec.t2, rec.method)
        except (StoreError, OSError, ValueError) as exc:
            self.failed.emit(f"threshold not saved: {exc}")

    @Slot()
    def close(self) -> None:
        self._close()

    # ------------------------------------------------------------------ lifetime (main thread)
    def shutdown(self) -> None:
        """Close the store in its own thread, then stop the thread."""
        from PySide6.QtCore import QMetaObject, Qt

        if not self._thread.isRunning():  # already shut down (a window can be closed twice)
            return
        QMetaObject.invokeMethod(self, "close", Qt.ConnectionType.BlockingQueuedConnection)
        self._thread.quit()
        self._thread.wait(5000)

    def _ready(self) -> bool:
        if self.store is None:
            self.failed.emit("no project is open")
            return False
        return True

    def _close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
