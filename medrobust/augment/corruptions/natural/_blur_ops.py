"""Batched building blocks of the blur corruptions: the published glass-blur shuffle, ImageMagick's
motion blur, the published ``clipped_zoom``."""

from __future__ import annotations

import functools
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
    ``src_1.index_select(0, src_2)`` (the second pass reads the first one's output).

    Each pixel's step is one of ``(2 delta)^2``: the step's flat offset and, for every pixel, whether
    the loop copies from a partner it visited earlier (the chain goes on) come from small tables
    per ``(delta, H, W)``, gathered by the step index, instead of a dozen passes over the batch."""
    n, h, w = u.shape
    dev = u.device
    if n * h * w >= 2**31:
        raise ValueError(f"glass blur: batch of {n}x{h}x{w} pixels is too large for int32 indices; split it")
    m2 = (2 * int(delta)) ** 2
    k = (u.float() * m2).to(torch.int32).clamp_(max=m2 - 1).view(n, h * w)  # floor: u >= 0 (as glass_steps)
    cont_tab, step_tab, vis = _glass_tables(int(delta), h, w, dev)
    # the chain goes on at p when its step is "forward" (to a pixel visited earlier) and lands on
    # a visited pixel; every visited pixel takes its partner's value, the others keep their own
    cont = cont_tab.index_select(0, torch.add(_arange_i32(h * w, dev), k, alpha=h * w).view(-1))
    ident = _arange_i32(n * h * w, dev)
    nxt = step_tab.index_select(0, k.view(-1)).view(n, h * w).mul_(vis).view(-1).add_(ident)
    src = nxt.clone()
    act = torch.nonzero(cont).squeeze(1)
    q = nxt.index_select(0, act)
    while act.numel():
        hop = nxt.index_select(0, q)
        src.index_copy_(0, act, hop)  # final for chains that stop here, rewritten for the others
        keep = torch.nonzero(cont.index_select(0, q)).squeeze(1)
        act, q = act.index_select(0, keep), hop.index_select(0, keep)
    return src


def _arange_i32(n: int, device: torch.device) -> torch.Tensor:
    return torch.arange(n, device=device, dtype=torch.int32)


@functools.lru_cache(maxsize=16)
def _glass_tables(delta: int, h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For the ``(2 delta)^2`` steps ``k`` of :func:`glass_steps`: ``cont[k * H * W + p]`` (bool: the
    loop visits ``p``, the step goes forward, ``dy * W + dx > 0``, and lands on a visited pixel),
    ``step[k] = dy * W + dx`` (int32) and ``vis[p]`` (int32 0/1, the pixels the loop visits)."""
    m = 2 * delta
    kk = torch.arange(m * m, dtype=torch.float32)
    dy, dx = glass_steps((kk + 0.5) / (m * m), delta)  # the step of each k (exact: k + 0.5 in its cell)
    ys = torch.arange(h, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(w, dtype=torch.float32).view(1, 1, w)
    lo, hi_y, hi_x = delta + 1, h - delta, w - delta

    def inside(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        return (yy >= lo) & (yy <= hi_y) & (xx >= lo) & (xx <= hi_x)

    step = dy * w + dx
    vis = inside(ys, xs)  # (1, H, W)
    cont = vis & (step.view(-1, 1, 1) > 0) & inside(ys + dy.view(-1, 1, 1), xs + dx.view(-1, 1, 1))
    return (cont.reshape(-1).to(device), step.to(torch.int32).to(device),
            vis.reshape(1, -1).to(torch.int32).to(device))
