"""AugMix as a batched core (Hendrycks, Mu, Cubuk, Zoph, Gilmer, Lakshminarayanan, ICLR 2020).

For every sample, ``width`` chains of ``depth`` operations (``depth=-1``: 1 to 3, drawn per chain)
are applied to the image, the chains are mixed with Dirichlet(``alpha``) weights and the mixture is
blended with the input by a Beta(``alpha``, ``alpha``) weight ``m``::

    mix = Σ_i w_i · chain_i(x),      y = (1 − m)·x + m·mix

Operations and magnitudes follow the released code (google-research/augmix, ``augmentations.py``),
with ``level ~ U(0.1, severity)`` drawn per operation and a random sign for the geometric ones:

=================  ============================================================================
``autocontrast``   per channel, stretch [min, max] to [0, 1] (constant channels unchanged)
``equalize``       per channel histogram equalisation on 256 levels (PIL's algorithm, batched)
``posterize``      keep ``4 − int(level·4/10)`` bits of the 8-bit value
``rotate``         ``±int(level·30/10)`` degrees about the centre, bilinear, black fill
``solarize``       invert 8-bit values ``>= 256 − int(level·256/10)``
``shear_x/y``      shear ``±level·0.3/10`` (PIL affine convention: origin at the top-left corner)
``translate_x/y``  ``±int(level·(side/3)/10)`` pixels
=================  ============================================================================

``all_ops=True`` adds ``color``, ``contrast``, ``brightness`` and ``sharpness`` (factor
``level·1.8/10 + 0.1``), which the paper leaves out because they overlap ImageNet-C.

Differences from the released code, by design: the ops run as tensor code on the whole batch and
on any device (one ``grid_sample`` for all geometric ops of a chain step, batched 256-bin histograms
for ``equalize``, a loop over operation types, never over samples), every random quantity is drawn
per sample from a ``torch.Generator``, and values stay float (only posterize/solarize/equalize
quantise to 8 bits, as their definitions need). Inputs are ``(N, C, H, W)`` in [0, 1]; colour ops
use ITU-R 601 luma for 3 channels and the channel mean otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F

from .base import BatchAugment, Params, per_sample_view, rand, randint, randn
from .registry import register

__all__ = ["AugMix", "AUGMIX_OPS", "EXTRA_OPS", "GEOMETRIC_OPS", "PHOTOMETRIC_OPS", "sample_gamma", "sample_dirichlet", "sample_beta", "equalize", "autocontrast"]

AUGMIX_OPS = ("autocontrast", "equalize", "posterize", "rotate", "solarize", "shear_x", "shear_y", "translate_x", "translate_y")
#: the ops of :data:`AUGMIX_OPS` that move pixels (a label map would no longer line up)
GEOMETRIC_OPS = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
#: the ops of :data:`AUGMIX_OPS` that keep every pixel in place: AugMix for segmentation
PHOTOMETRIC_OPS = tuple(o for o in AUGMIX_OPS if o not in GEOMETRIC_OPS)
EXTRA_OPS = ("color", "contrast", "brightness", "sharpness")


# ----------------------------------------------------------------------------------- distributions
def sample_gamma(alpha: float, shape: Sequence[int], generator: torch.Generator | None = None) -> torch.Tensor:
    """``Gamma(alpha, 1)`` samples drawn with ``generator`` (Marsaglia–Tsang; ``alpha < 1`` boosted)."""
    if not alpha > 0:
        raise ValueError(f"alpha: expected > 0, got {alpha}")
    shape = tuple(shape)
    n = math.prod(shape)
    if alpha == 1.0:
        return -torch.log(rand(n, generator=generator).clamp_min(1e-12)).reshape(shape)
    a = alpha + 1.0 if alpha < 1 else alpha
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    out = torch.empty(n)
    todo = torch.arange(n)
    for _ in range(1000):  # rejection rounds (acceptance > 95 %), not a loop over samples
        if len(todo) == 0:
            break
        z = randn(len(todo), generator=generator)
        u = rand(len(todo), generator=generator).clamp_min(1e-12)
        v = (1 + c * z) ** 3
        ok = (v > 0) & (torch.log(u) < 0.5 * z * z + d - d * v + d * torch.log(v.clamp_min(1e-12)))
        out[todo[ok]] = d * v[ok]
        todo = todo[~ok]
    if alpha < 1:
        out = out * rand(n, generator=generator).clamp_min(1e-12) ** (1.0 / alpha)
    return out.reshape(shape)


def sample_dirichlet(alpha: float, n: int, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` draws of a symmetric Dirichlet(``alpha``) over ``k`` components: ``(n, k)``."""
    g = sample_gamma(alpha, (n, k), generator)
    return g / g.sum(1, keepdim=True).clamp_min(1e-12)


