"""Embedded digits benchmark: scikit-learn's handwritten digits in a PACS-style domain-folder layout.

The 1797 bundled 8x8 digits (``sklearn.datasets.load_digits``, shipped inside scikit-learn, no
download) are upsampled to 32x32 strokes (bicubic to 24x24, centred with a 4-pixel border, like
MNIST's 20-in-28 framing) and rendered in five styles, one domain each::

    ROOT/<domain>/<class 0..9>/<domain>_<index>.png      RGB PNG, 32x32
    ROOT/.complete                                        settings JSON, written last

=============  =======================================================================================
``source``     white strokes on black, grey copied to 3 channels (MNIST-like source domain)
``colored``    a random stroke colour on a random background colour, luminance gap >= 0.35 (SYNTH-like)
``textured``   strokes blended into a random smooth colour texture with stripes as ``|bg − stroke|``
               (MNIST-M's blending)
``inverted``   dark strokes on a light grey background (USPS/paper-like polarity flip)
``noisy``      thickened or thinned strokes, speckled stroke intensity, Gaussian pixel noise
=============  =======================================================================================

The digits are split once (seeded, stratified by class) into a source pool (``1 − target_fraction``)
rendered only in ``source`` and a target pool rendered in every other style, so no target image
shares its handwriting with a training image. The reader splits ``source`` further into
train/val/test. Rendering is deterministic for a seed (NumPy ``default_rng`` per domain).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DIGIT_DOMAINS", "SOURCE_DOMAIN", "digit_strokes", "render_domain", "write_synthetic_digits"]

SOURCE_DOMAIN = "source"
DIGIT_DOMAINS = ("source", "colored", "textured", "inverted", "noisy")
FORMAT_VERSION = 1


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - dependency declared in the project
        raise ImportError("the embedded digits benchmark needs scikit-learn (pip install scikit-learn)") from err
    d = load_digits()
    return np.asarray(d.images, dtype=np.float32) / 16.0, np.asarray(d.target, dtype=np.int64)


def digit_strokes(size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as stroke masks ``(N, size, size)`` float32 in [0, 1] and labels ``(N,)``."""
    import torch

    if size < 12:
        raise ValueError(f"size: expected >= 12 pixels, got {size}")
    images, labels = _load_digits()
    inner = int(round(size * 0.75))
    x = torch.from_numpy(images)[:, None]
    x = torch.nn.functional.interpolate(x, size=(inner, inner), mode="bicubic", align_corners=False).clamp(0, 1)
    # crisper strokes: a smooth ramp instead of the blurry bicubic edge
    x = ((x - 0.2) / 0.55).clamp(0, 1)
    x = x * x * (3 - 2 * x)
    lo = (size - inner) // 2
    out = torch.zeros(len(images), size, size)
    out[:, lo : lo + inner, lo : lo + inner] = x[:, 0]
    return out.numpy(), labels


def _smooth_field(rng: np.random.Generator, n: int, size: int, cells: int, channels: int = 3) -> np.ndarray:
    """Random smooth fields ``(n, size, size, channels)`` in [0, 1] (bicubic-upsampled coarse noise)."""
    import torch

    coarse = torch.from_numpy(rng.random((n, channels, cells, cells), dtype=np.float32))
    f = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return f.clamp(0, 1).permute(0, 2, 3, 1).numpy()


