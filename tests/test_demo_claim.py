"""Paper 000's claim on the built-in demo data, with the demo's CPU-sized patch VAE and a fixed seed:
the unregularized score M ranks defects above normals and beats the ordinary score L, because the
log-normaliser A follows the complexity of normal regions (grooves, threads) and dominates L.

One training run (~1 min on 2 cores) is shared by the tests of this module.
"""

import numpy as np
import pytest
import torch

from core.cli.demo import DEMO_SETTINGS
from core.data.patches import sliding_patches, to_tensor
from core.data.synthetic import DemoSpec, generate
from core.evaluate import evaluate


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = generate(tmp_path_factory.mktemp("demo"), DemoSpec())
    report, detector, result, test = evaluate(root, "vae", DEMO_SETTINGS, log=lambda m: None, keep_maps=True)
    return report, detector, result, test


def test_m_ranks_defects_above_normals_and_beats_l(demo_run):
    report = demo_run[0]
    auroc = report["image_auroc"]
    assert auroc["M"] >= 0.8
    assert auroc["M"] - auroc["L"] >= 0.2
    assert report["pixel_auroc"]["M"] > report["pixel_auroc"]["L"] + 0.2
    assert report["n_test"] == 50 and report["n_test_defect"] == 30


def test_a_tracks_complexity_and_dominates_l(demo_run):
    """On normal test images, between the most and the least complex quarter of patches (by pixel standard
    deviation: grooves and threads vs flat surface), A moves far more than M, and L follows A."""
    _, detector, result, test = demo_run
    stds, maps = [], {k: [] for k in "LDAM"}
    for i, item in enumerate(test.items):
        if item.label != "good":
            continue
        patches, _ = sliding_patches(to_tensor(test.images[i]), detector.params["patch_size"],
                                     detector.params["stride"])
        stds.append(patches.flatten(1).std(dim=1).numpy())
        for k in maps:
            maps[k].append(result.maps[k][i].ravel())
    std = np.concatenate(stds)
    v = {k: np.concatenate(maps[k]) for k in maps}
    busy, flat = std > np.quantile(std, 0.75), std < np.quantile(std, 0.25)
    gap = {k: v[k][busy].mean() - v[k][flat].mean() for k in "AM"}
    assert gap["A"] > 5 * abs(gap["M"])  # measured: 1580 vs 166
    assert np.std(v["A"]) > 4 * np.std(v["M"])  # measured: 710 vs 90
    assert np.corrcoef(v["L"], v["A"])[0, 1] > 0.95  # measured: 0.997
    assert np.std(v["D"]) < 0.1 * np.std(v["A"])  # the KL term is nearly negligible, as in the paper


def test_scores_are_deterministic_and_split_exactly(demo_run):
    _, detector, result, test = demo_run
    again = detector.score(test.images[:5])
    np.testing.assert_array_equal(again.components["M"], result.components["M"][:5])
    for i in range(5):
        np.testing.assert_allclose(result.maps["L"][i],
                                   result.maps["D"][i] + result.maps["A"][i] + result.maps["M"][i], rtol=1e-5)
    assert torch.get_num_threads() >= 1
