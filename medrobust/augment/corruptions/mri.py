"""Cardiac-MRI corruptions (ACDC-C style): k-space and intensity artifacts with 5 severities.

Every corruption is a :class:`~medrobust.augment.base.BatchAugment` core registered as
``mri_<name>`` and callable through :func:`corrupt_mri`. Inputs are float batches ``(N, C, H, W)``
or ``(N, C, D, H, W)`` with values in [0, 1]; outputs keep shape, dtype and device and are
non-negative (a magnitude image) but **not clamped at 1**: an artifact that brightens (a spike stripe,
ringing overshoot, a bias field above 1, a contrast stretch) keeps its values, as TorchIO's and MONAI's
do, instead of saturating at 1 (the clamp saturated 42-55 % of a brain scan's voxels for k-space spikes at
severities 4-5). Volumes are treated as a 2D multi-slice acquisition (like cine MRI): k-space and
in-plane operations (Gibbs, spikes, ghosting, blur, resolution loss) act on the last two dims
``(H, W)`` of every slice ``D``; the bias field is smooth over all spatial dims; noise and
contrast are voxel-wise. Random quantities are drawn per sample and do not depend on the severity,
so for a fixed seed a higher severity only scales the same artifact (severity is monotone: the mean
absolute error to the clean image grows with it). k-space corruptions return the magnitude image
``|ifft2(...)|``, as an MRI scanner does.

Severity table:

=================  ===========================================================================
corruption         parameter: values for severities 1, 2, 3, 4, 5
=================  ===========================================================================
bias_field         log-strength s: 0.15 0.3 0.45 0.6 0.75; ``x * exp(s * f)``, f smooth in [-1, 1]
gibbs_ringing      kept central k-space fraction per in-plane axis: 0.8 0.65 0.5 0.4 0.3 (hard cut)
kspace_spike       spike magnitude / ``|DC|``: 0.2 0.4 0.6 0.9 1.2 (stripes of that x mean intensity)
motion_ghosting    ghost / object amplitude: 0.1 0.2 0.3 0.45 0.6 (phase error on every m-th
                   phase-encode line solved per sample for its period m; the anatomy stays dominant)
rician_noise       sigma: 0.02 0.04 0.06 0.09 0.12; ``sqrt((x + sigma n1)^2 + (sigma n2)^2)``
gaussian_blur      sigma (pixels, in-plane, separable, 13 taps): 0.5 0.8 1.2 1.6 2.0
contrast_gamma     ``|log gamma|``: 0.1 0.2 0.3 0.45 0.6 and ``|log c|``: 0.1 0.2 0.3 0.4 0.5;
                   ``m + c (x^gamma - m)``, m = sample mean of ``x^gamma``
resolution_loss    in-plane downsampling factor: 1.5 2 3 4 6 (triangle-filtered down, bilinear up)
=================  ===========================================================================

Random per sample (independent of the severity): bias_field, the cubic polynomial coefficients;
kspace_spike, 1-3 spikes with positions (each axis 5-50 % of k-space from the centre) and phases;
motion_ghosting, the phase-encode axis (H or W), period m in 2..4, offset and sign of the error;
rician_noise, the noise fields; contrast_gamma, the directions of gamma and contrast. Gibbs
ringing, Gaussian blur and resolution loss are deterministic given the severity.

Example::

    y = corrupt_mri(x, "motion_ghosting", 3, generator=torch.Generator().manual_seed(0))
    y = corrupt_mri(x, "rician_noise", torch.tensor([1, 5]))  # per-sample severities
"""

from __future__ import annotations

import itertools
import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from ..base import Params, device_generator, per_sample_view, rand, randint, randn
from ..functional import box_mask, depthwise_conv2d, gaussian_taps, masked_fft2
from ..registry import register
from ._common import SeverityCore, corrupt_with, lookup

