"""Detection metrics, vectorised in numpy: ROC / PR curves, AUROC, AUPR, F1, threshold helpers, pixel AUROC
and PRO. Conventions: labels 1 = anomalous, scores higher = more anomalous, "predicted anomalous" means
score >= threshold. Definitions match scikit-learn's (roc_curve, roc_auc_score, average_precision_score).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Curve:
    x: np.ndarray
    y: np.ndarray
    thresholds: np.ndarray


def _sorted_counts(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative TP and FP counts at each distinct score, from the highest score down."""
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ in length")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinity")
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    distinct = np.flatnonzero(np.diff(s)) if len(s) > 1 else np.zeros(0, int)
    ends = np.r_[distinct, len(s) - 1]
    tps = np.cumsum(y)[ends]
    fps = (ends + 1) - tps
    return tps.astype(np.float64), fps.astype(np.float64), s[ends]


def _need_both(labels: np.ndarray) -> None:
    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        raise ValueError("need both normal and anomalous samples")


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> Curve:
    """FPR (x), TPR (y) and thresholds, starting at (0, 0) with threshold +inf like scikit-learn."""
    _need_both(labels)
    tps, fps, thr = _sorted_counts(labels, scores)
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    return Curve(fpr, tpr, np.r_[np.inf, thr])


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    c = roc_curve(labels, scores)
    return float(np.trapezoid(c.y, c.x))


def pr_curve(labels: np.ndarray, scores: np.ndarray) -> Curve:
    """Recall (x), precision (y), thresholds; from the highest threshold down (recall increasing)."""
    _need_both(labels)
    tps, fps, thr = _sorted_counts(labels, scores)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return Curve(recall, precision, thr)


