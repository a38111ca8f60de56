"""OIAD (paper 001): the Detector-VAE (`core.nets.oiad_nets`) trained with its TC discriminator
(`training.py`), PR-morphs and structure consistency (`morphs.py`), its settings (`params.py`) and the
detector that ties them together (`detector.py`)."""

from core.detectors.oiad.detector import OIAD

__all__ = ["OIAD"]