__all__ = [
    "NAMES",
    "SEVERITIES",
    "CORRUPTIONS",
    "MRICorruption",
    "MRIBiasField",
    "MRIGibbsRinging",
    "MRIKSpaceSpike",
    "MRIMotionGhosting",
    "MRIRicianNoise",
    "MRIGaussianBlur",
    "MRIContrastGamma",
    "MRIResolutionLoss",
    "corrupt_mri",
    "parameter_table",
]

NAMES: list[str] = [
    "bias_field",
    "gibbs_ringing",
    "kspace_spike",
    "motion_ghosting",
    "rician_noise",
    "gaussian_blur",
    "contrast_gamma",
    "resolution_loss",
]

#: the valid severities
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)


def _check_spacing(spacing: Any) -> tuple[float, float] | None:
    """``spacing``: None or the in-plane voxel size ``(H, W)`` (two positive finite numbers, any unit)."""
    if spacing is None:
        return None
    try:
        sh, sw = (float(v) for v in spacing)
    except (TypeError, ValueError):
        raise ValueError(f"spacing: expected None or two positive numbers (in-plane voxel size H, W), got {spacing!r}") from None
    if not (math.isfinite(sh) and math.isfinite(sw) and sh > 0 and sw > 0):
        raise ValueError(f"spacing: expected two positive finite numbers, got {spacing!r}")
    return sh, sw


def _relative_spacing(spacing: tuple[float, float] | None) -> tuple[float, float]:
    """Each in-plane axis' voxel size over the finer one's (``(1, 1)`` when isotropic or unknown)."""
    if spacing is None:
        return 1.0, 1.0
    fine = min(spacing)
    return spacing[0] / fine, spacing[1] / fine


def _spatial_view(v: torch.Tensor, ndim: int) -> torch.Tensor:
    """``(N, H, W)`` -> ``(N, 1, [1,] H, W)`` to broadcast over channels (and slices)."""
    return v.reshape(v.shape[0], *([1] * (ndim - 3)), *v.shape[1:])


