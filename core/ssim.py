"""Structural similarity (Wang et al. 2004) for batches of images, in torch.

OIAD compares every image with hundreds of its morphs, so SSIM must run on whole batches: the local means,
variances and covariance come from a separable Gaussian window (11 px, sigma 1.5, the
reference settings) over all images and channels at once. Only the "valid" part of the window is used
(no padding), as in the reference implementation; colour images average the per-channel SSIM.
"""

from __future__ import annotations

import torch

K1, K2 = 0.01, 0.03


def gaussian_1d(size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalised 1-D Gaussian; its outer product with itself is the 2-D SSIM window."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    return (g / g.sum()).to(dtype)


def band_matrix(length: int, g: torch.Tensor) -> torch.Tensor:
    """(length, length - size + 1) matrix M with (v @ M)[j] = sum_k g[k] v[j + k]: valid 1-D filtering."""
    size = len(g)
    out = torch.zeros(length, length - size + 1, dtype=g.dtype, device=g.device)
    cols = torch.arange(length - size + 1, device=g.device)
    for k in range(size):  # `size` diagonals, not a loop over pixels
        out[cols + k, cols] = g[k]
    return out


def fit_window(height: int, width: int, size: int = 11) -> int:
    """Largest odd window no bigger than `size` that fits the image (small patches need a smaller one)."""
    side = min(size, height, width)
    return side if side % 2 == 1 else side - 1


def ssim_map(x: torch.Tensor, y: torch.Tensor, *, window: int = 11, sigma: float = 1.5,
             data_range: float = 1.0) -> torch.Tensor:
    """Local SSIM of two (N, C, H, W) batches: (N, C, H - w + 1, W - w + 1)."""
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"ssim needs two (N, C, H, W) tensors of one shape, got {tuple(x.shape)}, {tuple(y.shape)}")
    n, c, h, w = x.shape
    size = fit_window(h, w, window)
    # The Gaussian window is separable, and a "valid" 1-D filtering is a product with a banded matrix:
    # two matrix products filter all five statistics (x, y, x^2, y^2, xy) of every channel at once, which
    # BLAS runs several times faster than a depthwise conv2d on CPU.
    g = gaussian_1d(size, sigma, x.dtype).to(x.device)
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    stats = band_matrix(h, g).T @ stack @ band_matrix(w, g)
    mu_x, mu_y, xx, yy, xy = stats.split(c, dim=1)
    var_x = xx - mu_x * mu_x
    var_y = yy - mu_y * mu_y
    cov = xy - mu_x * mu_y
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return num / den


def ssim(x: torch.Tensor, y: torch.Tensor, *, window: int = 11, sigma: float = 1.5,
         data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM per image pair: (N,). 1 = identical; lower = less similar."""
    return ssim_map(x, y, window=window, sigma=sigma, data_range=data_range).flatten(1).mean(dim=1)
