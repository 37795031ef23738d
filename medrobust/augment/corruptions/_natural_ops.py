"""Batched building blocks of the natural-image corruptions (internal to :mod:`.natural`).

Everything here works on ``(N, C, H, W)`` tensors on any device; small constant operators
(1D filter matrices, kernel spectra, resampling matrices) are built once in float64 NumPy and
cached per ``(device, dtype)``. Boundary modes follow the names of the libraries the published
corruption code called:

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
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

# ------------------------------------------------------------------------------------------------
# boundary folding and 1D filter matrices


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
def _filter_matrix_np(n: int, weights: tuple[float, ...], mode: str) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    r = len(w) // 2
    cols = fold_index(n, (np.arange(n)[:, None] + np.arange(-r, r + 1)[None, :]).ravel(), mode)
    rows = np.repeat(np.arange(n), len(w))
    m = np.zeros((n, n))
    np.add.at(m, (rows, cols), np.tile(w, n))
    return m


@functools.lru_cache(maxsize=512)
def filter_matrix(n: int, weights: tuple[float, ...], mode: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(n, n)`` matrix ``M`` of the 1D correlation ``y[i] = sum_k w[k] x[fold(i + k - r)]``."""
    return torch.as_tensor(_filter_matrix_np(n, weights, mode), dtype=dtype, device=device)


@functools.lru_cache(maxsize=256)
def gaussian_weights(sigma: float, truncate: float = 4.0) -> tuple[float, ...]:
    """scipy.ndimage's sampled Gaussian: radius ``int(truncate * sigma + 0.5)``, normalised."""
    if sigma < 1e-15:
        return (1.0,)
    r = int(truncate * float(sigma) + 0.5)
    t = np.arange(-r, r + 1, dtype=np.float64)
    w = np.exp(-0.5 / (sigma * sigma) * t * t)
    return tuple((w / w.sum()).tolist())


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
    chunks on the CPU."""

    def one(xb: torch.Tensor) -> torch.Tensor:
        t = filter_rows(xb.transpose(-1, -2), tuple(weights_w), mode)  # (..., W, H)
        return filter_rows(t.transpose(-1, -2), tuple(weights_h), mode)

    if x.ndim < 3 or chunk_size(x) >= x.shape[0]:
        return one(x)
    return chunked(x, lambda xb, out, i: out.copy_(one(xb)))


def gaussian_blur(x: torch.Tensor, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> torch.Tensor:
    """``skimage.filters.gaussian`` / ``scipy.ndimage.gaussian_filter`` over the last two dims."""
    wts = gaussian_weights(float(sigma), truncate)
    if len(wts) == 1:
        return x.clone()
    return separable_filter(x, wts, wts, mode)


# ------------------------------------------------------------------------------------------------
# per-sample severity groups


def severity_groups(sev: torch.Tensor):
    """Yield ``(s, index)`` per distinct severity; ``index`` is None when the whole batch shares it."""
    values = torch.unique(sev).tolist()
    if len(values) == 1:
        yield int(values[0]), None
        return
    for s in values:
        yield int(s), torch.nonzero(sev == s).squeeze(1)


def run_grouped(x: torch.Tensor, sev: torch.Tensor, fn) -> torch.Tensor:
    """``fn(x_g, s, index)`` per severity group, results written back in batch order."""
    out = None
    for s, idx in severity_groups(sev):
        if idx is None:
            return fn(x, s, None)
        y = fn(x.index_select(0, idx), s, idx)
        if out is None:
            out = torch.empty((x.shape[0], *y.shape[1:]), dtype=y.dtype, device=y.device)
        out.index_copy_(0, idx, y)
    assert out is not None
    return out


#: bytes of input per chunk for cache-blocked CPU kernels (L2-to-L3 sized: the intermediates of a
#: few 224x224 images stay in cache instead of streaming the whole batch through memory per op)
CPU_CHUNK_BYTES = 2 << 20


def chunk_size(x: torch.Tensor, chunk_bytes: int = CPU_CHUNK_BYTES) -> int:
    """Samples per cache-sized chunk on the CPU (the whole batch on an accelerator)."""
    if x.device.type != "cpu":
        return max(1, x.shape[0])
    per = max(1, x[0].numel() * x.element_size())
    return max(1, min(x.shape[0], chunk_bytes // per))


def chunked(x: torch.Tensor, fn, chunk_bytes: int = CPU_CHUNK_BYTES) -> torch.Tensor:
    """``fn(x[i:j], out[i:j], i)`` over cache-sized batch chunks; ``fn`` fills its ``out`` slice.

    A loop over blocks of samples, not over samples: the intermediates of a multi-pass kernel stay
    in cache (measured 1.5-3x on the 2-core CPU for 224x224 batches); on an accelerator it is a
    single call over the whole batch.
    """
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    step = chunk_size(x, chunk_bytes)
    for i in range(0, x.shape[0], step):
        fn(x[i:i + step], out[i:i + step], i)
    return out


def take(t: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
    """Rows ``idx`` of a per-sample parameter (all rows when ``idx`` is None), on ``idx``'s device."""
    if idx is None:
        return t
    return t.to(idx.device).index_select(0, idx)


