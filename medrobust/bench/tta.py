"""``medrobust bench tta``: DynTTA enhancement throughput at inference against the frozen model's
forward pass (the cost the enhancement adds in front of it)."""

from __future__ import annotations

from typing import Any

import torch

from .common import timeit

__all__ = ["bench_tta", "tta_rows_at_size"]


def bench_tta(device: str = "cpu", repeats: int = 3, quick: bool = False) -> list[dict[str, Any]]:
    """Images/s at batch 64 (``quick``: 8) of, per input size: the frozen classifier alone (ResNet-50 at
    224², the paper's CUB set-up; ResNet-18 with the CIFAR stem at 32²), the DynTTA enhancer alone (50
    ops, small and ResNet-18 predictors; the 38 FFT filters as one blended filter) and enhancer + model.
    ``overhead``: the time of enhancer + model over the model alone, minus 1. The naive peer of the
    FFT blend (38 separate filters, then the weighted sum) is timed beside it."""
    dev = torch.device(device)
    n = 8 if quick else 64
    sizes = [(32, "resnet18"), (224, "resnet50")] if not quick else [(32, "resnet18"), (64, "resnet18")]
    rows: list[dict[str, Any]] = []
    for size, arch in sizes:
        rows += tta_rows_at_size(size, arch, n, dev, repeats)
    return rows


def tta_rows_at_size(size: int, arch: str, n: int, dev: torch.device, repeats: int,
                   predictors: tuple[str, ...] = ("small", "resnet18")) -> list[dict[str, Any]]:
    """The rows of :func:`bench_tta` for one input size ``n x 3 x size x size`` and frozen ``arch``."""
    from ..models.classifiers import create_classifier
    from ..tta import DynTTA, fft_blend, fft_masks
    from ..tta.ops import OPS, op_names

    rows: list[dict[str, Any]] = []
    torch.manual_seed(0)
    x = torch.rand(n, 3, size, size, device=dev)
    model = create_classifier(arch, 200 if size > 64 else 10, image_size=size).to(dev).eval()
    inp = f"{n}x3x{size}x{size}"
    with torch.no_grad():
        t_model = timeit(lambda: model(x), dev, repeats=repeats)
        rows.append({"input": inp, "method": f"{arch} forward (frozen model)", "seconds": t_model, "images_per_s": n / t_model})
        for pred in predictors:
            enh = DynTTA(3, "all", pred, image_size=size).to(dev).eval()
            t_enh = timeit(lambda: enh(x), dev, repeats=repeats)
            t_both = timeit(lambda: model(enh(x)), dev, repeats=repeats)
            rows.append({"input": inp, "method": f"DynTTA ({pred} predictor), 50 ops", "seconds": t_enh,
                         "images_per_s": n / t_enh})
            rows.append({"input": inp, "method": f"DynTTA ({pred}) + {arch}", "seconds": t_both, "images_per_s": n / t_both,
                         "overhead": t_both / t_model - 1})
        ops = [OPS[k] for k in op_names(3) if OPS[k].radius is not None]
        masks = fft_masks(ops, (size, size), device=dev)
        w = torch.softmax(torch.rand(n, len(ops), device=dev), 1)
        t_one = timeit(lambda: fft_blend(x, w, masks), dev, repeats=repeats)

        def naive() -> torch.Tensor:
            spec = torch.fft.rfft2(x)
            return sum(w[:, k].view(-1, 1, 1, 1) * torch.fft.irfft2(spec * masks[k], s=(size, size))
                       for k in range(len(ops)))

        t_naive = timeit(naive, dev, repeats=repeats)
        rows.append({"input": inp, "method": "38 FFT filters, blended mask (ours)", "seconds": t_one,
                     "images_per_s": n / t_one, "speedup_vs_naive": t_naive / t_one})
        rows.append({"input": inp, "method": "38 FFT filters, one by one (naive)", "seconds": t_naive,
                     "images_per_s": n / t_naive})
    return rows
