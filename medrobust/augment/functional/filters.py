"""Smoothing kernels and filters shared by the cores.

Three Gaussian kernels live here side by side on purpose; each is bit-pinned by the cores that use
it (their outputs are reproduced exactly), so they are not merged:

* :func:`psf_kernels` — per-sample **2D** PSFs (disk or Gaussian, ``exp(−d²/2σ²)`` over the 2D
  distance), torch, applied by :func:`~.conv.depthwise_conv2d` or through the FFT (defocus cores).
  A 2D Gaussian is not the outer product of :func:`gaussian_taps` in floating point.
* :func:`gaussian_taps` — per-sample **1D** taps on a fixed support, torch, in the input's dtype:
  a separable filter with per-sample sigma (MRI blur).
* :func:`gaussian_weights` — scipy.ndimage's sampled Gaussian for **one** sigma (radius
  ``int(truncate·σ + 0.5)``), float64 NumPy, used with the exact boundary modes of
  :func:`separable_filter` (natural-image corruptions, which reproduce scipy/skimage).

Boundary modes follow the names of the libraries the published corruption code called:

=============  ==========================  ==========================
mode           scipy.ndimage               OpenCV
=============  ==========================  ==========================
``nearest``    ``nearest``                 ``BORDER_REPLICATE``
``reflect``    ``reflect`` (d c b a|a b c) ``BORDER_REFLECT``
``mirror``     ``mirror`` (d c b|a b c)    ``BORDER_REFLECT_101``
=============  ==========================  ==========================
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from .chunks import chunk_size, chunked
from .opencv import cv2_sep_filter

__all__ = [
    "PSF_KINDS",
    "kernel_size",
    "psf_kernels",
    "gaussian_taps",
    "gaussian_weights",
    "fold_index",
    "filter_matrix_np",
    "filter_matrix",
    "filter_rows",
    "separable_filter",
    "gaussian_filter",
]

# ------------------------------------------------------------------------------------------------
# per-sample kernels (torch)

#: PSF shapes; the index is the per-sample ``kind`` of :func:`psf_kernels`
PSF_KINDS: tuple[str, ...] = ("disk", "gaussian")


def kernel_size(radius: float, kind: str) -> int:
    """Odd kernel side that holds the PSF of ``radius`` (disk radius or Gaussian sigma, pixels)."""
    if kind == "disk":
        half = math.ceil(radius + 0.5)
    elif kind == "gaussian":
        half = math.ceil(3.0 * radius)
    else:
        raise ValueError(f"kind: expected one of {PSF_KINDS}, got {kind!r}")
    return 2 * max(half, 0) + 1


def psf_kernels(radius: torch.Tensor, kind: torch.Tensor | str, size: int, *,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalised 2D PSFs ``(N, size, size)``, one per entry of ``radius`` ``(N,)``.

    ``kind`` is ``"disk"``, ``"gaussian"`` or a per-sample index tensor into :data:`PSF_KINDS`.

    * disk of radius ``r``: anti-aliased by the pixel's distance to the rim,
      ``w = clamp(r + 0.5 − d, 0, 1)`` — continuous in ``r``; ``r = 0`` is the identity;
    * Gaussian of standard deviation ``r``: ``exp(−d²/2r²)``; ``r → 0`` is the identity.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"size: expected a positive odd kernel size, got {size}")
    radius = radius.to(dtype).reshape(-1, 1, 1)
    half = size // 2
    ax = torch.arange(-half, half + 1, dtype=dtype, device=radius.device)
    d2 = ax.view(-1, 1).square() + ax.view(1, -1).square()
    disk = (radius + 0.5 - d2.sqrt()).clamp(0.0, 1.0)
    gauss = torch.exp(-d2 / (2.0 * radius.clamp_min(1e-3).square()))
    if isinstance(kind, str):
        if kind not in PSF_KINDS:
            raise ValueError(f"kind: expected one of {PSF_KINDS}, got {kind!r}")
        k = disk if kind == "disk" else gauss
    else:
        k = torch.where(kind.to(radius.device).reshape(-1, 1, 1) == 0, disk, gauss)
    return k / k.sum(dim=(-2, -1), keepdim=True)


def gaussian_taps(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """Normalised 1D Gaussians ``(N, 2·radius + 1)`` for per-sample ``sigma`` ``(N,)`` (> 0), in
    ``sigma``'s dtype and device: ``exp(−t²/2σ²)`` at ``t = −radius..radius``."""
    t = torch.arange(-radius, radius + 1, device=sigma.device, dtype=sigma.dtype)
    kern = torch.exp(-(t[None, :] ** 2) / (2 * sigma[:, None] ** 2))
    return kern / kern.sum(dim=1, keepdim=True)


# ------------------------------------------------------------------------------------------------
# one kernel for the batch, exact boundary modes (scipy.ndimage / OpenCV semantics)


@functools.lru_cache(maxsize=256)
def gaussian_weights(sigma: float, truncate: float = 4.0) -> tuple[float, ...]:
    """scipy.ndimage's sampled Gaussian: radius ``int(truncate * sigma + 0.5)``, normalised."""
    if sigma < 1e-15:
        return (1.0,)
    r = int(truncate * float(sigma) + 0.5)
    t = np.arange(-r, r + 1, dtype=np.float64)
    w = np.exp(-0.5 / (sigma * sigma) * t * t)
    return tuple((w / w.sum()).tolist())


