"""Small image ops with OpenCV semantics for the spatter corruption, batched: 3x3 correlation, box
blur, Canny edges, dilation, the 5x5 chamfer distance, histogram equalisation (torch, for every
device); and the same chain through OpenCV itself for one plane on the CPU (:func:`water_distance_cv2`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["correlate3x3", "box3", "canny", "dilate3x3", "distance_to_edges", "equalize_hist", "EMBOSS",
           "water_distance_cv2"]

#: spatter's emboss kernel (``cv2.filter2D``, correlation)
EMBOSS: tuple[tuple[int, ...], ...] = ((-2, -1, 0), (-1, 1, 1), (0, 1, 2))
_EMBOSS_NP = np.asarray(EMBOSS, dtype=np.float32)


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
    # grows by one pixel ring per step; stops at the fixed point. The check costs a host sync on an
    # accelerator, so there it runs once every 16 steps (extra steps past the fixed point change nothing)
    every = 1 if edges.device.type == "cpu" else 16
    for step in range(h * w):
        new = dilate3x3(edges).logical_and_(cand)
        if (step + 1) % every == 0 and bool(torch.equal(new, edges)):
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


def distance_to_edges(edges: torch.Tensor, limit: int, method: str = "auto") -> torch.Tensor:
    """``min(cv2.distanceTransform(255 - 255 * edges, DIST_L2, 5), limit)`` for a batch ``(B, H, W)``.

    OpenCV's 5x5 chamfer distance: steps of 1 (axial), 1.4 (diagonal) and 2.1969 (knight), a
    forward raster pass (top-left to bottom-right) and a backward one. Each pass loops over the
    rows; the dependency along a row (``d[j] = min(c[j], d[j-1] + 1)``) is a prefix minimum, so every
    row is a handful of batched tensor ops. Computed in float64 with OpenCV's float32 constants:
    OpenCV accumulates in float32, so the two differ by a few float32 ulps (< 1e-5).
    """
    if method == "auto":
        method = "rows" if edges.device.type == "cpu" else "relax"
    if method == "relax":
        return _distance_relax(edges, limit)
    if method != "rows":
        raise ValueError(f"method: expected 'auto', 'rows' or 'relax', got {method!r}")
    b, h, w = edges.shape
    dev = edges.device
    hv, diag, long_ = _CHAMFER
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


#: OpenCV's 5x5 chamfer steps (axial, diagonal, knight), its float32 constants
_CHAMFER = (1.0, float(np.float32(1.4)), float(np.float32(2.1969)))
_CHAMFER_STEPS = ([((0, 1), 0), ((0, -1), 0), ((1, 0), 0), ((-1, 0), 0)]
                  + [((dy, dx), 1) for dy in (-1, 1) for dx in (-1, 1)]
                  + [((dy, dx), 2) for dy, dx in ((1, 2), (1, -2), (-1, 2), (-1, -2), (2, 1), (2, -1), (-2, 1), (-2, -1))])


def _distance_relax(edges: torch.Tensor, limit: int) -> torch.Tensor:
    """The capped 5x5 chamfer distance by parallel relaxation: ``d <- min(d, d(p + o) + w_o)`` over
    the 16 chamfer steps, on every pixel at once. The raster passes give the shortest chamfer path
    to an edge; every step weighs >= 1, so a path of length <= ``limit`` has <= ``limit`` steps
    and ``limit + 1`` rounds reach every distance under the cap (longer ones only need to stay
    above it). Outside the image counts as no edge, as in :func:`distance_to_edges`."""
    b, h, w = edges.shape
    big = float(limit) + 1e3
    d = torch.where(edges, torch.zeros((), dtype=torch.float64, device=edges.device),
                    torch.full((), big, dtype=torch.float64, device=edges.device))
    for _ in range(int(math.ceil(limit)) + 1):
        p = F.pad(d.unsqueeze(1), (2, 2, 2, 2), value=big).squeeze(1)
        new = d.clone()
        for (dy, dx), k in _CHAMFER_STEPS:
            torch.minimum(new, p[:, 2 + dy : 2 + dy + h, 2 + dx : 2 + dx + w] + _CHAMFER[k], out=new)
        d = new
    return d.clamp_(max=float(limit)).to(torch.float32)


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


def water_distance_cv2(cv2: Any, l8: np.ndarray, out: np.ndarray) -> None:
    """The published water-spatter chain on one ``(H, W)`` uint8 liquid plane, through OpenCV:
    ``255 - Canny(l8, 50, 150)``, ``distanceTransform(DIST_L2, 5)``, truncated at 20, 3x3 blur
    truncated to uint8, ``equalizeHist``, the emboss ``filter2D`` saturated to uint8, 3x3 blur
    (uint8); written to ``out`` (``(H, W)`` float32). The torch ops above compute the same for a
    batch on any device (:meth:`~.weather.NaturalSpatter.water_finish`)."""
    d = cv2.distanceTransform(255 - cv2.Canny(l8, 50, 150), cv2.DIST_L2, 5)
    _, d = cv2.threshold(d, 20, 20, cv2.THRESH_TRUNC)
    d = cv2.equalizeHist(cv2.blur(d, (3, 3)).astype(np.uint8))
    out[...] = cv2.blur(cv2.filter2D(d, cv2.CV_8U, _EMBOSS_NP), (3, 3))
