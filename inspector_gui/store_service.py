"""The one owner of the open label store, living in its own thread: every write (labels, runs,
thresholds) goes through here so an fsync never stalls the window. Reads of cached state (labels,
image list) are lock-protected inside Store and may be called from the main thread.

Requests arrive as queued signal calls to the slots; answers leave as signals. A failure is reported
with the store's own message (which names the file), and the next request is served as usual.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from core.store import Store, StoreError


def project_store_path(folder: Path) -> Path:
    """Where the window keeps a folder's review project: beside the images, so they travel together."""
    return folder / "anomaly_inspector.h5"


class StoreService(QObject):
    opened = Signal(object)  # the Store
    labelSaved = Signal(int, str, str, str)  # image id, label, defect type, note
    runSaved = Signal(str)
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
        """Open a store file, or the project store of an image folder (created and filled on first use:
        MVTec folders import their ground truth as labels, other folders are added unlabeled)."""
        try:
            self._close()
            target = Path(folder_or_store)
            if target.is_file():
                self.store = Store.open(target)
            else:
                path = project_store_path(target)
                if path.exists():
                    self.store = Store.open(path)
                else:
                    self.store = Store.create(path, target)
                    # Files that do not decode stay in the project: the gallery shows each as a broken tile
                    # with its reason (and opening a big folder does not decode every file twice).
                    if layout == "mvtec":
                        self.store.import_mvtec(target, check_images=False)
                    else:
                        self.store.add_folder(target, check_images=False)
            self.opened.emit(self.store)
        except (StoreError, OSError, ValueError) as exc:
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

    @Slot(str, dict, dict, list, dict, str, dict)
    def add_run(self, detector: str, params: dict, metadata: dict, paths: list, scores: dict,
                default_component: str, maps: dict) -> None:
        if not self._ready():
            return
        try:
            run_id = self.store.add_run(detector, params, metadata, paths,
                                        {k: np.asarray(v) for k, v in scores.items()}, default_component, maps)
            self.runSaved.emit(run_id)
        except (StoreError, OSError, ValueError) as exc:
            self.failed.emit(f"scores not saved: {exc}")

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
