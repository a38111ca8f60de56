"""Model files back into detectors: read the file (`core.detectors.model_file`, `weights_only=True`, so a
model file from someone else cannot run code) and rebuild the detector class the registry names for it.
Writing is `Detector.save`."""

from __future__ import annotations

from pathlib import Path

from core.detectors.base import Detector
from core.detectors.model_file import read_model_file
from core.detectors.registry import detector_class

read_model_metadata = read_model_file  # (metadata, tensors) of a model file, without building the detector


def save_detector(detector: Detector, path: Path) -> None:
    detector.save(path)


def load_detector(path: str | Path) -> Detector:
    meta, state = read_model_file(path)
    return detector_class(meta["method"]).restore(meta, state, path)
