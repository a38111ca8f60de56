"""The model file format: one torch.save'd dict of tensors plus JSON metadata stored as a byte tensor.

Loaded with `weights_only=True`, so a model file from someone else cannot run code; nothing in it is a
pickled Python object. Non-torch detectors store their arrays as tensors too. This module knows the file,
not the detectors: `Detector.save` hands it a state and metadata, and `core.modelio.load_detector` picks the
detector class (from the registry) for what it reads.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import sklearn
import torch

import core
from core.detectors.errors import DetectorError

FORMAT = "anomaly-inspector-model"
FORMAT_VERSION = 1
_META_KEY = "__metadata_json__"


def library_versions() -> dict[str, str]:
    return {"anomaly_inspector": core.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "opencv": cv2.__version__, "scikit_learn": sklearn.__version__,
            "python": platform.python_version()}


def write_model_file(path: Path, state: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write atomically (temp file + rename) so a crash never leaves half a model under the real name.

    `state`: name -> torch.Tensor | np.ndarray; `meta`: JSON-able (method, params, ...), stamped here with the
    format and the library versions."""
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta, "versions": library_versions()}
    tensors: dict[str, Any] = {}
    for key, value in state.items():
        tensors[key] = torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value
    tensors[_META_KEY] = torch.frombuffer(bytearray(json.dumps(meta).encode()), dtype=torch.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(tensors, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_model_file(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(metadata, tensors) of a model file; a plain DetectorError naming the file for anything else."""
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
