import numpy as np
import pytest
from sklearn import metrics as skm

from core import metrics


@pytest.fixture(params=[0, 1, 2])
def data(request):
    rng = np.random.default_rng(request.param)
    labels = rng.random(300) < 0.3
    # Ties on purpose (rounded scores): the hard case for curve code.
    scores = np.round(rng.normal(size=300) + labels * 1.0, 1)
    return labels, scores


def test_roc_curve_and_auroc_equal_sklearn(data):
    labels, scores = data
    fpr, tpr, thr = skm.roc_curve(labels, scores, drop_intermediate=False)
    c = metrics.roc_curve(labels, scores)
    np.testing.assert_allclose(c.x, fpr)
    np.testing.assert_allclose(c.y, tpr)
    np.testing.assert_allclose(c.thresholds[1:], thr[1:])
    assert metrics.auroc(labels, scores) == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-12)


def test_aupr_equals_average_precision(data):
    labels, scores = data
    assert metrics.aupr(labels, scores) == pytest.approx(skm.average_precision_score(labels, scores), abs=1e-12)
    precision, recall, thr = skm.precision_recall_curve(labels, scores)
    c = metrics.pr_curve(labels, scores)
    # sklearn lists thresholds increasing and appends (P=1, R=0); ours go from the top down.
    np.testing.assert_allclose(c.y[::-1], precision[:-1])
    np.testing.assert_allclose(c.x[::-1], recall[:-1])


def test_f1_at_threshold_and_f1_max(data):
    labels, scores = data
    for t in np.quantile(scores, [0.1, 0.5, 0.9]):
        assert metrics.f1_at(labels, scores, t) == pytest.approx(skm.f1_score(labels, scores >= t))
    best, thr = metrics.f1_max(labels, scores)
    brute = max(skm.f1_score(labels, scores >= t) for t in np.unique(scores))
    assert best == pytest.approx(brute)
    assert metrics.f1_at(labels, scores, thr) == pytest.approx(best)


def test_threshold_presets_respect_their_limits(data):
    labels, scores = data
    for limit in (0.0, 0.05, 0.2):
        t = metrics.threshold_for_max_fpr(labels, scores, limit)
        assert metrics.confusion_at(labels, scores, t).fpr <= limit + 1e-12
        # one step lower would break the limit (it is the most sensitive allowed)
        lower = scores[scores < t]
        if lower.size:
            assert metrics.confusion_at(labels, scores, lower.max()).fpr > limit
        t2 = metrics.threshold_for_max_fnr(labels, scores, limit)
        assert 1 - metrics.confusion_at(labels, scores, t2).tpr <= limit + 1e-12
    normals = scores[~labels]
    t = metrics.threshold_for_normal_quantile(normals, 0.1)
    assert np.mean(normals > t) <= 0.1 + 1e-9


def test_confusion_counts_add_up(data):
    labels, scores = data
    c = metrics.confusion_at(labels, scores, 0.3)
    assert c.tp + c.fn == labels.sum() and c.fp + c.tn == (~labels).sum()


def test_pixel_auroc_pools_pixels():
    rng = np.random.default_rng(5)
    masks = [rng.random((16, 16)) < 0.1 for _ in range(3)]
    maps = [rng.random((16, 16)) + m * 0.5 for m in masks]
    expected = skm.roc_auc_score(np.concatenate([m.ravel() for m in masks]),
                                 np.concatenate([a.ravel() for a in maps]))
    assert metrics.pixel_auroc(masks, maps) == pytest.approx(expected)


def test_pro_perfect_and_partial():
    mask = np.zeros((32, 32), bool)
    mask[4:8, 4:8] = True
    mask[20:30, 20:30] = True
    perfect = mask.astype(float)
    assert metrics.pro_score([mask], [perfect]) == pytest.approx(1.0, abs=1e-6)
    # Only the small region detected: per-region overlap starts at 1/2 whatever the region sizes;
    # the big region is then hit at the noise rate, i.e. at the FPR.
    half = np.zeros((32, 32))
    half[4:8, 4:8] = 1.0
    # Expected about 1/2 + (mean FPR over [0, 0.3]) / 2 = 0.575, less the sampling noise of 100 pixels.
    assert 0.5 < metrics.pro_score([mask], [half + 1e-3 * np.random.default_rng(0).random((32, 32))]) < 0.6
    # Random maps: far below a detector that works.
    rnd = np.random.default_rng(1).random((32, 32))
    assert metrics.pro_score([mask], [rnd]) < 0.3


def test_need_both_classes():
    with pytest.raises(ValueError):
        metrics.auroc(np.zeros(5, bool), np.arange(5.0))


def test_binned_pixel_metrics_agree_with_the_exact_ones():
    import cv2

    from core.metrics import PixelMetrics, pixel_auroc, pro_score

    rng = np.random.default_rng(4)
    masks, maps = [], []
    for k in range(12):
        mask = np.zeros((40, 50), bool)
        if k % 3:
            cv2.circle(mask.view(np.uint8), (int(rng.integers(10, 40)), int(rng.integers(10, 30))), 5, 1, -1)
        amap = rng.gamma(2.0, 1.0, mask.shape) + 3.0 * mask * rng.random(mask.shape)  # heavy tail, overlap
        masks.append(mask)
        maps.append(amap)
    acc = PixelMetrics(np.concatenate([m.ravel() for m in maps]))
    for mask, amap in zip(masks, maps, strict=True):
        acc.add(mask, amap)
    assert acc.auroc() == pytest.approx(pixel_auroc(masks, maps), abs=2e-3)
    assert acc.pro() == pytest.approx(pro_score(masks, maps), abs=5e-3)
    with pytest.raises(ValueError):
        PixelMetrics(np.array([np.nan]))
