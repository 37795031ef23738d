"""Blur corruptions (ImageNet-C ``blur`` group plus the held-out Gaussian blur)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from ...base import bulk_rand, device_generator, rand, to_device
from ...functional.chunks import chunked
from ...functional.fftconv import fft_correlate, kernel_image
from ...functional.filters import filter_matrix_np, gaussian_filter
from ...registry import register
from ._base import NaturalCorruption, arange_levels, run_grouped, take
from ._blur_ops import clipped_zoom, glass_shuffle_global, motion_blur

__all__ = ["NaturalGaussianBlur", "NaturalGlassBlur", "NaturalDefocusBlur", "NaturalMotionBlur", "NaturalZoomBlur"]


@register("natural_gaussian_blur")
class NaturalGaussianBlur(NaturalCorruption):
    """Gaussian blur, ``skimage.filters.gaussian`` (scipy: truncate 4, ``nearest`` border).

    ==========  ====  ====  ====  ====  ====
    severity    1     2     3     4     5
    imagenet    1     2     3     4     6
    cifar       .4    .6    .7    .8    1
    ==========  ====  ====  ====  ====  ====
    """

    name = "gaussian_blur"
    levels = {"imagenet": (1, 2, 3, 4, 6), "cifar": (0.4, 0.6, 0.7, 0.8, 1.0)}

    def _corrupt(self, x, params, sev):
        return run_grouped(x, sev, lambda xg, s, idx: gaussian_filter(xg, float(self.level(s))))


@register("natural_glass_blur")
class NaturalGlassBlur(NaturalCorruption):
    """Glass blur: Gaussian blur (``sigma``), 8-bit truncation, local pixel shuffling
    (``iterations`` passes with steps in ``[-delta, delta)``), Gaussian blur again.

    The published shuffle is a sequential loop over the interior pixels (rows, then columns, from
    the far end) meant to swap each pixel with a random neighbour; with NumPy's tuple assignment
    on pixel views it only copies the neighbour's current value (also in imagecorruptions' numba
    version). That sequential copy is reproduced exactly, for the whole batch at once, by
    following each pixel's chain of copies (:func:`._blur_ops.glass_shuffle_global`); the random
    steps come from one stored uniform per pixel and pass.

    ==========  ===============  ==============
    severity    imagenet         cifar
                (sigma, delta,   (sigma, delta,
                iterations)      iterations)
    1           .7, 1, 2         .05, 1, 1
    2           .9, 2, 1         .25, 1, 1
    3           1, 2, 3          .4, 1, 1
    4           1.1, 3, 2        .25, 1, 2
    5           1.5, 4, 2        .4, 1, 2
    ==========  ===============  ==============
    """

    name = "glass_blur"
    levels = {
        "imagenet": ((0.7, 1, 2), (0.9, 2, 1), (1.0, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
        "cifar": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
    }
    max_iterations: ClassVar[int] = 3

    def _sample_extra(self, x, generator):
        n, _, h, w = x.shape
        return {"uniform": bulk_rand(n, self.max_iterations, h, w, generator=device_generator(generator, x.device), device=x.device)}

    def _corrupt(self, x, params, sev):
        n, c, h, w = x.shape
        u_all = self.field(params, "uniform", x, (n, self.max_iterations, h, w))

        def one(xg: torch.Tensor, s: int, idx: torch.Tensor | None) -> torch.Tensor:
            sigma, delta, iters = self.level(s)
            b = gaussian_filter(xg, sigma).mul_(255.0).floor_().div_(255.0)  # np.uint8(... * 255)
            u = take(u_all, idx)
            ng = xg.shape[0]
            src = None
            for it in range(iters):  # pass k reads the output of pass k - 1
                step = glass_shuffle_global(u[:, it], delta)
                src = step if src is None else src.index_select(0, step)
            assert src is not None
            local = src.view(ng, h * w).long().sub_(torch.arange(ng, device=x.device)[:, None] * (h * w))
            shuffled = b.reshape(ng, c, -1).gather(2, local[:, None, :].expand(ng, c, -1)).reshape(ng, c, h, w)
            return gaussian_filter(shuffled, sigma)

        return run_grouped(x, sev, one)


def _disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """The published ``disk``: an aliased disk on a 17x17 grid (radius <= 8) or ``2r+1`` grid,
    normalised, then ``cv2.GaussianBlur`` (3x3, or 5x5 for radius > 8; BORDER_REFLECT_101),
    cropped to its non-zero support."""
    if radius <= 8:
        grid, ksize = np.arange(-8, 8 + 1), 3
    else:
        grid, ksize = np.arange(-radius, radius + 1), 5
    gx, gy = np.meshgrid(grid, grid)
    disk = ((gx**2 + gy**2) <= radius**2).astype(np.float32).astype(np.float64)
    disk /= disk.sum()
    t = np.arange(ksize) - (ksize - 1) / 2
    g = np.exp(-(t * t) / (2 * alias_blur * alias_blur))
    g /= g.sum()
    m = filter_matrix_np(len(grid), tuple(g.tolist()), "mirror")
    k = m @ disk @ m.T
    nz = np.nonzero(np.abs(k) > 0)
    c = len(grid) // 2
    r = int(max(np.abs(nz[0] - c).max(), np.abs(nz[1] - c).max()))
    return k[c - r : c + r + 1, c - r : c + r + 1]


@register("natural_defocus_blur")
class NaturalDefocusBlur(NaturalCorruption):
    """Defocus blur: correlation with an anti-aliased disk (``cv2.filter2D``, BORDER_REFLECT_101).

    The kernel is the published ``disk(radius, alias_blur)`` (see :func:`_disk_kernel`); the
    correlation runs through one FFT per batch (per-sample kernels by severity), exact up to
    float rounding.

    ==========  =========================================  ======================================
    severity    imagenet (radius, alias_blur)              cifar
    1..5        (3,.1) (4,.5) (6,.5) (8,.5) (10,.5)        (.3,.4) (.4,.5) (.5,.6) (1,.2) (1.5,.1)
    ==========  =========================================  ======================================
    """

    name = "defocus_blur"
    levels = {
        "imagenet": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
        "cifar": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    }

    def kernel(self, s: int) -> np.ndarray:
        return _disk_kernel(*self.level(s))

    def _corrupt(self, x, params, sev):
        present = sorted(set(sev.tolist()))
        kernels = {s: self.kernel(s) for s in present}
        radius = max(k.shape[0] // 2 for k in kernels.values())

        def spectrum(l1: int, l2: int) -> torch.Tensor:
            specs = []
            for s in present:
                k = torch.as_tensor(kernels[s], dtype=x.dtype, device=x.device)
                r = k.shape[0] // 2
                off = torch.arange(-r, r + 1, device=x.device)
                oy, ox = torch.meshgrid(off, off, indexing="ij")
                img = kernel_image(oy.reshape(1, -1), ox.reshape(1, -1), k.reshape(1, -1), l1, l2)
                specs.append(torch.fft.rfft2(img))
            stack = torch.cat(specs)  # (S, L1, L2 // 2 + 1)
            if len(present) == 1:
                return stack[:, None]
            lut = torch.full((6,), -1, dtype=torch.long)
            lut[torch.tensor(present)] = torch.arange(len(present))
            return stack[to_device(lut[sev.cpu()], x.device)][:, None]

        return fft_correlate(x, spectrum, radius, "mirror")


@register("natural_motion_blur")
class NaturalMotionBlur(NaturalCorruption):
    """Motion blur along a random direction (ImageMagick ``MotionBlurImage``).

    ``2 * radius + 1`` taps with weights ``exp(-i^2 / (2 sigma^2))`` (normalised) reading the pixels
    at ``(ceil(i sin a - 0.5), ceil(i cos a - 0.5))``, edge pixels replicated; the angle ``a`` is
    drawn per sample, uniform in [-45, 45] degrees. One FFT pass with per-sample kernels.
    (imagecorruptions' NumPy re-implementation uses the same taps; it stops at taps beyond the
    image size on tiny images, which ImageMagick and this version do not.)

    ==========  ============================================  =========================================
    severity    imagenet (radius, sigma)                      cifar
    1..5        (10,3) (15,5) (15,8) (15,12) (20,15)          (6,1) (6,1.5) (6,2) (8,2) (9,2.5)
    ==========  ============================================  =========================================
    """

    name = "motion_blur"
    levels = {
        "imagenet": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
        "cifar": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
    }

    def _sample_extra(self, x, generator):
        return {"angle": -45.0 + 90.0 * rand(x.shape[0], generator=generator, device=x.device)}

    def _corrupt(self, x, params, sev):
        angle = self.field(params, "angle", x, (x.shape[0],)).double()
        f64 = torch.empty(0, dtype=torch.float64, device=x.device)
        return motion_blur(x, self.vec(sev, f64, 0), self.vec(sev, f64, 1), angle)


@register("natural_zoom_blur")
class NaturalZoomBlur(NaturalCorruption):
    """Zoom blur: the mean of the image and its centre zooms by each factor in the list
    (``clipped_zoom``: centre crop of ``ceil(n / z)``, linear zoom, central ``n``).

    ==========  ==========================  ==========================
    severity    imagenet zoom factors       cifar zoom factors
    1           1.00, 1.01, ..., 1.10       1.00, 1.01, ..., 1.05
    2           1.00, 1.01, ..., 1.15       1.00, 1.01, ..., 1.10
    3           1.00, 1.02, ..., 1.20       1.00, 1.01, ..., 1.15
    4           1.00, 1.02, ..., 1.24       1.00, 1.01, ..., 1.20
    5           1.00, 1.03, ..., 1.30       1.00, 1.01, ..., 1.25
    ==========  ==========================  ==========================
    """

    name = "zoom_blur"
    levels = {
        "imagenet": (arange_levels(1, 1.11, 0.01), arange_levels(1, 1.16, 0.01), arange_levels(1, 1.21, 0.02),
                     arange_levels(1, 1.26, 0.02), arange_levels(1, 1.31, 0.03)),
        "cifar": (arange_levels(1, 1.06, 0.01), arange_levels(1, 1.11, 0.01), arange_levels(1, 1.16, 0.01),
                  arange_levels(1, 1.21, 0.01), arange_levels(1, 1.26, 0.01)),
    }

    def _corrupt(self, x, params, sev):
        def one(xg: torch.Tensor, s: int, idx: torch.Tensor | None) -> torch.Tensor:
            zooms = self.level(s)

            def block(xb: torch.Tensor, acc: torch.Tensor, i: int) -> None:  # cache-sized chunks
                acc.copy_(xb)
                for z in zooms:
                    acc.add_(xb if z == 1.0 else clipped_zoom(xb, z))
                acc.div_(len(zooms) + 1)

            return chunked(xg, block)

        return run_grouped(x, sev, one)
