"""The threshold model behind the threshold panel: scores, review labels, the two thresholds and everything a
quality engineer reads off them (confusion matrix, TPR / FPR / precision / F1, histograms by label, the ROC
curve and the operating point on it).

Why a model of its own, with no Qt: the same object is driven by the histogram line, the ROC target, a
slider, a spin box, presets and the main window (labels arriving from the store). Each view listens to the
model and writes to it (napari's evented-model pattern), so they cannot drift apart, and the numbers are
tested here without a display.

Rules (the same as `core.store.ThresholdRecord.verdict`):

* score <  T1         -> pass (good, no one looks at it)
* T1 <= score < T2    -> review (a person decides)
* score >= T2         -> fail (rejected automatically)

With no review band T2 == T1 and the review column is empty.

How review counts in the metrics: an image in the review band is *flagged* — it does not pass unseen. TPR,
FPR, precision and F1 (`ThresholdStats.flagged`) therefore use "score >= T1" as the positive prediction,
which is exactly `core.metrics.confusion_at(labels, scores, T1)`. What the machine rejects on its own
(score >= T2) is reported separately (`ThresholdStats.auto_fail`). Only images labeled good or defect enter
these metrics; suspicious and unlabeled images are counted per column but never treated as truth. Images
without a score (NaN, e.g. not scored by the current run) are left out of everything and counted in
`n_unscored`.

Speed: scores are sorted once per label group (at `set_data`); a threshold change is then two
`searchsorted` calls per group, O(log N), so dragging stays live at 100k images. A single relabel moves one
score between two sorted arrays and one histogram bin, without re-sorting.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from core.metrics import (
    Confusion,
    Curve,
    auroc,
    f1_max,
    roc_curve,
    threshold_for_max_fnr,
    threshold_for_max_fpr,
    threshold_for_normal_quantile,
)
from core.vocabulary import LABELS, canonical_label

COLUMNS: tuple[str, ...] = ("pass", "review", "fail")
# LABELS is the store's enum order, so the store's integer codes can be passed as they are.
_CODE = {name: i for i, name in enumerate(LABELS)}
GOOD, DEFECT = _CODE["good"], _CODE["defect"]

# Presets: name -> (default parameter or None, help text). The parameter is part of the recorded method
# ("max_fpr(0.01)") because a threshold chosen for "at most 1 % false alarms" is not the same decision as
# one for 5 %, and the audit trail should say which.
PRESETS: dict[str, tuple[float | None, str]] = {
    "f1_max": (None, "threshold with the best F1 on the labeled images"),
    "max_fpr": (0.01, "most sensitive threshold whose false-alarm rate on good images stays <= the limit"),
    "max_fnr": (0.05, "fewest false alarms while missing at most this share of defects"),
    "alpha_fractile": (0.05, "passes (1 - alpha) of validation normals; needs no defect labels"),
}
MANUAL = "manual"


def method_name(preset: str, param: float | None = None) -> str:
    """The method string recorded with a threshold: the preset name, with its parameter when it has one."""
    default, _ = PRESETS[preset]
    if default is None:
        return preset
    return f"{preset}({param if param is not None else default:g})"


def label_codes(labels: Sequence | np.ndarray) -> np.ndarray:
    """Label strings (or the store's integer codes) as int8 codes in `LABELS` order.

    Unknown names raise instead of being mapped to "unlabeled": a typo must not silently drop images from
    the confusion matrix.
    """
    arr = np.asarray(labels)
    if arr.size == 0:
        return np.zeros(arr.shape, np.int8)
    if arr.dtype.kind in "iu":
        if arr.min() < 0 or arr.max() >= len(LABELS):
            raise ValueError(f"label codes must be in 0..{len(LABELS) - 1}, got {arr.min()}..{arr.max()}")
        return arr.astype(np.int8)
    names, inverse = np.unique(arr.astype(str), return_inverse=True)
    table = np.empty(len(names), np.int8)
    for k, name in enumerate(names):
        table[k] = _CODE[canonical_label(name)]
    return table[inverse.reshape(arr.shape)]


@dataclass(frozen=True)
class ModelEvent:
    """What changed: "thresholds" (T1, T2, method or review band), "data" (new scores), "labels"
    (`index` is the image for a single relabel, None for a bulk change)."""

    type: str
    source: ThresholdModel
    index: int | None = None


class EventEmitter:
    """A plain observer list. Callbacks run synchronously in the caller's thread (the GUI calls the model from
    the main thread only); an exception in a callback propagates rather than being swallowed."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[ModelEvent], None]] = []

    def connect(self, callback: Callable[[ModelEvent], None]) -> None:
        if callback not in self._callbacks:
            self._callbacks.append(callback)

    def disconnect(self, callback: Callable[[ModelEvent], None]) -> None:
        self._callbacks.remove(callback)

    def emit(self, event: ModelEvent) -> None:
        for callback in list(self._callbacks):
            callback(event)


