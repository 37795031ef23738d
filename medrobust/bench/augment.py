"""``medrobust bench augment``: throughput of the convolution cores against references.

:func:`bench_augment` times RandConv (per-sample and batch-shared), GIN and IPA on a batch of
64×3×224×224 images and 8×1×32×192×192 volumes, against two references on the same batch:

* **naive loop**: a Python loop over samples, each with its own ``conv2d``/``conv3d`` (what a
  per-sample RandConv looks like without grouped convolutions);
* **dense floor**: one dense convolution of the same kernel size over the whole batch with a single
  shared kernel — the cheapest possible random convolution, which cannot be per-sample.

Kernel sizes are fixed per row (3 and 7) so that every row of a block does the same arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from .common import timeit

__all__ = ["bench_augment"]


def _naive_loop(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Per-sample random convolution with a Python loop over samples (the slow reference)."""
    conv = F.conv2d if x.ndim == 4 else F.conv3d
    c = x.shape[1]
    dims = x.ndim - 2
    outs = []
    for i in range(x.shape[0]):
        w = torch.randn(c, c, *([k] * dims), generator=generator).to(x.device) / (c * k**dims) ** 0.5
        outs.append(conv(x[i : i + 1], w, padding=k // 2).clamp(0, 1))
    return torch.cat(outs)


def _dense_floor(x: torch.Tensor, k: int) -> torch.Tensor:
    conv = F.conv2d if x.ndim == 4 else F.conv3d
    c = x.shape[1]
    w = torch.randn(c, c, *([k] * (x.ndim - 2)), device=x.device)
    return conv(x, w, padding=k // 2)


def bench_augment(device: str = "cpu", repeats: int = 3, quick: bool = False) -> list[dict[str, Any]]:
    """Run the augmentation benchmark and return one row per (input, method)."""
    from ..augment import GIN, IPA, RandConv

    dev = torch.device(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    inputs = {
        "2d 64x3x224x224": (64, 3, 224, 224),
        "3d 8x1x32x192x192": (8, 1, 32, 192, 192),
    }
    if quick:
        inputs = {"2d 8x3x64x64": (8, 3, 64, 64), "3d 2x1x8x48x48": (2, 1, 8, 48, 48)}
    rows: list[dict[str, Any]] = []
    for label, shape in inputs.items():
        x = torch.rand(*shape, device=dev)
        n = shape[0]

        def add(method: str, fn: Callable[[], Any], k: Any = "") -> float:
            t = timeit(fn, dev, repeats=repeats)
            rows.append({"input": label, "method": method, "kernel": k, "seconds": t, "images_per_s": n / t})
            return t

        for k in (3, 7):
            floor = add("dense conv (floor)", lambda: _dense_floor(x, k), k)
            naive = add("naive per-sample loop", lambda: _naive_loop(x, k, gen), k)
            ps = RandConv(kernel_sizes=(k,))
            t_ps = add("RandConv per-sample", lambda: ps(x, gen), k)
            shared = RandConv(kernel_sizes=(k,), per_sample=False)
            add("RandConv batch-shared", lambda: shared(x, gen), k)
            rows[-2]["vs_floor"] = t_ps / floor
            rows[-2]["speedup_vs_naive"] = naive / t_ps
        mixed = RandConv(kernel_sizes=(1, 3, 5, 7), mixing=True)
        add("RandConv per-sample mixed k, RC_mix", lambda: mixed(x, gen), "1,3,5,7")
        gin = GIN()
        add("GIN", lambda: gin(x, gen), "1,3")
        ipa = IPA()
        add("IPA", lambda: ipa(x, gen), "1,3")
    return rows
