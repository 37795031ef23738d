"""Fourier sensitivity map (Yin et al., "A Fourier perspective on model robustness in computer
vision", NeurIPS 2019).

For every frequency ``(kx, ky)`` of a ``(2K + 1) x (2K + 1)`` grid (centred layout, DC in the
middle), each test image gets ``x + r · eps · U_{kx,ky}`` with ``U`` the unit-L2-norm planar wave
of :func:`medrobust.augment.fourier.planar_wave` at frequency ``sqrt(kx² + ky²)`` cycles per image
and orientation ``atan2(ky, kx)``, ``r = ±1`` at random per image (and channel), clamped to
``[0, 1]``; the map holds the error rate under that perturbation. Every point of the grid is
evaluated: ``planar_wave`` carries a phase of ``-π/4``, so ``(kx, ky)`` and ``(-kx, -ky)`` are
waves of different phase, not one wave of opposite sign. Frequencies are evaluated in chunks on the
model's device (one forward of ``chunk × N`` images per chunk).

For segmentation models the error of an image is ``1 -`` its mean foreground Dice
(:func:`dice_error`), so the map holds the mean Dice loss under each perturbation. Large images can be
mapped on a coarser grid (``frequency_step``: every S-th frequency up to ``K`` on both axes).

The claim of arXiv 2410.03030 that this checks: a sparse model is less sensitive at high
frequencies (the outer part of the map) than its dense twin.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..augment.fourier import planar_wave
from ..io import atomic_path

__all__ = ["band_profile", "dice_error", "fourier_sensitivity", "save_fourier_map"]


def _waves(size: int, freqs: list[tuple[int, int]]) -> torch.Tensor:
    """``(F, size, size)`` planar waves for ``(kx, ky)`` pairs (DC: a constant of unit norm)."""
    out = []
    for kx, ky in freqs:
        if kx == 0 and ky == 0:
            out.append(torch.full((size, size), 1.0 / size))
        else:
            out.append(planar_wave(size, math.hypot(kx, ky), math.atan2(ky, kx)))
    return torch.stack(out)


def dice_error(num_classes: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The per-image error ``1 - mean foreground Dice`` of segmentation ``logits`` ``(B, K, H, W)``
    against integer ``labels`` ``(B, H, W)`` or ``(B, 1, H, W)``, for :func:`fourier_sensitivity`'s
    ``error_fn``. Classes ``1..num_classes-1``; a class absent from both prediction and label counts as
    Dice 1 (MONAI's ``compute_dice(..., include_background=False, ignore_empty=False)``)."""
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes: expected an int >= 2 (background and a structure), got {num_classes!r}")

    def error(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        pred = logits.argmax(1)
        lab = labels[:, 0] if labels.ndim == pred.ndim + 1 else labels
        cls = torch.arange(1, num_classes, device=pred.device).view(1, -1, 1, 1)
        p, t = pred.unsqueeze(1) == cls, lab.unsqueeze(1) == cls  # (B, K-1, H, W)
        inter = (p & t).flatten(2).sum(2).float()
        total = (p.flatten(2).sum(2) + t.flatten(2).sum(2)).float()
        dice = torch.where(total > 0, 2 * inter / total.clamp_min(1), torch.ones_like(total))
        return 1 - dice.mean(1)

    return error


@torch.no_grad()
def fourier_sensitivity(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    eps: float = 4.0,
    max_frequency: int | None = None,
    chunk: int = 16,
    batch_size: int = 512,
    seed: int = 0,
    error_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    frequency_step: int = 1,
    progress: bool = False,
) -> dict[str, Any]:
    """Error rate of ``model`` under a Fourier-basis perturbation of each frequency.

    Args:
        model: maps ``(B, C, S, S)`` images in ``[0, 1]`` to logits ``(B, K)`` (eval mode is the
            caller's business).
        images: ``(N, C, S, S)`` float in ``[0, 1]``, square; moved to the model's device.
        labels: ``(N,)`` int class labels (or, with a segmentation ``error_fn`` such as
            :func:`dice_error`, ``(N, [1,] S, S)`` label maps).
        eps: L2 norm of the perturbation per channel (Yin et al.: 4 for CIFAR-10 in [0, 1]).
        max_frequency: ``K``, the grid freq_list-width (default ``S // 2``).
        chunk: frequencies per forward pass.
        error_fn: ``(logits, labels) -> (B,) bool/float`` errors; default top-1 error.
        frequency_step: evaluate ``kx, ky`` in ``-K, -K + step, ..., K`` only (``K`` a multiple
            of the step); 1 = every frequency.
        seed: the random signs ``r``.
    Returns:
        ``{"error": (G, G) float ndarray (rows ky, columns kx, both ``frequencies``; ``G = 2K/step +
        1``), "clean_error": float, "eps": eps, "frequencies": list(range(-K, K + 1, step)), "images": N}``.
    """
    if images.ndim != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"images: expected (N, C, S, S) square images, got shape {tuple(images.shape)}")
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"images and labels: expected the same non-zero length, got {len(images)} and {len(labels)}")
    if not eps > 0:
        raise ValueError(f"eps: expected a positive L2 norm, got {eps}")
    from tqdm.auto import tqdm

    n, c, s, _ = images.shape
    k = s // 2 if max_frequency is None else int(max_frequency)
    if not 0 <= k:
        raise ValueError(f"max_frequency: expected >= 0, got {max_frequency}")
    step = int(frequency_step)
    if step < 1 or k % step:
        raise ValueError(f"frequency_step: expected a positive divisor of the grid half-width {k}, got {frequency_step}")
    try:
        device = next(model.parameters()).device  # type: ignore[attr-defined]
    except (AttributeError, StopIteration):
        device = images.device
    err = error_fn or (lambda logits, y: logits.argmax(1) != y)
    x = images.to(device, torch.float32)
    y = labels.to(device)

    def error_of(batch: torch.Tensor, lab: torch.Tensor) -> torch.Tensor:
        outs = [err(model(batch[i:i + batch_size]), lab[i:i + batch_size]).float() for i in range(0, len(batch), batch_size)]
        return torch.cat(outs)

    clean = float(error_of(x, y).mean())
    axis = list(range(-k, k + 1, step))
    freq_list = [(kx, ky) for ky in axis for kx in axis]
    gen = torch.Generator().manual_seed(seed)
    signs = (torch.randint(0, 2, (n, c, 1, 1), generator=gen) * 2 - 1).to(device, torch.float32)
    values: dict[tuple[int, int], float] = {}
    for start in tqdm(range(0, len(freq_list), chunk), desc="fourier map", disable=not progress, leave=False):
        freqs = freq_list[start:start + chunk]
        w = _waves(s, freqs).to(device)  # (F, S, S)
        pert = (x[None] + eps * signs[None] * w[:, None, None]).clamp_(0, 1)  # (F, N, C, S, S)
        e = error_of(pert.flatten(0, 1), y.repeat(len(freqs), *([1] * (y.ndim - 1)))).view(len(freqs), n).mean(1).cpu()
        values.update({f: float(v) for f, v in zip(freqs, e)})
    grid = np.zeros((len(axis), len(axis)))
    for (kx, ky), v in values.items():
        grid[(ky + k) // step, (kx + k) // step] = v
    return {"error": grid, "clean_error": clean, "eps": float(eps), "frequencies": axis, "images": n}


def band_profile(error: np.ndarray, bands: int = 4, frequencies: list[int] | None = None) -> list[float]:
    """Mean error per radial band of a centred ``(G, G)`` map (low to high; DC excluded);
    ``frequencies``: the grid's axis (default ``-K..K`` with ``G = 2K + 1``)."""
    k = error.shape[0] // 2
    axis = np.asarray(frequencies if frequencies is not None else range(-k, k + 1), dtype=float)
    if len(axis) != error.shape[0]:
        raise ValueError(f"frequencies: expected {error.shape[0]} values for a {error.shape} map, got {len(axis)}")
    k = float(np.abs(axis).max())
    xx, yy = np.meshgrid(axis, axis)
    r = np.hypot(xx, yy)
    edges = np.linspace(0, k * math.sqrt(2) + 1e-9, bands + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (r > lo) & (r <= hi)
        out.append(float(error[sel].mean()) if sel.any() else float("nan"))
    return out


def save_fourier_map(result: dict[str, Any] | dict[str, dict[str, Any]], out_dir: str | Path, *,
                     name: str = "fourier_map", metric: str = "error rate") -> dict[str, Path]:
    """Write ``<name>.npy`` (the error grid; several runs: ``<name>_<label>.npy``) and one heat-map
    ``<name>.png`` (several runs side by side on one colour scale) into ``out_dir``.

    ``result``: one :func:`fourier_sensitivity` result, or ``{label: result}``; ``metric``: the colour
    bar's label."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    many = result if "error" not in result else {"": result}
    files: dict[str, Path] = {}
    for label, res in many.items():
        path = out / (f"{name}_{label}.npy" if label else f"{name}.npy")
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, np.asarray(res["error"], dtype=np.float32))
        files[label or "array"] = path
    vmax = max(float(np.max(r["error"])) for r in many.values()) or 1.0
    fig = Figure(figsize=(3.4 * len(many) + 0.8, 3.2), dpi=100, layout="constrained")  # no label overlaps
    axes = fig.subplots(1, len(many), squeeze=False)[0]
    im = None
    for ax, (label, res) in zip(axes, many.items()):
        f = res["frequencies"]
        half = (f[1] - f[0]) / 2 if len(f) > 1 else 0.5
        im = ax.imshow(res["error"], vmin=0, vmax=vmax, cmap="jet", origin="lower",
                       extent=(f[0] - half, f[-1] + half, f[0] - half, f[-1] + half))
        ax.set_title(f"{label + ': ' if label else ''}clean {res['clean_error']:.3f}, eps {res['eps']:g}", fontsize=8)
        ax.set_xlabel("kx (cycles/image)", fontsize=8)
        ax.set_ylabel("ky", fontsize=8)
    fig.colorbar(im, ax=list(axes), shrink=0.9, label=metric)
    png = out / f"{name}.png"
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    files["png"] = png
    return files
