"""Batched building blocks of the blur corruptions: the published glass-blur shuffle, ImageMagick's
motion blur, the published ``clipped_zoom``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...functional.fftconv import fft_correlate, kernel_image

__all__ = ["clipped_zoom", "motion_taps", "motion_blur", "glass_steps", "glass_shuffle_map", "glass_shuffle_global"]


# ------------------------------------------------------------------------------------------------
# zoom (scipy.ndimage.zoom, order 1) and the published clipped_zoom


def clipped_zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """The published ``clipped_zoom``: centre crop of ``ceil(n / factor)``, linear zoom by
    ``factor`` (scipy's ``zoom(order=1)``: output ``round(crop * factor)``, corners aligned), then
    the central ``n`` (trim ``(zoomed - n) // 2`` at the start, as in make_imagenet_c.py)."""
    h, w = x.shape[-2:]
    ch, cw = int(math.ceil(h / factor)), int(math.ceil(w / factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = x[..., top : top + ch, left : left + cw].contiguous()
    zh, zw = int(round(ch * factor)), int(round(cw * factor))
    # one channel per plane: upsample_bilinear2d is several times faster on (B, 1, h, w) than on
    # strided multi-channel crops
    z = F.interpolate(crop.view(-1, 1, ch, cw), size=(zh, zw), mode="bilinear", align_corners=True)
    z = z.view(*x.shape[:-2], zh, zw)
    th, tw = (zh - h) // 2, (zw - w) // 2
    return z[..., th : th + h, tw : tw + w]


# ------------------------------------------------------------------------------------------------
# motion blur (ImageMagick MotionBlurImage, as re-implemented by imagecorruptions)


def motion_taps(radius: torch.Tensor, sigma: torch.Tensor, angle_deg: torch.Tensor, max_width: int):
    """Per-sample taps of ImageMagick's motion blur.

    Width ``2 * radius + 1``; weights ``exp(-i^2 / (2 sigma^2))`` normalised over the width; tap
    ``i`` reads the pixel at ``(y + ceil(i sin(a) - 0.5), x + ceil(i cos(a) - 0.5))``.
    Returns ``(oy, ox, w)`` of shape ``(N, max_width)`` (unused taps have weight 0), float64 math.
    """
    dev = angle_deg.device
    radius = radius.to(torch.float64)
    width = 2 * torch.ceil(radius) + 1
    i = torch.arange(max_width, device=dev, dtype=torch.float64)[None, :]
    sigma = sigma.to(torch.float64)[:, None]
    w = torch.exp(-(i * i) / (2 * sigma * sigma)) / (math.sqrt(2 * math.pi) * sigma)
    w = torch.where(i < width[:, None], w, torch.zeros_like(w))
    w = w / w.sum(dim=1, keepdim=True)
    a = torch.deg2rad(angle_deg.to(torch.float64))[:, None]
    py, px = width[:, None] * torch.sin(a), width[:, None] * torch.cos(a)
    hyp = torch.hypot(py, px)
    oy = torch.ceil(i * py / hyp - 0.5)
    ox = torch.ceil(i * px / hyp - 0.5)
    return oy.long(), ox.long(), w


def motion_blur(x: torch.Tensor, radius: torch.Tensor, sigma: torch.Tensor, angle_deg: torch.Tensor) -> torch.Tensor:
    """Per-sample motion blur of ``(N, C, H, W)`` (edge pixels replicated), one FFT pass."""
    max_width = int(2 * math.ceil(float(radius.max())) + 1)
    oy, ox, w = motion_taps(radius, sigma, angle_deg, max_width)
    pad = max_width - 1

    def spectrum(l1: int, l2: int) -> torch.Tensor:
        img = kernel_image(oy.to(x.device), ox.to(x.device), w.to(device=x.device, dtype=x.dtype), l1, l2)
        return torch.fft.rfft2(img).unsqueeze(1)

    return fft_correlate(x, spectrum, pad, "nearest")


# ------------------------------------------------------------------------------------------------
# glass blur: the published "swap" loop, batched exactly


def glass_steps(u: torch.Tensor, delta: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer steps ``(dy, dx)``, each uniform in ``[-delta, delta)`` (``np.random.randint``), from
    one uniform per pixel: ``k = floor(u * (2 delta)^2)``, ``dy = k // (2 delta) - delta``,
    ``dx = k % (2 delta) - delta``. Returned as float32 tensors holding integers (exact)."""
    m = 2 * int(delta)
    k = torch.floor(u.float() * (m * m)).clamp_(max=m * m - 1)  # exact: u has 24 bits, m * m <= 64
    dy = torch.floor(k / m)
    dx = k.sub_(dy * m).sub_(delta)
    return dy.sub_(delta), dx


def glass_shuffle_map(u: torch.Tensor, delta: int) -> torch.Tensor:
    """Source index map of one pass of the published local pixel shuffle, for a batch.

    The published loop visits rows ``h = H - delta .. delta + 1`` and, in each, columns
    ``w = W - delta .. delta + 1`` (both descending) and "swaps" ``x[h, w]`` with
    ``x[h + dy, w + dx]`` with a NumPy tuple assignment on pixel views, which in fact only copies:
    ``x[h, w] = x[h + dy, w + dx]`` (the partner keeps its value; imagecorruptions' numba loop
    does the same). So pixel ``p`` ends with the value its partner ``q`` held when ``p`` was
    visited: ``q``'s final value if ``q`` was visited before ``p`` (a later row, or a later column
    of the same row), else ``q``'s original value. Following these links from every pixel at once
    (a chain stops at the first partner not visited before) reproduces the loop exactly for the
    same steps. ``u``: ``(N, H, W)`` uniforms (see :func:`glass_steps`). Returns ``(N, H * W)``
    flat source positions: ``out[n, p] = x[n, src[n, p]]``.
    """
    n, h, w = u.shape
    offsets = torch.arange(n, device=u.device)[:, None] * (h * w)
    return glass_shuffle_global(u, delta).view(n, h * w).long().sub_(offsets)


def glass_shuffle_global(u: torch.Tensor, delta: int) -> torch.Tensor:
    """:func:`glass_shuffle_map` as flat int32 positions over the whole batch, ``(N * H * W,)``:
    ``out[p] = x.flatten()[src[p]]`` for one channel plane stack. Passes compose with
    ``src_1.index_select(0, src_2)`` (the second pass reads the first one's output)."""
    n, h, w = u.shape
    dev = u.device
    if n * h * w >= 2**31:
        raise ValueError(f"glass blur: batch of {n}x{h}x{w} pixels is too large for int32 indices; split it")
    dy, dx = glass_steps(u, delta)  # (N, H, W), integer-valued floats
    ys = torch.arange(h, device=dev, dtype=torch.float32)[:, None]
    xs = torch.arange(w, device=dev, dtype=torch.float32)[None, :]
    lo, hi_y, hi_x = delta + 1, h - delta, w - delta
    vis = (ys >= lo) & (ys <= hi_y) & (xs >= lo) & (xs <= hi_x)  # (H, W): pixels the loop visits
    # every visited pixel takes its partner's value; after a "forward" step (to a pixel visited
    # earlier: dy * W + dx > 0) that lands on a visited pixel, the partner's final value: follow it
    step = dy * w + dx
    ty, tx = dy.add_(ys), dx.add_(xs)
    cont = ((step > 0) & (ty >= lo) & (ty <= hi_y) & (tx >= lo) & (tx <= hi_x)).logical_and_(vis).reshape(-1)
    ident = torch.arange(n * h * w, device=dev, dtype=torch.int32)
    nxt = step.to(torch.int32).mul_(vis).reshape(-1).add_(ident)  # unvisited pixels keep their own value
    src = nxt.clone()
    act = torch.nonzero(cont).squeeze(1)
    q = nxt.index_select(0, act)
    while act.numel():
        hop = nxt.index_select(0, q)
        src.index_copy_(0, act, hop)  # final for chains that stop here, rewritten for the others
        keep = torch.nonzero(cont.index_select(0, q)).squeeze(1)
        act, q = act.index_select(0, keep), hop.index_select(0, keep)
    return src
