"""Defocus blur cores: a classical point-spread function and a learned linear-latent autoencoder.

* :class:`DefocusBlur` (registered ``defocus_psf``): per-sample defocus with a disk (geometric optics:
  the circle of confusion) or Gaussian PSF whose radius is drawn per sample. All samples are blurred
  by one depthwise grouped convolution (one kernel per sample, shared by its channels), or by one
  batched FFT product when the kernels are large; borders are replicated, so edges do not darken.
* :class:`LatentBlur` (registered ``latent_blur``): a frozen linear-latent autoencoder (any
  :class:`LatentAutoencoder`, e.g. :class:`medrobust.models.blur_autoencoder.BlurAutoencoder`) moves
  each sample along its own blur direction in latent space, ``D((1 − t)·E(x) + t·E(G_σ(x)))``, with a
  blur level ``t`` drawn per sample (``t > 1`` extrapolates past the reference). ``G_σ`` is the
  Gaussian that best maps the sharp to the most-blurred plane of the training stacks, so one image is
  enough. Checkpoints are loaded by :func:`medrobust.models.blur_autoencoder.latent_blur_from_checkpoint`.

The functional helpers (:func:`psf_kernels`, :func:`defocus_blur`, :func:`fit_gaussian_sigma`,
:func:`synthesize_blur`) are shared with the synthetic focal stacks, the blur autoencoder and the
microscopy evaluation.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from .base import BatchAugment, Params, as_range, rand, randint
from .functional.conv import depthwise_conv2d
from .functional.fftconv import kernel_rfft2, psf_fft_conv2d
from .functional.filters import PSF_KINDS, kernel_size, psf_kernels
from .registry import register

__all__ = [
    "PSF_KINDS",
    "kernel_size",
    "psf_kernels",
    "defocus_blur",
    "fit_gaussian_sigma",
    "fit_psf_radius",
    "LatentAutoencoder",
    "pad_to_multiple",
    "synthesize_blur",
    "DefocusBlur",
    "LatentBlur",
]

#: kernels at least this wide are applied through the FFT (``method="auto"``)
FFT_MIN_KERNEL = 31


def defocus_blur(x: torch.Tensor, radius: float | Sequence[float] | torch.Tensor, kind: str | torch.Tensor = "disk",
                 *, size: int | None = None, method: str = "auto") -> torch.Tensor:
    """Blur ``x`` ``(N, C, H, W)`` with a per-sample PSF (radius: scalar or ``(N,)``).

    ``method``: ``"conv"`` (grouped depthwise convolution), ``"fft"`` or ``"auto"`` (FFT for kernels of
    :data:`FFT_MIN_KERNEL` pixels and wider). ``size`` fixes the kernel side (default: fits the largest
    radius). Borders are replicated. Returns a tensor of ``x``'s shape and dtype.
    """
    if x.ndim != 4:
        raise ValueError(f"x: expected (N, C, H, W), got shape {tuple(x.shape)}")
    n = x.shape[0]
    r = torch.as_tensor(radius, dtype=torch.float64).reshape(-1)
    if r.numel() == 1:
        r = r.expand(n)
    if r.numel() != n:
        raise ValueError(f"radius: expected a scalar or {n} values, got {r.numel()}")
    if bool((r < 0).any()) or not bool(torch.isfinite(r).all()):
        raise ValueError(f"radius: expected finite values >= 0, got {r.tolist()}")
    if size is None:
        rmax = float(r.max())
        kinds = [kind] if isinstance(kind, str) else list(PSF_KINDS)
        size = max(kernel_size(rmax, kd) for kd in kinds)
    k = psf_kernels(r.to(x.device), kind, size, dtype=torch.float64 if x.dtype == torch.float64 else torch.float32)
    if size == 1:
        return x.clone()
    if method not in ("auto", "conv", "fft"):
        raise ValueError(f"method: expected 'auto', 'conv' or 'fft', got {method!r}")
    use_fft = method == "fft" or (method == "auto" and size >= FFT_MIN_KERNEL)
    return (psf_fft_conv2d if use_fft else depthwise_conv2d)(x, k)


def fit_gaussian_sigma(sharp: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor | Sequence[torch.Tensor], *,
                       max_sigma: float = 16.0, steps: int = 17, refine: int = 2) -> float:
    """The Gaussian sigma (pixels) minimising the mean squared error ``G_σ(sharp) − target``.

    ``sharp``/``target``: ``(N, C, H, W)`` tensors of equal shape, or lists of such pairs (images of
    different sizes; the error is averaged over all pixels). Grid search on ``[0, max_sigma]``, then
    ``refine`` finer grids around the best value.
    """
    return fit_psf_radius(sharp, target, "gaussian", max_radius=max_sigma, steps=steps, refine=refine)


def fit_psf_radius(sharp: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor | Sequence[torch.Tensor],
                   kind: str = "gaussian", *, max_radius: float = 16.0, steps: int = 17, refine: int = 2) -> float:
    """The PSF radius (disk radius / Gaussian sigma, pixels) minimising the MSE ``PSF_r(sharp) − target``
    (``kind``: ``"disk"`` or ``"gaussian"``; arguments as :func:`fit_gaussian_sigma`)."""
    if kind not in PSF_KINDS:
        raise ValueError(f"kind: expected one of {PSF_KINDS}, got {kind!r}")
    max_sigma = max_radius
    xs = [sharp] if isinstance(sharp, torch.Tensor) else list(sharp)
    ys = [target] if isinstance(target, torch.Tensor) else list(target)
    if len(xs) != len(ys) or not xs:
        raise ValueError(f"sharp and target: expected the same number (>= 1) of images, got {len(xs)} and {len(ys)}")
    for a, b in zip(xs, ys):
        if a.shape != b.shape:
            raise ValueError(f"sharp {tuple(a.shape)} and target {tuple(b.shape)} differ in shape")
    total = sum(a.numel() for a in xs)
    # one kernel size for every sigma and the images' spectra computed once: each trial is one
    # product and one inverse FFT (no per-size convolution set-up)
    size = kernel_size(float(max_sigma), kind)
    p = size // 2
    spectra = []
    for a in xs:
        ap = F.pad(a, (p, p, p, p), mode="replicate")
        spectra.append((torch.fft.rfft2(ap), ap.shape[-2:], a.shape[-2:]))

    def err(s: float) -> float:
        k = psf_kernels(torch.tensor([s], dtype=torch.float64), kind, size, dtype=xs[0].dtype)[0]
        out = 0.0
        for (spec, (hp, wp), (h, w)), b in zip(spectra, ys):
            kspec = kernel_rfft2(k.to(device=b.device, dtype=b.dtype), (hp, wp))
            y = torch.fft.irfft2(spec * kspec, s=(hp, wp))[..., p : p + h, p : p + w]
            out += float((y - b).square().sum())
        return out / total

    lo, hi = 0.0, float(max_sigma)
    best, best_err = 0.0, math.inf
    for _ in range(refine + 1):
        for s in torch.linspace(lo, hi, steps).tolist():
            e = err(s)
            if e < best_err:
                best, best_err = float(s), e
        step = (hi - lo) / (steps - 1)
        lo, hi = max(0.0, best - step), min(float(max_sigma), best + step)
    return best


# ------------------------------------------------------------------------------ latent interpolation
@runtime_checkable
class LatentAutoencoder(Protocol):
    """What :class:`LatentBlur` and :func:`synthesize_blur` need of an autoencoder (an ``nn.Module``):
    ``encode``/``decode`` between images ``(N, in_channels, H, W)`` (sides multiples of ``factor``)
    and latents."""

    in_channels: int
    factor: int

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...

    def decode(self, z: torch.Tensor) -> torch.Tensor: ...


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad ``(N, C, H, W)`` at the bottom/right to multiples of ``multiple`` (reflect, or replicate
    when the image is too small to reflect); returns the padded tensor and the original ``(H, W)``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


def synthesize_blur(model: LatentAutoencoder, x: torch.Tensor, reference: torch.Tensor,
                    level: float | torch.Tensor, *, detail: bool = False) -> torch.Tensor:
    """``D((1 − t)·E(x) + t·E(reference))`` with ``t = level`` (a number or ``(N,)``), any image size.

    ``x`` and ``reference`` are ``(N, C, H, W)`` in the model's [0, 1] intensity space: the sharper and
    the more blurred image of the same field (``reference`` may be a PSF-blurred copy of ``x``).

    ``detail=True`` adds back the autoencoder's own reconstruction residuals, interpolated like the
    latents: ``+ (1 − t)·(x − D(E(x))) + t·(ref − D(E(ref)))``. ``t = 0`` then returns ``x`` exactly
    and ``t = 1`` the reference exactly (the decoder's detail loss is cancelled at the end points);
    in between and beyond, the residuals are mixed/extrapolated linearly in pixel space (3 decodes).
    """
    if x.shape != reference.shape:
        raise ValueError(f"x {tuple(x.shape)} and reference {tuple(reference.shape)} must have the same shape")
    n = x.shape[0]
    xp, (h, w) = pad_to_multiple(x, model.factor)
    rp, _ = pad_to_multiple(reference, model.factor)
    z = model.encode(torch.cat([xp, rp]))
    t = torch.as_tensor(level, dtype=z.dtype, device=z.device).reshape(-1)
    t = t.expand(n) if t.numel() == 1 else t
    zt = torch.lerp(z[:n], z[n:], t.view(-1, *([1] * (z.ndim - 1))))
    if not detail:
        return model.decode(zt)[..., :h, :w]
    y, rx, rr = model.decode(torch.cat([zt, z])).split([n, n, n])
    tv = t.to(y.dtype).view(-1, 1, 1, 1)
    y = y + (1 - tv) * (xp - rx) + tv * (rp - rr)
    return y[..., :h, :w]


# ----------------------------------------------------------------------------------------- cores
@register("defocus_psf")
class DefocusBlur(BatchAugment):
    """Classical defocus blur: a disk or Gaussian PSF with a per-sample radius (2D).

    Args:
        radius: disk radius / Gaussian sigma in pixels; a number (fixed) or a ``(low, high)`` range
            sampled uniformly per sample.
        kind: ``"disk"``, ``"gaussian"`` or ``"mixed"`` (disk or Gaussian per sample, equally likely).
        method: ``"auto"``, ``"conv"`` or ``"fft"`` (see :func:`defocus_blur`).
        p: probability per sample of being blurred.

    The kernel side is fixed by the largest radius of the range, so every batch runs one grouped
    convolution (or one batched FFT). The output of each sample stays within its input's range.
    """

    spatial_dims = (2,)

    def __init__(self, radius: float | tuple[float, float] = (0.5, 4.0), kind: str = "disk", method: str = "auto",
                 p: float = 1.0) -> None:
        super().__init__(p=p)
        self.radius = as_range(radius, "radius")
        if self.radius[0] < 0:
            raise ValueError(f"radius: expected values >= 0, got {radius!r}")
        if kind not in ("disk", "gaussian", "mixed"):
            raise ValueError(f"kind: expected 'disk', 'gaussian' or 'mixed', got {kind!r}")
        if method not in ("auto", "conv", "fft"):
            raise ValueError(f"method: expected 'auto', 'conv' or 'fft', got {method!r}")
        self.kind, self.method = kind, method
        kinds = PSF_KINDS if kind == "mixed" else (kind,)
        self.size = max(kernel_size(self.radius[1], k) for k in kinds)

    def _sample(self, x: torch.Tensor, generator: torch.Generator | None) -> Params:
        n = x.shape[0]
        lo, hi = self.radius
        radius = lo + (hi - lo) * rand(n, generator=generator, device=x.device)
        if self.kind == "mixed":
            kind = randint(0, 2, (n,), generator=generator, device=x.device)
        else:
            kind = torch.full((n,), PSF_KINDS.index(self.kind), dtype=torch.long, device=x.device)
        return {"radius": radius, "kind": kind}

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        y = defocus_blur(x, params["radius"].to(x.device), params["kind"].to(x.device), size=self.size,
                         method=self.method)
        # a normalised non-negative kernel keeps each sample within its own range (up to rounding)
        lo = x.amin(dim=(1, 2, 3), keepdim=True)
        hi = x.amax(dim=(1, 2, 3), keepdim=True)
        return torch.minimum(torch.maximum(y, lo), hi)

    def extra_repr(self) -> str:
        return f"radius={self.radius}, kind={self.kind!r}, method={self.method!r}, p={self.p}"


@register("latent_blur")
class LatentBlur(BatchAugment):
    """Defocus blur synthesised by a frozen linear-latent autoencoder, one blur level per sample.

    ``y = D((1 − t)·E(x) + t·E(G_σ(x)))`` with ``t ~ U(levels)`` per sample: ``t = 0`` is the
    autoencoder's reconstruction of ``x``, ``t = 1`` its rendering of the reference blur ``G_σ(x)``,
    ``t > 1`` extrapolates to stronger blur and ``t < 0`` moves towards focus.

    Args:
        model: the frozen autoencoder, an ``nn.Module`` following :class:`LatentAutoencoder`
            (required; from a file: :func:`medrobust.models.blur_autoencoder.latent_blur_from_checkpoint`).
        levels: blur level ``t``; a number or a ``(low, high)`` range sampled per sample.
        reference_sigma: Gaussian sigma (pixels) of the reference blur ``G_σ`` (required; stored with
            a trained model).
        p: probability per sample of being blurred.
        detail: add back the autoencoder's reconstruction residuals (``t = 0`` returns the input
            exactly; see :func:`synthesize_blur`).

    Inputs are images ``(N, C, H, W)`` in [0, 1] normalised as the model's training data; channels
    are processed one by one by a single-channel model. The network runs on the input's device in
    float32 without gradients and stays in eval mode.
    """

    spatial_dims = (2,)
    data_args = ("model",)

    def __init__(self, model: LatentAutoencoder, levels: float | tuple[float, float] = (0.0, 1.5),
                 reference_sigma: float | None = None, p: float = 1.0, detail: bool = False) -> None:
        super().__init__(p=p)
        self.detail = bool(detail)
        if model is None:
            raise ValueError("model: required (a trained linear-latent autoencoder)")
        if isinstance(model, (str, bytes, os.PathLike)):
            raise TypeError(f"model: got the path {os.fspath(model)!r}; cores take networks — build the core with "
                            "medrobust.models.blur_autoencoder.latent_blur_from_checkpoint")
        if not isinstance(model, torch.nn.Module) or not isinstance(model, LatentAutoencoder):
            raise TypeError(f"model: expected an nn.Module with encode, decode, in_channels and factor, "
                            f"got {type(model).__name__}")
        if reference_sigma is None:
            raise ValueError("reference_sigma: required (the Gaussian sigma stored with the trained model)")
        if not (isinstance(reference_sigma, (int, float)) and reference_sigma >= 0 and math.isfinite(reference_sigma)):
            raise ValueError(f"reference_sigma: expected a number >= 0, got {reference_sigma!r}")
        self.levels = as_range(levels, "levels")
        self.reference_sigma = float(reference_sigma)
        self.model = model
        for prm in self.model.parameters():
            prm.requires_grad_(False)
        self.model.eval()

    def train(self, mode: bool = True) -> LatentBlur:  # the network stays frozen in eval mode
        super().train(mode)
        self.model.eval()
        return self

    def _sample(self, x: torch.Tensor, generator: torch.Generator | None) -> Params:
        lo, hi = self.levels
        return {"level": lo + (hi - lo) * rand(x.shape[0], generator=generator, device=x.device)}

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        model = self.model
        first = next(model.parameters(), None)
        if first is not None and first.device != x.device:
            model.to(x.device)
        n, c = x.shape[:2]
        xf = x.float()
        level = params["level"].to(device=x.device, dtype=torch.float32)
        if model.in_channels == 1 and c != 1:  # channels one by one
            xf = xf.reshape(n * c, 1, *x.shape[2:])
            level = level.repeat_interleave(c)
        elif model.in_channels != c:
            raise ValueError(f"x: the autoencoder takes {model.in_channels} channel(s), got {c}")
        ref = defocus_blur(xf, self.reference_sigma, "gaussian")
        with torch.no_grad():
            y = synthesize_blur(model, xf, ref, level, detail=self.detail)
        return y.reshape(x.shape).to(x.dtype)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, reference_sigma={self.reference_sigma}, detail={self.detail}, p={self.p}"
