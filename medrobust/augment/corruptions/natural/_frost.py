"""Procedural frost textures for the ``frost`` corruption (internal to :mod:`.natural`).

The published corruption blends the image with a random crop of one of five photographs of frost
(``frost1.png`` ... ``frost5.jpg``; ``frost6.jpg`` is shipped but never drawn, and ``frost2`` and
``frost3`` are the same picture). Those photographs are not redistributed here. Instead, five
textures of the same sizes are generated procedurally, once per process (fixed seeds, float32
on the CPU, then cached per device/dtype), in four styles that imitate the photographs:

=====  ===========  ==========================================  ========================
index  size (HxW)   style                                       RGB mean / std (target)
=====  ===========  ==========================================  ========================
0      600 x 900    crumpled teal ice (ridged multi-scale noise) .305 .585 .650 / .106 .065 .060
1      315 x 560    dense white needles                          .787 .805 .841 / .084 .087 .089
2      315 x 560    dense white needles (second seed)            .787 .805 .841 / .084 .087 .089
3      350 x 527    grey crystals, short strokes                 .540 .599 .648 / .112 .112 .117
4      495 x 660    grey dendrites (stems with side branches)    .441 .484 .528 / .174 .170 .163
=====  ===========  ==========================================  ========================

Each texture's per-channel mean and standard deviation are set to the values measured on the
corresponding photograph (the table above), so the corruption's first- and second-order effect
on an image matches the published one; the fine structure is only an imitation.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from ...functional.filters import gaussian_filter

#: (height, width, style, RGB mean, RGB std) of the five textures
SPECS: tuple[tuple[int, int, str, tuple[float, float, float], tuple[float, float, float]], ...] = (
    (600, 900, "crumpled", (0.305, 0.585, 0.650), (0.106, 0.065, 0.060)),
    (315, 560, "needles", (0.787, 0.805, 0.841), (0.084, 0.087, 0.089)),
    (315, 560, "needles", (0.787, 0.805, 0.841), (0.084, 0.087, 0.089)),
    (350, 527, "crystals", (0.540, 0.599, 0.648), (0.112, 0.112, 0.117)),
    (495, 660, "dendrites", (0.441, 0.484, 0.528), (0.174, 0.170, 0.163)),
)


def _splat(h: int, w: int, y: torch.Tensor, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Bilinear splat of points ``(y, x)`` with values ``v`` into an ``(h, w)`` image."""
    img = torch.zeros(h * w, dtype=torch.float32)
    y0, x0 = torch.floor(y), torch.floor(x)
    fy, fx = y - y0, x - x0
    for dy, dx, wt in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yy, xx = y0.long() + dy, x0.long() + dx
        ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        img.scatter_add_(0, (yy * w + xx)[ok], (v * wt)[ok])
    return img.reshape(h, w)


def _segments(h, w, cy, cx, angle, length, value, spacing=0.5) -> torch.Tensor:
    """Render line segments (centre, angle, length, value) by splatting points every ``spacing``."""
    steps = int(math.ceil(float(length.max()) / spacing)) + 1
    t = torch.linspace(-0.5, 0.5, steps)[None, :] * length[:, None]
    y = cy[:, None] + t * torch.sin(angle)[:, None]
    x = cx[:, None] + t * torch.cos(angle)[:, None]
    inside = (t.abs() <= length[:, None] / 2)
    vals = (value[:, None] * spacing).expand_as(t) * inside
    return _splat(h, w, y.reshape(-1), x.reshape(-1), vals.reshape(-1))


def _noise(h: int, w: int, sigma: float, g: torch.Generator) -> torch.Tensor:
    n = torch.randn(1, 1, h, w, generator=g)
    n = gaussian_filter(n, sigma, mode="reflect")[0, 0]
    return (n - n.mean()) / n.std().clamp_min(1e-8)


