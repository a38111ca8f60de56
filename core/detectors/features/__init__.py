"""Detectors on pretrained EfficientNet-Lite0 features (packaged weights, no download): PatchCore (memory bank
+ coreset) and PaDiM (per-position Gaussians), on the shared feature extraction of `backbone.py`."""

from core.detectors.features.padim import PaDiM
from core.detectors.features.patchcore import PatchCore
from core.detectors.features.recommended import Recommended

__all__ = ["PaDiM", "PatchCore", "Recommended"]
