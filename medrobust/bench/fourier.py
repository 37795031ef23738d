"""``medrobust bench fourier``: the Fourier-domain cores against the AFA repository's approach, and
dominant-frequency-map computation."""

from __future__ import annotations

import time
from typing import Any

import torch

from .common import _sync, timeit

__all__ = ["bench_fourier"]


def _afa_reference(x: torch.Tensor, generator: torch.Generator, mean_strength: float = 10.0) -> torch.Tensor:
    """The AFA repository's approach, re-implemented for timing: sample frequencies/orientations per
    (image, channel), build the ``(b, c, f, p, h, w)`` wave tensor with a per-pixel ``sin``, normalise,
    contract with the strengths by einsum, add and clamp."""
    b, c, h, w = x.shape
    grid = torch.linspace(-h / 2, h / 2, h, device=x.device)
    u, v = torch.meshgrid(grid, grid, indexing="ij")
    freqs = (torch.randint(1, h + 1, (b, c, 1, 1), generator=generator) / h).to(x.device)
    phases = (-torch.pi * torch.randint(0, 448, (b, c, 1, 1), generator=generator) / 447).to(x.device)
    strengths = (-mean_strength * torch.rand(b, c, 1, 1, generator=generator).log()).to(x.device)
    f, p = freqs[..., None, None], phases[..., None, None]
    waves = torch.sin(2 * torch.pi * f * (u * torch.cos(p) + v * torch.sin(p)) - torch.pi / 4)
    waves = waves / waves.norm(dim=(-2, -1), keepdim=True) * (h / 32)
    return torch.clamp(x + torch.einsum("bcfp,bcfphw->bchw", strengths, waves), 0, 1)


def bench_fourier(device: str = "cpu", repeats: int = 3, quick: bool = False) -> list[dict[str, Any]]:
    """FourierBasisNoise vs the AFA repository's einsum approach, amplitude mixing, band filter,
    DFM-X, and dominant-frequency-map computation (10 classes × 256 bands × 1000 images of 32×32).

    ``speedup`` = reference time / our time on the same batch.
    """
    from ..analysis.dfm import loss_maps
    from ..augment import DFMX, AmplitudeMix, BandFilter, FourierBasisNoise
    from ..augment.dfm import example_dfms

    dev = torch.device(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    rows: list[dict[str, Any]] = []
    shapes = [(128, 3, 32, 32), (64, 3, 224, 224)] if not quick else [(16, 3, 32, 32)]
    for shape in shapes:
        x = torch.rand(*shape, device=dev)
        n = shape[0]
        label = "x".join(map(str, shape))
        t_ref = timeit(lambda: _afa_reference(x, gen), dev, repeats=repeats)
        rows.append({"input": label, "method": "AFA reference (einsum waves)", "seconds": t_ref, "images_per_s": n / t_ref})
        fbn = FourierBasisNoise()
        t = timeit(lambda: fbn(x, gen), dev, repeats=repeats)
        rows.append({"input": label, "method": "FourierBasisNoise", "seconds": t, "images_per_s": n / t, "speedup": t_ref / t})
        labels = torch.randint(0, 10, (n,), device=dev)
        for name, core, kw in (("AmplitudeMix (beta 0.1)", AmplitudeMix(), {}), ("BandFilter (low)", BandFilter(), {}),
                               ("DFMX (p 0.3)", DFMX(example_dfms(10, shape[-1])), {"labels": labels})):
            t = timeit(lambda: core(x, gen, **kw), dev, repeats=repeats)
            rows.append({"input": label, "method": name, "seconds": t, "images_per_s": n / t})
    # dominant frequency maps: 10 classes × 256 bands (2×2 patches of a 32×32 spectrum) × 1000 images
    n_img = 100 if quick else 1000
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(64, 10)).to(dev).eval()
    images = torch.rand(n_img, 3, 32, 32, device=dev)
    labels = torch.arange(n_img, device=dev) % 10
    t0 = time.perf_counter()
    loss_maps(model, images, labels, 10, patch=2, bands_per_batch=64)
    _sync(dev)
    t = time.perf_counter() - t0
    rows.append({"input": f"{n_img}x3x32x32, 10 classes x 256 bands", "method": "DFM loss maps (3-conv CNN)",
                 "seconds": t, "images_per_s": n_img * 256 / t})
    return rows
