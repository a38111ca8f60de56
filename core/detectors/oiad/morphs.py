"""PR-morphs and structure consistency of OIAD (paper 001, section III.D), batched on tensors.

PR-morphs. Each code j has a normal value range [lo_j, hi_j] (its posterior means over validation normals).
For an image with code value z_j the paper's iterative stochastic search widens a radius by delta_r each
round, draws B candidate values uniformly within z_j +- radius, and keeps the "natural" ones until m are
found. The paper's explicit naturalness condition is that the perturbed code stays inside its normal value
range: the other codes keep the image's own values, so the latent vector only moves along a direction the
normals span. That is the criterion here. radius is in units of the range width, so delta_r = 0.1 means
"widen by a tenth of the normal range per round"; it stops growing once it covers the whole range.

Why this separates anomalies: a normal image's code lies inside its range, so its morphs stay close and
decode to images close to it. An anomaly's code often lies outside: the search must widen until it reaches
the range, so its morphs are far from it, and its reconstruction is poor to begin with.

Structure consistency SC_j = mean over the m morphs of a discrepancy between the image and each morph:
    mse   mean squared pixel error
    loss  the Detector-VAE loss of the morph, weighted as in training: rec_weight x summed squared error
          (L_R) + KL of the image's posterior moved to the morph's code value, against the prior N(0, 1/beta)
    ssim  mean SSIM (higher = more similar, so lower is anomalous)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from core.nets.oiad_nets import DetectorVAE, kl_per_code
from core.ssim import ssim

METRICS = ("mse", "loss", "ssim")
HIGHER_IS_ANOMALOUS = {"mse": True, "loss": True, "ssim": False}


def auto_candidates(n_morphs: int) -> int:
    """B when left at 0: about four rounds to reach m morphs whatever m is, so lowering m for interactive
    use keeps the same search radius (and so the same SC scale) as the calibration."""
    return max(1, math.ceil(n_morphs / 4))


def search_morph_values(
    values: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, *, n_morphs: int, delta_r: float, candidates: int,
    gen: torch.Generator, max_rounds: int = 400,
) -> torch.Tensor:
    """Iterative stochastic search for (N, K) code values -> (N, K, m) natural perturbed values.

    lo, hi: (K,) normal ranges of the K codes. Vectorised over images and codes: every round draws B
    candidates for every (image, code) still short of m and keeps those inside the range, in draw order.
    """
    n, k = values.shape
    width = (hi - lo).clamp_min(1e-6)
    # Radius at which the window around z covers the whole range: no point widening beyond it.
    cover = torch.maximum((values - lo).abs(), (hi - values).abs()) / width
    out = torch.empty(n, k, n_morphs, dtype=values.dtype)
    found = torch.zeros(n, k, dtype=torch.long)
    rounds = 0
    while bool((found < n_morphs).any()) and rounds < max_rounds:
        rounds += 1
        radius = torch.minimum(torch.full_like(cover, rounds * delta_r), cover.clamp_min(delta_r)) * width
        u = torch.rand(n, k, candidates, generator=gen, dtype=values.dtype) * 2 - 1
        cand = values[..., None] + u * radius[..., None]
        ok = (cand >= lo[:, None]) & (cand <= hi[:, None])
        slot = found[..., None] + torch.cumsum(ok.long(), dim=2) - 1  # where each kept candidate goes
        keep = ok & (slot < n_morphs)
        ii, jj, bb = keep.nonzero(as_tuple=True)
        out[ii, jj, slot[ii, jj, bb]] = cand[ii, jj, bb]
        found = torch.clamp(found + ok.long().sum(dim=2), max=n_morphs)
    short = found < n_morphs
    if bool(short.any()):
        # Only reachable with a degenerate range; fill with uniform draws from the range itself.
        fill = lo[:, None] + torch.rand(n, k, n_morphs, generator=gen, dtype=values.dtype) * (hi - lo)[:, None]
        pos = torch.arange(n_morphs)[None, None, :] >= found[..., None]
        out = torch.where(pos & short[..., None], fill, out)
    return out


def morph_latents(mu: torch.Tensor, codes: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """(N, d) means, (K,) codes, (N, K, m) values -> (N * K * m, d): image-major, then code, then morph."""
    n, k, m = values.shape
    z = mu[:, None, None, :].expand(n, k, m, mu.shape[1]).clone()
    z[:, torch.arange(k)[:, None], torch.arange(m)[None, :], codes[:, None]] = values
    return z.reshape(n * k * m, -1)


@dataclass
class SCResult:
    sc: dict[str, torch.Tensor]   # metric -> (N, K) structure consistency
    pixel_map: torch.Tensor       # (N, H, W) mean squared difference image - morph over codes and morphs


@torch.inference_mode()
def structure_consistency(
    net: DetectorVAE, x: torch.Tensor, mu: torch.Tensor, log_var: torch.Tensor, codes: torch.Tensor,
    values: torch.Tensor, *, rec_weight: float = 1.0, decode_batch: int = 512,
    check: Callable[[], None] | None = None,
) -> SCResult:
    """Decode every morph (in batches of `decode_batch`) and average the three discrepancies per code."""
    n, k, m = values.shape
    z = morph_latents(mu, codes, values)
    log_beta = net.log_beta.detach()
    # KL of the moved posterior = KL of the image's posterior with code j's term recomputed at the new value.
    kl_codes = kl_per_code(mu, log_var, log_beta)  # (N, d)
    kl_base = kl_codes.sum(dim=1)
    lv = log_var[:, codes][..., None].expand(n, k, m)
    kl_new = kl_per_code(values, lv, log_beta[codes][None, :, None])
    kl = (kl_base[:, None, None] - kl_codes[:, codes][..., None] + kl_new).reshape(-1)
    owner = torch.arange(n).repeat_interleave(k * m)
    rows = len(z)
    sse = torch.empty(rows)
    mse = torch.empty(rows)
    sim = torch.empty(rows)
    pix = torch.zeros(n, x.shape[2], x.shape[3])
    device = next(net.parameters()).device
    for a in range(0, rows, decode_batch):
        if check is not None:
            check()
        b = min(rows, a + decode_batch)
        morph = net.decode(z[a:b].to(device)).float().cpu()
        ref = x[owner[a:b]]
        err = (morph - ref).pow(2)
        sse[a:b] = err.flatten(1).sum(dim=1)
        mse[a:b] = err.flatten(1).mean(dim=1)
        sim[a:b] = ssim(ref, morph)
        pix.index_add_(0, owner[a:b], err.mean(dim=1))
    shape = (n, k, m)
    sc = {"mse": mse.view(shape).mean(dim=2), "loss": (rec_weight * sse + kl).view(shape).mean(dim=2),
          "ssim": sim.view(shape).mean(dim=2)}
    return SCResult(sc, pix / (k * m))


def fractile_intervals(val_sc: np.ndarray, alpha: float) -> np.ndarray:
    """(n_val, K) SC of validation normals -> (K, 2): the alpha- and (1 - alpha)-fractiles per code.

    alpha is the share of normals left out on each side (paper: 0.4, a narrow band; 0.05 keeps 90 %).
    """
    lo_q, hi_q = sorted((alpha, 1.0 - alpha))
    return np.stack([np.quantile(val_sc, lo_q, axis=0), np.quantile(val_sc, hi_q, axis=0)], axis=1)


def excursion(sc: np.ndarray, intervals: np.ndarray, metric: str, sides: str = "one") -> np.ndarray:
    """Normalised distance of SC beyond its interval, in interval widths: > 0 outside, <= 0 inside.

    Kept signed (not clipped at 0) so that images inside the interval still rank among themselves, which
    a ROC curve needs. sides="one" looks only at the metric's anomalous side (high MSE/loss, low SSIM);
    "two" also counts the other side, as the paper's two-sided interval test does.
    """
    lo, hi = intervals[:, 0], intervals[:, 1]
    width = np.maximum(hi - lo, 1e-6 * (np.abs(hi) + np.abs(lo)) + 1e-12)
    above = (sc - hi) / width
    below = (lo - sc) / width
    if sides == "two":
        return np.maximum(above, below)
    return above if HIGHER_IS_ANOMALOUS[metric] else below


def strip_values(values: torch.Tensor, length: int) -> torch.Tensor:
    """(N, K, m) morph values -> (N, K, length) evenly spaced through their sorted order (a traversal)."""
    ordered = values.sort(dim=2).values
    idx = torch.linspace(0, values.shape[2] - 1, length).round().long()
    return ordered[:, :, idx]


def rank_codes(relevance: np.ndarray, tightness: np.ndarray | None, how: str) -> np.ndarray:
    """Code indices, best first. relevance: higher is better; tightness: relative SC spread, lower is better.
    "both" sums the two ranks (ties go to relevance)."""
    by_rel = np.argsort(-relevance, kind="stable")
    if how == "relevance" or tightness is None:
        return by_rel
    rank_rel = np.empty(len(relevance))
    rank_rel[by_rel] = np.arange(len(relevance))
    order_t = np.argsort(tightness, kind="stable")
    rank_t = np.empty(len(tightness))
    rank_t[order_t] = np.arange(len(tightness))
    if how == "tightness":
        return order_t
    return np.lexsort((rank_rel, rank_rel + rank_t))
