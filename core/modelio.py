"""Model files: one torch.save'd dict of tensors plus JSON metadata stored as a byte tensor.

Loaded with `weights_only=True`, so a model file from someone else cannot run code; nothing in it is a
pickled Python object. Non-torch detectors store their arrays as tensors too.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

import core
from core.detectors.base import Detector, DetectorError, FitReport

FORMAT = "anomaly-inspector-model"
FORMAT_VERSION = 1
_META_KEY = "__metadata_json__"


def library_versions() -> dict[str, str]:
    import cv2
    import sklearn

    return {"anomaly_inspector": core.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "opencv": cv2.__version__, "scikit_learn": sklearn.__version__,
            "python": platform.python_version()}


def save_detector(detector: Detector, path: Path) -> None:
    """Write atomically (temp file + rename) so a crash never leaves half a model under the real name."""
    if not detector.fitted:
        raise DetectorError(f"{path}: cannot save an untrained {detector.name} detector")
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "method": detector.name,
        "params": detector.params, "metadata": detector.metadata,
        "fit_report": detector.fit_report.to_json() if detector.fit_report else None,
        "versions": library_versions(),
    }
    state: dict[str, Any] = {}
    for key, value in detector._state().items():
        state[key] = torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value
    state[_META_KEY] = torch.frombuffer(bytearray(json.dumps(meta).encode()), dtype=torch.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_model_metadata(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    path = Path(path)
    if not path.is_file():
        raise DetectorError(f"{path}: no such model file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign or corrupt files
        raise DetectorError(f"{path}: not a readable Anomaly Inspector model ({type(exc).__name__})") from None
    if not isinstance(state, dict) or _META_KEY not in state:
        raise DetectorError(f"{path}: not an Anomaly Inspector model (no metadata)")
    meta = json.loads(bytes(state.pop(_META_KEY).numpy()).decode())
    if meta.get("format") != FORMAT:
        raise DetectorError(f"{path}: not an Anomaly Inspector model")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise DetectorError(f"{path}: made by a newer Anomaly Inspector (model format "
                            f"{meta['format_version']}, this version reads up to {FORMAT_VERSION})")
    return meta, state


def load_detector(path: str | Path) -> Detector:
    from core.detectors.registry import detector_class

    meta, state = read_model_metadata(path)
    cls = detector_class(meta["method"])
    known = {p.name for p in cls.PARAMS}
    detector = cls(**{k: v for k, v in meta["params"].items() if k in known})
    detector.metadata = dict(meta.get("metadata") or {})
    try:
        detector._load_state(state)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise DetectorError(f"{path}: the weights do not fit the {cls.name} detector ({exc})") from None
    if meta.get("fit_report"):
        detector.fit_report = FitReport(**meta["fit_report"])
    detector.fitted = True
    return detector