def _structure(h: int, w: int, style: str, g: torch.Generator) -> torch.Tensor:
    u = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    if style == "crumpled":
        out = torch.zeros(h, w)
        for sigma, amp in ((1.5, 0.5), (3.0, 0.8), (6.0, 1.0), (12.0, 0.6)):
            out += amp * (1.0 - _noise(h, w, sigma, g).abs())  # ridges along the zero crossings
        return out + 1.5 * _noise(h, w, 60.0, g)
    if style == "needles":
        m = int(h * w / 90)
        ang = u(m) * math.pi
        length = 8 + 40 * u(m) ** 2
        lines = _segments(h, w, u(m) * h, u(m) * w, ang, length, 0.6 + 0.4 * u(m))
        lines = gaussian_filter(lines[None, None], 0.6, mode="reflect")[0, 0]
        glow = gaussian_filter(lines[None, None], 3.0, mode="reflect")[0, 0]
        return lines + 0.8 * glow + 0.4 * _noise(h, w, 20.0, g)
    if style == "crystals":
        m = int(h * w / 45)
        ang = math.pi / 2 + 0.6 * (u(m) - 0.5) * math.pi  # mostly vertical, like frost4
        length = 3 + 12 * u(m) ** 2
        lines = _segments(h, w, u(m) * h, u(m) * w, ang, length, 0.5 + 0.5 * u(m))
        lines = gaussian_filter(lines[None, None], 0.7, mode="reflect")[0, 0]
        glow = gaussian_filter(lines[None, None], 2.0, mode="reflect")[0, 0]
        return lines + 0.6 * glow + 0.5 * _noise(h, w, 30.0, g)
    if style == "dendrites":
        s = int(h * w / 900)
        cy, cx = u(s) * h, u(s) * w
        ang = u(s) * 2 * math.pi
        length = 20 + 60 * u(s)
        parts = [(cy, cx, ang, length, torch.ones(s))]
        k = 10  # side branches per side and stem
        t = (torch.arange(k, dtype=torch.float32) + 0.5) / k - 0.5  # positions along the stem
        for side in (-1.0, 1.0):
            by = cy[:, None] + t[None, :] * length[:, None] * torch.sin(ang)[:, None]
            bx = cx[:, None] + t[None, :] * length[:, None] * torch.cos(ang)[:, None]
            bl = 0.35 * length[:, None] * (0.5 - t[None, :]) * (0.6 + 0.4 * u(s, k))
            ba = ang[:, None] + side * math.pi / 3
            # the branch starts on the stem: its centre is half a length away
            cyb = by + 0.5 * bl * torch.sin(ba)
            cxb = bx + 0.5 * bl * torch.cos(ba)
            parts.append((cyb.reshape(-1), cxb.reshape(-1), ba.expand_as(bl).reshape(-1), bl.reshape(-1),
                          0.7 * torch.ones(s * k)))
        lines = sum(_segments(h, w, *p) for p in parts)
        lines = gaussian_filter(lines[None, None], 0.6, mode="reflect")[0, 0]
        glow = gaussian_filter(lines[None, None], 4.0, mode="reflect")[0, 0]
        return lines + 1.2 * glow + 0.8 * _noise(h, w, 40.0, g)
    raise ValueError(style)


@functools.lru_cache(maxsize=1)
def base_textures() -> tuple[torch.Tensor, ...]:
    """The five textures, ``(3, H, W)`` float32 in [0, 1] on the CPU (generated once)."""
    out = []
    for i, (h, w, style, mean, std) in enumerate(SPECS):
        g = torch.Generator().manual_seed(20240 + i)
        s = _structure(h, w, style, g)
        s = (s - s.mean()) / s.std().clamp_min(1e-8)
        tint = 0.15 * _noise(h, w, 25.0, g)  # slight colour variation between channels
        chans = []
        for c in range(3):
            v = s + tint * (c - 1)
            v = (v - v.mean()) / v.std()
            chans.append(mean[c] + std[c] * v)
        t = torch.stack(chans)
        m_t, s_t = torch.tensor(mean)[:, None, None], torch.tensor(std)[:, None, None]
        for _ in range(4):  # clipping to [0, 1] moves the moments: re-standardise a few times
            t = t.clamp_(0.0, 1.0)
            mu, sd = t.mean(dim=(1, 2), keepdim=True), t.std(dim=(1, 2), keepdim=True).clamp_min(1e-8)
            t = m_t + (t - mu) * (s_t / sd)
        out.append(t.clamp_(0.0, 1.0).contiguous())
    return tuple(out)


@functools.lru_cache(maxsize=16)
def frost_bank(table: str, h: int, w: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Textures ready to crop ``(h, w)`` windows from: ``(5, 3, Hmax, Wmax)`` and their sizes ``(5, 2)``.

    ``cifar``: each texture shrunk by 0.2 (OpenCV's ``INTER_LINEAR`` with ``fx = fy = 0.2``), as
    make_cifar_c.py does. Any texture smaller than the image is enlarged (bicubic) by the factor
    imagecorruptions uses: ``1.1 x`` the smallest scale that makes it cover the image.
    """
    texs = []
    for t in base_textures():
        t = t[None]
        if table == "cifar":
            t = F.interpolate(t, scale_factor=0.2, mode="bilinear", align_corners=False, recompute_scale_factor=False)
        th, tw = t.shape[-2:]
        if th < h or tw < w:
            scale = 1.1 * max(h / th, w / tw, 1.0)
            size = (int(np.ceil(th * scale)), int(np.ceil(tw * scale)))
            t = F.interpolate(t, size=size, mode="bicubic", align_corners=False).clamp_(0.0, 1.0)
        texs.append(t[0])
    hm = max(t.shape[1] for t in texs)
    wm = max(t.shape[2] for t in texs)
    bank = torch.zeros(len(texs), 3, hm, wm)
    for i, t in enumerate(texs):
        bank[i, :, : t.shape[1], : t.shape[2]] = t
    sizes = torch.tensor([[t.shape[1], t.shape[2]] for t in texs])
    return bank.to(device=device, dtype=dtype), sizes.to(device)
