"""``medrobust bench corruptions``: throughput of the batched natural-image corruptions against ``imagecorruptions``.

:func:`bench_corruptions` times every corruption of :func:`medrobust.augment.corruption_names`
at severity 3 with the ImageNet table (the only one the reference implements, so both do the same
work) on a batch of real photographs (scikit-image's bundled ``astronaut``, ``chelsea``, ``coffee``
and ``rocket``, resized, flipped to fill the batch): 128 images at 32x32 and at 224x224 (``quick``:
8 images at 32x32 and 64x64). The reference is ``imagecorruptions.corrupt`` on the same images as
uint8 arrays, one image at a time (that package has no batch mode); it is timed on up to
``reference_images`` images and scaled per image. Each size ends with a ``whole suite`` row: one
pass of all 19 corruptions over the batch.

Ours is timed on uint8 batches, uint8 out (``corrupt(x_uint8, ...)``, the reference's own I/O), and
again on float batches in [0, 1] (``validate=False``: the float API without its value pass).

Rows: ``input`` ("32x32"), ``method``, ``seconds`` (ours, uint8, per batch), ``images_per_s`` (ours,
uint8), ``float_images_per_s`` (ours, float), ``reference_images_per_s`` and ``speedup`` (uint8 vs
the reference; None where the reference does not run). ``medrobust bench corruptions --compete 1``
runs the same with one busy process sharing the cores.

Run ``medrobust bench corruptions [--quick] [--device cuda]``.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import torch

from .common import timeit

__all__ = ["bench_corruptions", "photo_batch"]


def photo_batch(n: int, size: int) -> np.ndarray:
    """``(n, size, size, 3)`` uint8 photographs from scikit-image's bundled samples (no download)."""
    import skimage.data
    from PIL import Image

    base = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee(), skimage.data.rocket()]
    imgs = [np.asarray(Image.fromarray(im).convert("RGB").resize((size, size), Image.BILINEAR)) for im in base]
    out = []
    for i in range(n):
        im = imgs[i % len(imgs)]
        k = (i // len(imgs)) % 4
        out.append(np.ascontiguousarray(np.rot90(im, k) if k else im))
    return np.stack(out)


def _reference_seconds_per_image(imgs: np.ndarray, name: str, severity: int, repeats: int) -> float | None:
    """Median seconds per image of ``imagecorruptions.corrupt`` (None if it is missing or fails)."""
    try:
        from imagecorruptions import corrupt as ic_corrupt
    except Exception:  # pragma: no cover - the reference is a dev dependency
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ic_corrupt(imgs[0], severity, name)  # warm-up (numba compiles glass blur here)
        except Exception:
            return None
        times = []
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            for im in imgs:
                ic_corrupt(im, severity, name)
            times.append((time.perf_counter() - t0) / len(imgs))
    times.sort()
    return times[len(times) // 2]


def bench_corruptions(
    device: str = "cpu",
    repeats: int = 3,
    quick: bool = False,
    *,
    severity: int = 3,
    reference_images: int | None = None,
    names: list[str] | None = None,
    inputs: list[tuple[int, int]] | None = None,
) -> list[dict[str, Any]]:
    """Time every corruption (ours batched on ``device`` vs imagecorruptions per image on the CPU).

    Args:
        device: where our batch runs (``cpu`` or ``cuda``).
        repeats: timed runs per measurement (median reported), after one warm-up run.
        quick: small sizes (8 images at 32x32 and 64x64) for a smoke run.
        severity: the severity for every corruption (ImageNet table).
        reference_images: images the reference is timed on per corruption (default: the whole
            batch at 32x32, 24 at larger sizes), median of ``repeats`` runs; its time is scaled per image.
        names: a subset of corruption names (default: all 19).
        inputs: ``(batch, size)`` pairs to time instead of the defaults.
    """
    from ..augment import corrupt, corruption_names

    dev = torch.device(device)
    names = list(names or corruption_names("all"))
    configs = inputs or ([(8, 32), (8, 64)] if quick else [(128, 32), (128, 224)])
    rows: list[dict[str, Any]] = []
    for n, size in configs:
        imgs = photo_batch(n, size)
        x8 = torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous().to(dev)
        x = x8.float().div_(255)
        n_ref = reference_images or (n if size <= 32 else min(n, 24))
        ref_reps = 1 if quick else repeats  # median of repeats: single runs of the reference swung +-40 %
        label = f"{size}x{size}"
        total, total_f, total_ref, ref_ok = 0.0, 0.0, 0.0, True
        for name in names:
            gen = torch.Generator().manual_seed(0)
            if dev.type == "cuda":
                gen = torch.Generator(device=dev).manual_seed(0)  # noise drawn where it is used
            # uint8 in, uint8 out: the reference's I/O and what a writer or an on-the-fly evaluation feeds
            t = timeit(lambda: corrupt(x8, name, severity, generator=gen), dev, repeats=repeats)
            tf = timeit(lambda: corrupt(x, name, severity, generator=gen, validate=False), dev, repeats=repeats)
            ref = _reference_seconds_per_image(imgs[:n_ref], name, severity, ref_reps)
            row: dict[str, Any] = {"input": label, "method": name, "seconds": t, "images_per_s": n / t,
                                   "float_images_per_s": n / tf,
                                   "reference_images_per_s": None if ref is None else 1.0 / ref,
                                   "speedup": None if ref is None else ref * n / t}
            rows.append(row)
            total += t
            total_f += tf
            if ref is None:
                ref_ok = False
            else:
                total_ref += ref
        rows.append({"input": label, "method": "whole suite", "seconds": total, "images_per_s": n / total,
                     "float_images_per_s": n / total_f,
                     "reference_images_per_s": 1.0 / total_ref if ref_ok else None,
                     "speedup": total_ref * n / total if ref_ok else None})
    return rows
