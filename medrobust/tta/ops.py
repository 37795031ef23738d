"""The DynTTA op bank: batched image operations, differentiable in the image and in a per-sample
magnitude (Enomoto et al., "Dynamic test-time augmentation via differentiable functions", IEEE
Access 2024; written from the paper's description).

Every op takes ``x`` ``(N, C, H, W)`` in [0, 1] and a *raw* magnitude ``m`` ``(N,)`` (the
predictor's output, any real number) and returns ``(N, C, H, W)`` in [0, 1] (the FFT filters may
leave the range; the blend clamps). The raw magnitude is mapped to the op's factor as in the paper:

==============  ==========================  ==================================================
op              factor                      implementation
==============  ==========================  ==================================================
rotate          ``30·tanh(m)`` degrees       ``kornia.geometry.transform.rotate`` (bilinear, zero fill)
scale           ``1 + 0.3·tanh(m)``          ``kornia.geometry.transform.scale`` (about the centre)
saturation      ``5·sigmoid(m)``             ``kornia.enhance.adjust_saturation_with_gray_subtraction``
contrast        ``3·sigmoid(m)``             ``kornia.enhance.adjust_contrast_with_mean_subtraction``
sharpness       ``10·sigmoid(m)``            ``kornia.enhance.sharpness`` (PIL's smoothing kernel)
brightness      ``0.6·tanh(m)`` (additive)   ``kornia.enhance.adjust_brightness``
hue             ``2·tanh(m)`` radians        ``kornia.enhance.adjust_hue`` (HSV)
gamma           ``3·sigmoid(m)``             ``kornia.enhance.adjust_gamma`` on ``x ≥ 1e-4``
autocontrast    --                           per-channel min-max stretch, straight-through gradient
equalize        --                           256-level histogram equalisation, straight-through
invert          --                           ``1 − x``
lowpass_RR      --                           keep FFT bins with radius ``≤ RR/100`` of the maximum
highpass_RR     --                           keep FFT bins with radius ``> RR/100`` (RR = 05..95)
==============  ==========================  ==================================================

Saturation and hue need RGB: :func:`op_names` leaves them out for other channel counts (MRI). The
FFT filters are fixed circular masks on the centred spectrum (radius ``r·max`` where ``max`` is the
centre-to-corner distance), applied as the real part of the inverse FFT; because they are linear,
a weighted sum of them is one filter with the weighted mask (:func:`fft_blend`), which the blend uses.
Autocontrast and equalize reuse the AugMix kernels (:mod:`medrobust.augment.augmix`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..augment.augmix import autocontrast as _autocontrast
from ..augment.augmix import equalize as _equalize
from ..augment.functional.fft import masked_rfftn, rfft_half

__all__ = [
    "COLOUR_OPS",
    "FFT_RADII",
    "OPS",
    "Op",
    "fft_blend",
    "fft_masks",
    "get_op",
    "op_names",
    "straight_through",
]

#: radii of the 19 low-pass and 19 high-pass filters, as fractions of the maximum radius
FFT_RADII = tuple(round(0.05 * i, 2) for i in range(1, 20))
#: ops that need 3 channels (RGB)
COLOUR_OPS = ("saturation", "hue")
_GAMMA_FLOOR = 1e-4  # x**g has an infinite gradient in x (g < 1) and a NaN one in g at x = 0


def straight_through(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``y`` in the forward pass, the identity's gradient (to ``x``) in the backward pass."""
    return x + (y - x).detach()


