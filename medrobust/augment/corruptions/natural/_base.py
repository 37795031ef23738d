"""The base of the natural-image corruptions: tables of names, input checks, per-severity groups."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np
import torch

from ...base import Params, check_float_tensor, select_params, to_device, values_trusted
from ...functional.chunks import chunk_workers, map_chunks
from .._common import SeverityCore

__all__ = [
    "COMMON", "EXTRA", "NAMES", "SUBSETS", "TABLES", "NaturalCorruption", "check_table",
    "severity_groups", "run_grouped", "take", "pv", "arange_levels",
]

COMMON: list[str] = [
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
    "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
    "jpeg_compression",
]
EXTRA: list[str] = ["speckle_noise", "gaussian_blur", "spatter", "saturate"]
NAMES: list[str] = COMMON + EXTRA
SUBSETS: dict[str, list[str]] = {
    "common": COMMON,
    "extra": EXTRA,
    "all": NAMES,
    "noise": COMMON[0:3],
    "blur": COMMON[3:7],
    "weather": COMMON[7:11],
    "digital": COMMON[11:15],
}
TABLES: tuple[str, ...] = ("imagenet", "cifar")
#: float32 bytes per chunk of samples on the CPU (see :meth:`NaturalCorruption.cpu_chunk`): 8 images
#: at 224², measured best of 1.2-38 MB for most rows on 2 cores
UINT8_CHUNK_BYTES = 5 << 20


def arange_levels(start: float, stop: float, step: float) -> tuple[float, ...]:
    """The zoom factors exactly as ``np.arange`` produced them in the published code."""
    return tuple(float(v) for v in np.arange(start, stop, step))


def check_table(table: Any) -> str:
    if not isinstance(table, str) or table.lower() not in TABLES:
        raise ValueError(f"table: unknown parameter table {table!r}; choose one of {list(TABLES)}")
    return table.lower()


def _check_rgb_shape(x: torch.Tensor, name: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{name}: expected a batch of shape (N, 3, H, W), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: empty batch (N = 0)")
    if any(s == 0 for s in x.shape[1:]):
        raise ValueError(f"{name}: a channel or spatial size is 0 in shape {tuple(x.shape)}")
    if x.shape[1] != 3:
        raise ValueError(
            f"{name}: expected 3 (RGB) channels in shape (N, 3, H, W), got {x.shape[1]} in {tuple(x.shape)}; "
            "repeat a grey channel with x.expand(-1, 3, -1, -1)"
        )


def _check_rgb01(x: Any, name: str) -> tuple[torch.Tensor, float, float]:
    check_float_tensor(x, name)
    _check_rgb_shape(x, name)
    if values_trusted():  # validated (and so in range) once by the caller: no pass, no clamp
        return x, 0.0, 1.0
    lo_t, hi_t = torch.aminmax(x.detach())  # the one host sync of a call (skipped by validate=False)
    lo, hi = float(lo_t), float(hi_t)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name}: contains NaN or Inf values")
    if hi > 1.5:
        raise ValueError(
            f"{name}: values up to {hi:.4g} look like a 0..255 range; divide by 255 "
            "(the corruptions expect floats in [0, 1])"
        )
    if lo < -0.5:
        raise ValueError(
            f"{name}: values down to {lo:.4g} are far outside [0, 1] (a mean/std-normalised image?); "
            "corrupt images in [0, 1] before normalising"
        )
    return x, lo, hi


def _unit_float(x8: torch.Tensor) -> torch.Tensor:
    """uint8 grey levels -> float32 in [0, 1], ``x / 255`` (as the float API expects them)."""
    return x8.to(torch.float32).div_(255.0)


def _store_uint8(out: torch.Tensor, y: torch.Tensor) -> None:
    """``out = round(255 * y)`` for a float ``y`` in [0, 1] (``y`` is overwritten). Integer-valued
    in 0..255, so any conversion is exact: NumPy's cast on the CPU (one pass; ~0.07 ms per 224²
    image less than torch's), through int16 elsewhere (~5x faster than torch's float -> uint8)."""
    y = y.detach().mul_(255.0).round_()
    if (y.device.type == "cpu" and out.device.type == "cpu" and y.is_contiguous() and out.is_contiguous()
            and y.shape == out.shape):
        np.copyto(out.numpy(), y.numpy(), casting="unsafe")
    else:
        out.copy_(y.to(torch.int16))


def pv(v: torch.Tensor) -> torch.Tensor:
    """``(N,)`` -> ``(N, 1, 1, 1)``."""
    return v.reshape(-1, 1, 1, 1)


class NaturalCorruption(SeverityCore, abstract=True):
    """Base of the natural-image corruptions.

    Args:
        severity: an int 1..5 (fixed) or an inclusive ``(low, high)`` pair (random per sample).
        table: ``"imagenet"`` (ImageNet-C parameters, for 224x224 images) or ``"cifar"``
            (CIFAR-10-C parameters, for 32x32 images).
        p: probability, per sample, that the sample is corrupted.

    Inputs are float ``(N, 3, H, W)`` RGB batches in [0, 1]: values within [-0.5, 1.5] are clamped
    to [0, 1] by :meth:`check` (so also in samples the ``p`` coin leaves uncorrupted), values beyond
    are rejected (a 0..255 image must be divided by 255). Outputs keep shape, dtype and device and
    lie in [0, 1]. Params hold ``severity`` (``(N,)`` int64) and the subclass' random draws, which
    never depend on the severity.
    """

    spatial_dims: ClassVar[tuple[int, ...]] = (2,)
    #: how the CPU path splits a batch: ``"samples"``, chunks of about :data:`UINT8_CHUNK_BYTES` of
    #: float32 on the workers; ``"stages"``, the whole batch in one call, the core chunking its
    #: per-sample stages itself around a whole-batch step (spatter's distance transform, a 448-step
    #: row loop whose cost is per call: 84 vs 339 images/s at 224² in 4- vs 64-image chunks)
    cpu_chunks: ClassVar[str] = "samples"
    #: severities are metadata here (grouping, parameter lookup): they stay on the host
    severity_on_host: ClassVar[bool] = True
    #: corruption name without the ``natural_`` prefix
    name: ClassVar[str] = ""
    #: table name -> the five per-severity parameter values (scalars or tuples)
    levels: ClassVar[dict[str, tuple[Any, ...]]] = {}

    def __init__(self, *, severity: int | tuple[int, int] = (1, 5), table: str = "imagenet", p: float = 1.0) -> None:
        super().__init__(severity=severity, p=p)
        self.table = check_table(table)

    # -- validation -----------------------------------------------------------------------------
    def check(self, x: Any, name: str = "x") -> torch.Tensor:
        """Validate an RGB batch (see the class doc) and return it in [0, 1]: ``x`` itself, or a
        clamped copy when values lie slightly outside (the range comes from the validation pass)."""
        x, lo, hi = _check_rgb01(x, name)
        return x.clamp(0.0, 1.0) if lo < 0 or hi > 1 else x

    @staticmethod
    def check_layout(x: Any, name: str = "x") -> torch.Tensor:
        """The cheap checks only (a float or uint8 tensor of shape ``(N, 3, H, W)``), no pass over the
        values and no host sync: for ``validate=False`` calls on batches the caller has checked."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
        if x.dtype != torch.uint8 and not torch.is_floating_point(x):
            raise TypeError(f"{name}: expected a float tensor in [0, 1] or a uint8 tensor in 0..255, got dtype {x.dtype}")
        _check_rgb_shape(x, name)
        return x

    # -- uint8 ----------------------------------------------------------------------------------
    def apply_uint8(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        """Apply to a uint8 ``(N, 3, H, W)`` batch (values 0..255) with fixed ``params``; uint8 out.

        The result is the float path's output rounded to the nearest grey level, ``round(255 *
        apply(x / 255))``. On the CPU the batch goes through in chunks of about
        :data:`UINT8_CHUNK_BYTES` of float32 (:meth:`cpu_chunk`), converted in and out per chunk on
        worker threads (:func:`~medrobust.augment.functional.chunks.map_chunks`), so the float
        intermediates stay small and cache-resident instead of a 4x larger float copy of the whole
        batch; on an accelerator in one piece. Corruptions whose published
        definition works on 8-bit images (JPEG; pixelate on the CPU, PIL's own 8-bit box resampler)
        override :meth:`_corrupt_uint8` and never convert.
        Values need no check: every uint8 value is a valid grey level.
        """
        n = x.shape[0]
        mask = params.get("apply")
        if mask is None:
            raise KeyError("params: missing 'apply' mask; get params from sample_params()")
        host = mask.cpu()
        if not bool(host.any()):
            return x.clone()
        y = self._corrupt_uint8(x.contiguous(), params, self.severities(params, x))
        if y is not None:
            if bool(host.all()):
                return y
            return torch.where(to_device(mask, x.device).view(-1, 1, 1, 1), y, x)
        out = torch.empty_like(x, memory_format=torch.contiguous_format)
        if self.cpu_split() == "stages" and x.device.type == "cpu" and n > 1:
            # one call over the batch: only the conversions in and out run in chunks on the workers
            conv = self.sample_chunk(x)
            xf = torch.empty(x.shape, dtype=torch.float32)
            map_chunks(lambda i, j: xf[i:j].copy_(_unit_float(x[i:j])), n, conv)
            y = self._apply_checked(xf, params)
            map_chunks(lambda i, j: _store_uint8(out[i:j], y[i:j]), n, conv)
            return out

        def part(i: int, j: int) -> None:
            sub = params if (i, j) == (0, n) else select_params(params, slice(i, j), n)
            _store_uint8(out[i:j], self._apply_checked(_unit_float(x[i:j]), sub))

        map_chunks(part, n, self.cpu_chunk(x))
        return out

    def _corrupt_uint8(self, x: torch.Tensor, params: Params, sev: torch.Tensor) -> torch.Tensor | None:
        """Optional uint8 -> uint8 implementation (all samples; the ``p`` coin is applied outside),
        or None for the chunked float path."""
        return None

    # -- helpers --------------------------------------------------------------------------------
    @property
    def values(self) -> tuple[Any, ...]:
        """The five parameter values of this core's table."""
        return self.levels[self.table]

    def level(self, s: int) -> Any:
        return self.values[s - 1]

    def vec(self, sev: torch.Tensor, like: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """Per-sample ``(N,)`` parameter (component ``k`` of tuple entries) for severities ``sev``
        (host tensor, see :meth:`severities`), on ``like``'s device and in its dtype: looked up on
        the host and copied without waiting for the device."""
        vals = [v if k is None else v[k] for v in self.values]
        host = torch.tensor(vals, dtype=like.dtype)[sev.cpu() - 1]
        return to_device(host, like.device)

    @staticmethod
    def field(params: Params, key: str, x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """A per-sample random field from ``params``, checked against ``shape``, on ``x``'s device."""
        v = params[key]
        if tuple(v.shape) != tuple(shape):
            raise ValueError(
                f"params[{key!r}]: shape {tuple(v.shape)} does not match the input (expected {tuple(shape)}); "
                "draw params with sample_params() on a batch of the same shape"
            )
        return v.to(device=x.device, dtype=x.dtype if v.is_floating_point() else v.dtype)

    # -- application ----------------------------------------------------------------------------
    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        # x comes from check(): already in [0, 1]
        work = (x if x.dtype in (torch.float32, torch.float64) else x.float()).contiguous()
        sev = self.severities(params, work)
        n = work.shape[0]
        step = self.cpu_chunk(work)
        if step >= n:
            out = self._corrupt(work, params, sev)
            if out.data_ptr() in (x.data_ptr(), work.data_ptr()):  # never clamp the caller's tensor in place
                out = out.clone()
            return out.clamp_(0.0, 1.0).to(x.dtype)
        out = torch.empty_like(work)

        def part(i: int, j: int) -> None:
            y = self._corrupt(work[i:j], select_params(params, slice(i, j), n), sev[i:j])
            torch.clamp(y, 0.0, 1.0, out=out[i:j])

        map_chunks(part, n, step)
        return out.to(x.dtype)

    def cpu_chunk(self, x: torch.Tensor) -> int:
        """Samples per call of :meth:`_corrupt` on the CPU for a batch ``x``: :meth:`sample_chunk`,
        or the whole batch for ``"stages"`` cores (see :attr:`cpu_chunks`)."""
        return x.shape[0] if self.cpu_split() == "stages" else self.sample_chunk(x)

    def cpu_split(self) -> str:
        """How this call splits a CPU batch: :attr:`cpu_chunks` (a core whose split depends on the
        backend it runs, e.g. OpenCV present or not, overrides this)."""
        return self.cpu_chunks

    @staticmethod
    def sample_chunk(x: torch.Tensor, bytes_per_chunk: int | None = None) -> int:
        """Samples per chunk of :func:`~medrobust.augment.functional.chunks.map_chunks` for a batch
        ``x``: about ``bytes_per_chunk`` (default :data:`UINT8_CHUNK_BYTES`) of float32 per chunk,
        at least one chunk per worker; the whole batch on an accelerator and for a tensor that
        needs grad."""
        n = x.shape[0]
        if x.device.type != "cpu" or n < 2 or (x.requires_grad and torch.is_grad_enabled()):
            return n
        step = max(1, (bytes_per_chunk or UINT8_CHUNK_BYTES) // max(1, 4 * x[0].numel()))
        workers = chunk_workers(n)
        if workers <= 1:
            return min(n, step)
        return min(step, math.ceil(n / workers))  # at least one chunk per worker (small images too)

    def _corrupt(self, x: torch.Tensor, params: Params, sev: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"severity={self.severity}, table={self.table!r}, p={self.p}"


def severity_groups(sev: torch.Tensor, device: torch.device | None = None) -> Iterator[tuple[int, torch.Tensor | None]]:
    """Yield ``(s, index)`` per distinct severity of the host tensor ``sev``; ``index`` (on
    ``device``, copied without a wait) is None when the whole batch shares it."""
    sev = sev.cpu()
    values = torch.unique(sev).tolist()
    if len(values) == 1:
        yield int(values[0]), None
        return
    for s in values:
        idx = torch.nonzero(sev == s).squeeze(1)
        yield int(s), to_device(idx, device)


def run_grouped(x: torch.Tensor, sev: torch.Tensor,
                fn: Callable[[torch.Tensor, int, torch.Tensor | None], torch.Tensor]) -> torch.Tensor:
    """``fn(x_g, s, index)`` per severity group, results written back in batch order."""
    out = None
    for s, idx in severity_groups(sev, x.device):
        if idx is None:
            return fn(x, s, None)
        y = fn(x.index_select(0, idx), s, idx)
        if out is None:
            out = torch.empty((x.shape[0], *y.shape[1:]), dtype=y.dtype, device=y.device)
        out.index_copy_(0, idx, y)
    assert out is not None
    return out


def take(t: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
    """Rows ``idx`` of a per-sample parameter (all rows when ``idx`` is None), on ``t``'s device."""
    if idx is None:
        return t
    return t.index_select(0, to_device(idx, t.device))
