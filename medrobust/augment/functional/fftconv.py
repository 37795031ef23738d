"""Per-sample filtering through the FFT (large kernels).

Two paths, kept apart because the cores that use them are bit-pinned:

* :func:`psf_fft_conv2d` — the defocus PSF cores: replicate border, transform of exactly the padded
  size, the kernel placed with :func:`kernel_rfft2`;
* :func:`fft_correlate` — the natural-image corruptions: any boundary mode of
  :func:`~.filters.fold_index`, 5-smooth transform sizes, kernels given as tap offsets
  (:func:`kernel_image`), cache-sized CPU chunks.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .chunks import chunked
from .filters import fold_index

__all__ = ["kernel_rfft2", "psf_fft_conv2d", "fast_size", "pad_index", "fft_correlate", "kernel_image"]


def kernel_rfft2(kernel: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``rfft2`` of square kernels ``(..., K, K)`` (odd ``K``) zero-padded to ``size = (H, W)`` with
    their centre rolled to the origin: ``(..., H, W // 2 + 1)``, ``kernel``'s dtype and device."""
    ks = kernel.shape[-1]
    p = ks // 2
    kp = torch.zeros(*kernel.shape[:-2], *size, dtype=kernel.dtype, device=kernel.device)
    kp[..., :ks, :ks] = kernel
    kp = torch.roll(kp, shifts=(-p, -p), dims=(-2, -1))  # kernel centre at the origin
    return torch.fft.rfft2(kp)


def psf_fft_conv2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve every channel of sample ``i`` with ``kernel[i]`` as one batched FFT product.

    ``x`` ``(N, C, H, W)``, ``kernel`` ``(N, K, K)`` (odd ``K``); replicate-padded by ``K // 2``, so
    there is no wrap-around. For point-symmetric kernels (PSFs) this equals
    :func:`~.conv.depthwise_conv2d` up to rounding. Returns ``(N, C, H, W)``.
    """
    h, w = x.shape[-2:]
    p = kernel.shape[-1] // 2
    xp = F.pad(x, (p, p, p, p), mode="replicate")
    hp, wp = h + 2 * p, w + 2 * p
    spec = kernel_rfft2(kernel.to(x.dtype), (hp, wp))
    y = torch.fft.irfft2(torch.fft.rfft2(xp) * spec[:, None], s=(hp, wp))
    return y[..., p : p + h, p : p + w]


_FAST = sorted({2**a * 3**b * 5**c for a in range(13) for b in range(8) for c in range(6) if 2**a * 3**b * 5**c <= 8192})


def fast_size(n: int) -> int:
    """Smallest 5-smooth FFT size >= n (fast on pocketfft and cuFFT)."""
    for s in _FAST:
        if s >= n:
            return s
    return n


def pad_index(n: int, r: int, mode: str, device: torch.device) -> torch.Tensor:
    """Indices ``fold(-r .. n + r - 1)`` that pad an axis of size ``n`` by ``r`` with ``mode``."""
    return torch.as_tensor(fold_index(n, np.arange(-r, n + r), mode), device=device)


def fft_correlate(x: torch.Tensor, spectrum_fn: Callable[[int, int], torch.Tensor], radius: int,
                  mode: str) -> torch.Tensor:
    """Correlate every image with a kernel of radius ``<= radius`` through the FFT.

    ``x`` ``(N, C, H, W)`` is padded by ``radius`` with ``mode`` (so the result equals a direct
    correlation with that boundary, no circular wrap), transformed once, multiplied by
    ``spectrum_fn(L1, L2)`` (an rfft2 spectrum broadcastable to ``(N, C, L1, L2 // 2 + 1)``, see
    :func:`kernel_image`) and transformed back. Returns ``(N, C, H, W)``.
    """
    h, w = x.shape[-2:]
    l1, l2 = fast_size(h + 2 * radius), fast_size(w + 2 * radius)
    kspec = spectrum_fn(l1, l2)
    per_sample = kspec.ndim == 4 and kspec.shape[0] > 1
    pad = _fft_padder(x, radius, l1, l2, mode)

    def block(xb: torch.Tensor, out: torch.Tensor, i: int) -> None:
        xp = pad(xb)
        spec = torch.fft.rfft2(xp)
        del xp
        spec.mul_(kspec[i:i + xb.shape[0]] if per_sample else kspec)
        y = torch.fft.irfft2(spec, s=(l1, l2))
        out.copy_(y[..., radius : radius + h, radius : radius + w])

    return chunked(x, block)


def _fft_padder(x: torch.Tensor, radius: int, l1: int, l2: int, mode: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """``(..., H, W) -> (..., L1, L2)``: ``x`` padded by ``radius`` with ``mode`` on every side and
    on to the FFT size. The rows and columns past ``H + 2 radius`` (``W + 2 radius``) are never read
    by an output inside the crop (the kernel reaches ``radius``), so they may hold anything: torch's
    own replicate/reflect padding fills them in one pass (nearest, mirror; 5x an index gather and
    the zero fill of ``rfft2(s=...)`` together on the CPU, measured), other modes pad by index and
    with zeros."""
    h, w = x.shape[-2:]
    bottom, right = l1 - h - radius, l2 - w - radius
    torch_mode = {"nearest": "replicate", "mirror": "reflect"}.get(mode)
    if x.ndim == 4 and torch_mode is not None and (torch_mode == "replicate" or max(radius, bottom, right) < min(h, w)):
        return lambda xb: F.pad(xb, (radius, right, radius, bottom), mode=torch_mode)
    iy = pad_index(h, radius, mode, x.device)
    ix = pad_index(w, radius, mode, x.device)
    return lambda xb: F.pad(xb.index_select(-2, iy).index_select(-1, ix), (0, right - radius, 0, bottom - radius))


def kernel_image(
    offsets_y: torch.Tensor, offsets_x: torch.Tensor, weights: torch.Tensor, l1: int, l2: int
) -> torch.Tensor:
    """``(B, L1, L2)`` circular kernel images whose convolution is the correlation
    ``y[p] = sum_i w_i x[p + o_i]``: weight ``w_i`` lands at ``(-o_i) mod (L1, L2)``.

    ``offsets_*`` and ``weights`` are ``(B, T)``; duplicate offsets add up.
    """
    b = weights.shape[0]
    flat = torch.remainder(-offsets_y, l1) * l2 + torch.remainder(-offsets_x, l2)
    img = torch.zeros(b, l1 * l2, dtype=weights.dtype, device=weights.device)
    img.scatter_add_(1, flat.long(), weights)
    return img.reshape(b, l1, l2)