def sample_beta(alpha: float, beta: float, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` draws of Beta(``alpha``, ``beta``)."""
    a, b = sample_gamma(alpha, (n,), generator), sample_gamma(beta, (n,), generator)
    return a / (a + b).clamp_min(1e-12)


# -------------------------------------------------------------------------------------- operations
def _to_uint8_levels(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x.clamp(0, 1) * 255)


def autocontrast(x: torch.Tensor) -> torch.Tensor:
    """Per-sample, per-channel min-max stretch to [0, 1]; constant channels are left as they are."""
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    span = hi - lo
    return torch.where(span > 0, (x - lo) / span.clamp_min(1e-12), x)


def equalize(x: torch.Tensor) -> torch.Tensor:
    """Per-sample, per-channel histogram equalisation on 256 levels (PIL ``ImageOps.equalize``)."""
    n, c, h, w = x.shape
    v = _to_uint8_levels(x).long().reshape(n * c, h * w)
    hist = torch.zeros(n * c, 256, dtype=torch.long, device=x.device).scatter_add_(1, v, torch.ones_like(v))
    # PIL: step = (total − count of the last non-empty bin) // 255; lut[i] = (step // 2 + Σ_{j<i} h_j) // step
    idx = torch.arange(256, device=x.device).expand(n * c, 256)
    last = torch.where(hist > 0, idx, torch.full_like(idx, -1)).amax(1)
    last_count = hist.gather(1, last.clamp_min(0)[:, None])[:, 0]
    step = (h * w - last_count) // 255
    cum = hist.cumsum(1) - hist
    safe = step.clamp_min(1)[:, None]
    lut = ((safe // 2 + cum) // safe).clamp_max(255)
    lut = torch.where((step > 0)[:, None], lut, idx)
    out = lut.gather(1, v).to(x.dtype) / 255
    return out.reshape(n, c, h, w)


def _posterize(x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    bits = 4 - torch.floor(level * 4 / 10)
    q = 2.0 ** (8 - bits)
    v = _to_uint8_levels(x)
    return (torch.floor(v / per_sample_view(q, 4)) * per_sample_view(q, 4) / 255).to(x.dtype)


def _solarize(x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    thr = per_sample_view(256 - torch.floor(level * 256 / 10), 4)
    return torch.where(_to_uint8_levels(x) >= thr, 1 - x, x)


def _grey(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 3:
        wts = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * wts).sum(1, keepdim=True)
    return x.mean(1, keepdim=True)


def _blend(degenerate: torch.Tensor, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = per_sample_view(factor, 4).to(x.dtype)
    return (degenerate + f * (x - degenerate)).clamp(0, 1)


def _enhance(x: torch.Tensor, level: torch.Tensor, kind: str) -> torch.Tensor:
    factor = level * 1.8 / 10 + 0.1
    if kind == "color":
        return _blend(_grey(x).expand_as(x), x, factor)
    if kind == "contrast":
        mean = _grey(x).mean(dim=(1, 2, 3), keepdim=True)
        return _blend(mean.expand_as(x), x, factor)
    if kind == "brightness":
        return _blend(torch.zeros_like(x), x, factor)
    # sharpness: PIL's SMOOTH kernel, border pixels unchanged
    c = x.shape[1]
    k = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]], dtype=x.dtype, device=x.device) / 13
    smooth = F.conv2d(x, k.expand(c, 1, 3, 3), padding=1, groups=c)
    smooth[..., 0, :], smooth[..., -1, :] = x[..., 0, :], x[..., -1, :]
    smooth[..., :, 0], smooth[..., :, -1] = x[..., :, 0], x[..., :, -1]
    return _blend(smooth, x, factor)


def _affine_theta(kind: torch.Tensor, level: torch.Tensor, sign: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``(M, 2, 3)`` ``affine_grid`` matrices (align_corners=False) for PIL-convention affine ops.

    ``kind`` indexes :data:`GEOMETRIC_OPS` per sample. Continuous pixel coordinates are
    ``X = (u + 1)·W/2``; PIL maps an output pixel to the input pixel ``(a·X + b·Y + c, d·X + e·Y + f)``
    and rotates counter-clockwise about the centre.
    """
    lv, sg = level.double(), sign.double()
    zero, one = torch.zeros_like(lv), torch.ones_like(lv)
    a = torch.deg2rad(sg * torch.floor(lv * 30 / 10))
    shear = sg * lv * 0.3 / 10
    tx = 2 * sg * torch.floor(lv * (w / 3) / 10) / w
    ty = 2 * sg * torch.floor(lv * (h / 3) / 10) / h
    rot, shx, shy, trx, tr_y = (kind == i for i in range(5))
    t00 = torch.where(rot, torch.cos(a), one)
    t01 = torch.where(rot, -torch.sin(a) * h / w, torch.where(shx, shear * h / w, zero))
    t02 = torch.where(shx, shear * h / w, torch.where(trx, tx, zero))
    t10 = torch.where(rot, torch.sin(a) * w / h, torch.where(shy, shear * w / h, zero))
    t11 = torch.where(rot, torch.cos(a), one)
    t12 = torch.where(shy, shear * w / h, torch.where(tr_y, ty, zero))
    return torch.stack([torch.stack([t00, t01, t02], -1), torch.stack([t10, t11, t12], -1)], -2)


@register("augmix")
class AugMix(BatchAugment):
    """Batched AugMix with per-sample chains, operations, magnitudes and mixing weights (2D images).

    Args:
        width: number of augmentation chains mixed per image (paper: 3).
        depth: operations per chain; ``-1`` draws 1..3 per chain (paper default).
        severity: upper end of the per-op level ``U(0.1, severity)``, in (0.1, 10] (CIFAR scripts: 3).
        alpha: Dirichlet concentration of the chain weights and both Beta parameters of ``m`` (1).
        ops: subset of :data:`AUGMIX_OPS` (and :data:`EXTRA_OPS`) to draw from; None = all of
            :data:`AUGMIX_OPS` (plus the extras when ``all_ops``).
        all_ops: add the ImageNet-C-overlapping colour/contrast/brightness/sharpness ops.
        p: probability per sample of being augmented.

    ``params``: ``ops`` (N, width, D) indices into :attr:`ops`, ``level`` and ``sign`` (N, width, D),
    ``depth`` (N, width), ``weights`` (N, width), ``m`` (N,), with ``D = 3`` or ``depth``.
    """

    spatial_dims = (2,)
    #: the ops that move pixels (:attr:`~.base.BatchAugment.geometric` is set when one is chosen)
    geometric_ops: ClassVar[tuple[str, ...]] = GEOMETRIC_OPS
    #: what :func:`~.registry.refuse_geometric` suggests instead
    photometric_hint: ClassVar[str] = f"augmix: ops from {list(PHOTOMETRIC_OPS)} and contrast/brightness/sharpness"

    def __init__(
        self,
        width: int = 3,
        depth: int = -1,
        severity: float = 3.0,
        alpha: float = 1.0,
        ops: Sequence[str] | None = None,
        all_ops: bool = False,
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"width: expected a positive int, got {width!r}")
        if not isinstance(depth, int) or isinstance(depth, bool) or not (depth == -1 or depth >= 1):
            raise ValueError(f"depth: expected -1 (random 1..3) or a positive int, got {depth!r}")
        if not isinstance(severity, (int, float)) or isinstance(severity, bool) or not 0.1 < float(severity) <= 10:
            raise ValueError(f"severity: expected a number in (0.1, 10], got {severity!r}")
        if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not float(alpha) > 0:
            raise ValueError(f"alpha: expected a positive number, got {alpha!r}")
        allowed = AUGMIX_OPS + EXTRA_OPS
        chosen = tuple(ops) if ops is not None else AUGMIX_OPS + (EXTRA_OPS if all_ops else ())
        if not chosen or any(o not in allowed for o in chosen) or len(set(chosen)) != len(chosen):
            raise ValueError(f"ops: expected distinct names from {allowed}, got {ops!r}")
        self.width = width
        self.depth = depth
        self.severity = float(severity)
        self.alpha = float(alpha)
        self.ops = chosen
        self.all_ops = bool(all_ops)
        self.geometric = any(o in GEOMETRIC_OPS for o in chosen)  # type: ignore[misc]

    def extra_repr(self) -> str:
        return f"width={self.width}, depth={self.depth}, severity={self.severity}, alpha={self.alpha}, ops={self.ops}, p={self.p}"

    # -- sampling ---------------------------------------------------------------------------------
    def _sample(self, x: torch.Tensor, generator: torch.Generator | None) -> Params:
        n, w = x.shape[0], self.width
        d = 3 if self.depth == -1 else self.depth
        dev = x.device
        ops = randint(0, len(self.ops), (n, w, d), generator=generator, device=dev)
        level = 0.1 + (self.severity - 0.1) * rand(n, w, d, generator=generator, device=dev)
        sign = torch.where(rand(n, w, d, generator=generator, device=dev) < 0.5, -1.0, 1.0)
        if self.depth == -1:
            depth = randint(1, 4, (n, w), generator=generator, device=dev)
        else:
            depth = torch.full((n, w), d, dtype=torch.long, device=dev)
        weights = sample_dirichlet(self.alpha, n, w, generator).to(dev)
        m = sample_beta(self.alpha, self.alpha, n, generator).to(dev)
        return {"ops": ops, "level": level, "sign": sign, "depth": depth, "weights": weights, "m": m}

    # -- application ------------------------------------------------------------------------------
    def _apply_step(self, x: torch.Tensor, op: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        """Apply op ``op[i]`` (−1: none) to image ``x[i]``; one call per op type present."""
        out = x.clone()
        present = sorted(set(op.tolist()) - {-1})
        h, w = x.shape[-2:]
        affine_ids = [k for k in present if self.ops[k] in GEOMETRIC_OPS]
        if affine_ids:
            sel = torch.isin(op, torch.tensor(affine_ids, device=op.device)).nonzero().flatten()
            to_affine = torch.full((len(self.ops),), -1, dtype=torch.long, device=op.device)
            to_affine[torch.tensor(affine_ids, device=op.device)] = torch.tensor(
                [GEOMETRIC_OPS.index(self.ops[k]) for k in affine_ids], device=op.device)
            theta = _affine_theta(to_affine[op[sel]], level[sel], sign[sel], h, w).to(x.dtype)
            grid = F.affine_grid(theta, [len(sel), x.shape[1], h, w], align_corners=False)
            out[sel] = F.grid_sample(x[sel], grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp(0, 1)
        for k in present:
            name = self.ops[k]
            if name in GEOMETRIC_OPS:
                continue
            sel = (op == k).nonzero().flatten()
            xs, lv = x[sel], level[sel].to(x.dtype)
            if name == "autocontrast":
                y = autocontrast(xs)
            elif name == "equalize":
                y = equalize(xs)
            elif name == "posterize":
                y = _posterize(xs, lv)
            elif name == "solarize":
                y = _solarize(xs, lv)
            else:
                y = _enhance(xs, lv, name)
            out[sel] = y
        return out

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        n, c, h, w = x.shape
        ops = params["ops"].to(x.device)
        width, d = ops.shape[1], ops.shape[2]
        level = params["level"].to(x.device).reshape(n * width, d)
        sign = params["sign"].to(x.device).reshape(n * width, d)
        depth = params["depth"].to(x.device).reshape(n * width)
        ops = ops.reshape(n * width, d)
        chains = x.unsqueeze(1).expand(n, width, c, h, w).reshape(n * width, c, h, w)
        for step in range(d):
            op = torch.where(step < depth, ops[:, step], torch.full_like(ops[:, step], -1))
            if bool((op >= 0).any()):
                chains = self._apply_step(chains, op, level[:, step], sign[:, step])
        weights = params["weights"].to(device=x.device, dtype=x.dtype).view(n, width, 1, 1, 1)
        mix = (weights * chains.view(n, width, c, h, w)).sum(1)
        m = per_sample_view(params["m"].to(device=x.device, dtype=x.dtype), 4)
        return ((1 - m) * x + m * mix).clamp(0, 1)
