"""Baselines behind the same contract: GMM split, Isolation Forest equal to scikit-learn, cancellation,
time budget, save -> load gives identical scores."""

import numpy as np
import pytest
import torch
from sklearn.ensemble import IsolationForest
from sklearn.mixture import GaussianMixture

from core.detectors.base import Cancelled, DetectorError
from core.detectors.mixtures import gaussian_split
from core.detectors.registry import available, create, parse_settings
from core.modelio import load_detector
from tests.conftest import TINY_VAE, random_images

PCA_SMALL = {"patch_size": 16, "stride": 8, "pca_components": 6, "patches_per_image": 20}


def test_registry_names_and_settings():
    assert {"vae", "ae", "gmm", "iforest"} <= set(available())
    assert parse_settings("vae", ["epochs=3", "latent=4", "aggregate=mean"]) == {
        "epochs": 3, "latent": 4, "aggregate": "mean"}
    with pytest.raises(DetectorError, match="unknown setting"):
        parse_settings("vae", ["nope=1"])
    with pytest.raises(DetectorError, match="not a valid int"):
        parse_settings("vae", ["epochs=many"])
    with pytest.raises(DetectorError, match="not one of"):
        parse_settings("vae", ["aggregate=median"])
    with pytest.raises(DetectorError, match="unknown detector"):
        create("nosuch")


def test_gmm_split_equals_sklearn_log_likelihood_for_one_component():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 4)) @ rng.normal(size=(4, 4))
    gmm = GaussianMixture(1, covariance_type="full", random_state=0).fit(x)
    parts = gaussian_split(torch.from_numpy(x), torch.from_numpy(gmm.weights_), torch.from_numpy(gmm.means_),
                           torch.from_numpy(gmm.precisions_cholesky_))
    # One component: D = 0 and L = -log p(x) exactly; M is half the squared Mahalanobis distance.
    np.testing.assert_allclose(parts["L"].numpy(), -gmm.score_samples(x), rtol=1e-9)
    assert torch.all(parts["D"] == 0)
    diff = x - gmm.means_[0]
    maha = np.einsum("nd,de,ne->n", diff, np.linalg.inv(gmm.covariances_[0]), diff)
    np.testing.assert_allclose(parts["M"].numpy(), 0.5 * maha, rtol=1e-6)


def test_gmm_split_picks_the_most_probable_component():
    rng = np.random.default_rng(1)
    x = np.r_[rng.normal(-5, 1, size=(300, 2)), rng.normal(5, 0.3, size=(100, 2))]
    gmm = GaussianMixture(2, covariance_type="full", random_state=0).fit(x)
    parts = gaussian_split(torch.from_numpy(x), torch.from_numpy(gmm.weights_), torch.from_numpy(gmm.means_),
                           torch.from_numpy(gmm.precisions_cholesky_))
    k = gmm.predict(x)
    np.testing.assert_allclose(parts["D"].numpy(), -np.log(gmm.weights_[k]))
    np.testing.assert_allclose(parts["L"].numpy(), (parts["D"] + parts["A"] + parts["M"]).numpy())


def test_isolation_forest_scoring_equals_sklearn():
    images = random_images(6, size=32, seed=2)
    det = create("iforest", **PCA_SMALL, n_estimators=25)
    det.fit(images)
    feats = torch.randn(200, 6, dtype=torch.float64)
    # Rebuild scikit-learn's forest with the same seed on the same features to compare scores.
    from core.data.patches import random_crops
    from core.detectors.torch_runtime import seed_everything

    gen = seed_everything(0)
    tensors, _ = det.prepare(det._normalised(images))  # the images as fit saw them (lighting-normalised)
    x = random_crops(tensors, 6 * 20, 16, gen).flatten(1)
    train_feats = det._project(x).double().numpy()
    forest = IsolationForest(n_estimators=25, max_samples=min(256, len(train_feats)), contamination=0.05,
                             random_state=0).fit(train_feats)
    np.testing.assert_allclose(det.feature_scores(feats)["score"].numpy(), -forest.score_samples(feats.numpy()),
                               rtol=1e-10)