def fold_index(n: int, positions: np.ndarray, mode: str) -> np.ndarray:
    """Map integer ``positions`` (any range) into ``[0, n)`` with the boundary ``mode``."""
    p = np.asarray(positions, dtype=np.int64)
    if mode == "nearest" or n == 1:
        return np.clip(p, 0, n - 1)
    if mode == "mirror":
        period = 2 * n - 2
        p = np.mod(p, period)
        return np.where(p >= n, period - p, p)
    if mode == "reflect":
        period = 2 * n
        p = np.mod(p, period)
        return np.where(p >= n, period - 1 - p, p)
    raise ValueError(f"unknown boundary mode {mode!r}")


@functools.lru_cache(maxsize=512)
def filter_matrix_np(n: int, weights: tuple[float, ...], mode: str) -> np.ndarray:
    """``(n, n)`` float64 matrix ``M`` of the 1D correlation ``y[i] = sum_k w[k] x[fold(i + k - r)]``."""
    w = np.asarray(weights, dtype=np.float64)
    r = len(w) // 2
    cols = fold_index(n, (np.arange(n)[:, None] + np.arange(-r, r + 1)[None, :]).ravel(), mode)
    rows = np.repeat(np.arange(n), len(w))
    m = np.zeros((n, n))
    np.add.at(m, (rows, cols), np.tile(w, n))
    return m


@functools.lru_cache(maxsize=512)
def filter_matrix(n: int, weights: tuple[float, ...], mode: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """:func:`filter_matrix_np` as a tensor, cached per ``(device, dtype)``."""
    return torch.as_tensor(filter_matrix_np(n, weights, mode), dtype=dtype, device=device)


@functools.lru_cache(maxsize=256)
def _band_matrix(weights: tuple[float, ...], block: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(block, block + 2r)``: row ``i`` holds the kernel at columns ``i .. i + 2r``."""
    r = len(weights) // 2
    k = np.zeros((block, block + 2 * r))
    for i in range(block):
        k[i, i : i + 2 * r + 1] = weights
    return torch.as_tensor(k, dtype=dtype, device=device)


def filter_rows(x: torch.Tensor, weights: tuple[float, ...], mode: str, block: int = 32) -> torch.Tensor:
    """1D correlation along dim -2 of ``x`` (any strides) with a boundary mode; contiguous result.

    The rows are padded once by index (any kernel width, exact boundary), then every block of
    ``block`` output rows is one small matrix product with its ``block + 2r`` input rows (a
    strided view, no copy), so the cost is ~``block + 2r`` multiply-adds per value instead of
    ``n`` for a dense ``(n, n)`` operator. Kernels wider than the image use the dense operator.
    """
    n = x.shape[-2]
    r = len(weights) // 2
    if r == 0:
        return x.mul(float(weights[0])) if float(weights[0]) != 1.0 else x.contiguous().clone()
    if 2 * r + 1 > n:
        m = filter_matrix(n, tuple(weights), mode, x.device, x.dtype)
        return torch.matmul(m, x)
    block = min(block, n)
    nb = -(-n // block)
    idx = torch.as_tensor(fold_index(n, np.arange(-r, nb * block + r), mode), device=x.device)
    xp = x.index_select(-2, idx)  # contiguous (..., nb * block + 2r, W)
    lead, w = xp.shape[:-2], xp.shape[-1]
    flat = xp.reshape(-1, xp.shape[-2], w)
    win = flat.as_strided((flat.shape[0], nb, block + 2 * r, w), (flat.stride(0), block * w, w, 1))
    y = torch.matmul(_band_matrix(tuple(weights), block, x.device, x.dtype), win)  # (B, nb, block, W)
    y = y.reshape(*lead, nb * block, w)
    return y if nb * block == n else y[..., :n, :].contiguous()


def separable_filter(
    x: torch.Tensor, weights_h: tuple[float, ...], weights_w: tuple[float, ...], mode: str
) -> torch.Tensor:
    """Filter the last two dims of ``x`` (any leading dims) with 1D correlations, exact boundary
    (see :func:`filter_rows`; the width pass runs on the transposed view). Cache-sized batch
    chunks on the CPU.

    CPU tensors that need no gradient go through ``cv2.sepFilter2D`` per plane instead
    (:func:`~.opencv.cv2_sep_filter`: the same correlation in the same precision, one fused pass;
    6-8x the banded products for a 9-tap Gaussian at 224², measured)."""
    fast = cv2_sep_filter(x, tuple(weights_h), tuple(weights_w), mode)
    if fast is not None:
        return fast

    def one(xb: torch.Tensor) -> torch.Tensor:
        t = filter_rows(xb.transpose(-1, -2), tuple(weights_w), mode)  # (..., W, H)
        return filter_rows(t.transpose(-1, -2), tuple(weights_h), mode)

    if x.ndim < 3 or chunk_size(x) >= x.shape[0]:
        return one(x)
    return chunked(x, lambda xb, out, i: out.copy_(one(xb)))


def gaussian_filter(x: torch.Tensor, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> torch.Tensor:
    """``skimage.filters.gaussian`` / ``scipy.ndimage.gaussian_filter`` over the last two dims."""
    wts = gaussian_weights(float(sigma), truncate)
    if len(wts) == 1:
        return x.clone()
    return separable_filter(x, wts, wts, mode)
