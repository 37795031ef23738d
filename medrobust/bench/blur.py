"""``medrobust bench blur``: defocus-blur synthesis throughput and the microscopy task's training step times."""

from __future__ import annotations

from typing import Any

import torch

from .common import timeit

__all__ = ["bench_blur"]


def bench_blur(device: str = "cpu", repeats: int = 3, quick: bool = False) -> list[dict[str, Any]]:
    """Synthesis and deblurring throughput at 512×512 (images/s) and training step time (seconds).

    Rows: latent synthesis ``D((1 − t)E(x) + tE(ref))`` with the default CPU config (resize-conv
    decoder), with its ``+ detail`` variant (3 decodes), and with the paper's widths (64…1024; the
    original transposed-conv decoder and the resize decoder) on 4×1×512×512; the :class:`LatentBlur`
    core (includes the reference blur); deblurring by latent extrapolation (default config) and the
    classical deconvolutions of the evaluation (scikit-image Richardson–Lucy, 30 iterations, and Wiener,
    disk PSF of radius 4, one image at a time on the CPU) on 2×1×512×512; the classical
    :class:`DefocusBlur` core (small radii → grouped conv, large → FFT) on 8×1×512×512; one optimiser
    step of the default config (8 stacks × 7 planes × 32²) and of the paper model (2 stacks × 9 planes ×
    128²). ``quick``: 128×128 inputs and tiny steps (a smoke test).
    """
    from ..augment.blur import DefocusBlur, LatentBlur
    from ..models.blur_autoencoder import (
        PAPER_WIDTHS,
        BlurAutoencoder,
        blur_losses,
        deblur,
        plane_triplets,
        synthesize_blur,
        triplet_alphas,
    )
    from ..tasks.microscopy.config import DEFAULT_WIDTHS
    from ..tasks.microscopy.data import linear_positions
    from ..tasks.microscopy.evaluate import deconvolve, psf_array

    dev = torch.device(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    size, n_img = (128, 2) if quick else (512, 4)
    rows: list[dict[str, Any]] = []
    x = torch.rand(n_img, 1, size, size, device=dev)
    levels = torch.rand(n_img, generator=gen).to(dev) * 1.5
    torch.manual_seed(0)
    for label, widths, dec in (("default config", DEFAULT_WIDTHS, "resize"), ("paper (64-1024)", PAPER_WIDTHS, "transpose"),
                               ("paper (64-1024)", PAPER_WIDTHS, "resize")):
        model = BlurAutoencoder(widths=widths, norm="none" if label == "default config" else "batch",
                                decoder=dec).to(dev).eval()

        def run(m: BlurAutoencoder = model, detail: bool = False) -> None:
            with torch.no_grad():
                synthesize_blur(m, x, x, levels, detail=detail)

        t = timeit(run, dev, repeats=repeats)
        rows.append({"input": f"{n_img}x1x{size}x{size}",
                     "method": f"latent synthesis, {label} widths {list(widths)}, {dec} decoder",
                     "seconds": t, "images_per_s": n_img / t})
        if label == "default config":
            t = timeit(lambda m=model: run(m, True), dev, repeats=repeats)
            rows.append({"input": f"{n_img}x1x{size}x{size}", "method": f"latent synthesis + detail, {label}",
                         "seconds": t, "images_per_s": n_img / t})
            core = LatentBlur(model, reference_sigma=3.0)
            t = timeit(lambda: core(x, gen), dev, repeats=repeats)
            rows.append({"input": f"{n_img}x1x{size}x{size}", "method": f"LatentBlur core, {label} (incl. reference blur)",
                         "seconds": t, "images_per_s": n_img / t})
            xd = x[:2]

            def run_deblur(m: BlurAutoencoder = model) -> None:
                with torch.no_grad():
                    deblur(m, xd, xd, 0.5)

            t = timeit(run_deblur, dev, repeats=repeats)
            rows.append({"input": f"2x1x{size}x{size}", "method": f"deblurring, latent extrapolation, {label}",
                         "seconds": t, "images_per_s": 2 / t})
    psf = psf_array(2.0 if quick else 4.0, "disk")
    xd = x[:2]
    for label, method in (("Richardson–Lucy (skimage, 30 it.)", "rl"), ("Wiener (skimage)", "wiener")):
        t = timeit(lambda mth=method: deconvolve(xd, psf, mth), dev, repeats=1, warmup=0)
        rows.append({"input": f"2x1x{size}x{size}", "method": f"deblurring, {label}, disk PSF r={2 if quick else 4}",
                     "seconds": t, "images_per_s": 2 / t})
    xb = torch.rand(2 * n_img, 1, size, size, device=dev)
    for label, core in (("DefocusBlur disk r 0.5-4 (conv)", DefocusBlur(radius=(0.5, 4.0))),
                        ("DefocusBlur disk r 8-16 (FFT)", DefocusBlur(radius=(8.0, 16.0))),
                        ("DefocusBlur gaussian σ 0.5-4", DefocusBlur(radius=(0.5, 4.0), kind="gaussian"))):
        t = timeit(lambda c=core: c(xb, gen), dev, repeats=repeats)
        rows.append({"input": f"{2 * n_img}x1x{size}x{size}", "method": label, "seconds": t, "images_per_s": 2 * n_img / t})
    setups = [("default config", DEFAULT_WIDTHS, 8, 7, 32), ("paper (64-1024)", PAPER_WIDTHS, 2, 9, 128)]  # resize decoder
    if quick:
        setups = [("default config", DEFAULT_WIDTHS, 2, 5, 32), ("paper (64-1024)", PAPER_WIDTHS, 1, 3, 32)]
    for label, widths, n, p, s in setups:
        torch.manual_seed(0)
        model = BlurAutoencoder(widths=widths, norm="none" if label == "default config" else "batch",
                                decoder="resize").to(dev).train()
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
