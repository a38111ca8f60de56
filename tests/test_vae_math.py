"""The score split of paper 000 computed by the product equals the formulas, term by term."""

import math

import numpy as np
import pytest
import torch

from core.detectors.patch.vae import GaussianVAE, elbo_terms
from core.detectors.registry import create
from tests.conftest import TINY_VAE, random_images


def _by_hand(x, mu_z, lv_z, mu_x, lv_x):
    """Literal per-element sums from METHODS §1, in float64 numpy."""
    x, mu_z, lv_z, mu_x, lv_x = (t.detach().double().numpy() for t in (x, mu_z, lv_z, mu_x, lv_x))
    out = {"D": [], "A": [], "M": []}
    for n in range(x.shape[0]):
        s2z = np.exp(lv_z[n])
        out["D"].append(sum(0.5 * (-lv_z[n][j] - 1 + s2z[j] + mu_z[n][j] ** 2) for j in range(len(s2z))))
        s2x = np.exp(lv_x[n]).ravel()
        out["A"].append(sum(0.5 * math.log(2 * math.pi * v) for v in s2x))
        out["M"].append(sum(0.5 * (m - xi) ** 2 / v for m, xi, v in zip(mu_x[n].ravel(), x[n].ravel(), s2x,
                                                                          strict=True)))
    return {k: np.array(v) for k, v in out.items()}


def test_terms_match_by_hand_on_a_tiny_network():
    torch.manual_seed(0)
    net = GaussianVAE(channels=1, size=16, n_conv=2, base_channels=4, latent=3, min_log_var_x=-9.0).eval()
    x = torch.rand(5, 1, 16, 16)
    with torch.no_grad():
        mu_z, lv_z = net.encode(x)
        mu_x, lv_x = net.decode(mu_z)
        terms = elbo_terms(x, mu_z, lv_z, mu_x, lv_x)
    hand = _by_hand(x, mu_z, lv_z, mu_x, lv_x)
    for k in "DAM":
        np.testing.assert_allclose(terms[k].numpy(), hand[k], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(terms["L"].numpy(), (terms["D"] + terms["A"] + terms["M"]).numpy(), rtol=1e-6)


def test_detector_patch_scores_use_the_map_latent_and_split_exactly():
    det = create("vae", **TINY_VAE)
    det.fit(random_images(4, size=64))
    patches = torch.rand(7, 1, 32, 32)
    s1 = det.patch_scores(patches)
    s2 = det.patch_scores(patches)
    for k in "LDAM":
        assert torch.equal(s1[k], s2[k]), "scoring must be deterministic (z = mu_z, no sampling)"
    torch.testing.assert_close(s1["L"], s1["D"] + s1["A"] + s1["M"])
    with torch.no_grad():
        mu_z, lv_z = det.net.encode(patches)
        mu_x, lv_x = det.net.decode(mu_z)
    hand = _by_hand(patches, mu_z, lv_z, mu_x, lv_x)
    for k in "DAM":
        np.testing.assert_allclose(s1[k].numpy(), hand[k], rtol=1e-4, atol=1e-2)


def test_score_result_maps_and_image_score_aggregate():
    det = create("vae", **TINY_VAE)
    det.fit(random_images(3, size=64))
    res = det.score(random_images(2, size=64, seed=1))
    assert res.default_component == "M" and set(res.components) == {"L", "D", "A", "M"}
    for i in range(2):
        grid = {k: res.maps[k][i] for k in "LDAM"}
        assert grid["M"].shape == (3, 3)  # (64 - 32) / 16 + 1
        np.testing.assert_allclose(grid["L"], grid["D"] + grid["A"] + grid["M"], rtol=1e-5, atol=1e-3)
        assert res.components["M"][i] == pytest.approx(grid["M"].max())
    g = res.geometry[0]
    assert (g.patch, g.stride, g.input_shape, g.original_shape) == (32, 16, (64, 64), (64, 64))
