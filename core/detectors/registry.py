"""Detectors by name, as the CLI, the window and model files refer to them."""

from __future__ import annotations

from typing import Any

from core.detectors.base import Detector, DetectorError

_REGISTRY: dict[str, type[Detector]] = {}
_ALIASES: dict[str, str] = {}


def register(cls: type[Detector], *aliases: str) -> type[Detector]:
    _REGISTRY[cls.name] = cls
    for alias in aliases:
        _ALIASES[alias] = cls.name
    return cls


def _load_builtins() -> None:
    if _REGISTRY:
        return
    from core.detectors.gmm import PatchGMM
    from core.detectors.iforest import PatchIsolationForest
    from core.detectors.vae import PatchAE, PatchVAE

    register(PatchVAE, "patch-vae")
    register(PatchAE, "patch-ae")
    register(PatchGMM)
    register(PatchIsolationForest, "isolation-forest")

    from core.detectors.padim import PaDiM
    from core.detectors.patchcore import PatchCore

    register(PatchCore, "patch-core")
    register(PaDiM)

    from core.detectors.oiad import OIAD

    register(OIAD)

    from core.detectors.gmm_bic import PcaGmmBic
    from core.detectors.kde import PcaKDE
    from core.detectors.ocsvm import PcaOneClassSVM

    register(PcaKDE)
    register(PcaOneClassSVM, "oc-svm")
    register(PcaGmmBic, "gmm-bic")


def available() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def detector_class(name: str) -> type[Detector]:
    _load_builtins()
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
