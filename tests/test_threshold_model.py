"""ThresholdModel against brute-force numpy and core.metrics: counts, metrics, histograms, presets, events, ROC."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core import metrics
from core.threshold import COLUMNS, LABELS, PRESETS, ModelEvent, ThresholdModel, label_codes, method_name


def random_data(n: int = 3000, seed: int = 0, nan_share: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Scores rounded to one decimal so many images tie with each other and with the thresholds we pick."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(np.array(["good", "defect", "suspicious", "unlabeled"], dtype=object), n,
                        p=[0.5, 0.2, 0.1, 0.2])
    scores = np.round(rng.normal(size=n) + 1.5 * (labels == "defect"), 1)
    if nan_share:
        scores[rng.random(n) < nan_share] = np.nan
    return scores, labels


def brute_counts(scores: np.ndarray, labels: np.ndarray, t1: float, t2: float) -> dict[str, dict[str, int]]:
    column = np.where(scores < t1, "pass", np.where(scores >= t2, "fail", "review"))
    ok = np.isfinite(scores)
    return {lab: {col: int(np.sum(ok & (labels == lab) & (column == col))) for col in COLUMNS} for lab in LABELS}


class Recorder:
    def __init__(self) -> None:
        self.events: list[ModelEvent] = []

    def __call__(self, event: ModelEvent) -> None:
        self.events.append(event)

    def types(self) -> list[str]:
        return [e.type for e in self.events]


@pytest.mark.parametrize("band", [False, True])
def test_counts_match_brute_force_with_ties_and_unscored(band: bool):
    scores, labels = random_data(nan_share=0.05)
    model = ThresholdModel(scores, labels)
    # Thresholds exactly on tied score values, between values, and outside the range.
    candidates = [-9.0, -1.0, 0.0, 0.3, 0.35, 1.2, 2.0, 9.0]
    for t1 in candidates:
        t2 = t1 + 0.7 if band else t1
        model.set_thresholds(t1, t2)
        st = model.stats()
        assert st.counts == brute_counts(scores, labels, t1, t2), (t1, t2)
        assert st.n_unscored == int(np.isnan(scores).sum()) > 0
        lab = np.isfinite(scores) & np.isin(labels, ["good", "defect"])
        # Review counts as flagged: identical to core.metrics at T1 on the labeled images.
        assert st.flagged == metrics.confusion_at(labels[lab] == "defect", scores[lab], t1)
        assert st.auto_fail == metrics.confusion_at(labels[lab] == "defect", scores[lab], t2)
        assert (st.tpr, st.fpr, st.precision, st.f1) == (st.flagged.tpr, st.flagged.fpr, st.flagged.precision,
                                                          st.flagged.f1)
        if band and st.counts["good"]["review"]:
            assert st.auto_fail.fp < st.flagged.fp


def test_review_band_counts_are_by_rule():
    scores = np.array([0.0, 1.0, 1.5, 2.0, 2.0, 3.0])
    labels = ["good", "good", "defect", "defect", "suspicious", "unlabeled"]
    model = ThresholdModel(scores, labels, t1=1.0, t2=2.0)
    st = model.stats()
    # 1.0 == T1 -> review; 2.0 == T2 -> fail.
    assert st.counts["good"] == {"pass": 1, "review": 1, "fail": 0}
    assert st.counts["defect"] == {"pass": 0, "review": 1, "fail": 1}
    assert st.counts["suspicious"] == {"pass": 0, "review": 0, "fail": 1}
    assert st.counts["unlabeled"] == {"pass": 0, "review": 0, "fail": 1}
    assert st.column_total("fail") == 3
    assert (st.tpr, st.fpr, st.precision) == (1.0, 0.5, 2 / 3)
    assert (st.auto_fail.tpr, st.auto_fail.fpr) == (0.5, 0.0)
    assert model.review_band


def test_histogram_matches_numpy_and_survives_relabels():
    scores, labels = random_data(n=2000, seed=1, nan_share=0.02)
    model = ThresholdModel(scores, labels, n_bins=25)
    edges, hist = model.histogram()
    ok = np.isfinite(scores)
    assert len(edges) == 26 and edges[0] == np.nanmin(scores) and edges[-1] == np.nanmax(scores)
    for lab in LABELS:
        np.testing.assert_array_equal(hist[lab], np.histogram(scores[ok & (labels == lab)], bins=edges)[0])
    assert sum(h.sum() for h in hist.values()) == ok.sum()

    rng = np.random.default_rng(5)
    labels = labels.copy()
    # Include the extreme scores: the right edge belongs to the last bin, as in np.histogram.
    picks = list(rng.integers(0, len(scores), 200)) + [int(np.nanargmax(scores)), int(np.nanargmin(scores))]
    for i in picks:
        new = rng.choice(LABELS)
        labels[i] = new
        model.set_label(i, new)
    fresh = ThresholdModel(scores, labels, n_bins=25, t1=0.4)
    model.set_thresholds(0.4)
    _, hist2 = model.histogram()
    _, hist_fresh = fresh.histogram()
    for lab in LABELS:
        np.testing.assert_array_equal(hist2[lab], hist_fresh[lab])
        np.testing.assert_array_equal(model.group_scores(lab), fresh.group_scores(lab))
    assert model.stats().counts == brute_counts(scores, labels, 0.4, 0.4)
    np.testing.assert_array_equal(model.roc().x, fresh.roc().x)
    np.testing.assert_array_equal(model.roc().y, fresh.roc().y)
    assert list(model.labels) == list(labels)


def test_presets_equal_core_metrics():
    scores, labels = random_data(seed=2, nan_share=0.03)
    model = ThresholdModel(scores, labels)
    lab = np.isfinite(scores) & np.isin(labels, ["good", "defect"])
    y, s = labels[lab] == "defect", scores[lab]
    assert model.apply_preset("f1_max") == metrics.f1_max(y, s)[1]
    assert model.method == "f1_max"
    assert model.apply_preset("max_fpr", 0.02) == metrics.threshold_for_max_fpr(y, s, 0.02)
    assert model.method == "max_fpr(0.02)"
    assert model.t1 == model.t2 == metrics.threshold_for_max_fpr(y, s, 0.02)
    assert model.stats().fpr <= 0.02
    assert model.apply_preset("max_fnr") == metrics.threshold_for_max_fnr(y, s, PRESETS["max_fnr"][0])
    assert model.stats().tpr >= 0.95
    good = scores[np.isfinite(scores) & (labels == "good")]
    assert model.apply_preset("alpha_fractile") == metrics.threshold_for_normal_quantile(good, 0.05)
    assert model.method == "alpha_fractile(0.05)"
    normals = np.random.default_rng(9).normal(size=400)
    model.set_validation_normals(normals)
    assert model.apply_preset("alpha_fractile", 0.1) == metrics.threshold_for_normal_quantile(normals, 0.1)
    assert method_name("max_fnr", 0.1) == "max_fnr(0.1)"


def test_preset_keeps_band_width_and_reports_missing_labels():
    scores = np.array([0.1, 0.2, 0.3, 0.9])
    model = ThresholdModel(scores, ["good", "good", "suspicious", "unlabeled"], t1=0.5, t2=0.7)
    with pytest.raises(ValueError, match="labeled good and images labeled defect"):
        model.apply_preset("f1_max")
    assert (model.t1, model.t2, model.method) == (0.5, 0.7, "manual")
    t = model.apply_preset("alpha_fractile", 0.5)
    assert t == 0.2 and model.t2 == pytest.approx(0.4) and model.review_band
    with pytest.raises(ValueError, match="unknown preset"):
        model.preset_threshold("best")


def test_events_fire_once_per_change():
    scores, labels = random_data(n=500, seed=3)
    model = ThresholdModel(scores, labels, t1=0.5)
    rec = Recorder()
    model.events.connect(rec)
    model.set_t1(0.7)
    model.set_t1(0.7)
    model.set_thresholds(0.7, None)
    assert rec.types() == ["thresholds"]
    model.set_review_band(True, width=0.5)
    model.set_review_band(True)
    assert rec.types() == ["thresholds"] * 2 and model.t2 == pytest.approx(1.2)
    model.set_t2(1.2)
    model.apply_preset("f1_max")
    model.apply_preset("f1_max")
    assert rec.types() == ["thresholds"] * 3 and model.method == "f1_max"
    i = int(np.flatnonzero(labels == "good")[0])
    model.set_label(i, "good")
    model.set_label(i, "defect")
    model.set_label(i, "defect")
    assert rec.types()[3:] == ["labels"] and rec.events[-1].index == i and rec.events[-1].source is model
    model.set_data(scores, labels)
    assert rec.types()[4:] == ["data"]  # thresholds are kept: no threshold event
    model.events.disconnect(rec)
    model.set_t1(0.1)
    assert len(rec.events) == 5


def test_band_edges_cannot_cross():
    model = ThresholdModel([0.0, 1.0, 2.0], ["good", "defect", "unlabeled"], t1=0.5, t2=1.5)
    model.set_t1(1.8)
    assert (model.t1, model.t2) == (1.5, 1.5) and model.review_band
    model.set_t2(0.2)
    assert (model.t1, model.t2) == (1.5, 1.5)
    model.set_t2(1.9)
    model.set_review_band(False)
    assert (model.t1, model.t2, model.review_band) == (1.5, 1.5, False)
    model.set_t1(0.1)
    assert model.t2 == 0.1
    with pytest.raises(ValueError, match="T1 <= T2"):
        model.set_thresholds(2.0, 1.0)


def test_roc_from_core_metrics_and_point_threshold_round_trip():
    scores, labels = random_data(seed=4, nan_share=0.02)
    model = ThresholdModel(scores, labels)
    lab = np.isfinite(scores) & np.isin(labels, ["good", "defect"])
    ref = metrics.roc_curve(labels[lab] == "defect", scores[lab])
    curve = model.roc()
    np.testing.assert_array_equal(curve.x, ref.x)
    np.testing.assert_array_equal(curve.y, ref.y)
    assert model.auroc() == pytest.approx(metrics.auroc(labels[lab] == "defect", scores[lab]))
    # Every ROC point maps to a threshold whose operating point is that point.
    for k in range(len(curve.x)):
        t = model.threshold_at_roc_point(curve.x[k], curve.y[k])
        assert math.isfinite(t)
        assert model.operating_point(t) == (curve.x[k], curve.y[k]), k
    # Any threshold's operating point lies on the curve and maps back to the same counts.
    for t in np.linspace(-3, 4, 57):
        fpr, tpr = model.operating_point(t)
        assert np.any((curve.x == fpr) & (curve.y == tpr))
        assert model.operating_point(model.threshold_at_roc_point(fpr, tpr)) == (fpr, tpr)
    # Off-curve points snap to the nearest one.
    t = model.threshold_at_roc_point(0.0, 1.0)
    k = int(np.argmin(curve.x ** 2 + (curve.y - 1) ** 2))
    assert model.operating_point(t) == (curve.x[k], curve.y[k])


def test_no_roc_without_both_classes():
    model = ThresholdModel([0.1, 0.2, 0.4], ["good", "suspicious", "unlabeled"])
    assert model.roc() is None and model.auroc() is None and not model.has_roc()
    assert model.operating_point(0.15) == (0.0, 0.0)
    with pytest.raises(ValueError, match="labeled good and defect"):
        model.threshold_at_roc_point(0.5, 0.5)
    # Fallback suggestion without defects: alpha-fractile of the good images.
    assert model.method == "alpha_fractile(0.05)" and model.t1 == 0.1
    model.set_label(2, "defect")
    assert model.has_roc() and model.roc() is not None


def test_labels_vocabulary_codes_and_errors():
    # The codes are in every store file (core/store/format.py builds its enum from core.vocabulary.LABELS,
    # which the threshold model uses too): they must never be renumbered.
    assert LABELS == ("unlabeled", "good", "defect", "suspicious")
    np.testing.assert_array_equal(label_codes(["normal", "anomalous", "suspicious", None]), [1, 2, 3, 0])
    np.testing.assert_array_equal(label_codes(np.array([0, 2, 1], np.int8)), [0, 2, 1])
    with pytest.raises(ValueError, match="'defekt'"):
        label_codes(["good", "defekt"])
    with pytest.raises(ValueError, match="label codes"):
        label_codes([0, 7])
    with pytest.raises(ValueError, match="3 scores but 2 labels"):
        ThresholdModel([1.0, 2.0, 3.0], ["good", "good"])
    model = ThresholdModel([1.0, 2.0], [1, 2])
    assert list(model.labels) == ["good", "defect"] and model.label_of(1) == "defect"
    with pytest.raises(ValueError):
        model.scores[0] = 5.0  # read-only: the sorted groups would go stale


def test_empty_model_keeps_thresholds_until_data_arrives():
    model = ThresholdModel(np.zeros(0), np.zeros(0, dtype=object))
    assert math.isnan(model.t1) and model.stats().counts["good"] == {"pass": 0, "review": 0, "fail": 0}
    model.set_thresholds(0.3, 0.6, "max_fpr(0.01)")  # loaded from the store before the scores
    model.set_data([0.1, 0.5, 0.9, np.nan], ["good", "defect", "unlabeled", "good"])
    assert (model.t1, model.t2, model.method) == (0.3, 0.6, "max_fpr(0.01)")
    assert model.stats().counts["good"] == {"pass": 1, "review": 0, "fail": 0}
    assert model.stats().n_unscored == 1
    fresh = ThresholdModel(np.zeros(0), np.zeros(0, dtype=object))
    fresh.set_data([0.1, 0.2, 0.8, 0.9], ["good", "good", "defect", "defect"])
    assert fresh.method == "f1_max" and fresh.stats().f1 == 1.0
