"""Paper 001's PCA-feature baselines: KDE, OC-SVM, GMM with BIC (core/detectors/kde.py, ocsvm.py, gmm_bic.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neighbors import KernelDensity
from sklearn.svm import OneClassSVM
from threadpoolctl import threadpool_limits

from core import metrics
from core.data.digits import one_class_task
from core.detectors.base import Cancelled, DetectorError
from core.detectors.pca.gmm_bic import PcaGmmBic, mixture_nll
from core.detectors.pca.kde import PcaKDE, bandwidth_grid, cv_bandwidth, kde_log_density
from core.detectors.pca.ocsvm import PcaOneClassSVM
from core.detectors.registry import create, parse_settings
from core.modelio import load_detector

NAMES = ("kde", "ocsvm", "gmm_bic")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One BLAS / OpenMP / torch thread: on a shared 2-core machine, two threads spin-wait against other
    processes (the GMM fits took 9x longer with two)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def task():
    return one_class_task(3, size=32)


@pytest.fixture(scope="module")
def fitted(task):
    out = {}
    for name in NAMES:
        # photometric none: these tests check each detector's math against scikit-learn, on digits whose amount of
        # ink (mean brightness) is part of the signal (see tests/test_oiad.py); lighting has its own tests.
        det = create(name, image_size=32, photometric="none")
        det.fit(task.train)
        out[name] = det
    return out


def training_features(det, images) -> np.ndarray:
    tensors, _ = det.prepare(det._normalised(images))  # the images as the detector sees them
    x = det.samples(tensors, torch.Generator())
    return det._project(torch.from_numpy(x)).double().numpy()


# -- KDE ------------------------------------------------------------------------------------------------
def test_kde_log_density_equals_sklearn():
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(80, 7)), rng.normal(size=(30, 7)) * 1.5
    for h in (0.3, 1.0, 2.5):
        h_t = torch.tensor([h], dtype=torch.float64)
        ours = kde_log_density(torch.from_numpy(test), torch.from_numpy(train), h_t)[0].numpy()
        ref = KernelDensity(kernel="gaussian", bandwidth=h).fit(train).score_samples(test)
        np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9)


def test_kde_cross_validated_bandwidth_matches_gridsearch_and_follows_the_data_scale():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(size=(60, 4)), rng.normal(loc=4.0, size=(60, 4))])
    grid = bandwidth_grid(x)
    h, _ = cv_bandwidth(x, grid, 5, seed=0, should_stop=lambda: False)
    search = GridSearchCV(KernelDensity(kernel="gaussian"), {"bandwidth": grid},
                          cv=KFold(5, shuffle=True, random_state=0)).fit(x)
    assert h == pytest.approx(search.best_params_["bandwidth"])
    assert grid[0] < h < grid[-1]  # an interior optimum, not the edge of the grid
    h10, _ = cv_bandwidth(10 * x, bandwidth_grid(10 * x), 5, seed=0, should_stop=lambda: False)
    assert h10 == pytest.approx(10 * h)
    # More samples of the same distribution: a narrower kernel is best (the estimate can be sharper).
    big = np.concatenate([rng.normal(size=(600, 4)), rng.normal(loc=4.0, size=(600, 4))])
    h_big, _ = cv_bandwidth(big, grid, 5, seed=0, should_stop=lambda: False)
    assert h_big < h


def test_kde_detector_scores_are_minus_sklearn_log_density(fitted, task):
    det = fitted["kde"]
    feats = training_features(det, task.train)
    h = det.metadata["model"]["bandwidth"]
    kde = KernelDensity(kernel="gaussian", bandwidth=h).fit(feats)
    test_feats = training_features(det, task.test[:40])
    # Scores pass through float32 in the shared sliding-window scorer (core/detectors/sliding_windows.py), and
    # the PCA projection's float32 sums depend on the BLAS thread count: 5e-5 relative was seen with one thread.
    np.testing.assert_allclose(det.score(task.test[:40]).scores, -kde.score_samples(test_feats), rtol=2e-4)


# -- OC-SVM -------------------------------------------------------------------------------------------
def test_ocsvm_scores_equal_minus_sklearn_decision_function(fitted, task):
    det = fitted["ocsvm"]
    feats = training_features(det, task.train)
    svm = OneClassSVM(kernel="rbf", nu=0.1, gamma="scale").fit(feats)
    test_feats = training_features(det, task.test)
    np.testing.assert_allclose(det.score(task.test).scores, -svm.decision_function(test_feats), rtol=1e-6,
                               atol=1e-7)
    assert len(det.support) == len(svm.support_vectors_)
    # nu = 0.1 bounds the training share outside the boundary; the detector's own threshold is 0.
    assert det.metadata["model"]["train_share_outside"] <= 0.1
    assert det.metadata["suggested_threshold"] == 0.0


def test_ocsvm_gamma_setting_is_checked():
    assert PcaOneClassSVM(gamma="0.5").params["gamma"] == "0.5"
    with pytest.raises(DetectorError):
        PcaOneClassSVM(gamma="wide")


# -- GMM with BIC -------------------------------------------------------------------------------------
def test_gmm_bic_finds_three_separated_blobs_and_scores_the_mixture_nll():
    rng = np.random.default_rng(2)
    centres = np.array([[0, 0, 0, 0], [10, 0, 0, 0], [0, 10, 5, 0]], dtype=float)
    x = np.concatenate([c + rng.normal(size=(100, 4)) for c in centres])
    det = PcaGmmBic()
    summary = det.fit_model(x, seed=0, should_stop=lambda: False)
    assert summary["n_components"] == 3
    assert summary["covariance"] == "full"
    assert min(summary["bic"], key=summary["bic"].get) == "3"
    ref = GaussianMixture(3, covariance_type="full", random_state=0).fit(x)
    probe = rng.normal(scale=6.0, size=(50, 4))
    ours = mixture_nll(torch.from_numpy(probe), *det._tensors()).numpy()
    np.testing.assert_allclose(ours, -ref.score_samples(probe), rtol=1e-6)


def test_gmm_bic_uses_diagonal_covariances_and_caps_components_when_samples_are_few():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 20))  # 60 < 4 * 21: too few for full 20 x 20 covariances
    summary = PcaGmmBic().fit_model(x, seed=0, should_stop=lambda: False)
    assert summary["covariance"] == "diag"
    full = PcaGmmBic(covariance="full").fit_model(x, seed=0, should_stop=lambda: False)
    assert list(full["bic"]) == ["1"]  # 2 (d + 1) = 42 samples per full component: room for one
    roomy = PcaGmmBic(covariance="full").fit_model(rng.normal(size=(200, 20)), seed=0, should_stop=lambda: False)
    assert list(roomy["bic"]) == ["2", "3", "4"]


# -- shared: PCA dimensions, quality, files, settings --------------------------------------------------
def test_pca_dims_are_chosen_on_the_holdout_within_the_papers_range(fitted, task):
    n = len(task.train)
    for det in fitted.values():
        sel = det.metadata["pca_selection"]
        assert sel["n_holdout_images"] == round(0.2 * n) and sel["n_fit_images"] == n - round(0.2 * n)
        assert all(20 <= d <= 100 for d in sel["grid"]) and len(sel["values"]) == len(sel["grid"])
        assert sel["chosen_dims"] == sel["grid"][int(np.argmax(sel["values"]))]
        assert det.pca_basis.shape[0] == sel["chosen_dims"]
        assert sel["criterion"]
    # A grid beyond the samples is capped: 12 images, 2 held out -> at most 9 dimensions.
    det = create("kde", image_size=32)
    det.fit(task.train[:12])
    assert det.metadata["pca_selection"]["grid"] == [9]


def test_each_baseline_ranks_other_digits_above_the_normal_digit(fitted, task):
    for name, det in fitted.items():
        auroc = metrics.auroc(task.test_labels, det.score(task.test).scores)
        assert auroc > 0.8, (name, auroc)


def test_save_load_round_trip_gives_identical_scores(fitted, task, tmp_path):
    for name, det in fitted.items():
        det.save(tmp_path / f"{name}.pt")
        back = load_detector(tmp_path / f"{name}.pt")
        a, b = det.score(task.test[:30]), back.score(task.test[:30])
        for comp in a.components:
            np.testing.assert_array_equal(a.components[comp], b.components[comp])
        assert back.metadata["pca_selection"] == det.metadata["pca_selection"]


def test_patch_mode_gives_a_patch_grid_and_whole_image_mode_one_cell(task):
    det = PcaKDE(image_size=32, patch_size=16, stride=8, patches_per_image=4, pca_dims="20")
    det.fit(task.train[:20])
    res = det.score(task.test[:3])
    assert res.maps["score"][0].shape == (3, 3)
    assert det.metadata["pca_selection"]["n_final_samples"] == 80
    whole = PcaKDE(image_size=32, pca_dims="20")
    assert whole.params["patch_size"] == 32
    whole.fit(task.train[:20])
    assert whole.score(task.test[:3]).maps["score"][0].shape == (1, 1)
    assert whole.metadata["pca_selection"]["n_final_samples"] == 20  # each image once, not 10 copies


def test_settings_parse_from_text_and_stop_request_is_honoured(task):
    assert parse_settings("gmm-bic", ["pca_dims=20,40", "max_components=5"]) == {
        "pca_dims": "20,40", "max_components": 5}
    with pytest.raises(DetectorError):
        create("kde", pca_dims="twenty")
    with pytest.raises(DetectorError):
        create("kde", image_size=None)
    with pytest.raises(DetectorError):
        create("kde", image_size=32).fit(task.train[:3])
    with pytest.raises(Cancelled):
        create("gmm_bic", image_size=32).fit(task.train, should_stop=lambda: True)
