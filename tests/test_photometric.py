"""Lighting normalisation and the drift warning: a global gain change must not move a detector's verdicts, and
a run under other lighting than the training images' says so."""

from __future__ import annotations

import numpy as np
import pytest

from core.data.photometric import (
    GAIN_CEILING,
    Normalised,
    Photometry,
    drift_warning,
    level,
    median_level,
    normalise,
    training_photometry,
)
from core.detectors.registry import create, detector_class


def textured(n: int, seed: int, size: int = 32, brightness: float = 0.45) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        base = brightness + 0.05 * rng.standard_normal((size, size, 1)).astype(np.float32)
        stripes = 0.1 * np.sin(np.arange(size) / 2.0)[None, :, None].astype(np.float32)
        out.append(np.clip(base + stripes, 0, 1).astype(np.float32))
    return out


def with_defect(img: np.ndarray) -> np.ndarray:
    out = img.copy()
    out[10:18, 12:20] = 0.95
    return out


def test_gain_normalisation_undoes_a_global_gain_change():
    img = textured(1, 0)[0]
    ref = (*level(img), median_level(img))
    darker = img * np.float32(0.9)
    np.testing.assert_allclose(normalise(darker, "gain", ref), img, atol=1e-5)
    shifted = np.clip(img * np.float32(0.8) + np.float32(0.05), 0, 1)
    np.testing.assert_allclose(normalise(shifted, "standardize", ref), img, atol=1e-4)
    assert normalise(img, "none", ref) is img


def test_normalised_view_is_lazy_and_records_levels():
    calls: list[int] = []

    class Counting(list):
        def __getitem__(self, i):
            calls.append(i if isinstance(i, int) else -1)
            return super().__getitem__(i)

    images = Counting(textured(5, 1))
    view = Normalised(images, "gain", (0.5, 0.1, 0.5))
    assert calls == [] and np.isnan(view.levels).all()
    first = view[1]
    assert calls == [1] and np.isfinite(view.levels[1]).all() and np.isnan(view.levels[0]).all()
    assert abs(median_level(first) - 0.5) < 0.01
    assert len(view[0:3]) == 3 and np.isfinite(view.levels[:3]).all()


def test_drift_warning_fires_on_darker_images_and_stays_silent_otherwise():
    train = textured(40, 2)
    photometry = training_photometry(train)
    same = np.array([level(x) for x in textured(30, 3)])
    assert drift_warning(photometry, same) is None
    darker = np.array([level(x * np.float32(0.8)) for x in textured(30, 3)])
    warning = drift_warning(photometry, darker)
    assert warning is not None and warning.darker >= 25 and warning.brighter == 0
    assert "30 scored images" in warning.message and "darker" in warning.message
    # A couple of odd images are not drift.
    few = np.concatenate([same, darker[:2]])
    assert drift_warning(photometry, few) is None
    assert Photometry.from_json(photometry.to_json()) == photometry


@pytest.mark.parametrize("name", ["padim", "gmm"])
def test_gain_setting_keeps_verdicts_under_a_lighting_change(name):
    train = textured(12, 4)
    good = textured(6, 5)
    bad = [with_defect(x) for x in textured(6, 6)]
    quick = detector_class(name).quick_settings()
    results = {}
    for mode in ("gain", "none"):
        det = create(name, **quick, photometric=mode)
        det.fit(train)
        plain = det.score(good + bad).scores
        dark = det.score([x * np.float32(0.7) for x in good] + bad)
        results[mode] = (plain, dark.scores)
        warning = det.drift_warning(dark)
        assert warning is not None and warning.darker >= 6, mode  # the warning speaks whatever the setting
        assert det.drift_warning(det.score(good)) is None
    plain, dark = results["gain"]
    np.testing.assert_allclose(dark[:6], plain[:6], rtol=1e-3, atol=1e-4)  # dark goods score as before
    plain, dark = results["none"]
    assert not np.allclose(dark[:6], plain[:6], rtol=1e-3, atol=1e-4)  # without it they do not


def test_models_record_their_photometry_and_old_models_score_unnormalised(tmp_path):
    from core.modelio import load_detector

    det = create("gmm", **detector_class("gmm").quick_settings())
    det.fit(textured(8, 7))
    assert det.metadata["photometry"]["n"] == 8
    det.save(tmp_path / "m.ai")
    again = load_detector(tmp_path / "m.ai")
    imgs = textured(3, 8)
    np.testing.assert_allclose(again.score(imgs).scores, det.score(imgs).scores, rtol=1e-6)
    del again.metadata["photometry"]  # what a model file from before this setting holds
    assert again.drift_warning(again.score(imgs)) is None


def test_gain_restores_the_unclipped_pixels_of_a_brighter_exposure():
    """x1.1 clips the highlights; the median is untouched by them, so every other pixel comes back exactly
    (a mean-based gain would over-correct them by the lost highlight energy)."""
    img = textured(1, 9)[0]
    img[:8] = 0.97  # a bright band: clips at x1.1
    ref = (*level(img), median_level(img))
    brighter = np.clip(img * np.float32(1.1), 0, 1)
    back = normalise(brighter, "gain", ref)
    np.testing.assert_allclose(back[8:], img[8:], atol=2e-3)


def test_gain_makes_clipped_highlights_alike_in_every_exposure():
    """A region clipped white in training (a third of every bottle image) is clipped under a brighter exposure
    too, and is no longer clipped under a darker one: after the gain it must look the same in all three."""
    img = textured(1, 11)[0] * np.float32(0.8)
    img[:10] = 1.0  # saturated, as on the bottle's rim
    ref = (*level(img), median_level(img))
    base = normalise(img, "gain", ref)
    for g in (0.9, 1.1):
        changed = normalise(np.clip(img * np.float32(g), 0, 1), "gain", ref)
        np.testing.assert_allclose(changed, base, atol=3e-3)
    assert (base[:10] == GAIN_CEILING).all() and base.max() <= GAIN_CEILING
