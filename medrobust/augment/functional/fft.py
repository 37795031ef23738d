"""Frequency-domain masks and masked filtering.

Masks are boolean tensors over the bins of an unshifted ``fftn`` (DC at index 0, FFT order) unless
they say *centred* (``fftshift`` layout, DC at ``n // 2``: how frequency maps are drawn and stored).
``rfft`` masks cover the half spectrum of a real transform (last axis ``n // 2 + 1`` bins).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = [
    "fft_freqs",
    "radial_frequency",
    "box_mask",
    "rfft_half",
    "centred_to_fft",
    "masked_fft2",
    "masked_rfftn",
]


def fft_freqs(n: int, *, rfft: bool = False, integer: bool = False, device: torch.device | None = None,
              dtype: torch.dtype | None = None) -> torch.Tensor:
    """``|frequency|`` of each bin of an FFT axis of size ``n``, in FFT order: cycles per sample
    (``fftfreq``/``rfftfreq``, in [0, 0.5]) or, with ``integer``, the bin index ``|k|`` (full FFT)."""
    if integer:
        return torch.fft.fftfreq(n, d=1.0 / n, device=device, dtype=dtype).abs().round()
    f = torch.fft.rfftfreq(n, device=device, dtype=dtype) if rfft else torch.fft.fftfreq(n, device=device, dtype=dtype)
    return f.abs()


def radial_frequency(shape: tuple[int, ...], device: torch.device | None = None) -> torch.Tensor:
    """Normalised radial frequency of each ``fftn`` bin, shape ``shape``: 0 at DC, 1 at the Nyquist
    frequency of an axis (the Euclidean norm of the per-axis ``|f| / 0.5``)."""
    grids = torch.meshgrid(*[torch.fft.fftfreq(n, device=device).abs() / 0.5 for n in shape], indexing="ij")
    return torch.sqrt(sum(g.square() for g in grids))


def box_mask(shape: Sequence[int], cutoff: float | torch.Tensor | Sequence[float | torch.Tensor], *,
             rfft: bool = False, integer: bool = False, device: torch.device | None = None,
             dtype: torch.dtype | None = None) -> torch.Tensor:
    """Low-pass box: True where ``|f| <= cutoff`` on every axis (frequencies as :func:`fft_freqs`).

    ``cutoff``: one value for all axes or one per axis; a value is a number or a per-sample ``(N,)``
    tensor. Returns ``shape`` (last axis ``n // 2 + 1`` with ``rfft``), or ``(N, *shape)`` with
    per-sample cutoffs.
    """
    ndim = len(shape)
    cuts = list(cutoff) if isinstance(cutoff, Sequence) else [cutoff] * ndim
    if len(cuts) != ndim:
        raise ValueError(f"cutoff: expected one value or {ndim}, got {len(cuts)}")
    batched = any(isinstance(c, torch.Tensor) and c.ndim > 0 for c in cuts)
    mask: torch.Tensor | None = None
    for axis, (n, c) in enumerate(zip(shape, cuts)):
        last = rfft and axis == ndim - 1
        f = fft_freqs(n, rfft=last, integer=integer, device=device, dtype=dtype)
        view = [1] * ndim
        view[axis] = f.numel()
        f = f.view(view)
        if batched:
            f = f[None]
            c = c.reshape(-1, *([1] * ndim)) if isinstance(c, torch.Tensor) else c
        keep = f <= c
        mask = keep if mask is None else mask & keep
    assert mask is not None
    return mask


def rfft_half(mask: torch.Tensor, n_last: int) -> torch.Tensor:
    """The ``rfftn`` half of a full, point-symmetric mask (last axis of size ``n_last``)."""
    return mask[..., : n_last // 2 + 1]


def centred_to_fft(mask: torch.Tensor, dims: Sequence[int] = (-2, -1)) -> torch.Tensor:
    """A centred (``fftshift``) mask in FFT order (``ifftshift``)."""
    return torch.fft.ifftshift(mask, dim=tuple(dims))


def masked_fft2(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``ifft2(fft2(x) · mask)`` over the last two dims (complex; ``mask`` in FFT order, broadcast
    against ``x``, boolean or complex, e.g. a k-space phase modulation)."""
    return torch.fft.ifft2(torch.fft.fft2(x) * mask)


def masked_rfftn(x: torch.Tensor, half_mask: torch.Tensor, dims: Sequence[int]) -> torch.Tensor:
    """``irfftn(rfftn(x) · half_mask)`` over ``dims`` (real, ``x``'s spatial size); ``half_mask`` is
    an ``rfft`` mask (:func:`rfft_half`) broadcast against the spectrum."""
    dims = tuple(dims)
    size = [x.shape[d] for d in dims]
    return torch.fft.irfftn(torch.fft.rfftn(x, dim=dims) * half_mask, s=size, dim=dims)
