"""Photometric normalisation and the lighting statistics behind the drift warning.

On a line, lamps age and exposures change between shifts: every image of a shift gets a few per cent darker or
brighter. Measured on the dev data (docs/benchmarks.md, "lighting drift"), a 10 % gain on the good test images
alone turned PaDiM's bottle AUROC from 1.00 to 0.05: the detectors rank lighting before defects. Each image's
level is therefore brought to the training set's before a detector sees it:

- `gain`: multiply by (reference level / image level), level = the image's median intensity. A global gain
  change is undone exactly (up to clipping); the image's structure and contrast ratios are untouched. The
  median, not the mean: a brighter exposure clips the highlights, which lowers the mean but not the median
  (unless half the image clips), so the unclipped majority of the pixels is restored exactly. Every normalised
  image is then clipped at the same ceiling, GAIN_CEILING: what clipped in one exposure (the light there was
  beyond the sensor's range, its true level is lost) must look the same as in another. Without it, on the
  bottle (a third of every image is clipped white) the clipped white of good images x1.1 came out at 1/1.1
  and PaDiM's AUROC dropped from 1.00 to 0.60; keeping only the brighter images' white at 1.0 moved the same
  error to the darker ones (0.94). Exposures up to GAIN_RANGE brighter than the training images' are exact.
- `standardize`: also remove an offset: (x - mean) / std, then the training set's mean and std.

Both use whole-image statistics on purpose: local normalisation (per patch) would also flatten the defects
that change a region's brightness, which is what a dark pit or a bright scratch is.

The same two numbers per image (mean and standard deviation of the intensities) are what the drift warning
compares with the training images' range.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

import cv2
import numpy as np

MODES = ("none", "gain", "standardize")
REFERENCE_SAMPLE = 64  # training images read to fix the reference level (evenly spread over the set)
_TINY = 1e-4
GAIN_RANGE = 0.15  # exposure change (brighter) up to which clipped highlights are made alike
GAIN_CEILING = np.float32(1.0 / (1.0 + GAIN_RANGE))  # where every gain-normalised image is clipped


def level(img: np.ndarray) -> tuple[float, float]:
    """(mean, std) of an image's intensities over all pixels and channels (cv2.meanStdDev: one pass, no copy
    in float64 as numpy's std makes)."""
    mean, std = cv2.meanStdDev(np.ascontiguousarray(img).reshape(img.shape[0], -1))
    return float(mean.mean()), float(std.mean())


MEDIAN_SAMPLES = 250_000  # pixels the median is taken over (a strided subsample of a large frame)


def median_level(img: np.ndarray) -> float:
    """The image's median intensity, over a regular subsample of at most MEDIAN_SAMPLES pixels (a 5 MP frame's
    full median costs ~100 ms; the subsample's differs from it by far less than a grey level)."""
    step = max(1, int(np.ceil(np.sqrt(img.shape[0] * img.shape[1] / MEDIAN_SAMPLES))))
    return float(np.median(img[::step, ::step]))


def normalise(img: np.ndarray, mode: str, reference: tuple[float, float, float]) -> np.ndarray:
    """The image brought to the reference (mean, std, median) by `mode`, clipped to [0, 1], float32."""
    if mode == "none":
        return img
    ref_mean, ref_std, ref_median = reference
    if mode == "gain":
        med = median_level(img)
        if med < _TINY:  # a black frame: nothing to scale, and the detector should see it as it is
            return img
        out = img * np.float32(ref_median / med)
        return np.clip(out, 0.0, GAIN_CEILING, out=out).astype(np.float32, copy=False)
    elif mode == "standardize":
        mean, std = level(img)
        if std < _TINY:
            return img
        out = (img - np.float32(mean)) * np.float32(ref_std / std) + np.float32(ref_mean)
    else:
        raise ValueError(f"photometric mode {mode!r} is not one of {list(MODES)}")
    return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)


def spread_indices(n: int, k: int) -> list[int]:
    """k indices evenly spread over range(n) (all of them when k >= n)."""
    if k >= n:
        return list(range(n))
    return sorted({int(i * n / k) for i in range(k)})


@dataclass(frozen=True)
class Photometry:
    """What the training images' lighting looked like: the reference level and the range the drift warning
    compares scored images with (percentiles of the per-image mean and std)."""

    mean: float
    std: float
    mean_range: tuple[float, float]
    std_range: tuple[float, float]
    n: int
    spread: tuple[float, float] = (0.0, 0.0)  # robust standard deviation (1.4826 MAD) of the mean and the std
    median: float = 0.0  # the median of the images' median intensities: the gain reference

    @property
    def reference(self) -> tuple[float, float, float]:
        return self.mean, self.std, self.median or self.mean

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "mean_range": list(self.mean_range),
                "std_range": list(self.std_range), "n": self.n, "spread": list(self.spread),
                "median": self.median}

    @staticmethod
    def from_json(d: dict[str, Any]) -> Photometry:
        return Photometry(float(d["mean"]), float(d["std"]), tuple(d["mean_range"]), tuple(d["std_range"]),
                          int(d["n"]), tuple(d.get("spread", (0.0, 0.0))), float(d.get("median", 0.0)))

    @staticmethod
    def of(levels: np.ndarray, medians: np.ndarray | None = None) -> Photometry:
        """From (n, 2) per-image (mean, std) and the images' medians: medians as the reference, the 1st-99th
        percentiles as the range."""
        levels = np.asarray(levels, dtype=np.float64).reshape(-1, 2)
        lo, hi = np.percentile(levels, [1.0, 99.0], axis=0)
        med = np.median(levels, axis=0)
        spread = 1.4826 * np.median(np.abs(levels - med), axis=0)
        return Photometry(float(med[0]), float(med[1]), (float(lo[0]), float(hi[0])),
                          (float(lo[1]), float(hi[1])), len(levels), (float(spread[0]), float(spread[1])),
                          float(np.median(medians)) if medians is not None else 0.0)