@dataclass(frozen=True)
class ThresholdStats:
    """Everything the panel shows for one pair of thresholds.

    counts[label][column] is the number of scored images with that label in pass / review / fail.
    `flagged` is the confusion of good-vs-defect with review counted as flagged (score >= T1); `auto_fail`
    counts only what is rejected without review (score >= T2).
    """

    t1: float
    t2: float
    counts: dict[str, dict[str, int]]
    flagged: Confusion
    auto_fail: Confusion
    n_unscored: int
    n_left_out: int = 0  # unscored on purpose: images the model was trained on (see set_data)

    @property
    def tpr(self) -> float:
        return self.flagged.tpr

    @property
    def fpr(self) -> float:
        return self.flagged.fpr

    @property
    def precision(self) -> float:
        return self.flagged.precision

    @property
    def f1(self) -> float:
        return self.flagged.f1

    def column_total(self, column: str) -> int:
        return sum(row[column] for row in self.counts.values())


class ThresholdModel:
    """Scores, labels and the pass / review / fail thresholds of one scoring run.

    Callers change it only through the setters, which fire `events` once per real change (setting the same
    value again fires nothing, so views that echo a value back into the model do not loop).
    """

    def __init__(self, scores: Sequence[float] | np.ndarray = (), labels: Sequence | np.ndarray = (), *,
                 t1: float = math.nan, t2: float | None = None, method: str = MANUAL,
                 n_bins: int | None = None) -> None:
        self.events = EventEmitter()
        self._fixed_bins = n_bins
        self._left_out = 0
        self._t1 = float(t1)
        self._t2 = float(t1 if t2 is None else t2)
        self._method = method
        self._review_band = self._t2 > self._t1
        self._validation_normals: np.ndarray | None = None
        self._load(scores, labels)
        self._ensure_thresholds()

    # ------------------------------------------------------------------ data
    def _load(self, scores: Sequence[float] | np.ndarray, labels: Sequence | np.ndarray) -> None:
        scores = np.asarray(scores, dtype=np.float64).ravel()
        codes = label_codes(labels).ravel()
        if scores.shape != codes.shape:
            raise ValueError(f"{scores.size} scores but {codes.size} labels")
        if np.isinf(scores).any():
            raise ValueError("scores contain infinity")
        self._scores = scores
        self._codes = codes
        self._scored = np.isfinite(scores)
        finite = scores[self._scored]
        # Default bin count: about sqrt(n), kept between 20 (shape still visible) and 100 (bars still wider
        # than a few pixels in a panel).
        self.n_bins = int(self._fixed_bins or min(max(round(math.sqrt(finite.size)), 20), 100))
        # Fixed bins over the scored range: a relabel then moves one count between two histograms.
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        self._edges = np.linspace(lo, hi, self.n_bins + 1)
        self._sorted: list[np.ndarray] = []
        self._hist: list[np.ndarray] = []
        for code in range(len(LABELS)):
            group = np.sort(scores[self._scored & (codes == code)])
            self._sorted.append(group)
            self._hist.append(np.histogram(group, bins=self._edges)[0].astype(np.int64))
        self._roc_cache: Curve | None = None
        self._roc_valid = False
        self._stats_cache: ThresholdStats | None = None

    def set_data(self, scores: Sequence[float] | np.ndarray, labels: Sequence | np.ndarray,
                 left_out: int = 0) -> None:
        """Replace scores and labels (a new run, a new project). Thresholds stay if they are set, so a
        threshold loaded from the store before the scores arrive survives. `left_out`: how many of the NaN
        scores are left out on purpose (training images), so they are not reported as waiting to be scored."""
        self._left_out = int(left_out)
        self._load(scores, labels)
        self.events.emit(ModelEvent("data", self))
        self._ensure_thresholds()

    def set_labels(self, labels: Sequence | np.ndarray) -> None:
        """Replace every label (scores unchanged)."""
        codes = label_codes(labels).ravel()
        if codes.shape != self._codes.shape:
            raise ValueError(f"{codes.size} labels for {self._codes.size} scores")
        if np.array_equal(codes, self._codes):
            return
        self._load(self._scores, codes)
        self.events.emit(ModelEvent("labels", self))

    def set_label(self, index: int, label: str | int) -> None:
        """Relabel one image: moves its score between two sorted groups and one histogram bin (no re-sort)."""
        index = int(index)
        if not 0 <= index < self._codes.size:
            raise IndexError(f"image {index} is not in the model ({self._codes.size} images)")
        new = int(label_codes(np.asarray([label]))[0])
        old = int(self._codes[index])
        if new == old:
            return
        self._codes[index] = new
        if self._scored[index]:
            s = self._scores[index]
            group = self._sorted[old]
            self._sorted[old] = np.delete(group, np.searchsorted(group, s))
            group = self._sorted[new]
            self._sorted[new] = np.insert(group, np.searchsorted(group, s), s)
            b = self._bin_of(s)
            self._hist[old][b] -= 1
            self._hist[new][b] += 1
            if {old, new} & {GOOD, DEFECT}:
                self._roc_valid = False
            self._stats_cache = None
        self.events.emit(ModelEvent("labels", self, index))

    def set_validation_normals(self, scores: Sequence[float] | np.ndarray | None) -> None:
        """Scores of held-out normal images for the alpha-fractile preset; None falls back to the images
        labeled good in the model."""
        self._validation_normals = None if scores is None else np.asarray(scores, dtype=np.float64).ravel()

    def _bin_of(self, score: float) -> int:
        # np.histogram puts the right edge into the last bin; match that.
        return int(min(max(np.searchsorted(self._edges, score, side="right") - 1, 0), self.n_bins - 1))

    @property
    def n_images(self) -> int:
        return int(self._codes.size)

    @property
    def scores(self) -> np.ndarray:
        """A read-only view: writing into it would bypass the sorted groups."""
        view = self._scores.view()
        view.flags.writeable = False
        return view

    @property
    def labels(self) -> np.ndarray:
        return np.asarray(LABELS, dtype=object)[self._codes]

    def label_of(self, index: int) -> str:
        return LABELS[int(self._codes[index])]

    def score_range(self) -> tuple[float, float]:
        """The range the histogram bins cover (all scored images); widgets map sliders onto it."""
        return float(self._edges[0]), float(self._edges[-1])

    def group_scores(self, label: str) -> np.ndarray:
        """Sorted scores of one label group (read-only)."""
        view = self._sorted[_CODE[label]].view()
        view.flags.writeable = False
        return view

    # ------------------------------------------------------------------ thresholds
    @property
    def t1(self) -> float:
        return self._t1

    @property
    def t2(self) -> float:
        return self._t2

    @property
    def method(self) -> str:
        return self._method

    @property
    def review_band(self) -> bool:
        return self._review_band

    def set_thresholds(self, t1: float, t2: float | None = None, method: str = MANUAL) -> None:
        """Set both thresholds (t2 None means no review band). Raises on t1 > t2: loading a broken record
        must be visible, not silently reordered."""
        t1 = float(t1)
        t2 = t1 if t2 is None else float(t2)
        if t1 > t2:
            raise ValueError(f"thresholds need T1 <= T2, got T1={t1:g}, T2={t2:g}")
        self._update(t1, t2, method, t2 > t1)

    def set_t1(self, t1: float, method: str = MANUAL) -> None:
        """Move T1. Without a review band T2 follows; with one, T1 cannot pass T2 (it stops there), so a
        drag never turns the band inside out."""
        t1 = float(t1)
        if self._review_band:
            self._update(min(t1, self._t2), self._t2, method, True)
        else:
            self._update(t1, t1, method, False)

    def set_t2(self, t2: float, method: str = MANUAL) -> None:
        """Move T2 (turns the review band on); it cannot go below T1."""
        t2 = float(t2)
        self._update(self._t1, max(t2, self._t1), method, True)

    def set_review_band(self, on: bool, width: float | None = None) -> None:
        """Turn the review band on (T2 = T1 + width; default a tenth of the score range) or off (T2 = T1)."""
        if on == self._review_band:
            return
        if on:
            lo, hi = self.score_range()
            w = (hi - lo) / 10 if width is None else float(width)
            self._update(self._t1, self._t1 + max(w, 0.0), self._method, True)
        else:
            self._update(self._t1, self._t1, self._method, False)

    def _update(self, t1: float, t2: float, method: str, band: bool) -> None:
        same = (_same(t1, self._t1) and _same(t2, self._t2) and method == self._method
                and band == self._review_band)
        if same:
            return
        self._t1, self._t2, self._method, self._review_band = t1, t2, method, band
        self._stats_cache = None
        self.events.emit(ModelEvent("thresholds", self))

    def _ensure_thresholds(self) -> None:
        """Give a fresh model a threshold to show: the F1-max preset when both good and defect labels exist,
        else the alpha-fractile of the good images, else the 95th percentile of all scores. A suggestion
        only — nothing is committed until the person acts."""
        if math.isfinite(self._t1) or not self._scored.any():
            return
        for preset in ("f1_max", "alpha_fractile"):
            try:
                self.apply_preset(preset)
                return
            except ValueError:
                continue
        self.set_t1(float(np.quantile(self._scores[self._scored], 0.95)))

    # ------------------------------------------------------------------ numbers
    def _counts(self, code: int, t1: float, t2: float) -> tuple[int, int, int]:
        group = self._sorted[code]
        below1, below2 = np.searchsorted(group, (t1, t2), side="left")
        return int(below1), int(below2 - below1), int(group.size - below2)

    def stats(self) -> ThresholdStats:
        """Counts and metrics at the current thresholds (cached until thresholds or labels change)."""
        if self._stats_cache is None:
            self._stats_cache = self.stats_at(self._t1, self._t2)
        return self._stats_cache

    def stats_at(self, t1: float, t2: float | None = None) -> ThresholdStats:
        """Counts and metrics for any thresholds, without changing the model (what-if for presets, tests)."""
        t2 = t1 if t2 is None else t2
        counts = {name: dict(zip(COLUMNS, self._counts(code, t1, t2), strict=True))
                  for code, name in enumerate(LABELS)}
        good, defect = counts["good"], counts["defect"]
        flagged = Confusion(tp=defect["review"] + defect["fail"], fp=good["review"] + good["fail"],
                            tn=good["pass"], fn=defect["pass"])
        auto = Confusion(tp=defect["fail"], fp=good["fail"], tn=good["pass"] + good["review"],
                         fn=defect["pass"] + defect["review"])
        left_out = min(self._left_out, int((~self._scored).sum()))
        return ThresholdStats(float(t1), float(t2), counts, flagged, auto, int((~self._scored).sum()) - left_out,
                              left_out)

    def histogram(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Bin edges (n_bins + 1) and counts per label over them; arrays are copies."""
        return self._edges.copy(), {name: self._hist[code].copy() for code, name in enumerate(LABELS)}

    def has_roc(self) -> bool:
        """The ROC curve needs at least one scored good and one scored defect image."""
        return self._sorted[GOOD].size > 0 and self._sorted[DEFECT].size > 0

    def _labeled_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        good, defect = self._sorted[GOOD], self._sorted[DEFECT]
        return np.r_[np.zeros(good.size, bool), np.ones(defect.size, bool)], np.r_[good, defect]

    def roc(self) -> Curve | None:
        """ROC of good (negative) vs defect (positive) images, from `core.metrics.roc_curve`; None when one
        of the two groups is empty."""
        if not self._roc_valid:
            self._roc_cache = roc_curve(*self._labeled_pairs()) if self.has_roc() else None
            self._roc_valid = True
        return self._roc_cache

    def auroc(self) -> float | None:
        return auroc(*self._labeled_pairs()) if self.has_roc() else None

    def operating_point(self, threshold: float | None = None) -> tuple[float, float]:
        """(FPR, TPR) of "score >= threshold" (default T1, i.e. review counts as flagged); a point on the ROC
        curve. (0, 0) when the ROC is undefined."""
        if not self.has_roc():
            return 0.0, 0.0
        t = self._t1 if threshold is None else float(threshold)
        good, defect = self._sorted[GOOD], self._sorted[DEFECT]
        fp = good.size - np.searchsorted(good, t, side="left")
        tp = defect.size - np.searchsorted(defect, t, side="left")
        return float(fp / good.size), float(tp / defect.size)

    def threshold_at_roc_point(self, fpr: float, tpr: float) -> float:
        """The threshold of the ROC point nearest to (fpr, tpr) — how a drag on the ROC plot becomes a
        threshold. The curve's first point (threshold +inf, nothing flagged) maps to just above the highest
        labeled score so the result is always a finite, settable number."""
        curve = self.roc()
        if curve is None:
            raise ValueError("the ROC curve needs images labeled good and defect")
        k = int(np.argmin((curve.x - fpr) ** 2 + (curve.y - tpr) ** 2))
        if k == 0:
            return float(np.nextafter(curve.thresholds[1], np.inf))
        return float(curve.thresholds[k])

    # ------------------------------------------------------------------ presets
    def preset_threshold(self, preset: str, param: float | None = None) -> float:
        """The threshold a preset picks, computed by `core.metrics`; raises ValueError in plain words when the
        labels do not allow it."""
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
        default, _ = PRESETS[preset]
        value = default if param is None else float(param)
        if preset == "alpha_fractile":
            normals = self._validation_normals
            if normals is None:
                normals = self._sorted[GOOD]
            normals = normals[np.isfinite(normals)]
            if normals.size == 0:
                raise ValueError("the alpha-fractile needs validation normals or images labeled good")
            if not 0 <= value <= 1:
                raise ValueError(f"alpha must be between 0 and 1, got {value:g}")
            return threshold_for_normal_quantile(normals, value)
        if not self.has_roc():
            raise ValueError(f"{preset} needs images labeled good and images labeled defect")
        labels, scores = self._labeled_pairs()
        if preset == "f1_max":
            return f1_max(labels, scores)[1]
        if not 0 <= value <= 1:
            raise ValueError(f"the rate limit must be between 0 and 1, got {value:g}")
        if preset == "max_fpr":
            return threshold_for_max_fpr(labels, scores, value)
        return threshold_for_max_fnr(labels, scores, value)

    def apply_preset(self, preset: str, param: float | None = None) -> float:
        """Set T1 from a preset and record it as the method. With a review band its width is kept, so the
        preset decides where flagging starts and the band keeps its size above it."""
        t = self.preset_threshold(preset, param)
        width = self._t2 - self._t1 if self._review_band and math.isfinite(self._t2 - self._t1) else 0.0
        self._update(t, t + width, method_name(preset, param), self._review_band)
        return t


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))