def _per_sample(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if m.shape != (x.shape[0],):
        raise ValueError(f"magnitude: expected shape ({x.shape[0]},), one per image, got {tuple(m.shape)}")
    return m.to(dtype=x.dtype, device=x.device)


def _rotate(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    from kornia.geometry.transform import rotate

    return rotate(x, 30.0 * torch.tanh(_per_sample(m, x)), mode="bilinear", padding_mode="zeros").clamp(0, 1)


def _scale(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    from kornia.geometry.transform import scale

    s = 1.0 + 0.3 * torch.tanh(_per_sample(m, x))
    return scale(x, s[:, None].expand(-1, 2), mode="bilinear", padding_mode="zeros").clamp(0, 1)


def _saturation(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    from kornia.enhance import adjust_saturation_with_gray_subtraction

    return adjust_saturation_with_gray_subtraction(x, 5.0 * torch.sigmoid(_per_sample(m, x))).clamp(0, 1)


def _contrast(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    from kornia.enhance import adjust_contrast_with_mean_subtraction

    return adjust_contrast_with_mean_subtraction(x, 3.0 * torch.sigmoid(_per_sample(m, x)))


def _sharpness(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    from kornia.enhance import sharpness

    return sharpness(x, 10.0 * torch.sigmoid(_per_sample(m, x))).clamp(0, 1)


def _brightness(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    from kornia.enhance import adjust_brightness

    return adjust_brightness(x, 0.6 * torch.tanh(_per_sample(m, x)), clip_output=True)


def _hue(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    from kornia.enhance import adjust_hue

    return adjust_hue(x, 2.0 * torch.tanh(_per_sample(m, x))).clamp(0, 1)


def _gamma(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    from kornia.enhance import adjust_gamma

    return adjust_gamma(x.clamp_min(_GAMMA_FLOOR), 3.0 * torch.sigmoid(_per_sample(m, x)))


def _autocontrast_op(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return straight_through(x, _autocontrast(x.detach()))


def _equalize_op(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return straight_through(x, _equalize(x.detach()))


def _invert(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return 1.0 - x


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


@dataclass(frozen=True)
class Op:
    """One op of the bank.

    * ``fn(x, m)``: the op (``None`` for the FFT filters, applied through :func:`fft_blend`, and for
      the restoration network, which :class:`~medrobust.tta.DynTTA` owns);
    * ``identity``: the raw magnitude at which the op is the identity (``None``: no magnitude, or
      never the identity), used to start the predictor there;
    * ``magnitude``: what the raw magnitude sets (for docs and reports); ``smooth``: differentiable
      almost everywhere in image and magnitude (gradcheck applies); ``straight_through``: forward
      is not differentiable, the gradient is the identity's.
    """

    name: str
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None
    magnitude: str = "--"
    identity: float | None = None
    smooth: bool = True
    straight_through: bool = False
    channels: int | None = None  # required channel count (3 for the colour ops)
    radius: float | None = None  # FFT filters: the cut-off radius (fraction of the maximum)
    highpass: bool = False


_BASE: tuple[Op, ...] = (
    Op("rotate", _rotate, "30·tanh(m) degrees", 0.0),
    Op("scale", _scale, "1 + 0.3·tanh(m)", 0.0),
    Op("saturation", _saturation, "5·sigmoid(m)", _logit(1 / 5), channels=3),
    Op("contrast", _contrast, "3·sigmoid(m)", _logit(1 / 3)),
    Op("sharpness", _sharpness, "10·sigmoid(m)", _logit(1 / 10)),
    Op("brightness", _brightness, "+0.6·tanh(m)", 0.0),
    Op("hue", _hue, "2·tanh(m) radians", 0.0, channels=3),
    Op("gamma", _gamma, "3·sigmoid(m)", _logit(1 / 3)),
    Op("autocontrast", _autocontrast_op, smooth=False, straight_through=True),
    Op("equalize", _equalize_op, smooth=False, straight_through=True),
    Op("invert", _invert),
)
_FFT: tuple[Op, ...] = tuple(Op(f"lowpass_{round(r * 100):02d}", None, f"radius {r}", radius=r) for r in FFT_RADII) + \
    tuple(Op(f"highpass_{round(r * 100):02d}", None, f"radius {r}", radius=r, highpass=True) for r in FFT_RADII)
_RESTORE = Op("restore", None, "a residual U-Net trained jointly", smooth=True)

#: every op of the bank, in the bank's order (name -> :class:`Op`)
OPS: dict[str, Op] = {op.name: op for op in (*_BASE, *_FFT, _RESTORE)}


def op_names(num_channels: int = 3) -> list[str]:
    """The ops of the bank for images with ``num_channels`` channels, in order: the 11 image ops
    (without saturation and hue unless 3 channels), 19 low-pass, 19 high-pass, ``restore``
    (50 for RGB, 48 otherwise)."""
    if not isinstance(num_channels, int) or isinstance(num_channels, bool) or num_channels < 1:
        raise ValueError(f"num_channels: expected a positive int, got {num_channels!r}")
    return [n for n, op in OPS.items() if op.channels is None or op.channels == num_channels]


def get_op(name: str) -> Op:
    """The :class:`Op` called ``name`` (``ValueError`` naming the known ones otherwise)."""
    if name not in OPS:
        raise ValueError(f"op {name!r}: unknown; choose from {list(OPS)}")
    return OPS[name]


def fft_masks(ops: Sequence[Op], size: tuple[int, int], *, device: torch.device | None = None,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(K, H, W // 2 + 1)`` rfft half-masks (1 keep, 0 drop) of the FFT filters ``ops``.

    The radius of a bin is its distance from DC in the centred spectrum, in bins, divided by the
    centre-to-corner distance ``sqrt((H/2)² + (W/2)²)``; low-pass keeps radius ``≤ r``, high-pass
    keeps ``> r``, so ``lowpass_r + highpass_r`` is the identity."""
    h, w = size
    # |k| per axis in bins (FFT order, |k| <= n/2), the radius normalised by the corner distance
    ky = torch.fft.fftfreq(h, d=1.0 / h, device=device).abs()
    kx = torch.fft.fftfreq(w, d=1.0 / w, device=device).abs()
    dist = torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2) / math.hypot(h / 2, w / 2)
    masks = []
    for op in ops:
        if op.radius is None:
            raise ValueError(f"fft_masks: {op.name} is not an FFT filter")
        keep = dist > op.radius if op.highpass else dist <= op.radius
        masks.append(rfft_half(keep, w))
    return torch.stack(masks).to(dtype)


def fft_blend(x: torch.Tensor, weights: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``Σ_k weights[:, k] · filter_k(x)`` in one FFT: ``x`` ``(N, C, H, W)``, ``weights`` ``(N, K)``,
    ``masks`` ``(K, H, W // 2 + 1)`` from :func:`fft_masks`. Linear in ``x`` and ``weights``."""
    combined = torch.einsum("nk,khw->nhw", weights.to(masks.dtype), masks)[:, None]
    return masked_rfftn(x, combined.to(x.dtype), dims=(-2, -1))
