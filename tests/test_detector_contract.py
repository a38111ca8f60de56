"""The detector contract, checked for every registered detector with its own quick settings
(`Detector.quick_settings`): a new detector gets these tests by registering a name."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from core.detectors.base import Cancelled, Detector, DetectorError
from core.detectors.registry import available, create, detector_class
from core.modelio import load_detector

ROOT = Path(__file__).resolve().parents[1]
NAMES = available()


def images(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random((32, 32, 1), dtype=np.float32) for _ in range(n)]


TEST = images(3, seed=1)


def labels_for(name: str, n: int) -> dict:
    """fit()'s labels for a supervised detector (alternating good / defect), nothing for the others."""
    return {"labels": [k % 2 == 1 for k in range(n)]} if detector_class(name).supervised else {}


@cache
def fitted(name: str) -> Detector:
    """One trained detector per name for the whole module (training is the slow part)."""
    det = create(name, **detector_class(name).quick_settings())
    det.fit(images(8, seed=0), **labels_for(name, 8))
    return det


@pytest.mark.parametrize("name", NAMES)
def test_fits_scores_and_scores_the_same_after_save_and_load(name: str, tmp_path: Path) -> None:
    det = fitted(name)
    before = det.score(TEST)
    assert len(before) == len(TEST) and np.isfinite(before.scores).all()
    assert len(before.geometry) == len(TEST)
    for maps in before.maps.values():
        assert len(maps) == len(TEST) and all(m.ndim == 2 for m in maps)
    det.save(tmp_path / "model.ai")
    again = load_detector(tmp_path / "model.ai")
    assert type(again) is type(det) and again.params == det.params
    after = again.score(TEST)
    assert set(after.components) == set(before.components) and set(after.maps) == set(before.maps)
    for k in before.components:
        np.testing.assert_array_equal(before.components[k], after.components[k])
    for k in before.maps:
        for a, b in zip(before.maps[k], after.maps[k], strict=True):
            np.testing.assert_array_equal(a, b)
    assert after.geometry == before.geometry


@pytest.mark.parametrize("name", NAMES)
def test_every_declared_component_is_scored_and_the_default_is_one_of_them(name: str) -> None:
    cls = detector_class(name)
    assert cls.default_component in cls.components
    res = fitted(name).score(TEST[:1])
    assert res.default_component == cls.default_component
    assert set(cls.components) <= set(res.components)
    np.testing.assert_array_equal(res.scores, res.components[cls.default_component])


@pytest.mark.parametrize("name", NAMES)
def test_should_stop_cancels_fit_and_score(name: str) -> None:
    fresh = create(name, **detector_class(name).quick_settings())
    with pytest.raises(Cancelled):
        fresh.fit(images(8, seed=0), should_stop=lambda: True, **labels_for(name, 8))
    assert not fresh.fitted
    with pytest.raises(Cancelled):
        fitted(name).score(TEST, should_stop=lambda: True)


@pytest.mark.parametrize("name", NAMES)
def test_empty_input_is_refused_plainly(name: str) -> None:
    fresh = create(name, **detector_class(name).quick_settings())
    with pytest.raises(DetectorError) as info:
        fresh.fit([])
    message = str(info.value)
    assert name in message and "no training images" in message and "\n" not in message
    with pytest.raises(DetectorError, match="before fit"):
        fresh.score(TEST)
    empty = fitted(name).score([])  # nothing to score is not an error: an empty result with every component
    assert len(empty) == 0 and set(detector_class(name).components) <= set(empty.components)


def test_a_plugin_registered_first_keeps_every_builtin() -> None:
    # A fresh interpreter, so the plug-in really is the first thing the registry sees.
    code = (
        "from core.detectors.base import Detector\n"
        "from core.detectors import registry\n"
        "class Plugin(Detector):\n"
        "    name = 'plugin'\n"
        "    def _fit(self, images, *, progress, should_stop): ...\n"
        "    def _score(self, images, *, progress, should_stop): ...\n"
        "    def _state(self): return {}\n"
        "    def _load_state(self, state): ...\n"
        "registry.register(Plugin, 'my-plugin')\n"
        "print(','.join(registry.available()))\n"
        "print(registry.detector_class('my-plugin').__name__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    names, plugin_class = proc.stdout.split()
    assert set(names.split(",")) == set(NAMES) | {"plugin"}
    assert plugin_class == "Plugin"
