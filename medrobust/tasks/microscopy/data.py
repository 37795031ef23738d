"""Microscopy data and model set-up: the focal stacks (or the embedded default), their split and plane
positions, the autoencoder, and the tensor helpers shared by training and evaluation."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...data.microscopy import (
    Intensity,
    StackSource,
    discover_stacks,
    load_stack,
    split_stacks,
)
from ...models.blur_autoencoder import (
    BlurAutoencoder,
)
from ..base import check_data_root
from .config import BlurConfig


# --------------------------------------------------------------------------------------------- data
@dataclass
class BlurData:
    root: Path
    train: list[StackSource]
    val: list[StackSource]
    test: list[StackSource]
    planes: list[int] | None
    positions: list[float]
    synthetic: bool


def synthetic_root(cfg: BlurConfig) -> Path:
    s = cfg.data.synthetic
    tag = (f"n{s.n_stacks}_s{s.size[0]}x{s.size[1]}_p{s.planes}_r{s.max_radius:g}_{s.psf}_d{s.diffraction_sigma:g}"
           f"_ph{s.photons:g}_sk{s.skimage_tiles}_seed{s.seed}")
    return Path(cfg.output_dir) / "data" / f"microscopy_synthetic_{tag}"


def _ensure_synthetic(cfg: BlurConfig) -> Path:
    from ...data.synthetic.microscopy import Optics, write_synthetic_stacks

    root = synthetic_root(cfg)
    marker = root / ".complete"
    if not marker.exists():
        s = cfg.data.synthetic
        write_synthetic_stacks(root, n_stacks=s.n_stacks, size=tuple(s.size), skimage_tiles=s.skimage_tiles, seed=s.seed,
                               optics=Optics(planes=s.planes, max_radius=s.max_radius, psf=s.psf,
                                             diffraction_sigma=s.diffraction_sigma, photons=s.photons))
        marker.write_text("ok\n")
    return root


def linear_positions(n: int) -> list[float]:
    return [k / (n - 1) for k in range(n)]


def prepare_data(cfg: BlurConfig, root: str | Path | None = None) -> BlurData:
    """Resolve the stacks (writing the embedded default if needed), the split and the plane positions.

    ``root`` overrides ``cfg.data.root`` (evaluation on another folder: every stack is a test stack).
    """
    synthetic = root is None and cfg.data.root is None
    data_root = _ensure_synthetic(cfg) if synthetic else (
        check_data_root(root, key="--data-root", expected="a folder of focal stacks") if root is not None
        else check_data_root(cfg.data.root, expected="a folder of focal stacks"))
    sources = discover_stacks(data_root, cfg.data.layout)
    if root is not None:
        split = {"train": sources, "val": sources, "test": sources}
    else:
        held = [s for s in sources if any(fnmatch.fnmatchcase(s.name, pat) for pat in cfg.data.holdout)]
        rest = [s for s in sources if s not in held]
        if cfg.data.holdout and not rest:
            raise ValueError(f"data.holdout {cfg.data.holdout}: matches every stack of {data_root}; nothing left to train on")
        split = split_stacks(rest, cfg.data.split, cfg.data.split_seed)
        if held:  # held-out images are test data only (the test split keeps its own stacks too)
            split["test"] = [s for s in split["test"] if s not in split["train"]] + held
    n = len(cfg.data.planes) if cfg.data.planes is not None else load_stack(split["train"][0]).shape[0]
    if n < 3:
        raise ValueError(f"{split['train'][0].path}: {n} planes; the linearity losses need at least 3")
    positions = list(cfg.data.positions) if cfg.data.positions is not None else linear_positions(n)
    if len(positions) != n:
        raise ValueError(f"data.positions has {len(positions)} entries, but the stacks have {n} planes")
    return BlurData(data_root, split["train"], split["val"], split["test"], cfg.data.planes, positions, synthetic)


def build_model(cfg: BlurConfig, num_classes: int | None = None) -> BlurAutoencoder:
    """The configured autoencoder (``num_classes`` is unused: the model has no classes)."""
    m = cfg.model
    return BlurAutoencoder(in_channels=m.in_channels, widths=tuple(m.widths), norm=m.norm, decoder=m.decoder)


def known_radii(root: str | Path, planes: Sequence[int] | None = None) -> dict[str, Any] | None:
    """The true defocus PSF of each plane when ``root`` holds a ``manifest.json`` written by
    :func:`medrobust.data.synthetic.microscopy.write_synthetic_stacks`: ``{"psf": kind, "radii": [...]}``
    (``radii[k]`` relative to plane 0), else None."""
    path = Path(root) / "manifest.json"
    if not path.is_file():
        return None
    man = json.loads(path.read_text(encoding="utf-8"))
    radii = [float(r) for r in man.get("radii", [])]
    if planes is not None:
        if max(planes) >= len(radii):
            return None
        radii = [radii[p] for p in planes]
    if not radii:
        return None
    r0 = radii[0]
    return {"psf": str(man.get("optics", {}).get("psf", "disk")), "radii": radii, "relative_to_plane0": r0 == 0.0}


def noise_free_planes(source: StackSource, planes: Sequence[int] | None = None) -> np.ndarray | None:
    """The noise-free planes of an embedded stack (written beside it by
    :func:`medrobust.data.synthetic.microscopy.write_synthetic_stacks`), ``planes`` selected; None when
    the stack has none (user data, or embedded data written by an earlier release)."""
    from ...data.synthetic.microscopy import noise_free_path

    path = noise_free_path(source.path) if source.files is None else None
    if path is None or not path.is_file():
        return None
    return load_stack(np.load(path, allow_pickle=False), planes)


def _center_crop(x: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None:
        return x
    h, w = x.shape[-2:]
    s_h, s_w = min(size, h), min(size, w)
    y0, x0 = (h - s_h) // 2, (w - s_w) // 2
    return x[..., y0 : y0 + s_h, x0 : x0 + s_w]


def _stack_tensor(arr: np.ndarray, intensity: Intensity, in_channels: int, like: np.ndarray | None = None) -> torch.Tensor:
    """Raw stack ``(P, H, W[, C])`` -> normalised ``(B, P, C', H, W)`` (channels folded for a grey model);
    ``like``: take the intensity range from this stack instead (the noisy stack of noise-free planes)."""
    from ...data.microscopy import to_planes_tensor

    lo, hi = intensity.range_of(arr if like is None else like)
    t = to_planes_tensor(Intensity.normalize(arr, lo, hi))  # (P, C, H, W)
    if in_channels == 1:
        return t.permute(1, 0, 2, 3).unsqueeze(2)  # (C, P, 1, H, W)
    if t.shape[1] != in_channels:
        raise ValueError(f"stack has {t.shape[1]} channels, the model takes {in_channels}")
    return t.unsqueeze(0)


def fit_reference_sigma(stacks: Sequence[torch.Tensor], *, crop: int = 256) -> float:
    """Gaussian sigma mapping the sharp to the most-blurred plane, over normalised stacks ``(B, P, C, H, W)``."""
    from ...augment.blur import fit_gaussian_sigma

    sharp = [_center_crop(s[:, 0], crop) for s in stacks]
    blurred = [_center_crop(s[:, -1], crop) for s in stacks]
    max_sigma = max(4.0, min(min(s.shape[-2:]) for s in sharp) / 4)
    return fit_gaussian_sigma(sharp, blurred, max_sigma=max_sigma)