class MRICorruption(SeverityCore, abstract=True):
    """Base of the MRI corruptions: per-sample severity plus a severity-indexed parameter table.

    Args:
        severity: an int 1..5 (fixed) or a ``(low, high)`` pair (per-sample random integer in the
            inclusive range).
        p: probability, per sample, that the sample is corrupted.

    Params always hold ``severity`` (``(N,)`` int64) and the subclass' random draws, which never
    depend on the severity.
    """

    #: corruption name without the ``mri_`` prefix
    name: ClassVar[str] = ""
    #: parameter name -> values for severities 1..5
    table: ClassVar[dict[str, tuple[float, ...]]] = {}

    # -- application ----------------------------------------------------------------------------
    def value(self, key: str, params: Params, x: torch.Tensor) -> torch.Tensor:
        """Per-sample ``(N,)`` value of table entry ``key`` for ``params['severity']``."""
        sev = self.severities(params, x)
        return torch.tensor(self.table[key], dtype=x.dtype, device=x.device)[sev - 1]

    #: outputs may exceed 1 (see the module docstring: no saturation the artifact does not make)
    keeps_range: ClassVar[bool] = False

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        work = x if x.dtype in (torch.float32, torch.float64) else x.float()
        out = self._corrupt(work, params)
        return out.clamp_(min=0.0).to(x.dtype)  # magnitude images are >= 0; no upper clamp

    def _corrupt(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"severity={self.severity}, p={self.p}"


# ------------------------------------------------------------------------------------------------
@register("mri_bias_field")
class MRIBiasField(MRICorruption):
    """Smooth multiplicative bias field (coil inhomogeneity): ``x * exp(s * f)``.

    ``f`` is a cubic polynomial of the normalised coordinates (in-plane for images, over
    ``(D, H, W)`` for volumes) with per-sample ``N(0, 1) / order`` coefficients, made zero-mean and
    scaled to max ``|f| = 1``; so the field ranges over ``[exp(-s), exp(s)]``.

    ==========  =====  ====  =====  ====  =====
    severity    1      2     3      4     5
    s           0.15   0.3   0.45   0.6   0.75
    ==========  =====  ====  =====  ====  =====
    """

    name = "bias_field"
    table = {"log_strength": (0.15, 0.3, 0.45, 0.6, 0.75)}
    degree: ClassVar[int] = 3

    @classmethod
    def _exponents(cls, dims: int) -> list[tuple[int, ...]]:
        powers = itertools.product(range(cls.degree + 1), repeat=dims)
        return [e for e in powers if 1 <= sum(e) <= cls.degree]

    def _sample_extra(self, x: torch.Tensor, generator: torch.Generator | None) -> Params:
        k = len(self._exponents(x.ndim - 2))
        return {"coefficients": randn(x.shape[0], k, generator=generator, device=x.device)}

    def _corrupt(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        spatial = x.shape[2:]
        exps = self._exponents(len(spatial))
        d = self.degree
        order = torch.tensor([sum(e) for e in exps], dtype=x.dtype, device=x.device)
        coef = params["coefficients"].to(device=x.device, dtype=x.dtype) / order  # (N, K)
        # separable evaluation: the coefficients scattered into a (N, d+1, ..., d+1) grid of exponents,
        # contracted with each axis' power table (no (K, *S) basis in memory)
        flat = torch.tensor([sum(p * (d + 1) ** (len(e) - 1 - i) for i, p in enumerate(e)) for e in exps],
                            device=x.device)
        grid = torch.zeros(x.shape[0], (d + 1) ** len(spatial), dtype=x.dtype, device=x.device)
        grid[:, flat] = coef
        grid = grid.reshape(x.shape[0], *([d + 1] * len(spatial)))
        powers = [torch.linspace(-1.0, 1.0, n, dtype=x.dtype, device=x.device)[None, :]
                  ** torch.arange(d + 1, dtype=x.dtype, device=x.device)[:, None] for n in spatial]  # (d+1, n)
        letters = "abc"[: len(spatial)]
        outs = "xyz"[: len(spatial)]
        eq = f"n{letters}," + ",".join(f"{a}{o}" for a, o in zip(letters, outs)) + f"->n{outs}"
        f = torch.einsum(eq, grid, *powers)  # (N, *S)
        dims = tuple(range(1, f.ndim))
        f = f - f.mean(dim=dims, keepdim=True)
        f = f / f.abs().amax(dim=dims, keepdim=True).clamp_min(1e-6)
        s = self.value("log_strength", params, x)
        field = torch.exp(per_sample_view(s, f.ndim) * f).unsqueeze(1)
        return x * field


@register("mri_gibbs_ringing")
class MRIGibbsRinging(MRICorruption):
    """Gibbs ringing: k-space truncation with a hard cut, magnitude reconstruction.

    Keeps the frequencies ``|k| <= floor(fraction * n / 2)`` along each in-plane axis (size ``n``)
    and zeroes the rest, so the energy beyond the cut-off is exactly zero before clamping.

    ==========  ====  =====  ====  ====  ====
    severity    1     2      3     4     5
    fraction    0.8   0.65   0.5   0.4   0.3
    ==========  ====  =====  ====  ====  ====
    """

    name = "gibbs_ringing"
    table = {"kept_fraction": (0.8, 0.65, 0.5, 0.4, 0.3)}

    @staticmethod
    def kept_mask(fraction: torch.Tensor, h: int, w: int, device: torch.device) -> torch.Tensor:
        """``(N, H, W)`` bool mask (FFT order) of the frequencies kept for per-sample ``fraction``."""
        fraction = fraction.to(device=device, dtype=torch.float64)
        cutoff = (torch.floor(fraction * h / 2 + 1e-6), torch.floor(fraction * w / 2 + 1e-6))
        return box_mask((h, w), cutoff, integer=True, device=device, dtype=torch.float64)

    def _corrupt(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        h, w = x.shape[-2:]
        mask = self.kept_mask(self.value("kept_fraction", params, x), h, w, x.device)
        return masked_fft2(x, _spatial_view(mask, x.ndim)).abs().to(x.dtype)


@register("mri_kspace_spike")
class MRIKSpaceSpike(MRICorruption):
    """k-space spikes (herringbone / stripe artifact): 1-3 bright k-space points per sample.

    Each spike is a k-space point at a random integer position (each axis at 5-50 % of its size
    from the centre, random sign) with a random phase and magnitude ``a * |DC|``, i.e. it adds a
    complex sinusoid of amplitude ``a * mean(x)`` to every slice; the output is the magnitude.

    ==========  ====  ====  ====  ====  ====
    severity    1     2     3     4     5
    a           0.2   0.4   0.6   0.9   1.2
    ==========  ====  ====  ====  ====  ====
    """

    name = "kspace_spike"
    table = {"relative_magnitude": (0.2, 0.4, 0.6, 0.9, 1.2)}
    max_spikes: ClassVar[int] = 3

    def _sample_extra(self, x: torch.Tensor, generator: torch.Generator | None) -> Params:
        n, k, dev = x.shape[0], self.max_spikes, x.device
        count = randint(1, k + 1, (n,), generator=generator, device=dev)
        radius = 0.05 + 0.45 * rand(n, k, 2, generator=generator, device=dev)
        sign = torch.where(rand(n, k, 2, generator=generator, device=dev) < 0.5, -1.0, 1.0)
        phase = 2 * math.pi * rand(n, k, generator=generator, device=dev)
        active = torch.arange(k, device=dev)[None, :] < count[:, None]
        return {"active": active, "frequency": radius * sign, "phase": phase}

    def _corrupt(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        h, w = x.shape[-2:]
        dev, f64 = x.device, torch.float64
        freq = params["frequency"].to(device=dev, dtype=f64)
        ky = torch.round(freq[..., 0] * h)[:, :, None, None]  # (N, K, 1, 1) integer k-space positions
        kx = torch.round(freq[..., 1] * w)[:, :, None, None]
        yy = (torch.arange(h, device=dev, dtype=f64) / h)[:, None]
        xx = torch.arange(w, device=dev, dtype=f64) / w
        phase = params["phase"].to(device=dev, dtype=f64)[:, :, None, None]
        angle = phase + 2 * math.pi * (ky * yy + kx * xx)  # (N, K, H, W)
        active = params["active"].to(dev)[:, :, None, None].to(f64)
        wave = torch.polar(active.expand_as(angle), angle).sum(dim=1)  # (N, H, W) complex
        dims = tuple(range(1, x.ndim))
        amp = self.value("relative_magnitude", params, x).double() * x.double().mean(dim=dims)
        spike = _spatial_view(wave * amp[:, None, None], x.ndim)
        return (x.double() + spike).abs().to(x.dtype)


@register("mri_motion_ghosting")
class MRIMotionGhosting(MRICorruption):
    """Motion ghosting: a phase error ``theta`` on every ``m``-th phase-encode line of k-space.

    Per sample: the phase-encode axis (H or W), the period ``m`` in 2..4, the offset in ``0..m-1``
    and the sign of ``theta``. Ghosts appear at shifts of ``n / m`` along that axis with amplitude
    ``2 sin(theta / 2) / m`` and the object keeps ``|m - 1 + exp(i theta)| / m`` of its amplitude. The
    severity sets the ghost-to-object ratio ``r``; ``theta = 2 asin(r m / (2 sqrt(1 + (m - 1) r^2)))``
    is solved per sample, so every period gives the same ratio and the anatomy stays the dominant
    signal (a fixed ``theta = 0.6 pi`` made period-2 ghosts 1.4x brighter than the object). The output
    is the magnitude.

    ==========  ====  ====  ====  =====  ====
    severity    1     2     3     4      5
    r           0.1   0.2   0.3   0.45   0.6
    ==========  ====  ====  ====  =====  ====
    """

    name = "motion_ghosting"
    table = {"ghost_ratio": (0.1, 0.2, 0.3, 0.45, 0.6)}

    @staticmethod
    def phase_error(ratio: torch.Tensor, period: torch.Tensor) -> torch.Tensor:
        """The phase error ``theta`` (rad) giving ghost / object amplitude ``ratio`` for period ``period``."""
        r, m = ratio.double(), period.double()
        return 2 * torch.asin((r * m / (2 * torch.sqrt(1 + (m - 1) * r * r))).clamp(max=1.0))

    def _sample_extra(self, x: torch.Tensor, generator: torch.Generator | None) -> Params:
        n, dev = x.shape[0], x.device
        axis = randint(0, 2, (n,), generator=generator, device=dev)
        period = randint(2, 5, (n,), generator=generator, device=dev)
        offset = torch.floor(rand(n, generator=generator, device=dev) * period).long()
        sign = torch.where(rand(n, generator=generator, device=dev) < 0.5, -1.0, 1.0)
        return {"axis": axis, "period": period, "offset": offset, "sign": sign}

    def _corrupt(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        h, w = x.shape[-2:]
        dev = x.device
        period = params["period"].to(dev)[:, None]
        offset = params["offset"].to(dev)[:, None]
        lines_h = (torch.arange(h, device=dev)[None, :] - offset) % period == 0  # (N, H)
        lines_w = (torch.arange(w, device=dev)[None, :] - offset) % period == 0  # (N, W)
        on_h = (params["axis"].to(dev) == 0)[:, None, None]
        lines = torch.where(on_h, lines_h[:, :, None].expand(-1, h, w), lines_w[:, None, :].expand(-1, h, w))
        sign = params["sign"].to(device=dev, dtype=x.dtype)
        theta = self.phase_error(self.value("ghost_ratio", params, x), params["period"].to(dev)).to(x.dtype) * sign
        factor = torch.polar(torch.ones_like(theta), theta)[:, None, None]
        one = torch.ones((), dtype=factor.dtype, device=dev)
        modulation = torch.where(lines, factor, one)
        return masked_fft2(x, _spatial_view(modulation, x.ndim)).abs().to(x.dtype)


@register("mri_rician_noise")
class MRIRicianNoise(MRICorruption):
    """Rician noise: magnitude of the image plus complex Gaussian noise,
    ``sqrt((x + sigma n1)^2 + (sigma n2)^2)`` with ``n1, n2 ~ N(0, 1)`` per voxel.

    ==========  =====  =====  =====  =====  =====
    severity    1      2      3      4      5
    sigma       0.02   0.04   0.06   0.09   0.12
    ==========  =====  =====  =====  =====  =====
    """

    name = "rician_noise"
    table = {"sigma": (0.02, 0.04, 0.06, 0.09, 0.12)}

    def _sample_extra(self, x: torch.Tensor, generator: torch.Generator | None) -> Params:
        return {"noise": randn(x.shape[0], 2, *x.shape[1:], generator=device_generator(generator, x.device), device=x.device)}

    def _corrupt(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        noise = params["noise"].to(device=x.device, dtype=x.dtype)
        if noise.shape[2:] != x.shape[1:]:
            raise ValueError(f"params['noise']: shape {tuple(noise.shape)} does not match x {tuple(x.shape)}")
        sigma = per_sample_view(self.value("sigma", params, x), x.ndim)
        return torch.sqrt((x + sigma * noise[:, 0]) ** 2 + (sigma * noise[:, 1]) ** 2)


@register("mri_gaussian_blur")
class MRIGaussianBlur(MRICorruption):
    """In-plane separable Gaussian blur (13-tap kernel for every severity, replicate border).

    With ``spacing`` (the in-plane voxel size ``(H, W)``, e.g. from the NIfTI header) sigma is in
    voxels of the finer axis and a coarser axis gets ``sigma * fine / coarse``: the same blur in mm.

    ==============  ====  ====  ====  ====  ====
    severity        1     2     3     4     5
    sigma (pixels)  0.5   0.8   1.2   1.6   2.0
    ==============  ====  ====  ====  ====  ====
    """

    name = "gaussian_blur"
    table = {"sigma": (0.5, 0.8, 1.2, 1.6, 2.0)}
    radius: ClassVar[int] = 6  # ceil(3 * max sigma): the same support for every sample

    def __init__(self, *, severity: int | tuple[int, int] = (1, 5), p: float = 1.0,
                 spacing: tuple[float, float] | None = None) -> None:
        super().__init__(severity=severity, p=p)
        self.spacing = _check_spacing(spacing)

    def _corrupt(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
        sigma = self.value("sigma", params, x)
        rel_h, rel_w = _relative_spacing(self.spacing)
        kern_h = gaussian_taps(sigma / rel_h, self.radius)  # (N, K); sigma in units of the finer axis
        kern_w = kern_h if rel_h == rel_w else gaussian_taps(sigma / rel_w, self.radius)
        y = x.reshape(n, -1, h, w)  # channels (x slices) share their sample's kernel
        y = depthwise_conv2d(y, kern_h[:, :, None])  # along H
        y = depthwise_conv2d(y, kern_w[:, None, :])  # along W
        return y.reshape(x.shape)


@register("mri_contrast_gamma")
class MRIContrastGamma(MRICorruption):
    """Contrast / gamma change: ``m + c * (x^gamma - m)``, ``m`` the per-sample mean of ``x^gamma``.

    ``gamma = exp(+-g)`` and ``c = exp(+-h)`` with independent random directions per sample.

    ==========  ====  ====  ====  =====  ====
    severity    1     2     3     4      5
    g           0.1   0.2   0.3   0.45   0.6
    h           0.1   0.2   0.3   0.4    0.5
    ==========  ====  ====  ====  =====  ====
    """

    name = "contrast_gamma"
    table = {"log_gamma": (0.1, 0.2, 0.3, 0.45, 0.6), "log_contrast": (0.1, 0.2, 0.3, 0.4, 0.5)}

    def _sample_extra(self, x: torch.Tensor, generator: torch.Generator | None) -> Params:
        signs = torch.where(rand(x.shape[0], 2, generator=generator, device=x.device) < 0.5, -1.0, 1.0)
        return {"gamma_sign": signs[:, 0], "contrast_sign": signs[:, 1]}

    def _corrupt(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        nd = x.ndim
        g = self.value("log_gamma", params, x) * params["gamma_sign"].to(device=x.device, dtype=x.dtype)
        c = self.value("log_contrast", params, x) * params["contrast_sign"].to(device=x.device, dtype=x.dtype)
        y = x.clamp(0.0, 1.0) ** per_sample_view(torch.exp(g), nd)
        mean = y.mean(dim=tuple(range(1, nd)), keepdim=True)
        return mean + per_sample_view(torch.exp(c), nd) * (y - mean)


@register("mri_resolution_loss")
class MRIResolutionLoss(MRICorruption):
    """Resolution loss: in-plane triangle-filtered downsampling by ``factor``, bilinear upsampling back.

    Each axis of size ``n`` goes to ``max(1, round(n / factor))`` samples. Applied as per-sample
    ``(H, H)`` and ``(W, W)`` resampling matrices (``R_H @ x @ R_W^T``), equal to
    ``F.interpolate(mode="bilinear", antialias=True)`` down followed by ``F.interpolate(mode="bilinear")``
    up, slice by slice. (Area downsampling, used before, is a poor low-pass at non-integer factors:
    factors 1.5 and 2 lost nearly the same (28.4 vs 27.7 dB) and 1.75 less than 2 on nibabel's
    ``example4d``; the triangle filter is monotone in the factor, and the factors are spaced for
    roughly even PSNR steps: 28.9, 26.6, 24.8, 23.1, 20.9 dB there.) With ``spacing`` (the in-plane
    voxel size) the factor applies to the finer axis and a coarser axis is downsampled proportionally
    less (never below 1).

    ==========  ====  ===  ===  ===  ===
    severity    1     2    3    4    5
    factor      1.5   2    3    4    6
    ==========  ====  ===  ===  ===  ===
    """

    name = "resolution_loss"
    table = {"factor": (1.5, 2.0, 3.0, 4.0, 6.0)}

    def __init__(self, *, severity: int | tuple[int, int] = (1, 5), p: float = 1.0,
                 spacing: tuple[float, float] | None = None) -> None:
        super().__init__(severity=severity, p=p)
        self.spacing = _check_spacing(spacing)

    @staticmethod
    def resample_matrix(size: int, factor: float, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """``(size, size)`` matrix of triangle-filtered down by ``factor`` then linear-up along one axis."""
        small = max(1, round(size / factor))
        eye = torch.eye(size, dtype=torch.float64, device=device)[:, None, None, :]  # (size, 1, 1, size) impulses
        down = F.interpolate(eye, size=(1, small), mode="bilinear", antialias=True, align_corners=False)
        up = F.interpolate(down, size=(1, size), mode="bilinear", align_corners=False)
        return up[:, 0, 0, :].T.contiguous().to(dtype)

    def _corrupt(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        h, w = x.shape[-2:]
        sev = self.severities(params, x) - 1
        kw: dict[str, Any] = {"dtype": x.dtype, "device": x.device}
        rel_h, rel_w = _relative_spacing(self.spacing)  # a coarser axis is downsampled less
        used, index = torch.unique(sev, return_inverse=True)  # matrices only for the severities in the batch
        factors = [self.table["factor"][int(i)] for i in used.cpu()]
        rh = torch.stack([self.resample_matrix(h, max(1.0, f / rel_h), **kw) for f in factors])[index]
        rw = torch.stack([self.resample_matrix(w, max(1.0, f / rel_w), **kw) for f in factors])[index]
        shape = (x.shape[0], *([1] * (x.ndim - 3)))  # broadcast over C (and D)
        return rh.reshape(*shape, h, h) @ x @ rw.transpose(1, 2).reshape(*shape, w, w)


CORRUPTIONS: dict[str, type[MRICorruption]] = {
    cls.name: cls
    for cls in (
        MRIBiasField,
        MRIGibbsRinging,
        MRIKSpaceSpike,
        MRIMotionGhosting,
        MRIRicianNoise,
        MRIGaussianBlur,
        MRIContrastGamma,
        MRIResolutionLoss,
    )
}
if list(CORRUPTIONS) != NAMES:  # pragma: no cover - guards edits to either list
    raise RuntimeError("mri.CORRUPTIONS and mri.NAMES disagree")


def parameter_table() -> dict[str, dict[str, list[float]]]:
    """``{name: {parameter: [value for severity 1..5]}}`` of every corruption (JSON-ready)."""
    return {
        name: {k: [float(v) for v in vals] for k, vals in cls.table.items()} for name, cls in CORRUPTIONS.items()
    }


def _lookup(name: Any) -> type[MRICorruption]:
    return lookup(name, CORRUPTIONS, "mri_", "MRI corruption")


def corrupt_mri(
    x: torch.Tensor,
    name: str,
    severity: int | torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Corrupt a batch with one MRI corruption.

    Args:
        x: float ``(N, C, H, W)`` or ``(N, C, D, H, W)`` in [0, 1] (volumes: slices along ``D``).
        name: one of :data:`NAMES` (the ``mri_`` prefix is accepted).
        severity: an int 1..5, or an integer tensor of shape ``(N,)`` with one severity per sample.
        generator: source of the random draws (CPU when None). The draws do not depend on the
            severity, so a fixed seed gives the same artifact at every severity, only stronger.
    Returns:
        ``(N, C, *S)`` tensor, same dtype and device as ``x``, in [0, 1].
    Raises:
        ValueError: unknown name, severity outside 1..5 or of the wrong shape, wrong input shape.
        TypeError: non-tensor or non-float input, non-integer severity.
    """
    return corrupt_with(_lookup(name)(), x, severity, generator)
