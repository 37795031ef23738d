"""Figure helpers shared by every report: off-screen figures, atomic PNG writes, image panels.

Figures are :class:`matplotlib.figure.Figure` objects (no pyplot state, safe in worker processes and
without a display); :func:`save_figure` writes them atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medrobust.io import atomic_path

__all__ = ["new_figure", "save_figure", "to_numpy", "display_image", "label_colors", "overlay", "show_image", "label_grid"]


def new_figure(figsize: tuple[float, float], dpi: int = 100) -> Any:
    """An off-screen matplotlib ``Figure`` (Agg backend) of ``figsize`` inches."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, dpi=dpi)


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 100, *, tight: bool = True) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically (the folder is created); returns ``path``.

    ``tight``: crop to the drawn content (``bbox_inches="tight"``); False keeps the figure size."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, **({"bbox_inches": "tight"} if tight else {}))
    return path


def to_numpy(x: Any) -> np.ndarray:
    """A numpy array from a numpy array, a (CPU or CUDA) tensor or a nested sequence."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        try:
            x = x.numpy()
        except TypeError:  # dtypes numpy lacks (bfloat16)
            x = x.float().numpy()
    return np.asarray(x)


def display_image(img: Any) -> np.ndarray:
    """``(H, W)``, ``(1, H, W)``, ``(3, H, W)`` or ``(H, W, 3)`` -> float image in [0, 1] with a 1st-99th
    percentile intensity window (NaN shown as the low end)."""
    img = np.asarray(to_numpy(img), dtype=np.float64)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = np.moveaxis(img, 0, -1)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3):
        raise ValueError(f"images must be 2D slices (H, W), (1, H, W) or (H, W, 3), got shape {img.shape}")
    finite = img[np.isfinite(img)]
    lo, hi = (np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0))
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((np.nan_to_num(img, nan=lo) - lo) / (hi - lo), 0.0, 1.0)


def label_colors(n_labels: int, base: Sequence[tuple[float, float, float]] = ()) -> np.ndarray:
    """``(max(n_labels, 1), 3)`` RGB colours in [0, 1]: black for label 0, then ``base``, then tab10."""
    import matplotlib as mpl

    extra = mpl.colormaps["tab10"].colors
    cols = [(0.0, 0.0, 0.0)] + [tuple(c) for c in base]
    k = 0
    while len(cols) < n_labels:
        cols.append(tuple(extra[k % len(extra)])[:3])
        k += 1
    return np.array(cols[:max(n_labels, 1)], dtype=np.float64)


def overlay(gray: np.ndarray, labels: np.ndarray, colors: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """RGB image: ``gray`` (``(H, W)`` or ``(H, W, 3)`` in [0, 1]) with every label > 0 blended in its colour."""
    rgb = np.repeat(gray[..., None], 3, axis=-1) if gray.ndim == 2 else gray.copy()
    m = labels > 0
    rgb[m] = (1 - alpha) * rgb[m] + alpha * colors[labels[m]]
    return rgb


def show_image(ax: Any, img: Any, title: str | None = None, *, fontsize: float = 8) -> None:
    """Draw a grey-scale image with values in [0, 1] (clipped; array or tensor, singleton axes
    squeezed) on ``ax`` without ticks, with an optional title."""
    a = np.clip(np.squeeze(np.asarray(to_numpy(img), dtype=np.float32)), 0, 1)
    ax.imshow(a, cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=fontsize)


def label_grid(axes: Any, n: int, xlabel: str, ylabel: str) -> None:
    """Label a ``(rows, cols)`` grid of panels of which the first ``n`` are used (the rest are hidden):
    ``xlabel`` (and the x tick labels, which shared x axes hide above the last row) on the lowest used
    panel of each column, ``ylabel`` on the first panel of each row."""
    nrows, ncols = len(axes), len(axes[0])
    for k in range(n, nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    for j in range(ncols):
        used = [r for r in range(nrows) if r * ncols + j < n]
        if used:
            ax = axes[used[-1]][j]
            ax.set_xlabel(xlabel)
            ax.xaxis.set_tick_params(labelbottom=True)
    for r in range(nrows):
        if r * ncols < n:
            axes[r][0].set_ylabel(ylabel)
