"""The autoencoder family (papers 002, 003, 004): each detector on tiny synthetic images, and the papers' math
(decentralization term, running centre, noise injection, KDE density, SSIM difference map)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neighbors import KernelDensity

from core.detectors.autoencoders.base import ssim_difference
from core.detectors.autoencoders.decentralization import decentralization_term, update_centre
from core.detectors.autoencoders.kdcae import choose_bandwidth, gaussian_kde_log_density
from core.detectors.autoencoders.nicae import inject_noise, pick_noisy
from core.detectors.registry import available, create, detector_class
from core.metrics import auroc
from core.modelio import load_detector

NAMES = ("decentralization", "cae", "kdcae", "nicae")
SIDE = 32


def normal_image(rng: np.random.Generator) -> np.ndarray:
    """A smooth horizontal gradient (the 'part') with a little sensor noise."""
    ramp = np.linspace(0.2, 0.6, SIDE, dtype=np.float32)[None, :].repeat(SIDE, 0)
    return np.clip(ramp + rng.normal(0, 0.01, (SIDE, SIDE)), 0, 1).astype(np.float32)[:, :, None]


def defect_image(rng: np.random.Generator) -> np.ndarray:
    img = normal_image(rng)
    y, x = rng.integers(4, SIDE - 12, 2)
    img[y:y + 8, x:x + 8] = 1.0  # a bright blob the normal images never show
    return img


def synthetic(seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    train = [normal_image(rng) for _ in range(16)]
    test = [normal_image(rng) for _ in range(6)] + [defect_image(rng) for _ in range(6)]
    return train, test, np.array([0] * 6 + [1] * 6)


TRAIN_FOR_RANKING = {
    "decentralization": {"epochs": 40, "lr": 3e-3},
    "cae": {"epochs": 40, "lr": 3e-3},
    "kdcae": {"epochs": 40, "lr": 3e-3},
    "nicae": {"epochs": 40, "lr": 3e-3, "patience": 40, "val_fraction": 0.0},
}


@pytest.mark.parametrize("name", NAMES)
def test_ranks_synthetic_defects_above_normals_and_round_trips(name: str, tmp_path: Path) -> None:
    train, test, labels = synthetic()
    det = create(name, **{**detector_class(name).quick_settings(), **TRAIN_FOR_RANKING[name]})
    losses: list[float] = []
    det.fit(train, progress=lambda done, total, info: losses.append(info["loss"]))
    assert losses and all(math.isfinite(v) for v in losses)  # progress carries the loss every step
    res = det.score(test)
    assert auroc(labels, res.scores) >= 0.9, (name, res.scores)
    residual = det.residual_name
    assert auroc(labels, res.components[residual]) >= 0.9
    for comp in (residual, "ssim"):  # the maps the viewer overlays: one per image, at the input's pixels
        assert len(res.maps[comp]) == len(test) and res.maps[comp][0].shape == (SIDE, SIDE)
    assert res.geometry[0].patch == 1 and res.geometry[0].input_shape == (SIDE, SIDE)
    det.save(tmp_path / "m.ai")
    again = load_detector(tmp_path / "m.ai")
    after = again.score(test)
    for k in res.components:
        np.testing.assert_array_equal(res.components[k], after.components[k])


@pytest.mark.parametrize("name", NAMES)
def test_time_budget_stops_training(name: str) -> None:
    train, _, _ = synthetic()
    det = create(name, **{**detector_class(name).quick_settings(), "epochs": 1000, "time_budget": 0.3})
    report = det.fit(train)
    assert report.stopped_by == "time_budget" and report.epochs < 1000


def test_every_autoencoder_is_registered() -> None:
    assert set(NAMES) <= set(available())


def test_decentralization_term_is_d_minus_mean_squared_norm() -> None:
    f = torch.tensor([[0.5, -0.5, 0.0], [1.0, 0.0, 0.0]])  # d = 3
    # ||f_1||^2 = 0.5, ||f_2||^2 = 1.0 -> 3 - 0.75
    assert decentralization_term(f).item() == pytest.approx(2.25)
    centre = torch.tensor([0.5, 0.0, 0.0])
    # ||f_1 - C||^2 = 0 + 0.25 + 0 = 0.25, ||f_2 - C||^2 = 0.25 -> 3 - 0.25
    assert decentralization_term(f, centre).item() == pytest.approx(2.75)
    # Eq. 11: C + sum_i (f_i - C) / (m + 1) = C + ([0, -0.5, 0] + [0.5, 0, 0]) / 3
    np.testing.assert_allclose(update_centre(centre, f).numpy(), [0.5 + 0.5 / 3, -0.5 / 3, 0.0], atol=1e-7)


def test_decentralization_latent_is_bounded_by_tanh_and_running_centre_trains() -> None:
    train, _, _ = synthetic()
    det = create("decentralization", **{**detector_class("decentralization").quick_settings(), "centre": "running"})
    det.fit(train)
    z, _ = det.reconstruct(torch.from_numpy(np.stack(train)).permute(0, 3, 1, 2))
    assert z.abs().max() < 1.0
    assert det.centre.shape == (z.flatten(1).shape[1],) and det.centre.abs().sum() > 0


def test_noise_touches_about_ten_percent_of_the_images() -> None:
    gen = torch.Generator().manual_seed(0)
    mask = pick_noisy(1000, 0.10, gen)
    assert mask.sum().item() == 100  # floor(0.10 * K_D), eq. 7
    x = torch.full((1000, 1, 8, 8), 0.5)
    out = inject_noise(x, mask, 0.001, gen)
    touched = (out != x).flatten(1).any(dim=1)
    assert torch.equal(touched, mask)
    assert (out[mask] - 0.5).std().item() == pytest.approx(math.sqrt(0.001), rel=0.05)
    batch = mask[torch.randperm(1000, generator=gen)[:200]]  # a training batch sees about 10 % noisy images
    assert 0.04 <= batch.float().mean().item() <= 0.16


def test_nicae_stops_early_when_validation_does_not_improve() -> None:
    train, _, _ = synthetic()
    det = create("nicae", **{**detector_class("nicae").quick_settings(), "epochs": 50, "lr": 0.0, "patience": 2})
    report = det.fit(train)
    assert report.stopped_by == "converged" and report.epochs == 3  # best at 1, then 2 epochs without gain


def test_kde_density_is_lower_for_an_out_of_distribution_latent() -> None:
    rng = np.random.default_rng(0)
    latents = rng.normal(0, 1, (40, 16))
    h = choose_bandwidth(latents, seed=0)
    kde = KernelDensity(kernel="gaussian", bandwidth=h).fit(latents)
    inside, outside = latents[:1] + 0.1, latents[:1] + 6.0
    assert kde.score_samples(outside)[0] < kde.score_samples(inside)[0]
    # Our leave-one-out formula is scikit-learn's density when nothing is left out.
    np.testing.assert_allclose(gaussian_kde_log_density(outside, latents, h), kde.score_samples(outside))


def test_bandwidth_is_the_one_grid_search_cv_picks() -> None:
    latents = np.random.default_rng(1).normal(0, 1, (50, 24))
    d = np.sqrt(((latents[:, None] - latents[None]) ** 2).sum(-1))
    grid = np.median(d[~np.eye(50, dtype=bool)]) * np.geomspace(0.02, 2.0, 13)
    search = GridSearchCV(KernelDensity(kernel="gaussian"), {"bandwidth": grid},
                          cv=KFold(5, shuffle=True, random_state=3)).fit(latents)
    assert choose_bandwidth(latents, seed=3) == pytest.approx(search.best_params_["bandwidth"])


def test_kdcae_density_component_is_higher_for_an_unseen_latent() -> None:
    train, _, _ = synthetic()
    det = create("kdcae", **detector_class("kdcae").quick_settings())
    det.fit(train)
    z = torch.from_numpy(det.latents[:1])
    seen = det.latent_components(z)["density"][0]
    unseen = det.latent_components(z + 50.0)["density"][0]
    assert unseen > seen  # the component is -log density: low density scores high


def test_ssim_difference_map_is_zero_for_identical_images_and_has_their_size() -> None:
    x = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    same = ssim_difference(x, x.clone())
    assert same.shape == (2, 24, 24)
    assert same.abs().max().item() < 1e-5
    assert ssim_difference(x, x.flip(-1)).mean().item() > 0.1


def test_patch_ae_has_an_ssim_component() -> None:
    train, test, _ = synthetic()
    det = create("ae", **detector_class("ae").quick_settings())
    det.fit(train)
    res = det.score(test[:2])
    assert "ssim" in res.components and "ssim" in res.maps
    assert np.isfinite(res.components["ssim"]).all()