# ------------------------------------------------------------------------------------------------
# FFT correlation (defocus, motion blur)

_FAST = sorted({2**a * 3**b * 5**c for a in range(13) for b in range(8) for c in range(6) if 2**a * 3**b * 5**c <= 8192})


def fast_size(n: int) -> int:
    """Smallest 5-smooth FFT size >= n (fast on pocketfft and cuFFT)."""
    for s in _FAST:
        if s >= n:
            return s
    return n


def pad_index(n: int, r: int, mode: str, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(fold_index(n, np.arange(-r, n + r), mode), device=device)


def fft_correlate(x: torch.Tensor, spectrum_fn, radius: int, mode: str) -> torch.Tensor:
    """Correlate every image with a kernel of radius ``<= radius`` through the FFT.

    ``x`` is padded by ``radius`` with ``mode`` (so the result equals a direct correlation with
    that boundary, no circular wrap), transformed once, multiplied by ``spectrum_fn(L1, L2)``
    (an rfft2 spectrum broadcastable to ``(N, C, L1, L2 // 2 + 1)``, see :func:`kernel_image`)
    and transformed back. Returns ``(N, C, H, W)``.
    """
    h, w = x.shape[-2:]
    iy = pad_index(h, radius, mode, x.device)
    ix = pad_index(w, radius, mode, x.device)
    l1, l2 = fast_size(h + 2 * radius), fast_size(w + 2 * radius)
    kspec = spectrum_fn(l1, l2)
    per_sample = kspec.ndim == 4 and kspec.shape[0] > 1

    def block(xb: torch.Tensor, out: torch.Tensor, i: int) -> None:
        xp = xb.index_select(-2, iy).index_select(-1, ix)
        spec = torch.fft.rfft2(xp, s=(l1, l2))
        del xp
        spec.mul_(kspec[i:i + xb.shape[0]] if per_sample else kspec)
        y = torch.fft.irfft2(spec, s=(l1, l2))
        out.copy_(y[..., radius : radius + h, radius : radius + w])

    return chunked(x, block)


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
# plasma fractal (diamond-square), batched


def plasma_uniform_count(mapsize: int) -> int:
    return mapsize * mapsize - 1


def plasma_fractal(u: torch.Tensor, mapsize: int, decay: torch.Tensor) -> torch.Tensor:
    """The published diamond-square ``plasma_fractal`` for a batch, from pre-drawn uniforms.

    ``u``: ``(N, mapsize**2 - 1)`` in [0, 1) (consumed level by level: squares, then the two
    diamond sets, as the NumPy code draws them); ``decay``: ``(N,)`` wibble decay. Each filled
    value is ``mean / 4 + wibble * U(-wibble, wibble)`` with ``wibble = 100 / decay**level``.
    Returns ``(N, mapsize, mapsize)`` normalised to [0, 1] per sample.
    """
    n = u.shape[0]
    dt = torch.float32 if u.dtype != torch.float64 else torch.float64
    a = torch.zeros(n, mapsize, mapsize, dtype=dt, device=u.device)
    wibble = torch.full((n, 1, 1), 100.0, dtype=dt, device=u.device)
    decay = decay.to(device=u.device, dtype=dt).reshape(n, 1, 1)
    step = mapsize
    pos = 0

    def noise(shape: tuple[int, int]) -> torch.Tensor:
        nonlocal pos
        k = shape[0] * shape[1]
        v = u[:, pos : pos + k].to(dt).reshape(n, *shape)
        pos += k
        return wibble * wibble * (2 * v - 1)

    while step >= 2:
        half = step // 2
        corner = a[:, 0::step, 0::step]
        acc = corner + torch.roll(corner, shifts=-1, dims=1)
        acc = acc + torch.roll(acc, shifts=-1, dims=2)
        a[:, half::step, half::step] = acc / 4 + noise(tuple(acc.shape[1:]))
        dr = a[:, half::step, half::step]
        ul = a[:, 0::step, 0::step]
        lt = dr + torch.roll(dr, 1, dims=1) + ul + torch.roll(ul, -1, dims=2)
        a[:, 0::step, half::step] = lt / 4 + noise(tuple(lt.shape[1:]))
        tt = dr + torch.roll(dr, 1, dims=2) + ul + torch.roll(ul, -1, dims=1)
        a[:, half::step, 0::step] = tt / 4 + noise(tuple(tt.shape[1:]))
        step //= 2
        wibble = wibble / decay
    flat = a.reshape(n, -1)
    lo = flat.amin(dim=1, keepdim=True)
    flat = flat - lo
    hi = flat.amax(dim=1, keepdim=True).clamp_min(1e-12)
    return (flat / hi).reshape(n, mapsize, mapsize)


def next_power_of_2(v: int) -> int:
    return 1 if v <= 1 else 2 ** (v - 1).bit_length()


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


# ------------------------------------------------------------------------------------------------
# Poisson sampling by inversion (shot noise)


_POISSON_LMAX, _POISSON_STEP, _POISSON_K, _POISSON_M = 64, 1.0 / 128, 160, 256


@functools.lru_cache(maxsize=8)
def _poisson_tables(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """CDF table ``F[j, k] = P(Poisson(j * step) <= k)`` (rates 0 .. 64 + step, counts 0 .. 159)
    and guide table ``G[j, m] = min{k : F[j, k] >= m / 256}`` (the quantile at ``u = m / 256``)."""
    lam = np.arange(int(_POISSON_LMAX / _POISSON_STEP) + 2) * _POISSON_STEP
    pmf = np.exp(-lam)
    cols = [pmf.copy()]
    for k in range(1, _POISSON_K):
        pmf = pmf * lam / k
        cols.append(cols[-1] + pmf)
    cdf = np.minimum(np.stack(cols, 1), 1.0)
    grid = np.arange(_POISSON_M + 1) / _POISSON_M
    guide = np.stack([np.searchsorted(row, grid, side="left") for row in cdf]).clip(max=_POISSON_K - 1)
    return (torch.as_tensor(cdf, dtype=torch.float32, device=device).reshape(-1),
            torch.as_tensor(guide, dtype=torch.int32, device=device).reshape(-1))


def poisson_quantile(lam: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Poisson(``lam``) counts as the quantile at ``u = Phi(z)`` of a standard normal ``z``.

    Rates below 64: the exact quantile ``min{k : F(k; lam) >= u}``, up to the linear
    interpolation in ``lam`` of a precomputed CDF table (step 1/128, |error| < 1e-5: at most
    ~1e-5 of the draws can land one count off). A guide table of the quantiles on a grid of
    ``(lam, u)`` brackets it (the quantile grows with both); ~10 % of the draws, where the bracket
    is not a single count, compare ``u`` with the CDF inside it. Rates of 64 and more: the
    Cornish-Fisher quantile ``floor(lam + sqrt(lam) z + (z^2 - 1) / 6 + 1/2)`` (total-variation
    distance to the Poisson law < 0.05 %). The same ``z`` at a larger ``lam`` gives a larger
    count, so a fixed seed is monotone in the rate.
    """
    shape, dt = lam.shape, lam.dtype
    lam = lam.reshape(-1).float()
    z = z.reshape(-1).float()
    small = lam < _POISSON_LMAX
    every = bool(small.all())
    if every:
        k = torch.empty_like(lam)
    else:
        k = torch.sqrt(lam).mul_(z).add_(lam)
        k.addcmul_(z, z, value=1.0 / 6).add_(0.5 - 1.0 / 6).floor_().clamp_(min=0)
    idx = None if every else torch.nonzero(small).squeeze(1)
    if idx is None or idx.numel():
        cdf, guide = _poisson_tables(lam.device)
        width, kk = _POISSON_M + 1, _POISSON_K
        ls = lam if idx is None else lam[idx]
        # below 1 (float32 rounds Phi(z) to 1 from z ~ 5.4): u = 1 would index past the guide table's row
        u = torch.special.ndtr(z if idx is None else z[idx]).clamp_(max=1.0 - 2.0**-24)
        jf = ls * (1.0 / _POISSON_STEP)
        j = jf.floor()
        t = jf.sub_(j)
        cell = torch.floor(u * _POISSON_M).mul_(1).add_(j * width).long()  # G[j, floor(u M)]
        lo = guide.take(cell)
        hi = guide.take(cell.add_(width + 1))  # G[j + 1, floor(u M) + 1]
        ks = lo.float()
        amb = torch.nonzero(lo != hi).squeeze(1)
        if amb.numel():  # count the CDF values below u inside the bracket
            cur, top = lo.index_select(0, amb).long(), hi.index_select(0, amb).long()
            base = j.index_select(0, amb).long() * kk
            ta, ua = t.index_select(0, amb), u.index_select(0, amb)

            def below(k_at: torch.Tensor, top_: torch.Tensor, base_: torch.Tensor, t_: torch.Tensor,
                      u_: torch.Tensor) -> torch.Tensor:
                q = k_at.clamp(max=kk - 1) + base_
                return (k_at < top_) & (torch.lerp(cdf.take(q), cdf.take(q + kk), t_) < u_)

            # the interpolated CDF grows with k, so "F(k) < u" holds on a prefix of the bracket: the
            # first few counts run on every ambiguous draw at once (most brackets are 1-2 wide) ...
            head = min(4, int((top - cur).max()))
            res = cur.clone()
            last = None
            for step in range(head):
                last = below(cur + step, top, base, ta, ua)
                res += last
            # ... and the rare wide brackets (the upper tail) go on one count at a time, compacted
            if last is not None:
                rest = torch.nonzero(last & (top - cur > head)).squeeze(1)
                r_cur, r_top, r_base = res.index_select(0, rest), top.index_select(0, rest), base.index_select(0, rest)
                r_t, r_u = ta.index_select(0, rest), ua.index_select(0, rest)
                while rest.numel():
                    go = below(r_cur, r_top, r_base, r_t, r_u)
                    r_cur = r_cur + go
                    stop = torch.nonzero(~go).squeeze(1)
                    res.index_copy_(0, rest.index_select(0, stop), r_cur.index_select(0, stop))
                    keep = torch.nonzero(go).squeeze(1)
                    rest, r_cur, r_top, r_base, r_t, r_u = (v.index_select(0, keep) for v in (rest, r_cur, r_top, r_base, r_t, r_u))
            ks.index_copy_(0, amb, res.to(ks.dtype))
        if idx is None:
            k = ks
        else:
            k[idx] = ks
    return k.reshape(shape).to(dt)


# ------------------------------------------------------------------------------------------------
# small image ops for spatter (OpenCV semantics)


def _shift2d(x: torch.Tensor, dy: int, dx: int, mode: str) -> torch.Tensor:
    """``out[..., y, x] = x[..., fold(y + dy), fold(x + dx)]``."""
    h, w = x.shape[-2:]
    iy = torch.as_tensor(fold_index(h, np.arange(h) + dy, mode), device=x.device)
    ix = torch.as_tensor(fold_index(w, np.arange(w) + dx, mode), device=x.device)
    return x[..., iy[:, None], ix[None, :]]


def correlate3x3(x: torch.Tensor, kernel: Sequence[Sequence[float]], mode: str) -> torch.Tensor:
    """3x3 correlation with a boundary mode (``x`` is ``(B, H, W)``, ``H, W >= 2``)."""
    h, w = x.shape[-2:]
    pad_mode = {"nearest": "replicate", "mirror": "reflect"}[mode]  # torch's reflect excludes the edge
    xp = F.pad(x.unsqueeze(1), (1, 1, 1, 1), mode=pad_mode).squeeze(1)
    out = torch.zeros_like(x)
    for a in range(3):
        for b in range(3):
            k = float(kernel[a][b])
            if k != 0.0:
                out.add_(xp[..., a : a + h, b : b + w], alpha=k)
    return out


def box3(x: torch.Tensor) -> torch.Tensor:
    """``cv2.blur(x, (3, 3))`` (normalised box, BORDER_REFLECT_101), float result."""
    return correlate3x3(x, [[1.0] * 3] * 3, "mirror") / 9.0


def canny(img: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """``cv2.Canny(img, low, high)`` (aperture 3, L1 gradient) for a batch ``(B, H, W)`` of
    uint8-valued floats; returns a bool edge map.

    Sobel with replicated borders, L1 magnitude, OpenCV's non-maximum suppression (sector test
    with tan(22.5 deg) in 15-bit fixed point; strict ``>`` towards the previous neighbour and ``>=``
    towards the next one, both strict on diagonals; zero magnitude outside the image), then
    hysteresis: weak pixels (``> low``) 8-connected to strong ones (``> high``) are kept.
    """
    x = img.to(torch.float32)
    gx = correlate3x3(x, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], "nearest")
    gy = correlate3x3(x, [[-1, -2, -1], [0, 0, 0], [1, 2, 1]], "nearest")
    mag = gx.abs() + gy.abs()
    lo, hi = math.floor(low), math.floor(high)
    mp = F.pad(mag, (1, 1, 1, 1))  # zero magnitude outside
    h, w = mag.shape[-2:]

    def nb(dy: int, dx: int) -> torch.Tensor:
        return mp[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    ax = gx.abs().to(torch.int32)
    ay = gy.abs().to(torch.int32) << 15
    tg22x = ax * 13573
    tg67x = tg22x + (ax << 16)
    horiz = ay < tg22x
    vert = (~horiz) & (ay > tg67x)
    diag = (~horiz) & (~vert)
    s_neg = (gx < 0) != (gy < 0)  # (xs ^ ys) < 0: s = -1
    keep_h = (mag > nb(0, -1)) & (mag >= nb(0, 1))
    keep_v = (mag > nb(-1, 0)) & (mag >= nb(1, 0))
    keep_d_pos = (mag > nb(-1, -1)) & (mag > nb(1, 1))  # s = +1: prev row j-1, next row j+1
    keep_d_neg = (mag > nb(-1, 1)) & (mag > nb(1, -1))  # s = -1: prev row j+1, next row j-1
    keep_d = torch.where(s_neg, keep_d_neg, keep_d_pos)
    cand = (mag > lo) & ((horiz & keep_h) | (vert & keep_v) | (diag & keep_d))
    strong = cand & (mag > hi)
    edges = strong
    for _ in range(h * w):  # grows by one pixel ring per step; stops at the fixed point
        new = dilate3x3(edges).logical_and_(cand)
        if bool(torch.equal(new, edges)):
            break
        edges = new
    return edges


def dilate3x3(mask: torch.Tensor) -> torch.Tensor:
    """8-connected one-pixel dilation of a bool ``(..., H, W)`` mask (zero outside), as shifted ORs
    on bytes (a 3x3 max pool on floats is ~10x slower on the CPU)."""
    rows = mask.clone()
    rows[..., :, 1:] |= mask[..., :, :-1]
    rows[..., :, :-1] |= mask[..., :, 1:]
    out = rows.clone()
    out[..., 1:, :] |= rows[..., :-1, :]
    out[..., :-1, :] |= rows[..., 1:, :]
    return out


def distance_to_edges(edges: torch.Tensor, limit: int) -> torch.Tensor:
    """``min(cv2.distanceTransform(255 - 255 * edges, DIST_L2, 5), limit)`` for a batch ``(B, H, W)``.

    OpenCV's 5x5 chamfer distance: steps of 1 (axial), 1.4 (diagonal) and 2.1969 (knight), a
    forward raster pass (top-left to bottom-right) and a backward one. Each pass loops over the
    rows; the dependency along a row (``d[j] = min(c[j], d[j-1] + 1)``) is a prefix minimum, so every
    row is a handful of batched tensor ops. Computed in float64 with OpenCV's float32 constants:
    OpenCV accumulates in float32, so the two differ by a few float32 ulps (< 1e-5).
    """
    b, h, w = edges.shape
    dev = edges.device
    hv, diag, long_ = 1.0, float(np.float32(1.4)), float(np.float32(2.1969))
    init = 1e9
    t = torch.full((b, h + 4, w + 4), init, dtype=torch.float64, device=dev)
    ramp = torch.arange(w, device=dev, dtype=torch.float64) * hv
    zero = torch.zeros((), dtype=torch.float64, device=dev)
    c = slice(2, w + 2)

    def sh(row: torch.Tensor, dx: int) -> torch.Tensor:
        return row[:, 2 + dx : w + 2 + dx]

    for i in range(h):
        r = i + 2
        u2, u1 = t[:, r - 2], t[:, r - 1]
        cand = torch.minimum(sh(u2, -1), sh(u2, 1)) + long_
        cand = torch.minimum(cand, torch.minimum(sh(u1, -2), sh(u1, 2)) + long_)
        cand = torch.minimum(cand, torch.minimum(sh(u1, -1), sh(u1, 1)) + diag)
        cand = torch.minimum(cand, sh(u1, 0) + hv)
        cand = torch.where(edges[:, i], zero, cand)
        t[:, r, c] = torch.cummin(cand - ramp, dim=1).values + ramp
    for i in range(h - 1, -1, -1):
        r = i + 2
        d1, d2 = t[:, r + 1], t[:, r + 2]
        cand = torch.minimum(t[:, r, c], torch.minimum(sh(d2, -1), sh(d2, 1)) + long_)
        cand = torch.minimum(cand, torch.minimum(sh(d1, -2), sh(d1, 2)) + long_)
        cand = torch.minimum(cand, torch.minimum(sh(d1, -1), sh(d1, 1)) + diag)
        cand = torch.minimum(cand, sh(d1, 0) + hv)
        t[:, r, c] = torch.flip(torch.cummin(torch.flip(cand + ramp, dims=(1,)), dim=1).values, dims=(1,)) - ramp
    return t[:, 2 : h + 2, c].clamp_(max=float(limit)).to(torch.float32)


def equalize_hist(img: torch.Tensor) -> torch.Tensor:
    """``cv2.equalizeHist`` for a batch ``(B, H, W)`` of integer-valued floats in [0, 255]."""
    b = img.shape[0]
    v = img.reshape(b, -1).to(torch.int64)
    total = v.shape[1]
    hist = torch.zeros(b, 256, dtype=torch.int64, device=img.device)
    hist.scatter_add_(1, v, torch.ones_like(v))
    first = (hist > 0).to(torch.int64).argmax(dim=1, keepdim=True)  # first non-empty bin
    h_first = hist.gather(1, first)
    cum = torch.cumsum(hist, dim=1)
    scale = 255.0 / (total - h_first).clamp_min(1).to(torch.float32)
    bins = torch.arange(256, device=img.device)[None, :]
    lut = torch.round((cum - h_first).to(torch.float32) * scale).clamp_(0, 255)
    lut = torch.where(bins <= first, torch.zeros_like(lut), lut)
    # an image with a single value maps to that value
    single = (h_first == total)
    lut = torch.where(single, first.to(lut.dtype).expand_as(lut), lut)
    return lut.gather(1, v).reshape(img.shape).to(img.dtype)
