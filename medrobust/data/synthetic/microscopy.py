"""Synthetic focal stacks written as real 16-bit multi-page TIFFs (the embedded microscopy default).

Two sources, defocused by the same optics:

* **synthetic fluorescence fields**: cells with irregular soft-edged bodies (dim, smoothly textured
  cytoplasm with bright puncta) and nuclei (brighter, chromatin texture from band-passed noise, a
  few nucleoli) on a dark background with faint autofluorescence;
* **bundled scikit-image microscopy images** (``skimage.data.cell()``: a brightfield cell;
  ``skimage.data.immunohistochemistry()``: RGB IHC), cut into tiles. Only images shipped inside the
  scikit-image wheel are used; nothing is downloaded.

Optics: the in-focus plane is the object seen through a diffraction-limited Gaussian PSF
(``diffraction_sigma``); plane ``k`` of ``P`` adds a defocus PSF of radius ``r_k = max_radius·k/(P−1)``
(geometric optics: the circle of confusion grows linearly with the distance from focus) — a disk
(``psf="disk"``) or a Gaussian of that standard deviation (``psf="gaussian"``). Then the camera:
Poisson shot noise on ``photons·I + background`` photo-electrons, gain, offset and Gaussian read noise,
stored as uint16 (RGB images per channel). Plane 0 is in focus, the last plane the most blurred.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medrobust.io import atomic_path, atomic_write_text

__all__ = ["CellField", "Optics", "defocus_stack", "make_cell_field", "make_cell_image", "noise_free_path",
           "skimage_images", "write_synthetic_stacks"]


@dataclass(frozen=True)
class Optics:
    """Microscope and camera model for :func:`defocus_stack`.

    Attributes:
        planes: number of focal planes (0 = in focus).
        max_radius: defocus PSF radius of the last plane (pixels).
        psf: ``"disk"`` (geometric defocus) or ``"gaussian"``.
        diffraction_sigma: Gaussian PSF of the in-focus optics (pixels).
        photons: photo-electrons at intensity 1 (sets the shot-noise level).
        background: photo-electrons added everywhere.
        gain, offset, read_noise: camera counts per electron, bias (counts) and read noise (counts).
    """

    planes: int = 7
    max_radius: float = 6.0
    psf: str = "disk"
    diffraction_sigma: float = 0.7
    photons: float = 1500.0
    background: float = 20.0
    gain: float = 8.0
    offset: float = 100.0
    read_noise: float = 3.0

    def radii(self) -> list[float]:
        if self.planes < 2:
            raise ValueError(f"planes: a focal stack needs at least 2 planes, got {self.planes}")
        return [self.max_radius * k / (self.planes - 1) for k in range(self.planes)]


def _smooth_noise(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """White noise low-passed by a Gaussian of ``sigma`` pixels (FFT), zero mean, unit std."""
    noise = rng.standard_normal(shape)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    filt = np.exp(-2 * (math.pi * sigma) ** 2 * (fy**2 + fx**2))
    out = np.fft.irfft2(np.fft.rfft2(noise) * filt, s=shape)
    return (out - out.mean()) / (out.std() + 1e-12)


@dataclass(frozen=True)
class CellField:
    """One synthetic field and its ground truth: ``image`` (float64 in [0, 1], ``(H, W)``, before optics
    and noise) and ``labels`` (uint8 ``(H, W)``: 0 background, 1 cytoplasm, 2 nucleus; a pixel belongs to
    a cell body / nucleus where its soft mask exceeds 0.5, nuclei drawn over cytoplasm)."""

    image: np.ndarray
    labels: np.ndarray


def make_cell_image(size: tuple[int, int] = (128, 128), rng: np.random.Generator | int | None = None,
                    density: float = 1.0) -> np.ndarray:
    """One in-focus fluorescence field (float64 in [0, 1], ``(H, W)``) before optics and noise."""
    return make_cell_field(size, rng, density).image


def make_cell_field(size: tuple[int, int] = (128, 128), rng: np.random.Generator | int | None = None,
                    density: float = 1.0) -> CellField:
    """:func:`make_cell_image` with its ground-truth label map (same random draws, so the same image)."""
    rng = np.random.default_rng(rng)
    h, w = size
    scale = min(h, w) / 128.0
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    fine = _smooth_noise((h, w), 1.0 * scale, rng)  # chromatin grain
    mid = _smooth_noise((h, w), 3.0 * scale, rng)  # cytoplasm texture
    img = 0.015 * (1 + 0.5 * _smooth_noise((h, w), 12.0 * scale, rng))  # autofluorescence
    n_cells = max(1, int(round(rng.uniform(5, 9) * density * (h * w) / 128**2)))
    cell_mask = np.zeros((h, w), dtype=bool)
    nucleus_mask = np.zeros((h, w), dtype=bool)
    for _ in range(n_cells):
        cy, cx = rng.uniform(0.05, 0.95) * h, rng.uniform(0.05, 0.95) * w
        a, b = rng.uniform(13, 22) * scale, rng.uniform(10, 18) * scale
        theta = rng.uniform(0, math.pi)
        dy, dx = yy - cy, xx - cx
        u = (dx * math.cos(theta) + dy * math.sin(theta)) / a
        v = (-dx * math.sin(theta) + dy * math.cos(theta)) / b
        phi = np.arctan2(v, u)
        wobble = 1 + sum(rng.uniform(0, 0.09) * np.cos(k * phi + rng.uniform(0, 2 * math.pi)) for k in (2, 3, 5))
        rho = np.sqrt(u**2 + v**2) / wobble
        body = 1 / (1 + np.exp((rho - 1) * 12))  # soft membrane edge
        cyto = rng.uniform(0.18, 0.35) * np.clip(1 + 0.4 * mid, 0.1, None)
        # nucleus: offset inside the body, chromatin texture and nucleoli
        ny, nx = cy + rng.uniform(-0.25, 0.25) * b, cx + rng.uniform(-0.25, 0.25) * a
        na, nb = a * rng.uniform(0.42, 0.58), b * rng.uniform(0.45, 0.62)
        nt = theta + rng.uniform(-0.5, 0.5)
        ndy, ndx = yy - ny, xx - nx
        nu = (ndx * math.cos(nt) + ndy * math.sin(nt)) / na
        nv = (-ndx * math.sin(nt) + ndy * math.cos(nt)) / nb
        nrho = np.sqrt(nu**2 + nv**2)
        nucleus = 1 / (1 + np.exp((nrho - 1) * 16))
        chrom = rng.uniform(0.45, 0.85) * np.clip(1 + 0.3 * fine + 0.15 * mid, 0.2, None)
        for _ in range(int(rng.integers(1, 4))):
            oy, ox = ny + rng.uniform(-0.4, 0.4) * nb, nx + rng.uniform(-0.4, 0.4) * na
            chrom = chrom + rng.uniform(0.2, 0.4) * np.exp(-((yy - oy) ** 2 + (xx - ox) ** 2) / (2 * (1.6 * scale) ** 2))
        img = img + body * (1 - nucleus) * cyto + nucleus * chrom
        cell_mask |= body > 0.5
        nucleus_mask |= nucleus > 0.5
        # puncta (vesicles) in the cytoplasm
        for _ in range(int(rng.integers(4, 12))):
            r, ang = rng.uniform(0.55, 0.95), rng.uniform(0, 2 * math.pi)
            py = cy + r * (b * math.sin(ang) * math.cos(theta) + a * math.cos(ang) * math.sin(theta))
            px = cx + r * (a * math.cos(ang) * math.cos(theta) - b * math.sin(ang) * math.sin(theta))
            s = rng.uniform(0.7, 1.3) * scale
            img = img + rng.uniform(0.15, 0.4) * np.exp(-((yy - py) ** 2 + (xx - px) ** 2) / (2 * s * s))
    labels = np.where(nucleus_mask, 2, np.where(cell_mask, 1, 0)).astype(np.uint8)
    return CellField(np.clip(img / max(float(img.max()), 1e-6) * 0.95, 0.0, 1.0), labels)


def skimage_images() -> dict[str, np.ndarray]:
    """Bundled (offline) scikit-image microscopy images as float64 in [0, 1]: ``cell`` (grey) and
    ``immunohistochemistry`` (RGB). Empty when scikit-image is not installed."""
    try:
        from skimage import data
    except ImportError:  # pragma: no cover - scikit-image is a dependency of the microscopy task
        return {}
    out = {}
    for name in ("cell", "immunohistochemistry"):  # shipped in the wheel (no pooch download)
        img = getattr(data, name)()
        out[name] = img.astype(np.float64) / 255.0
    return out


def defocus_stack(image: np.ndarray, optics: Optics = Optics(), rng: np.random.Generator | int | None = None, *,
                  noise: bool = True) -> np.ndarray:
    """Image ``(H, W)`` or ``(H, W, 3)`` in [0, 1] -> uint16 focal stack ``(P, H, W[, 3])`` (plane 0 in focus).

    ``noise=False``: the noise-free planes instead, the camera's expected counts
    ``offset + gain·(photons·I + background)`` as float32 (the mean of the noisy stack; no draws from ``rng``)."""
    from medrobust.augment.blur import defocus_blur

    rng = np.random.default_rng(rng)
    img = np.asarray(image, dtype=np.float64)
    grey = img.ndim == 2
    x = torch.from_numpy(img[None, None] if grey else img.transpose(2, 0, 1)[None])  # (1, C, H, W)
    if optics.diffraction_sigma > 0:
        x = defocus_blur(x, optics.diffraction_sigma, "gaussian")
    radii = optics.radii()
    stack = defocus_blur(x.expand(len(radii), *x.shape[1:]).contiguous(), torch.tensor(radii), optics.psf)
    clean = stack.numpy()  # (P, C, H, W)
    if not noise:
        mean = optics.offset + optics.gain * (np.clip(clean, 0, None) * optics.photons + optics.background)
        mean = mean.astype(np.float32)
        return mean[:, 0] if grey else mean.transpose(0, 2, 3, 1)
    electrons = rng.poisson(np.clip(clean, 0, None) * optics.photons + optics.background).astype(np.float64)
    counts = optics.offset + optics.gain * electrons + rng.normal(0.0, optics.read_noise, size=clean.shape)
    out = np.clip(np.rint(counts), 0, 65535).astype(np.uint16)
    return out[:, 0] if grey else out.transpose(0, 2, 3, 1)


def _tiles(img: np.ndarray, size: tuple[int, int], n: int) -> list[np.ndarray]:
    """The ``n`` non-overlapping tiles with the most structure (gradient energy), in raster order."""
    h, w = img.shape[:2]
    th, tw = min(size[0], h), min(size[1], w)
    corners = [(y, x) for y in range(0, h - th + 1, th) for x in range(0, w - tw + 1, tw)]
    tiles = [img[y : y + th, x : x + tw] for y, x in corners]
    energy = [float(sum(np.square(np.diff(t, axis=a)).mean() for a in (0, 1))) for t in tiles]
    pick = sorted(np.argsort(energy)[::-1][:n].tolist())
    return [tiles[i] for i in pick]


def noise_free_path(stack_path: str | Path) -> Path:
    """Where :func:`write_synthetic_stacks` puts the noise-free planes of the stack at ``stack_path``:
    ``<root>/<name>.noise_free.npy`` (float32 expected counts, the stack's shape; readers of focal stacks
    skip ``.npy`` files)."""
    p = Path(stack_path)
    return p.parent / f"{p.stem if p.suffix else p.name}.noise_free.npy"


@dataclass
class _Manifest:
    optics: dict[str, Any]
    radii: list[float]
    stacks: list[dict[str, Any]] = field(default_factory=list)


def write_synthetic_stacks(root: str | Path, *, n_stacks: int = 16, size: tuple[int, int] = (128, 128),
                           optics: Optics = Optics(), skimage_tiles: int = 2, seed: int = 0,
                           layout: str = "tiff") -> list[Path]:
    """Write the embedded default under ``root`` and return the stack paths.

    ``n_stacks`` synthetic fluorescence fields (``synthetic_000.tif`` ...) plus ``skimage_tiles`` tiles
    of each bundled scikit-image image (``skimage_cell_0.tif`` ...), all uint16 multi-page TIFFs
    (``layout="tiff"``) or sample folders of 16-bit PNGs (``layout="folders"``); ``manifest.json``
    records the optics and the true PSF radius of every plane. Beside each stack, its noise-free planes
    (:func:`noise_free_path`; ``defocus_stack(..., noise=False)``), for measures that need a clean target.
    """
    from medrobust.data.microscopy import write_stack

    if layout not in ("tiff", "folders"):
        raise ValueError(f"layout: expected 'tiff' or 'folders', got {layout!r}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    manifest = _Manifest(optics={k: getattr(optics, k) for k in optics.__dataclass_fields__}, radii=optics.radii())
    paths = []

    def put(name: str, image: np.ndarray, source: str) -> None:
        stack = defocus_stack(image, optics, rng)
        path = root / (f"{name}.tif" if layout == "tiff" else name)
        write_stack(path, stack)
        with atomic_path(noise_free_path(path)) as tmp, open(tmp, "wb") as fh:
            np.save(fh, defocus_stack(image, optics, noise=False))
        paths.append(path)
        manifest.stacks.append({"name": name, "source": source, "shape": list(stack.shape)})

    for i in range(n_stacks):
        put(f"synthetic_{i:03d}", make_cell_image(tuple(size), rng), "synthetic fluorescence")
    if skimage_tiles > 0:
        for name, img in skimage_images().items():
            for j, tile in enumerate(_tiles(img, tuple(size), skimage_tiles)):
                put(f"skimage_{name}_{j}", tile, f"skimage.data.{name}()")
    atomic_write_text(root / "manifest.json", json.dumps(manifest.__dict__, indent=2) + "\n")
    return paths