def training_photometry(images: Sequence[np.ndarray], sample: int = REFERENCE_SAMPLE) -> Photometry:
    """The training set's photometry from an even sample of its images (a lazy source decodes only those)."""
    picked = [images[i] for i in spread_indices(len(images), sample)]
    return Photometry.of(np.array([level(img) for img in picked]), np.array([median_level(img) for img in picked]))


class Normalised(Sequence[np.ndarray]):
    """A view of an image sequence with each image normalised as it is read: nothing is copied up front, so a
    lazy source stays lazy. Records every image's (mean, std) before normalisation, for the drift warning."""

    def __init__(self, images: Sequence[np.ndarray], mode: str, reference: tuple[float, float, float]) -> None:
        if mode not in MODES:
            raise ValueError(f"photometric mode {mode!r} is not one of {list(MODES)}")
        self.images = images
        self.mode = mode
        self.reference = reference
        self.levels = np.full((len(images), 2), np.nan)

    def __len__(self) -> int:
        return len(self.images)

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, index: slice) -> list[np.ndarray]: ...

    def __getitem__(self, index: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(index, slice):
            positions = range(*index.indices(len(self)))
            raw = self.images[index]
            return [self._one(i, img) for i, img in zip(positions, raw, strict=True)]
        i = index + len(self) if index < 0 else index
        return self._one(i, self.images[i])

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self[i]

    def _one(self, i: int, img: np.ndarray) -> np.ndarray:
        self.levels[i] = level(img)
        return normalise(img, self.mode, self.reference)


@dataclass(frozen=True)
class DriftWarning:
    """Scored images whose lighting lies outside the training images' range, in words a user can act on."""

    n_outside: int
    n_images: int
    darker: int
    brighter: int
    low_contrast: int
    high_contrast: int
    median_mean: float
    training: Photometry

    @property
    def message(self) -> str:
        parts = []
        lo, hi = self.training.mean_range
        if self.darker:
            parts.append(f"{self.darker} darker")
        if self.brighter:
            parts.append(f"{self.brighter} brighter")
        if self.low_contrast:
            parts.append(f"{self.low_contrast} of lower contrast")
        if self.high_contrast:
            parts.append(f"{self.high_contrast} of higher contrast")
        share = 100.0 * self.n_outside / max(self.n_images, 1)
        return (f"lighting drift: {self.n_outside} of {self.n_images} scored images ({share:.0f} %) lie outside "
                f"the training images' lighting ({', '.join(parts)}; mean brightness of the scored images "
                f"{self.median_mean:.3f}, training {lo:.3f}-{hi:.3f} for 98 % of its {self.training.n} sampled "
                f"images, give or take {max(self.training.spread[0], DRIFT_MARGIN * lo):.3f}). Scores of these "
                f"images may follow the lighting: check the lamps and exposure, or retrain on images from the "
                f"current lighting.")

    def to_json(self) -> dict[str, Any]:
        return {"n_outside": self.n_outside, "n_images": self.n_images, "darker": self.darker,
                "brighter": self.brighter, "low_contrast": self.low_contrast,
                "high_contrast": self.high_contrast, "median_mean": self.median_mean, "message": self.message}


# A few images outside the 1st-99th percentile range are expected by construction (2 % of the training images
# are; far more when the range comes from a handful of images), and a defect may change an image's mean; so the
# range is widened by a tolerance (2 % of the level, or one robust standard deviation of the training images',
# whichever is larger) and a run is flagged when more than a fifth of its images lie beyond it: a lamp or exposure
# change moves every image of a shift, defects are a minority of a run (and may change an image's contrast).
DRIFT_MIN_SHARE = 0.20
DRIFT_MIN_IMAGES = 3
DRIFT_MARGIN = 0.02


def drift_warning(training: Photometry, levels: np.ndarray, min_share: float = DRIFT_MIN_SHARE,
                  margin: float = DRIFT_MARGIN) -> DriftWarning | None:
    """A DriftWarning when enough of the scored images' (mean, std) lie outside the training range, else None."""
    levels = np.asarray(levels, dtype=np.float64).reshape(-1, 2)
    levels = levels[np.isfinite(levels).all(1)]
    if not len(levels):
        return None
    (m_lo, m_hi), (s_lo, s_hi) = training.mean_range, training.std_range
    m_tol, s_tol = training.spread
    darker = levels[:, 0] < m_lo - max(margin * m_lo, m_tol)
    brighter = levels[:, 0] > m_hi + max(margin * m_hi, m_tol)
    low_c = levels[:, 1] < s_lo - max(margin * s_lo, s_tol)
    high_c = levels[:, 1] > s_hi + max(margin * s_hi, s_tol)
    outside = darker | brighter | low_c | high_c
    n = int(outside.sum())
    if n < DRIFT_MIN_IMAGES or n < min_share * len(levels):
        return None
    return DriftWarning(n, len(levels), int(darker.sum()), int(brighter.sum()), int(low_c.sum()),
                        int(high_c.sum()), float(np.median(levels[:, 0])), training)
