"""GIN and IPA: global intensity non-linear augmentation and interventional pseudo-correlation
augmentation (Ouyang et al., "Causality-inspired single-source domain generalization for medical image
segmentation", 2021; repo cheng-01037/Causality-Medical-Image-Domain-Generalization).

GIN is a shallow random network applied per image: ``n_layers`` convolutions ``C -> h -> ... -> h -> C``,
each with a kernel size drawn from ``{1, 3}`` (per sample and per layer here; per call in the
original), weights ``N(0, 1)`` and a shift ``N(0, 1)`` per output channel, leaky ReLU between layers
(none after the last). The output is blended ``alpha·g(x) + (1 − alpha)·x`` with ``alpha ~ U(0, 1)``
per image and rescaled to the input's Frobenius norm per image. Outputs are therefore **not** in
[0, 1]; they keep the input's energy.

IPA blends two GIN outputs of the same image through a smooth random map ``m`` in [0, 1]:
``m·g1(x) + (1 − m)·g2(x)``. ``m`` comes from a random B-spline bias field as in the original
(control-point spacing 24 px, computed at 1/2 resolution, B-spline order 2, control values
``U(−ε, ε)`` with ε = 0.3, exponentiated, min-max rescaled to [0, 1] per image). The IPA training
recipe (Dice+CE on one view plus λ = 10 KL to the mean of IPA, IPA and plain-GIN views) lives in the
training loop's consistency settings, not in the core.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .base import BatchAugment, Params, as_range, choice, per_sample_view, rand, randn
from .functional.conv import grouped_conv
from .registry import register

__all__ = ["GIN", "IPA", "smooth_blend_mask"]


def _kernel_choices(kernel_size: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(kernel_size, int) and not isinstance(kernel_size, bool):
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size: expected a positive odd integer, got {kernel_size!r}")
        return tuple(range(1, kernel_size + 1, 2))
    sizes = tuple(kernel_size)
    if not sizes or any(not isinstance(k, int) or k < 1 or k % 2 == 0 for k in sizes):
        raise ValueError(f"kernel_size: expected positive odd integers, got {kernel_size!r}")
    return sizes


@register("gin")
class GIN(BatchAugment):
    """Global intensity non-linear augmentation, per sample, 2D and 3D.

    Args:
        n_layers: number of random convolution layers (>= 2).
        hidden_channels: channels of the intermediate layers (original: 2).
        kernel_size: an odd int ``k`` means each layer draws its kernel size from ``{1, 3, ..., k}``
            (``3`` gives the original's ``{1, 3}``); a sequence lists the choices explicitly.
        alpha_range: range of the per-image blending weight ``alpha`` (a number fixes it).
        negative_slope: slope of the leaky ReLU between layers.
        p: probability per sample of being augmented.

    Input ``(N, C, H, W)`` or ``(N, C, D, H, W)`` float; output the same shape with each image's
    Frobenius norm preserved.
    """

    keeps_range = False

    def __init__(
        self,
        n_layers: int = 4,
        hidden_channels: int = 2,
        kernel_size: int | Sequence[int] = 3,
        alpha_range: float | tuple[float, float] = (0.0, 1.0),
        negative_slope: float = 0.01,
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        if not isinstance(n_layers, int) or n_layers < 2:
            raise ValueError(f"n_layers: expected an integer >= 2, got {n_layers!r}")
        if not isinstance(hidden_channels, int) or hidden_channels < 1:
            raise ValueError(f"hidden_channels: expected a positive integer, got {hidden_channels!r}")
        self.n_layers = n_layers
        self.hidden_channels = hidden_channels
        self.kernel_choices = _kernel_choices(kernel_size)
        self.alpha_range = as_range(alpha_range, "alpha_range")
        if not 0.0 <= self.alpha_range[0] <= self.alpha_range[1] <= 1.0:
            raise ValueError(f"alpha_range: expected values in [0, 1], got {alpha_range!r}")
        self.negative_slope = float(negative_slope)

    def extra_repr(self) -> str:
        return (
            f"n_layers={self.n_layers}, hidden_channels={self.hidden_channels}, "
            f"kernel_choices={self.kernel_choices}, alpha_range={self.alpha_range}, p={self.p}"
        )

    def _channels(self, c: int) -> list[tuple[int, int]]:
        h = self.hidden_channels
        return [(c, h)] + [(h, h)] * (self.n_layers - 2) + [(h, c)]

    def _sample(self, x: torch.Tensor, generator: torch.Generator | None) -> Params:
        n, c = x.shape[:2]
        dims = x.ndim - 2
        kmax = max(self.kernel_choices)
        params: Params = {}
        for i, (cin, cout) in enumerate(self._channels(c)):
            ksize = choice(self.kernel_choices, n, generator=generator)
            w = randn(n, cout, cin, *([kmax] * dims), generator=generator).cpu()
            # zero the taps outside each sample's drawn kernel size: a k×k kernel padded into kmax
            r = torch.arange(kmax) - kmax // 2
            inside = r.abs().view(1, -1) <= (ksize // 2).view(-1, 1)  # (n, kmax)
            mask = torch.ones(n, *([kmax] * dims), dtype=torch.bool)
            for d in range(dims):
                shape = [n] + [1] * dims
                shape[1 + d] = kmax
                mask = mask & inside.view(shape)
            w = w * mask.view(n, 1, 1, *([kmax] * dims))
            params[f"weight{i}"] = w.to(x.device)
            params[f"shift{i}"] = randn(n, cout, generator=generator, device=x.device)
        lo, hi = self.alpha_range
        params["alpha"] = lo + (hi - lo) * rand(n, generator=generator, device=x.device)
        return params

    def network(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        """The random network ``g(x)`` alone (no blending, no renormalisation)."""
        y = x
        for i in range(self.n_layers):
            y = grouped_conv(y, params[f"weight{i}"], params[f"shift{i}"])
            if i < self.n_layers - 1:
                y = F.leaky_relu(y, self.negative_slope)
        return y

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        alpha = per_sample_view(params["alpha"].to(x.dtype), x.ndim)
        mixed = torch.lerp(x, self.network(x, params), alpha)  # alpha·g(x) + (1 − alpha)·x
        return _match_frobenius(mixed, x)


def _match_frobenius(y: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Rescale each sample of ``y`` to the Frobenius norm of the same sample of ``ref``."""
    n = y.shape[0]
    ny = y.reshape(n, -1).norm(dim=1)
    nr = ref.reshape(n, -1).norm(dim=1)
    scale = per_sample_view(nr / ny.clamp_min(1e-12), y.ndim)
    return torch.mul(y, scale, out=torch.empty_like(ref, memory_format=torch.contiguous_format))


@functools.lru_cache(maxsize=64)
def _bspline_matrix(n_ctrl: int, size: int, spacing: int, downscale: int, order: int) -> torch.Tensor:
    """``(size, n_ctrl)`` matrix mapping control values to the field along one axis.

    The 1D pipeline — upsample the control points by ``spacing`` (nearest), ``order + 1`` 'valid' box
    filters of width ``spacing`` (a B-spline of that order), centre crop to ``ceil(size / downscale)``,
    linear interpolation to ``size`` (``align_corners=False``) — is linear and separable, so it is
    computed once on the identity and cached.
    """
    low = math.ceil(size / downscale)
    f = torch.eye(n_ctrl, dtype=torch.float64).repeat_interleave(spacing, dim=1)[:, None]  # (n_ctrl, 1, L)
    for _ in range(order + 1):
        f = F.avg_pool1d(f, kernel_size=spacing, stride=1)
    start = (f.shape[-1] - low) // 2
    f = f[..., start : start + low]
    f = F.interpolate(f, size=size, mode="linear", align_corners=False)
    return f[:, 0].T.contiguous().float()


def smooth_blend_mask(
    control: torch.Tensor,
    size: Sequence[int],
    *,
    spacing: int = 24,
    downscale: int = 2,
    order: int = 2,
) -> torch.Tensor:
    """Smooth map in [0, 1] from B-spline control values (the IPA blending mask).

    Args:
        control: ``(N, 1, *G)`` control-point values (``G`` from :func:`control_grid_size`).
        size: output spatial size ``(H, W)`` or ``(D, H, W)``.
    Returns:
        ``(N, 1, *size)`` float32: ``exp`` of the B-spline field, min-max rescaled per sample.

    The B-spline of ``order`` is the iterated box filter (order + 1 passes of width ``spacing``) of the
    control grid upsampled by ``spacing``, at 1/``downscale`` resolution, then interpolated (bi/trilinear)
    to ``size``; all of it is applied as one precomputed matrix per axis (:func:`_bspline_matrix`).
    """
    dims = len(size)
    mats = [_bspline_matrix(control.shape[2 + d], int(size[d]), spacing, downscale, order).to(control.device)
            for d in range(dims)]
    c = control.float()[:, 0]
    if dims == 2:
        f = torch.einsum("hi,nij,wj->nhw", mats[0], c, mats[1])
    else:
        f = torch.einsum("di,hj,wk,nijk->ndhw", mats[0], mats[1], mats[2], c)
    f = f.unsqueeze(1).exp()
    flat = f.reshape(f.shape[0], -1)
    mn = per_sample_view(flat.amin(1), f.ndim)
    mx = per_sample_view(flat.amax(1), f.ndim)
    return (f - mn) / (mx - mn).clamp_min(1e-8)


def control_grid_size(size: Sequence[int], *, spacing: int = 24, downscale: int = 2, order: int = 2) -> list[int]:
    """Number of control points per spatial dim so the smoothed field covers ``size``."""
    return [math.ceil(math.ceil(s / downscale) / spacing) + order + 1 for s in size]


@register("ipa")
class IPA(BatchAugment):
    """Interventional pseudo-correlation augmentation: two GIN views blended by a smooth random map.

    Args:
        n_layers, hidden_channels, kernel_size, alpha_range: as for :class:`GIN` (both copies).
        epsilon: control values are drawn from ``U(−epsilon, epsilon)``.
        control_spacing: control-point spacing in pixels at the downscaled resolution.
        downscale: resolution factor at which the field is computed.
        order: B-spline order.
        p: probability per sample of being augmented.
    """

    keeps_range = False

    def __init__(
        self,
        n_layers: int = 4,
        hidden_channels: int = 2,
        kernel_size: int | Sequence[int] = 3,
        alpha_range: float | tuple[float, float] = (0.0, 1.0),
        epsilon: float = 0.3,
        control_spacing: int = 24,
        downscale: int = 2,
        order: int = 2,
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        self.gin = GIN(n_layers=n_layers, hidden_channels=hidden_channels, kernel_size=kernel_size, alpha_range=alpha_range)
        if epsilon <= 0:
            raise ValueError(f"epsilon: expected > 0, got {epsilon!r}")
        for name, v in (("control_spacing", control_spacing), ("downscale", downscale)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        if not isinstance(order, int) or order < 0:
            raise ValueError(f"order: expected a non-negative integer, got {order!r}")
        self.epsilon = float(epsilon)
        self.control_spacing = control_spacing
        self.downscale = downscale
        self.order = order

    def _grid_kw(self) -> dict[str, int]:
        return {"spacing": self.control_spacing, "downscale": self.downscale, "order": self.order}

    def _sample(self, x: torch.Tensor, generator: torch.Generator | None) -> Params:
        n = x.shape[0]
        grid = control_grid_size(x.shape[2:], **self._grid_kw())
        control = (rand(n, 1, *grid, generator=generator, device=x.device) * 2 - 1) * self.epsilon
        return {"gin1": self.gin._sample(x, generator), "gin2": self.gin._sample(x, generator), "control": control}

    def blend_mask(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        """The smooth blending map ``(N, 1, *S)`` in [0, 1] for ``x``."""
        return smooth_blend_mask(params["control"], x.shape[2:], **self._grid_kw()).to(x.dtype)

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        m = self.blend_mask(x, params)
        return m * self.gin._apply(x, params["gin1"]) + (1 - m) * self.gin._apply(x, params["gin2"])