def aupr(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision: sum over thresholds of (R_n - R_{n-1}) P_n (scikit-learn's definition)."""
    c = pr_curve(labels, scores)
    return float(np.sum(np.diff(np.r_[0.0, c.x]) * c.y))


@dataclass(frozen=True)
class Confusion:
    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def tpr(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def fpr(self) -> float:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def f1(self) -> float:
        denom = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denom if denom else 0.0


def confusion_at(labels: np.ndarray, scores: np.ndarray, threshold: float) -> Confusion:
    labels = np.asarray(labels).astype(bool)
    pred = np.asarray(scores) >= threshold
    tp = int(np.sum(pred & labels))
    fp = int(np.sum(pred & ~labels))
    return Confusion(tp, fp, int(np.sum(~labels)) - fp, int(np.sum(labels)) - tp)


def f1_at(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    return confusion_at(labels, scores, threshold).f1


def f1_max(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """The best F1 over all thresholds and the threshold that reaches it."""
    tps, fps, thr = _sorted_counts(labels, scores)
    positives = tps[-1]
    if positives == 0:
        return 0.0, float(thr[0])
    f1 = 2 * tps / (tps + fps + positives)
    k = int(np.argmax(f1))
    return float(f1[k]), float(thr[k])


def threshold_for_max_fpr(labels: np.ndarray, scores: np.ndarray, max_fpr: float) -> float:
    """The lowest threshold whose false-positive rate stays <= max_fpr (most sensitive allowed)."""
    tps, fps, thr = _sorted_counts(labels, scores)
    negatives = fps[-1]
    ok = fps / negatives <= max_fpr if negatives else np.ones_like(fps, bool)
    if not ok.any():
        return float(np.nextafter(thr[0], np.inf))
    return float(thr[np.flatnonzero(ok)[-1]])


def threshold_for_max_fnr(labels: np.ndarray, scores: np.ndarray, max_fnr: float) -> float:
    """The highest threshold whose miss rate stays <= max_fnr (fewest false alarms allowed)."""
    tps, _, thr = _sorted_counts(labels, scores)
    positives = tps[-1]
    ok = 1 - tps / positives <= max_fnr if positives else np.ones_like(tps, bool)
    return float(thr[np.flatnonzero(ok)[0]])


def threshold_for_normal_quantile(normal_scores: np.ndarray, alpha: float) -> float:
    """Threshold passing a (1 - alpha) share of validation normals (no anomalies needed)."""
    return float(np.quantile(np.asarray(normal_scores, dtype=np.float64), 1 - alpha, method="higher"))


def pixel_auroc(masks: list[np.ndarray], maps: list[np.ndarray]) -> float:
    """AUROC over all pixels of all images (maps already at mask resolution)."""
    labels = np.concatenate([np.asarray(m, bool).ravel() for m in masks])
    scores = np.concatenate([np.asarray(a, np.float64).ravel() for a in maps])
    return auroc(labels, scores)


def pro_score(masks: list[np.ndarray], maps: list[np.ndarray], max_fpr: float = 0.3,
              n_thresholds: int = 200) -> float:
    """Per-region overlap (Bergmann et al.) integrated over FPR in [0, max_fpr], normalised to [0, 1].

    For each threshold: mean over connected defect regions of the share of the region flagged, against the
    FPR on defect-free pixels. Regions are labelled once with OpenCV; thresholds are evaluated in one
    vectorised pass per image via sorted scores.
    """
    all_scores = np.concatenate([np.asarray(a, np.float64).ravel() for a in maps])
    thresholds = np.quantile(all_scores, np.linspace(1.0, 0.0, n_thresholds))
    overlaps_sum = np.zeros(n_thresholds)
    n_regions = 0
    fp = np.zeros(n_thresholds)
    negatives = 0
    for mask, amap in zip(masks, maps, strict=True):
        mask = np.asarray(mask, bool)
        amap = np.asarray(amap, np.float64)
        neg = np.sort(amap[~mask])
        negatives += neg.size
        fp += neg.size - np.searchsorted(neg, thresholds, side="left")
        if mask.any():
            count, regions = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
            for r in range(1, count):
                vals = np.sort(amap[regions == r])
                overlaps_sum += (vals.size - np.searchsorted(vals, thresholds, side="left")) / vals.size
                n_regions += 1
    if n_regions == 0 or negatives == 0:
        raise ValueError("PRO needs defect regions and defect-free pixels")
    fpr = fp / negatives
    pro = overlaps_sum / n_regions
    return _pro_integral(fpr, pro, max_fpr)


def _pro_integral(fpr: np.ndarray, pro: np.ndarray, max_fpr: float) -> float:
    """The PRO curve (ascending FPR) integrated over [0, max_fpr], normalised to [0, 1]."""
    keep = fpr <= max_fpr
    x, y = fpr[keep], pro[keep]
    # Close the curve exactly at max_fpr by interpolation, so the integral has the full range.
    if keep.sum() < len(fpr):
        nxt = np.flatnonzero(~keep)[0]
        if nxt > 0:
            x0, x1, y0, y1 = fpr[nxt - 1], fpr[nxt], pro[nxt - 1], pro[nxt]
            y_end = y0 + (y1 - y0) * (max_fpr - x0) / (x1 - x0) if x1 > x0 else y1
            x, y = np.r_[x, max_fpr], np.r_[y, y_end]
    if len(x) < 2:
        return 0.0
    return float(np.trapezoid(y, x) / max_fpr)


class PixelMetrics:
    """Pixel AUROC and PRO accumulated one image at a time, so a run of thousands of images never holds (or
    sorts) all its pixels: scores are counted in fixed bins (edges from quantiles of a sample of the maps, so
    heavy-tailed maps keep their resolution where the pixels are). The thresholds are the bin edges; with a few
    thousand bins the figures agree with the exact ones (pixel_auroc, pro_score) to about 1e-3."""

    def __init__(self, sample: np.ndarray, n_bins: int = 2048) -> None:
        sample = np.asarray(sample, np.float64).ravel()
        sample = sample[np.isfinite(sample)]
        if sample.size == 0:
            raise ValueError("PixelMetrics needs a sample of finite map values")
        self.edges = np.unique(np.quantile(sample, np.linspace(0.0, 1.0, n_bins + 1)))
        n = max(1, self.edges.size - 1)
        self.pos = np.zeros(n, np.int64)
        self.neg = np.zeros(n, np.int64)
        self.overlaps = np.zeros(n + 1, np.float64)  # summed over regions, at threshold edges[k] (k = 0..n)
        self.n_regions = 0

    def _bins(self, values: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(self.edges, values, side="right") - 1, 0, self.pos.size - 1)

    def add(self, mask: np.ndarray, amap: np.ndarray) -> None:
        """One image: its bool mask and its map at the mask's resolution."""
        mask = np.asarray(mask, bool)
        amap = np.nan_to_num(np.asarray(amap, np.float64), nan=-np.inf)
        bins = self._bins(amap.ravel())
        flat = mask.ravel()
        self.pos += np.bincount(bins[flat], minlength=self.pos.size)
        self.neg += np.bincount(bins[~flat], minlength=self.neg.size)
        if mask.any():
            count, regions = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
            labels = regions.ravel()
            for r in range(1, count):
                vals = np.sort(amap.ravel()[labels == r])
                # share of the region at or above each edge
                self.overlaps += (vals.size - np.searchsorted(vals, self.edges, side="left")) / vals.size
                self.n_regions += 1

    def auroc(self) -> float:
        """Area under the ROC of pixels, thresholds at the bin edges (ties inside a bin count half)."""
        p, n = self.pos[::-1].cumsum(), self.neg[::-1].cumsum()
        if p[-1] == 0 or n[-1] == 0:
            raise ValueError("pixel AUROC needs defect and defect-free pixels")
        tpr, fpr = np.r_[0.0, p / p[-1]], np.r_[0.0, n / n[-1]]
        return float(np.trapezoid(tpr, fpr))

    def pro(self, max_fpr: float = 0.3) -> float:
        """PRO integrated over FPR in [0, max_fpr], normalised to [0, 1] (as pro_score)."""
        if self.n_regions == 0 or self.neg.sum() == 0:
            raise ValueError("PRO needs defect regions and defect-free pixels")
        # FPR at threshold edges[k]: negatives in bins k.. over all negatives; descending thresholds.
        fp_at = np.r_[self.neg[::-1].cumsum()[::-1], 0] / self.neg.sum()
        fpr, pro = fp_at[::-1], (self.overlaps / self.n_regions)[::-1]
        return _pro_integral(fpr, pro, max_fpr)
