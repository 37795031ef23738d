"""Defocus blur cores: a classical point-spread function and a learned linear-latent autoencoder.

* :class:`DefocusBlur` (registered ``defocus_psf``): per-sample defocus with a disk (geometric optics:
  the circle of confusion) or Gaussian PSF whose radius is drawn per sample. All samples are blurred
  by one depthwise grouped convolution (one kernel per sample, shared by its channels), or by one
  batched FFT product when the kernels are large; borders are replicated, so edges do not darken.
* :class:`LatentBlur` (registered ``latent_blur``): a frozen :class:`~medrobust.models.blur_autoencoder.BlurAutoencoder`
  moves each sample along its own blur direction in latent space,
  ``D((1 − t)·E(x) + t·E(G_σ(x)))``, with a blur level ``t`` drawn per sample (``t > 1`` extrapolates
  past the reference). ``G_σ`` is the Gaussian that best maps the sharp to the most-blurred plane of
  the training stacks (stored in the checkpoint), so one image is enough.

The functional helpers (:func:`psf_kernels`, :func:`defocus_blur`, :func:`fit_gaussian_sigma`) are
shared with the synthetic focal stacks (:mod:`medrobust.data.synthetic.microscopy`) and the
evaluation baselines (:mod:`medrobust.adapters.microscopy`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .base import BatchAugment, Params, as_range, rand, randint
from .registry import register

__all__ = [
    "PSF_KINDS",
    "kernel_size",
    "psf_kernels",
    "defocus_blur",
    "fit_gaussian_sigma",
    "DefocusBlur",
    "LatentBlur",
]

#: PSF shapes; the index is the per-sample ``kind`` parameter
PSF_KINDS: tuple[str, ...] = ("disk", "gaussian")
#: kernels at least this wide are applied through the FFT (``method="auto"``)
FFT_MIN_KERNEL = 31


def kernel_size(radius: float, kind: str) -> int:
    """Odd kernel side that holds the PSF of ``radius`` (disk radius or Gaussian sigma, pixels)."""
    if kind == "disk":
        half = math.ceil(radius + 0.5)
    elif kind == "gaussian":
        half = math.ceil(3.0 * radius)
    else:
        raise ValueError(f"kind: expected one of {PSF_KINDS}, got {kind!r}")
    return 2 * max(half, 0) + 1


def psf_kernels(radius: torch.Tensor, kind: torch.Tensor | str, size: int, *,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalised 2D PSFs ``(N, size, size)``, one per entry of ``radius`` ``(N,)``.

    ``kind`` is ``"disk"``, ``"gaussian"`` or a per-sample index tensor into :data:`PSF_KINDS`.

    * disk of radius ``r``: anti-aliased by the pixel's distance to the rim,
      ``w = clamp(r + 0.5 − d, 0, 1)`` — continuous in ``r``; ``r = 0`` is the identity;
    * Gaussian of standard deviation ``r``: ``exp(−d²/2r²)``; ``r → 0`` is the identity.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"size: expected a positive odd kernel size, got {size}")
    radius = radius.to(dtype).reshape(-1, 1, 1)
    half = size // 2
    ax = torch.arange(-half, half + 1, dtype=dtype, device=radius.device)
    d2 = ax.view(-1, 1).square() + ax.view(1, -1).square()
    disk = (radius + 0.5 - d2.sqrt()).clamp(0.0, 1.0)
    gauss = torch.exp(-d2 / (2.0 * radius.clamp_min(1e-3).square()))
    if isinstance(kind, str):
        if kind not in PSF_KINDS:
            raise ValueError(f"kind: expected one of {PSF_KINDS}, got {kind!r}")
        k = disk if kind == "disk" else gauss
    else:
        k = torch.where(kind.to(radius.device).reshape(-1, 1, 1) == 0, disk, gauss)
    return k / k.sum(dim=(-2, -1), keepdim=True)


def _blur_conv(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Depthwise grouped convolution: sample ``i`` (all channels) with kernel ``k[i]``."""
    n, c, h, w = x.shape
    p = k.shape[-1] // 2
    xp = F.pad(x, (p, p, p, p), mode="replicate") if p else x
    weight = k[:, None].expand(n, c, *k.shape[-2:]).reshape(n * c, 1, *k.shape[-2:]).to(x.dtype)
    y = F.conv2d(xp.reshape(1, n * c, h + 2 * p, w + 2 * p), weight, groups=n * c)
    return y.reshape(n, c, h, w)


