"""SLAug: location-scale augmentation and saliency-balancing fusion (Su et al., "Rethinking data
augmentation for single-source domain generalization in medical image segmentation", AAAI 2023;
Kaiseem/SLAug).

**Global location-scale augmentation (GLA)**, per image: a monotone Bézier intensity remap, then a
scale and a shift. The cubic Bézier curve has the end points ``(min, max)`` of the image's values and
two interior control points drawn uniformly in ``[min, max]`` (x and y independently); its sampled x
and y coordinates are both sorted, so the remap is monotone, and the values are mapped by piecewise-
linear interpolation (``np.interp``). Then ``x' = clip(x·s + l, 0, 1)`` with ``s = clip(N(1, 0.1),
0.9, 1.1)`` and ``l ~ N(0, 0.5)`` clipped to ``[0 − P20(x), 1 − P80(x)]`` (percentiles of the
remapped values), so at least 20 % of the values stay in range.

**Class-wise (local) version (LLA)**, needs the segmentation ``labels``: the same remap and
location-scale, drawn independently for every class region with the region's own min / max /
percentiles; the background (label 0) always gets the *inverse* curve (only x sorted: a non-monotone
remap), every other class with probability 0.5; pixels of the input ``<= 0.01`` keep their value.
Without labels the class-wise version falls back to the global one.

**Saliency-balancing fusion (SBF)** (:func:`saliency_fusion`, used by
:class:`medrobust.train.steps.SegmentationAdapter` with ``slaug_fusion``): a backward pass on the GLA
view gives the input gradient; the saliency ``sqrt(mean_c grad²)`` is average-pooled to a
``grid_size²`` grid, upsampled with an order-2 B-spline kernel (transposed convolution, stride = one
grid cell) and bilinearly to the image size, and min-max normalised per image: ``mixed = gla·s +
lla·(1 − s)``; the task loss of the mixed view is added (the original's second backward before its
single optimiser step).

Everything is batched: one curve per (image, region) row, all rows remapped with one sorted search,
percentiles from one sort; 2D ``(N, C, H, W)`` and 3D ``(N, C, D, H, W)``, any device, channels
remapped jointly (one curve per image, as the original does for its single-channel inputs).
Deviation: the curve is sampled at ``curve_samples`` = 1000 points (the original: 100 000; the
piecewise-linear remap differs by < 1e-5 on [0, 1]).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from .base import BatchAugment, Params, rand, randn
from .registry import register

__all__ = ["SLAug", "bezier_basis", "location_scale", "saliency_fusion", "saliency_map"]

MODES = ("global", "local")


def bezier_basis(samples: int, *, dtype: torch.dtype = torch.float64, device: Any = None) -> torch.Tensor:
    """``(4, samples)`` cubic Bernstein weights at ``t = linspace(0, 1, samples)`` (SLAug's ordering)."""
    t = torch.linspace(0.0, 1.0, samples, dtype=dtype, device=device)
    return torch.stack([math.comb(3, i) * t ** (3 - i) * (1 - t) ** i for i in range(4)])


def _row_quantile(values: torch.Tensor, rows: torch.Tensor, n_rows: int, qs: tuple[float, ...]) -> list[torch.Tensor]:
    """Per-row linear-interpolated quantiles (``np.percentile``) of ``values`` grouped by ``rows`` (one sort)."""
    span = float(values.max() - values.min()) + 1.0
    keys = rows.double() * span + (values.double() - float(values.min()))
    order = torch.argsort(keys)
    sv = values[order]
    counts = torch.bincount(rows, minlength=n_rows)
    starts = torch.cumsum(counts, 0) - counts
    out = []
    for q in qs:
        pos = q * (counts - 1).clamp_min(0).double()
        lo, hi = pos.floor().long(), pos.ceil().long()
        frac = (pos - lo.double()).to(values.dtype)
        last = sv.numel() - 1
        a = sv[(starts + lo).clamp(0, last)]
        b = sv[(starts + hi).clamp(0, last)]
        out.append(a + (b - a) * frac)
    return out


def location_scale(
    values: torch.Tensor,
    rows: torch.Tensor,
    n_rows: int,
    control: torch.Tensor,
    inverse: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    *,
    vrange: tuple[float, float] = (0.0, 1.0),
    samples: int = 1000,
    slide_limit: float = 20.0,
) -> torch.Tensor:
    """Bézier remap + location-scale of flat ``values`` grouped into ``n_rows`` rows (``rows``: row ids).

    Args:
        values: ``(M,)`` float values.
        rows: ``(M,)`` int64 row of each value (an image, or one class region of an image).
        control: ``(n_rows, 2, 2)`` in [0, 1): the two interior control points' ``(x, y)`` positions
            as fractions of the row's ``[min, max]``.
        inverse: ``(n_rows,)`` bool: sort only the curve's x (the non-monotone "inverse" remap).
        scale, shift: ``(n_rows,)`` the drawn scale (already clipped) and shift (clipped here to
            ``[vmin − P20, vmax − P80]`` of the remapped row).
    Returns:
        ``(M,)`` the augmented values, in ``vrange``.
    """
    dt = values.dtype
    v = values.double()
    inf = torch.full((n_rows,), math.inf, dtype=torch.float64, device=v.device)
    lo = inf.scatter_reduce(0, rows, v, "amin")
    hi = (-inf).scatter_reduce(0, rows, v, "amax")
    empty = ~torch.isfinite(lo)
    lo, hi = torch.where(empty, 0.0, lo), torch.where(empty, 1.0, hi)
    c = control.to(device=v.device, dtype=torch.float64)
    width = (hi - lo)[:, None]
    # control points [start, inserted second, inserted first, end], as SLAug's list insertions give
    px = torch.stack([lo, lo + width[:, 0] * c[:, 1, 0], lo + width[:, 0] * c[:, 0, 0], hi], 1)
    py = torch.stack([lo, lo + width[:, 0] * c[:, 1, 1], lo + width[:, 0] * c[:, 0, 1], hi], 1)
    basis = bezier_basis(samples, device=v.device)
    xs = torch.sort(px @ basis, dim=1).values  # (R, T)
    ys_raw = py @ basis
    ys = torch.where(inverse.to(v.device)[:, None], ys_raw, torch.sort(ys_raw, dim=1).values)
    # np.interp for every row at once: rows offset into disjoint key ranges, one sorted search
    span = float(v.max() - v.min()) + 2.0
    base = float(v.min()) - 1.0
    offs = torch.arange(n_rows, device=v.device, dtype=torch.float64)[:, None] * span
    grid = (xs - base + offs).reshape(-1)
    keys = v - base + rows.double() * span
    idx = torch.searchsorted(grid, keys, right=True)
    first = rows * samples
    i1 = torch.minimum(torch.maximum(idx, first + 1), first + samples - 1)
    i0 = i1 - 1
    xf, yf = xs.reshape(-1), ys.reshape(-1)
    x0, x1, y0, y1 = xf[i0], xf[i1], yf[i0], yf[i1]
    gap = x1 - x0
    w = torch.where(gap > 0, (v - x0) / torch.where(gap > 0, gap, 1.0), torch.zeros_like(v)).clamp(0.0, 1.0)
    below, above = v <= xf[first], v >= xf[first + samples - 1]
    y = torch.where(below, yf[first], torch.where(above, yf[first + samples - 1], y0 + w * (y1 - y0)))
    p_lo, p_hi = _row_quantile(y, rows, n_rows, (slide_limit / 100.0, 1.0 - slide_limit / 100.0))
    vmin, vmax = vrange
    loc = torch.minimum(torch.maximum(shift.to(v.device).double(), vmin - p_lo), vmax - p_hi)
    out = y * scale.to(v.device).double()[rows] + loc[rows]
    return out.clamp(vmin, vmax).to(dt)


@register("slaug")
class SLAug(BatchAugment):
    """SLAug's location-scale augmentation, global or class-wise (see the module docstring).

    Args:
        mode: ``"global"`` (GLA) or ``"local"`` (LLA, class-wise; call with ``labels``).
        num_classes: label values are ``0 .. num_classes - 1`` (cardiac: 4).
        background_threshold: local version: input values ``<=`` this keep their value (original 0.01).
        scale_std, scale_limit: scale ``clip(N(1, scale_std), 1 - limit, 1 + limit)`` (0.1, 0.1).
        shift_std: shift ``N(0, shift_std)`` (0.5), clipped so 20 % of values stay in [0, 1].
        inverse_prob: local version: probability of the inverse curve for a foreground class (0.5;
            the background always gets it).
        curve_samples: points the Bézier curve is sampled at (original 100 000).
        p: probability per sample of being augmented.

    Call ``core(x, generator, labels=seg)`` with ``seg`` ``(N, *S)`` or ``(N, 1, *S)`` integer labels;
    :meth:`views` returns both the global and the class-wise view from one draw (for fusion).
    Inputs ``(N, C, H, W)`` / ``(N, C, D, H, W)`` float in [0, 1]; outputs in [0, 1].
    """

    uses_labels = True

    def __init__(self, mode: str = "global", num_classes: int = 4, background_threshold: float = 0.01,
                 scale_std: float = 0.1, scale_limit: float = 0.1, shift_std: float = 0.5, inverse_prob: float = 0.5,
                 curve_samples: int = 1000, p: float = 1.0) -> None:
        super().__init__(p=p)
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {list(MODES)}, got {mode!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes: expected a positive integer, got {num_classes!r}")
        if isinstance(curve_samples, bool) or not isinstance(curve_samples, int) or curve_samples < 4:
            raise ValueError(f"curve_samples: expected an integer >= 4, got {curve_samples!r}")
        for name, val, low in (("scale_std", scale_std, 0.0), ("scale_limit", scale_limit, 0.0),
                               ("shift_std", shift_std, 0.0)):
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not (val >= low and math.isfinite(val)):
                raise ValueError(f"{name}: expected a finite number >= {low}, got {val!r}")
        if isinstance(inverse_prob, bool) or not isinstance(inverse_prob, (int, float)) or not 0 <= inverse_prob <= 1:
            raise ValueError(f"inverse_prob: expected a probability in [0, 1], got {inverse_prob!r}")
        if isinstance(background_threshold, bool) or not isinstance(background_threshold, (int, float)):
            raise ValueError(f"background_threshold: expected a number, got {background_threshold!r}")
        self.mode, self.num_classes = mode, num_classes
        self.background_threshold = float(background_threshold)
        self.scale_std, self.scale_limit, self.shift_std = float(scale_std), float(scale_limit), float(shift_std)
        self.inverse_prob, self.curve_samples = float(inverse_prob), curve_samples

    # -- parameters --------------------------------------------------------------------------------
    def _draw_ls(self, shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Params:
        scale = (1.0 + self.scale_std * randn(*shape, generator=generator, device=device))
        scale = scale.clamp(1.0 - self.scale_limit, 1.0 + self.scale_limit)
        return {"control": rand(*shape, 2, 2, generator=generator, device=device), "scale": scale,
                "shift": self.shift_std * randn(*shape, generator=generator, device=device)}

    def _sample(self, x: torch.Tensor, generator: torch.Generator | None) -> Params:
        n, k, dev = x.shape[0], self.num_classes, x.device
        g = self._draw_ls((n,), generator, dev)
        loc = self._draw_ls((n, k), generator, dev)
        inverse = rand(n, k, generator=generator, device=dev) < self.inverse_prob
        inverse[:, 0] = True  # the background always gets the inverse curve
        return {"global": g, "local": {**loc, "inverse": inverse}}

    def sample_params(self, x: torch.Tensor, generator: torch.Generator | None = None, *,
                      labels: torch.Tensor | None = None) -> Params:
        x = self.check(x)
        params = self._sample_checked(x, generator)
        if labels is not None:
            params["labels"] = self._check_labels(labels, x)
        return params

    def _check_labels(self, labels: Any, x: torch.Tensor) -> torch.Tensor:
        lab = torch.as_tensor(labels, device=x.device)
        if lab.ndim == x.ndim and lab.shape[1] == 1:
            lab = lab[:, 0]
        if tuple(lab.shape) != (x.shape[0], *x.shape[2:]):
            raise ValueError(f"labels: expected a segmentation map of shape {(x.shape[0], *x.shape[2:])} (or with a "
                             f"channel of 1), got {tuple(torch.as_tensor(labels).shape)}")
        if lab.is_floating_point() and not bool((lab == lab.round()).all()):
            raise ValueError("labels: expected integer class labels")
        lab = lab.long()
        if bool(((lab < 0) | (lab >= self.num_classes)).any()):
            raise ValueError(f"labels: expected values in 0..{self.num_classes - 1} (num_classes={self.num_classes})")
        return lab

    # -- application -------------------------------------------------------------------------------
    def _global(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        n = x.shape[0]
        g = params["global"]
        rows = torch.arange(n, device=x.device).repeat_interleave(x[0].numel())
        inverse = torch.zeros(n, dtype=torch.bool, device=x.device)
        out = location_scale(x.reshape(-1), rows, n, g["control"], inverse, g["scale"], g["shift"],
                             samples=self.curve_samples)
        return out.reshape(x.shape)

    def _local(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        labels = params.get("labels")
        if labels is None:
            return self._global(x, params)
        n, k = x.shape[0], self.num_classes
        lab = labels.to(x.device).unsqueeze(1).expand_as(x)  # channels share their pixel's class
        rows = (torch.arange(n, device=x.device).view(-1, *([1] * (x.ndim - 1))) * k + lab).reshape(-1)
        loc = params["local"]
        out = location_scale(x.reshape(-1), rows, n * k, loc["control"].reshape(n * k, 2, 2),
                             loc["inverse"].reshape(-1), loc["scale"].reshape(-1), loc["shift"].reshape(-1),
                             samples=self.curve_samples).reshape(x.shape)
        return torch.where(x <= self.background_threshold, x, out)

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return self._global(x, params) if self.mode == "global" else self._local(x, params)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None, *,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.apply(x, self.sample_params(x, generator, labels=labels))

    def views(self, x: torch.Tensor, generator: torch.Generator | None = None, *,
              labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(global view, class-wise view)`` of ``x`` from one draw (the ``p`` coin applies to both)."""
        x = self.check(x)
        params = self.sample_params(x, generator, labels=labels)
        mask = params["apply"].to(x.device).view(-1, *([1] * (x.ndim - 1)))
        with torch.autocast(device_type=x.device.type, enabled=False):
            g, loc = self._global(x, params), self._local(x, params)
        return torch.where(mask, g, x), torch.where(mask, loc, x)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, num_classes={self.num_classes}, p={self.p}"


def _bspline_kernel(cell: tuple[int, ...], order: int, *, dtype: torch.dtype, device: Any) -> torch.Tensor:
    """SLAug's B-spline kernel: a box of size ``cell`` convolved with itself ``order`` times, normalised."""
    conv = F.conv2d if len(cell) == 2 else F.conv3d
    ones = torch.ones(1, 1, *cell, dtype=dtype, device=device)
    kernel = ones
    for _ in range(order):
        kernel = conv(kernel, ones, padding=tuple(cell)) / math.prod(cell)
    return kernel


def saliency_map(grad: torch.Tensor, grid_size: int = 3, order: int = 2) -> torch.Tensor:
    """SBF saliency ``(N, 1, *S)`` in [0, 1] from the input gradient ``(N, C, *S)`` (see the module docstring)."""
    if not isinstance(grid_size, int) or isinstance(grid_size, bool) or grid_size < 1:
        raise ValueError(f"grid_size: expected a positive integer, got {grid_size!r}")
    spatial = tuple(grad.shape[2:])
    sal = torch.sqrt(grad.float().pow(2).mean(dim=1, keepdim=True))
    pool = F.adaptive_avg_pool2d if len(spatial) == 2 else F.adaptive_avg_pool3d
    sal = pool(sal, grid_size)
    cell = tuple(max(1, s // grid_size) for s in spatial)
    kernel = _bspline_kernel(cell, order, dtype=sal.dtype, device=sal.device)
    tconv = F.conv_transpose2d if len(spatial) == 2 else F.conv_transpose3d
    sal = tconv(sal, kernel, stride=cell, padding=tuple((k - c) // 2 for k, c in zip(kernel.shape[2:], cell)))
    sal = F.interpolate(sal, size=spatial, mode="bilinear" if len(spatial) == 2 else "trilinear", align_corners=True)
    flat = sal.reshape(sal.shape[0], -1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    flat = (flat - lo) / (hi - lo).clamp_min(1e-12)
    return flat.reshape(sal.shape)


def saliency_fusion(global_view: torch.Tensor, local_view: torch.Tensor, grad: torch.Tensor,
                    grid_size: int = 3) -> torch.Tensor:
    """``global·s + local·(1 − s)`` with ``s = saliency_map(grad, grid_size)`` (detached)."""
    s = saliency_map(grad.detach(), grid_size).to(global_view.dtype)
    return global_view.detach() * s + local_view.detach() * (1 - s)
