"""Detectors by name, as the CLI, the window and model files refer to them.

The built-in families are imported and registered here, at import, so they are always available; a plug-in
calls `register` and joins them.
"""

from __future__ import annotations

from typing import Any

from core.detectors.autoencoders import KDCAE, NICAE, ConvAE, DecentralizationAE
from core.detectors.base import Detector, DetectorError
from core.detectors.features import PaDiM, PatchCore, Recommended
from core.detectors.fusion import Fusion
from core.detectors.gan.fanogan import FAnoGAN
from core.detectors.oiad import OIAD
from core.detectors.patch import PatchAE, PatchGMM, PatchIsolationForest, PatchVAE
from core.detectors.pca import PcaGmmBic, PcaKDE, PcaOneClassSVM
from core.detectors.supervised import SupervisedCNN

_REGISTRY: dict[str, type[Detector]] = {}
_ALIASES: dict[str, str] = {}


def register(cls: type[Detector], *aliases: str) -> type[Detector]:
    _REGISTRY[cls.name] = cls
    for alias in aliases:
        _ALIASES[alias] = cls.name
    return cls


BUILTINS: tuple[tuple[type[Detector], tuple[str, ...]], ...] = (
    (PatchVAE, ("patch-vae",)),
    (PatchAE, ("patch-ae",)),
    (PatchGMM, ()),
    (PatchIsolationForest, ("isolation-forest",)),
    (PatchCore, ("patch-core",)),
    (PaDiM, ()),
    (OIAD, ()),
    (PcaKDE, ()),
    (PcaOneClassSVM, ("oc-svm",)),
    (PcaGmmBic, ("gmm-bic",)),
    (DecentralizationAE, ("decentralization-ae",)),
    (ConvAE, ()),
    (KDCAE, ("kd-cae",)),
    (NICAE, ("ni-cae",)),
    (FAnoGAN, ("f-anogan",)),
    (Fusion, ("fused",)),
    (SupervisedCNN, ("supervised-cnn",)),
    (Recommended, ("default",)),
)
# What `evaluate` uses without --detector and the window preselects: the detector that held on every dev
# category and under lighting drift (core/detectors/features/recommended.py, docs/benchmarks.md).
RECOMMENDED = Recommended.name
for _cls, _aliases in BUILTINS:
    register(_cls, *_aliases)


def available() -> list[str]:
    return sorted(_REGISTRY)


def detector_class(name: str) -> type[Detector]:
    key = _ALIASES.get(name, name)
    if key not in _REGISTRY:
        raise DetectorError(f"unknown detector {name!r}; available: {', '.join(available())}")
    return _REGISTRY[key]


def parse_settings(name: str, pairs: list[str]) -> dict[str, Any]:
    """`["epochs=5", "latent=10"]` -> typed dict, checked against the detector's parameter schema."""
    schema = {p.name: p for p in detector_class(name).PARAMS}
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise DetectorError(f"setting {pair!r} must look like key=value")
        key, value = pair.split("=", 1)
        key = key.strip().replace("-", "_")
        if key not in schema:
            raise DetectorError(f"{name}: unknown setting {key!r}; known: {', '.join(sorted(schema))}")
        out[key] = schema[key].parse(value.strip())
    return out


def create(name: str, **params: Any) -> Detector:
    return detector_class(name)(**params)