def _blur_fft(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The same per-sample convolution as one batched FFT product (replicate-padded, no wrap-around)."""
    n, c, h, w = x.shape
    ks = k.shape[-1]
    p = ks // 2
    xp = F.pad(x, (p, p, p, p), mode="replicate")
    hp, wp = h + 2 * p, w + 2 * p
    kp = torch.zeros(n, hp, wp, dtype=x.dtype, device=x.device)
    kp[:, :ks, :ks] = k.to(x.dtype)
    kp = torch.roll(kp, shifts=(-p, -p), dims=(1, 2))  # kernel centre at the origin
    y = torch.fft.irfft2(torch.fft.rfft2(xp) * torch.fft.rfft2(kp)[:, None], s=(hp, wp))
    return y[..., p : p + h, p : p + w]


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
    return (_blur_fft if use_fft else _blur_conv)(x, k)


def fit_gaussian_sigma(sharp: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor | Sequence[torch.Tensor], *,
                       max_sigma: float = 16.0, steps: int = 17, refine: int = 2) -> float:
    """The Gaussian sigma (pixels) minimising the mean squared error ``G_σ(sharp) − target``.

    ``sharp``/``target``: ``(N, C, H, W)`` tensors of equal shape, or lists of such pairs (images of
    different sizes; the error is averaged over all pixels). Grid search on ``[0, max_sigma]``, then
    ``refine`` finer grids around the best value.
    """
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
    size = kernel_size(float(max_sigma), "gaussian")
    p = size // 2
    spectra = []
    for a in xs:
        ap = F.pad(a, (p, p, p, p), mode="replicate")
        spectra.append((torch.fft.rfft2(ap), ap.shape[-2:], a.shape[-2:]))

    def err(s: float) -> float:
        k = psf_kernels(torch.tensor([s], dtype=torch.float64), "gaussian", size, dtype=xs[0].dtype)[0]
        out = 0.0
        for (spec, (hp, wp), (h, w)), b in zip(spectra, ys):
            kp = torch.zeros(hp, wp, dtype=b.dtype, device=b.device)
            kp[:size, :size] = k.to(b.device)
            kp = torch.roll(kp, shifts=(-p, -p), dims=(0, 1))
            y = torch.fft.irfft2(spec * torch.fft.rfft2(kp), s=(hp, wp))[..., p : p + h, p : p + w]
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


class _ContractKwargs:
    """``LatentBlur.contract_kwargs``: a tiny randomly initialised autoencoder built on first access
    (with its own seed, leaving the global RNG alone) — for the shared contract test only."""

    def __init__(self) -> None:
        self._value: dict[str, Any] | None = None

    def __get__(self, obj: Any, owner: Any) -> dict[str, Any]:
        if self._value is None:
            from ..models.blur_autoencoder import BlurAutoencoder

            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model = BlurAutoencoder(in_channels=1, widths=(4, 8))
            self._value = {"checkpoint": model, "reference_sigma": 1.5}
        return dict(self._value)


@register("latent_blur")
class LatentBlur(BatchAugment):
    """Defocus blur synthesised by a frozen linear-latent autoencoder, one blur level per sample.

    ``y = D((1 − t)·E(x) + t·E(G_σ(x)))`` with ``t ~ U(levels)`` per sample: ``t = 0`` is the
    autoencoder's reconstruction of ``x``, ``t = 1`` its rendering of the reference blur ``G_σ(x)``,
    ``t > 1`` extrapolates to stronger blur and ``t < 0`` moves towards focus.

    Args:
        checkpoint: a model file written by ``medrobust blur train`` (``model.pt``), a run directory,
            or an in-memory :class:`~medrobust.models.blur_autoencoder.BlurAutoencoder` /
            :class:`~medrobust.models.blur_autoencoder.BlurModel`. Required: there is no default model.
        levels: blur level ``t``; a number or a ``(low, high)`` range sampled per sample.
        reference_sigma: Gaussian sigma (pixels) of the reference blur; default: the value stored
            with the checkpoint (required for a bare autoencoder).
        p: probability per sample of being blurred.

    Inputs are images in [0, 1] normalised as the model's training data (see
    :mod:`medrobust.data.microscopy`); channels are processed one by one by a single-channel model.
    The network runs on the input's device in float32 without gradients and stays in eval mode.
    """

    spatial_dims = (2,)
    contract_kwargs = _ContractKwargs()  # type: ignore[assignment]

    def __init__(self, checkpoint: Any, levels: float | tuple[float, float] = (0.0, 1.5),
                 reference_sigma: float | None = None, p: float = 1.0) -> None:
        super().__init__(p=p)
        from ..models.blur_autoencoder import BlurAutoencoder, BlurModel, load_blur_model

        if checkpoint is None:
            raise ValueError("checkpoint: required (a model.pt from `medrobust blur train`, a run directory or a BlurAutoencoder)")
        if isinstance(checkpoint, (str, Path)):
            bundle = load_blur_model(checkpoint)
        elif isinstance(checkpoint, BlurModel):
            bundle = checkpoint
        elif isinstance(checkpoint, BlurAutoencoder):
            bundle = None
        else:
            raise ValueError(f"checkpoint: expected a path, a BlurModel or a BlurAutoencoder, got {type(checkpoint).__name__}")
        model = bundle.model if bundle is not None else checkpoint
        if reference_sigma is None:
            if bundle is None:
                raise ValueError("reference_sigma: required with an in-memory BlurAutoencoder")
            reference_sigma = bundle.reference_sigma
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
        from ..models.blur_autoencoder import synthesize_blur

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
            y = synthesize_blur(model, xf, ref, level)
        return y.reshape(x.shape).to(x.dtype)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, reference_sigma={self.reference_sigma}, p={self.p}"