def _luminance(c: np.ndarray) -> np.ndarray:
    return c @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _colour_pairs(rng: np.random.Generator, n: int, gap: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
    fg = rng.random((n, 3), dtype=np.float32)
    bg = rng.random((n, 3), dtype=np.float32)
    for _ in range(100):  # redraw pairs whose luminance is too close (a loop over attempts, not samples)
        bad = np.abs(_luminance(fg) - _luminance(bg)) < gap
        if not bad.any():
            break
        fg[bad] = rng.random((int(bad.sum()), 3), dtype=np.float32)
        bg[bad] = rng.random((int(bad.sum()), 3), dtype=np.float32)
    return fg, bg


def render_domain(masks: np.ndarray, domain: str, rng: np.random.Generator) -> np.ndarray:
    """Render stroke masks ``(N, S, S)`` in ``domain``'s style: ``(N, S, S, 3)`` uint8."""
    import torch

    n, size = masks.shape[0], masks.shape[1]
    m = masks[..., None].astype(np.float32)
    if domain == "source":
        rgb = np.repeat(m, 3, axis=-1)
    elif domain == "colored":
        fg, bg = _colour_pairs(rng, n)
        rgb = m * fg[:, None, None] + (1 - m) * bg[:, None, None]
    elif domain == "textured":
        field = _smooth_field(rng, n, size, cells=4)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        theta = rng.uniform(0, np.pi, n).astype(np.float32)[:, None, None]
        freq = rng.uniform(2, 6, n).astype(np.float32)[:, None, None]
        stripes = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (xx * np.cos(theta) + yy * np.sin(theta)))
        tint = rng.random((n, 1, 1, 3), dtype=np.float32)
        bg = np.clip(0.6 * field + 0.4 * stripes[..., None] * tint, 0, 1)
        rgb = np.abs(bg - m)
    elif domain == "inverted":
        dark = rng.uniform(0.0, 0.3, n).astype(np.float32)[:, None, None, None]
        light = rng.uniform(0.7, 1.0, n).astype(np.float32)[:, None, None, None]
        rgb = np.repeat(light - (light - dark) * m, 3, axis=-1)
    elif domain == "noisy":
        t = torch.from_numpy(masks[:, None].astype(np.float32))
        thick = torch.nn.functional.max_pool2d(t, 3, stride=1, padding=1)
        thin = -torch.nn.functional.max_pool2d(-t, 3, stride=1, padding=1)
        choose = torch.from_numpy(rng.integers(0, 3, n))[:, None, None, None]  # 0 thick, 1 thin, 2 as is
        s = torch.where(choose == 0, thick, torch.where(choose == 1, torch.maximum(thin, 0.6 * t), t))[:, 0].numpy()
        speckle = rng.uniform(0.35, 1.0, s.shape).astype(np.float32)
        bg = rng.uniform(0.0, 0.35, n).astype(np.float32)[:, None, None]
        grey = bg + (1 - bg) * s * speckle
        sigma = rng.uniform(0.05, 0.15, n).astype(np.float32)[:, None, None, None]
        rgb = np.repeat(grey[..., None], 3, axis=-1) + sigma * rng.standard_normal((n, size, size, 3), dtype=np.float32)
    else:
        raise ValueError(f"domain: unknown digits style {domain!r}; choose from {DIGIT_DOMAINS}")
    return np.clip(np.rint(np.clip(rgb, 0, 1) * 255), 0, 255).astype(np.uint8)


def _settings(size: int, seed: int, target_fraction: float, domains: Sequence[str]) -> dict[str, Any]:
    return {"format_version": FORMAT_VERSION, "size": size, "seed": seed, "target_fraction": target_fraction,
            "domains": list(domains), "source": "sklearn.datasets.load_digits (1797 images, 8x8)"}


def write_synthetic_digits(
    root: str | os.PathLike[str],
    *,
    size: int = 32,
    seed: int = 0,
    target_fraction: float = 1 / 3,
    domains: Sequence[str] = DIGIT_DOMAINS,
) -> dict[str, Any]:
    """Write the embedded digits benchmark under ``root`` (once; a complete copy with the same
    settings is reused, one with other settings is an error).

    Returns ``{"root", "domains": {domain: n_images}, "classes", "written"}``.
    """
    from PIL import Image

    from ...io import atomic_path, atomic_write_json

    root = Path(root)
    domains = list(domains)
    if SOURCE_DOMAIN not in domains:
        raise ValueError(f"domains: must include {SOURCE_DOMAIN!r}, got {domains}")
    unknown = [d for d in domains if d not in DIGIT_DOMAINS]
    if unknown:
        raise ValueError(f"domains: unknown {unknown}; choose from {DIGIT_DOMAINS}")
    if not 0 < target_fraction < 1:
        raise ValueError(f"target_fraction: expected a value in (0, 1), got {target_fraction}")
    settings = _settings(size, seed, float(target_fraction), domains)
    marker = root / ".complete"
    if marker.is_file():
        done = json.loads(marker.read_text(encoding="utf-8"))
        if done.get("settings") == settings:
            return {**done["summary"], "written": False}
        raise FileExistsError(f"{root}: holds embedded digits written with other settings ({marker}); use another folder")

    masks, labels = digit_strokes(size)
    # stratified source/target split of the 1797 digits
    rng = np.random.default_rng([seed, 1])
    is_target = np.zeros(len(labels), dtype=bool)
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        pick = rng.permutation(idx)[: int(round(len(idx) * target_fraction))]
        is_target[pick] = True
    counts: dict[str, int] = {}
    for k, domain in enumerate(domains):
        sel = np.flatnonzero(~is_target if domain == SOURCE_DOMAIN else is_target)
        images = render_domain(masks[sel], domain, np.random.default_rng([seed, 100 + DIGIT_DOMAINS.index(domain)]))
        for img, i in zip(images, sel):
            dest = root / domain / str(int(labels[i])) / f"{domain}_{int(i):04d}.png"
            with atomic_path(dest) as tmp:
                Image.fromarray(img, mode="RGB").save(tmp, format="PNG")
        counts[domain] = len(sel)
    summary = {"root": str(root), "domains": counts, "classes": [str(c) for c in range(10)]}
    atomic_write_json(marker, {"settings": settings, "summary": summary})
    return {**summary, "written": True}