@pytest.mark.parametrize("name,params", [
    ("vae", TINY_VAE), ("ae", TINY_VAE), ("gmm", {**PCA_SMALL, "n_components": 2}),
    ("iforest", {**PCA_SMALL, "n_estimators": 10}),
])
def test_save_load_gives_identical_scores(tmp_path, name, params):
    det = create(name, **params)
    det.fit(random_images(4, size=64, seed=3))
    test = random_images(3, size=64, seed=4)
    before = det.score(test)
    det.save(tmp_path / "model.ai")
    again = load_detector(tmp_path / "model.ai")
    after = again.score(test)
    assert again.params == det.params
    for k in before.components:
        np.testing.assert_array_equal(before.components[k], after.components[k])
        for a, b in zip(before.maps[k], after.maps[k], strict=True):
            np.testing.assert_array_equal(a, b)


def test_model_files_hold_no_pickled_objects_and_foreign_files_are_refused(tmp_path):
    det = create("gmm", **PCA_SMALL, n_components=2)
    det.fit(random_images(3, size=32))
    det.save(tmp_path / "m.ai")
    state = torch.load(tmp_path / "m.ai", weights_only=True)  # would raise on any pickled object
    assert all(isinstance(v, torch.Tensor) for v in state.values())

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.ai")
    with pytest.raises(DetectorError, match="evil.ai"):
        load_detector(tmp_path / "evil.ai")
    (tmp_path / "junk.ai").write_bytes(b"not a model")
    with pytest.raises(DetectorError, match="junk.ai"):
        load_detector(tmp_path / "junk.ai")
    torch.save({"w": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(DetectorError, match="not an Anomaly Inspector model"):
        load_detector(tmp_path / "other.pt")


def test_cancel_stops_training_and_scoring():
    det = create("vae", **{**TINY_VAE, "epochs": 1000})
    calls = []

    def stop_after_3():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        det.fit(random_images(4, size=64), should_stop=stop_after_3)
    assert len(calls) == 4  # checked every step, stopped at once
    det = create("vae", **TINY_VAE)
    det.fit(random_images(2, size=64))
    with pytest.raises(Cancelled):
        det.score(random_images(3, size=64), should_stop=lambda: True)


def test_time_budget_says_what_stopped_training():
    det = create("vae", **{**TINY_VAE, "epochs": 100000, "time_budget": 0.5})
    report = det.fit(random_images(4, size=64))
    assert report.stopped_by == "time_budget"
    assert 0.5 <= report.seconds < 5
    det = create("vae", **TINY_VAE)
    assert det.fit(random_images(4, size=64)).stopped_by == "done"


def test_images_smaller_than_a_patch_are_scaled_up_and_colour_is_handled():
    det = create("ae", **TINY_VAE)
    det.fit(random_images(3, size=64, channels=3))
    assert det.metadata["channels_used"] == "rgb"
    res = det.score([np.random.default_rng(0).random((20, 40, 1), dtype=np.float32)])
    g = res.geometry[0]
    assert g.original_shape == (20, 40) and min(g.input_shape) == 32
    assert np.isfinite(res.scores).all()


def test_scoring_halves_the_batch_when_the_device_runs_out_of_memory():
    from core.detectors.base import never_stop, no_progress
    from core.detectors.sliding_windows import score_sliding_windows

    seen = []

    def fn(batch):
        seen.append(len(batch))
        if len(batch) > 8:
            raise torch.cuda.OutOfMemoryError("simulated")
        return {"s": batch.flatten(1).mean(1)}

    imgs = [torch.rand(1, 32, 32) for _ in range(3)]
    grids = score_sliding_windows(imgs, 8, 8, 64, fn, progress=no_progress, should_stop=never_stop)
    assert seen[:4] == [48, 32, 16, 8] and max(seen[4:]) <= 8  # 64 -> 32 -> 16 -> 8 patches per call
    assert grids[2]["s"].shape == (4, 4)
    np.testing.assert_allclose(grids[1]["s"][0, 0], imgs[1][:, :8, :8].mean().item(), rtol=1e-6)
