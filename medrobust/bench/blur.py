"""``medrobust bench blur``: defocus-blur synthesis throughput and the microscopy task's training step times."""

from __future__ import annotations

from typing import Any

import torch

from .common import timeit

__all__ = ["bench_blur"]


def bench_blur(device: str = "cpu", repeats: int = 3, quick: bool = False) -> list[dict[str, Any]]:
    """Synthesis throughput at 512×512 (images/s) and training step time (seconds).

    Rows: latent synthesis ``D((1 − t)E(x) + tE(ref))`` with the default CPU config's widths and the
    paper's (64…1024) on 4×1×512×512; the :class:`LatentBlur` core (includes the reference blur); the
    classical :class:`DefocusBlur` core (small radii → grouped conv, large → FFT) on 8×1×512×512; one
    optimiser step of the default config (8 stacks × 7 planes × 32²) and of the paper model
    (2 stacks × 9 planes × 128²). ``quick``: 128×128 inputs and tiny steps (a smoke test).
    """
    from ..augment.blur import DefocusBlur, LatentBlur
    from ..models.blur_autoencoder import (
        PAPER_WIDTHS,
        BlurAutoencoder,
        blur_losses,
        plane_triplets,
        synthesize_blur,
        triplet_alphas,
    )
    from ..tasks.microscopy.config import DEFAULT_WIDTHS
    from ..tasks.microscopy.data import linear_positions

    dev = torch.device(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    size, n_img = (128, 2) if quick else (512, 4)
    rows: list[dict[str, Any]] = []
    x = torch.rand(n_img, 1, size, size, device=dev)
    levels = torch.rand(n_img, generator=gen).to(dev) * 1.5
    torch.manual_seed(0)
    for label, widths in (("default config", DEFAULT_WIDTHS), ("paper (64-1024)", PAPER_WIDTHS)):
        model = BlurAutoencoder(widths=widths).to(dev).eval()

        def run(m: BlurAutoencoder = model) -> None:
            with torch.no_grad():
                synthesize_blur(m, x, x, levels)

        t = timeit(run, dev, repeats=repeats)
        rows.append({"input": f"{n_img}x1x{size}x{size}", "method": f"latent synthesis, {label} widths {list(widths)}",
                     "seconds": t, "images_per_s": n_img / t})
        if label == "default config":
            core = LatentBlur(model, reference_sigma=3.0)
            t = timeit(lambda: core(x, gen), dev, repeats=repeats)
            rows.append({"input": f"{n_img}x1x{size}x{size}", "method": f"LatentBlur core, {label} (incl. reference blur)",
                         "seconds": t, "images_per_s": n_img / t})
    xb = torch.rand(2 * n_img, 1, size, size, device=dev)
    for label, core in (("DefocusBlur disk r 0.5-4 (conv)", DefocusBlur(radius=(0.5, 4.0))),
                        ("DefocusBlur disk r 8-16 (FFT)", DefocusBlur(radius=(8.0, 16.0))),
                        ("DefocusBlur gaussian σ 0.5-4", DefocusBlur(radius=(0.5, 4.0), kind="gaussian"))):
        t = timeit(lambda c=core: c(xb, gen), dev, repeats=repeats)
        rows.append({"input": f"{2 * n_img}x1x{size}x{size}", "method": label, "seconds": t, "images_per_s": 2 * n_img / t})
    setups = [("default config", DEFAULT_WIDTHS, 8, 7, 32), ("paper (64-1024)", PAPER_WIDTHS, 2, 9, 128)]
    if quick:
        setups = [("default config", DEFAULT_WIDTHS, 2, 5, 32), ("paper (64-1024)", PAPER_WIDTHS, 1, 3, 32)]
    for label, widths, n, p, s in setups:
        torch.manual_seed(0)
        model = BlurAutoencoder(widths=widths).to(dev).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        planes = torch.rand(n, p, 1, s, s, device=dev)
        tri = plane_triplets(p, "endpoints")
        alphas = triplet_alphas(linear_positions(p), tri)

        def step(m: BlurAutoencoder = model, o: torch.optim.Optimizer = opt, pl: torch.Tensor = planes,
                 tr: list = tri, al: torch.Tensor = alphas) -> None:
            loss, _ = blur_losses(m, pl, tr, al)
            o.zero_grad(set_to_none=True)
            loss.backward()
            o.step()

        t = timeit(step, dev, repeats=max(1, repeats), warmup=1)
        rows.append({"input": f"train {n} stacks x {p} planes x {s}x{s}", "method": f"train step, {label}",
                     "seconds": t, "steps_per_s": 1 / t, "images_per_s": n * p / t})
    return rows
