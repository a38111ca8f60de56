"""PatchCore-class detector (Roth et al., "Towards Total Recall in Industrial Anomaly Detection", 2022) on
ImageNet-pretrained EfficientNet-Lite0 features, fully offline.

Training keeps a memory bank of normal patch features: backbone features of every training image (two stages,
3x3 locally averaged, concatenated at the finer one's grid: stride 16 + 32 by default, whose wider context beat
stride 8 + 16 on every dev category: magnetic tile image AUROC 0.955 vs 0.879, elpv 0.869 vs 0.853, bottle 1.000
both; docs/benchmarks.md "backbones and stages"), pooled, then thinned by
greedy k-center coreset selection to `coreset_ratio` of the pool. A test patch's score is the distance to its
nearest neighbour in the bank; the image score is the largest patch score, and the heat map is the patch-score
grid upsampled to the resized image and Gaussian-smoothed.

Memory bound (fit). With P = max_pool, D = feature dimension (432 for s16+s32 on Lite0, 152 for s8+s16),
R = projection_dim:
the pool holds at most P x D float32, the projected copy P x R float32, plus P float32 minimum distances and
P int64 assignments, i.e. about P * (D + R + 3) * 4 bytes (defaults: 50,000 x 563 x 4 = 113 MB), whatever
the number of training images: each image contributes at most its share of P randomly chosen patches. Add one
backbone batch (batch_size images) of activations. Scoring holds the bank (k x D) and one distance chunk of
at most `chunk_mb` megabytes.

Coreset cost. Greedy k-center is k passes over the pool; here each pass is pruned with the triangle inequality
(a point whose current nearest centre a(x) satisfies d(a(x), c) >= 2 d(x, a(x)) cannot move closer to the new
centre c), so later passes touch only the points near c. Distances are computed in a random projection to R
dimensions (Johnson-Lindenstrauss, as in the paper), float32, with incremental min-distance updates.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from core.detectors.base import (
    Cancelled,
    FitReport,
    Param,
    ProgressFn,
    StopFn,
    never_stop,
    no_progress,
)
from core.detectors.features.backbone import FEATURE_PARAMS, FeatureDetector, with_defaults
from core.detectors.results import ScoreResult

PATCHCORE_DEFAULTS = {"layers": "s16+s32"}


def greedy_coreset(x: torch.Tensor, k: int, *, seed: int = 0, progress: ProgressFn = no_progress,
                   should_stop: StopFn = never_stop) -> torch.Tensor:
    """Indices of k distinct rows of x (N, d) picked by greedy k-center (farthest-point) selection.

    Exact farthest-point order (up to float rounding) with triangle-inequality pruning: each new centre only
    re-measures the points that could be nearer to it than to their current centre.
    """
    n = int(x.shape[0])
    k = int(min(max(k, 1), n))
    x = x.float().contiguous()
    sq = (x * x).sum(1)
    assign = torch.zeros(n, dtype=torch.long, device=x.device)
    centres = torch.empty((k, x.shape[1]), dtype=torch.float32, device=x.device)
    centres_sq = torch.empty(k, dtype=torch.float32, device=x.device)
    picked = torch.empty(k, dtype=torch.long)
    gen = torch.Generator().manual_seed(int(seed))
    cur = int(torch.randint(n, (1,), generator=gen))
    every = max(1, k // 100)
    min_d2 = (sq - 2.0 * (x @ x[cur]) + sq[cur]).clamp_min_(0.0)
    # A point x can only get closer to a new centre c if d(a(x), c)^2 < 4 d(x, a(x))^2; `reach` holds the
    # right-hand side with a small margin for the rounding of the expanded squared distances.
    reach = min_d2 * (4.0 * (1.0 + 1e-4)) + 1e-6
    for i in range(k):
        if i % every == 0:
            if should_stop():
                raise Cancelled()
            progress(i, k, {})
        picked[i] = cur
        c = x[cur]
        centres[i] = c
        centres_sq[i] = sq[cur]
        if i > 0:
            dc2 = (centres_sq[:i] - 2.0 * (centres[:i] @ c) + sq[cur]).clamp_min_(0.0)
            cand = torch.nonzero(dc2.index_select(0, assign) < reach).squeeze(1)
            if len(cand):
                d2 = (sq[cand] - 2.0 * (x[cand] @ c) + sq[cur]).clamp_min_(0.0)
                closer = d2 < min_d2[cand]
                upd = cand[closer]
                d2 = d2[closer]
                min_d2[upd] = d2
                reach[upd] = d2 * (4.0 * (1.0 + 1e-4)) + 1e-6
                assign[upd] = i
        min_d2[cur] = 0.0
        reach[cur] = 1e-6
        cur = int(torch.argmax(min_d2))
    progress(k, k, {})
    return picked


def random_projection(x: torch.Tensor, dim: int, seed: int) -> torch.Tensor:
    """Gaussian random projection to `dim` dimensions (distances kept up to a small factor, JL lemma)."""
    if dim <= 0 or dim >= x.shape[1]:
        return x
    gen = torch.Generator().manual_seed(int(seed) + 1)
    proj = torch.randn((x.shape[1], dim), generator=gen) / math.sqrt(dim)
    return x @ proj.to(x.device)


def nearest_distances(queries: torch.Tensor, bank: torch.Tensor, chunk_mb: float = 64.0,
                      bank_sq: torch.Tensor | None = None) -> torch.Tensor:
    """Euclidean distance of every query row to its nearest bank row, in chunks of bounded memory."""
    if bank_sq is None:
        bank_sq = (bank * bank).sum(1)
    rows = max(1, int(chunk_mb * 2**20 / (4 * max(1, len(bank)))))
    out = torch.empty(len(queries), dtype=torch.float32, device=queries.device)
    for start in range(0, len(queries), rows):
        q = queries[start:start + rows]
        d2 = torch.addmm(bank_sq[None, :], q, bank.T, beta=1.0, alpha=-2.0)
        out[start:start + rows] = (d2.min(1).values + (q * q).sum(1)).clamp_min_(0.0).sqrt_()
    return out


class PatchCore(FeatureDetector):
    name = "patchcore"
    components = ("score",)
    default_component = "score"
    PARAMS = with_defaults(FEATURE_PARAMS, PATCHCORE_DEFAULTS) + (
        Param("coreset_ratio", 0.1, "share of the pooled training patches kept in the memory bank",
              minimum=1e-4, maximum=1.0),
        Param("max_pool", 50_000, "at most this many training patches are pooled before the coreset "
              "(bounds memory: about max_pool x (D + projection_dim + 3) x 4 bytes)", minimum=16),
        Param("projection_dim", 128, "random projection for the coreset distances (0 = full features)",
              minimum=0),
        Param("chunk_mb", 64.0, "memory for one block of nearest-neighbour distances at scoring", minimum=1.0),
    )

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.bank: torch.Tensor | None = None

    @torch.inference_mode()
    def _fit_views(self, images: Sequence[np.ndarray], *, progress: ProgressFn, should_stop: StopFn) -> FitReport:
        t0 = time.perf_counter()
        n = len(images)
        self.stamp_backbone()
        gh, gw = self.grid_shape()
        per_image = gh * gw
        max_pool = int(self.params["max_pool"])
        rng = np.random.default_rng(self.params["seed"])
        # Each image's share of the pool, fixed up front so the pool never exceeds max_pool.
        quota = np.full(n, min(per_image, max_pool // n), dtype=np.int64)
        spare = min(max_pool - int(quota.sum()), n * per_image - int(quota.sum()))
        if spare > 0:
            room = per_image - quota
            extra = rng.choice(np.repeat(np.arange(n), room), size=spare, replace=False)
            quota += np.bincount(extra, minlength=n)
        pool = torch.empty((int(quota.sum()), self.feature_dim), dtype=torch.float32)
        filled = 0
        total = 2 * n  # first half: features; second half: coreset
        for start, feats, _ in self.iter_features(images, progress=progress, should_stop=should_stop,
                                                   progress_total=total, info={"stage_step": "features"}):
            flat = feats.permute(0, 2, 3, 1).reshape(len(feats), per_image, -1).cpu()
            for j in range(len(feats)):
                q = int(quota[start + j])
                if q == 0:
                    continue
                rows = flat[j] if q >= per_image else flat[j][torch.from_numpy(
                    rng.choice(per_image, size=q, replace=False))]
                pool[filled:filled + q] = rows
                filled += q
        pool = pool[:filled]
        k = max(1, math.ceil(self.params["coreset_ratio"] * len(pool)))
        if k < len(pool):
            projected = random_projection(pool, int(self.params["projection_dim"]), self.params["seed"])

            def coreset_progress(done: int, of: int, info: dict) -> None:
                progress(n + round(n * done / max(of, 1)), total, {"stage_step": "coreset", "bank": done})

            # The coreset loop is thousands of small memory-bound steps: one thread does them as fast, and
            # several threads stall at every step when another process holds a core (measured: 2 threads on a
            # loaded 2-core machine took 4x as long). The setting is process-wide, so it is restored at once.
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                idx = greedy_coreset(projected, k, seed=self.params["seed"], progress=coreset_progress,
                                     should_stop=should_stop)
            finally:
                torch.set_num_threads(threads)
            del projected
            self.bank = pool[idx].clone()
        else:
            self.bank = pool.clone()
        del pool
        self.metadata["n_patches_pooled"] = int(filled)
        self.metadata["bank_size"] = int(len(self.bank))
        progress(total, total, {"stage_step": "done", "bank": int(len(self.bank))})
        return FitReport(seconds=time.perf_counter() - t0, steps=int(len(self.bank)), epochs=1, stopped_by="done")

    @torch.inference_mode()
    def _score_views(self, images: Sequence[np.ndarray], *, progress: ProgressFn, should_stop: StopFn) -> ScoreResult:
        assert self.bank is not None
        device = self.device
        bank = self.bank.to(device)
        bank_sq = (bank * bank).sum(1)
        scores = np.zeros(len(images), dtype=np.float64)
        maps: list[np.ndarray] = []
        geometry = []
        for start, feats, geo in self.iter_features(images, progress=progress, should_stop=should_stop):
            b, d, h, w = feats.shape
            q = feats.permute(0, 2, 3, 1).reshape(-1, d)
            grid = nearest_distances(q, bank, self.params["chunk_mb"], bank_sq).view(b, h, w)
            scores[start:start + b] = self.grid_scores(grid, geo)
            maps.extend(self.heat_maps(grid, geo))
            geometry.extend(geo)
        return ScoreResult(self.default_component, {"score": scores}, {"score": maps}, geometry)

    def _state(self) -> dict[str, Any]:
        assert self.bank is not None
        return {"bank": self.bank.contiguous()}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.check_backbone()
        self.check_state_shapes(state, {"bank": (None, self.feature_dim)})
        self.bank = state["bank"].float().contiguous()
