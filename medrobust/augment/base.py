"""The contract every augmentation core follows.

A core is batched tensor code. It splits into two steps, as kornia does:

* ``sample_params(x, generator)`` draws every random quantity *per sample* (kernel sizes, weights,
  mixing weights, the ``p`` coin, ...) and returns them in a dict of tensors whose first dimension
  is the batch size ``N``;
* ``apply(x, params)`` is deterministic: the same ``x`` and ``params`` give the same output, so a run
  can be replayed, and sample ``i`` of the output depends only on ``x[i]`` and the ``i``-th slice of
  every parameter (see :func:`select_params`).

``core(x, generator=None)`` does both. Inputs are float tensors ``(N, C, H, W)`` or
``(N, C, D, H, W)`` on any device; outputs keep shape, dtype and device. Samples whose ``p`` coin
is off are returned unchanged.

Random parameters are drawn on the generator's device (the CPU when no generator is given) and then
moved to the input's device, so a seed gives the same parameters on CPU and CUDA. Cores that need
image-sized noise draw it on the generator's device too: pass a CUDA generator to keep that on the GPU.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import torch

from .functional.chunks import map_chunks
from .functional.conv import fold_batch, grouped_conv  # re-exported: the cores' historical import path

Params = dict[str, Any]

__all__ = [
    "BatchAugment",
    "Params",
    "check_input",
    "to_device",
    "trusted_values",
    "values_trusted",
    "select_params",
    "rand",
    "randn",
    "randint",
    "bulk_rand",
    "bulk_randn",
    "NOISE_BLOCK",
    "choice",
    "device_generator",
    "per_sample_view",
    "as_range",
    "fold_batch",
    "grouped_conv",
]


def check_float_tensor(x: Any, name: str = "x") -> None:
    """``TypeError`` naming ``name`` unless ``x`` is a floating-point tensor (the first checks of every core)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise TypeError(
            f"{name}: expected a floating-point tensor (values in [0, 1]), got dtype {x.dtype}; "
            "convert uint8 images with x.float() / 255"
        )


_TRUST = threading.local()


def values_trusted() -> bool:
    """Whether the calling thread is inside :func:`trusted_values` (value checks are skipped)."""
    return bool(getattr(_TRUST, "on", False))


@contextmanager
def trusted_values() -> Iterator[None]:
    """Inside the block, the cores skip their pass over the input's values (NaN/Inf, range) and
    the host sync it costs on a GPU; shape and dtype are still checked. For callers that validated
    the batch once and then run several cores or views on it (the training adapters do)."""
    prev = values_trusted()
    _TRUST.on = True
    try:
        yield
    finally:
        _TRUST.on = prev


def check_input(x: Any, *, name: str = "x", spatial_dims: Sequence[int] = (2, 3)) -> torch.Tensor:
    """Validate a batch for a core and return it.

    Raises ``TypeError`` for a non-tensor or a non-float dtype and ``ValueError`` for a wrong rank,
    an empty batch or NaN/Inf values, naming ``name`` and what was expected.
    """
    check_float_tensor(x, name)
    ranks = {d + 2: d for d in spatial_dims}
    if x.ndim not in ranks:
        shapes = " or ".join(
            "(N, C, H, W)" if d == 2 else "(N, C, D, H, W)" for d in sorted(spatial_dims)
        )
        raise ValueError(f"{name}: expected a batch of shape {shapes}, got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: empty batch (N = 0)")
    if any(s == 0 for s in x.shape[1:]):
        raise ValueError(f"{name}: a channel or spatial size is 0 in shape {tuple(x.shape)}")
    if values_trusted():  # validated once by the caller (see trusted_values): no pass, no host sync
        return x
    # one reduction pass (min/max propagate NaN; ±Inf shows in the extremes), no full-size bool mask
    lo, hi = torch.aminmax(x.detach())
    if not (bool(torch.isfinite(lo)) and bool(torch.isfinite(hi))):
        raise ValueError(f"{name}: contains NaN or Inf values")
    return x


def _gen_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def device_generator(generator: torch.Generator | None, device: torch.device | str) -> torch.Generator | None:
    """The generator to draw image-sized noise with on ``device``.

    ``generator`` itself when it already lives there (or both are the CPU); otherwise a fresh
    generator on ``device`` seeded from one draw of ``generator`` (of the global CPU generator when
    None). Bulk noise is then drawn where it is used instead of on the CPU and copied over (about
    100x faster on a GPU). Replay stays exact for the same seed and device; a CPU and a CUDA run
    with the same CPU seed draw different noise.
    """
    device = torch.device(device)
    src = _gen_device(generator)
    if src.type == device.type and (device.index is None or src.index in (None, device.index)):
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=src).item())
    return torch.Generator(device=device).manual_seed(seed)


def to_device(t: torch.Tensor, device: torch.device | str | None) -> torch.Tensor:
    """``t`` on ``device``; a host-to-device copy does not wait for the device (CUDA stages a
    pageable source before returning, so this is safe), which keeps small per-sample draws from
    serialising back-to-back GPU calls."""
    if device is None:
        return t
    device = torch.device(device)
    return t.to(device, non_blocking=t.device.type == "cpu" and device.type == "cuda")


def rand(
    *shape: int, generator: torch.Generator | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """``U[0, 1)`` float32 drawn on the generator's device, moved to ``device``."""
    out = torch.rand(*shape, generator=generator, device=_gen_device(generator))
    return to_device(out, device)


def randn(
    *shape: int, generator: torch.Generator | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """``N(0, 1)`` float32 drawn on the generator's device, moved to ``device``."""
    out = torch.randn(*shape, generator=generator, device=_gen_device(generator))
    return to_device(out, device)


#: samples per independently seeded block of image-sized CPU noise (:func:`bulk_randn`): a
#: constant, so the values never depend on the thread count
NOISE_BLOCK = 8


def _bulk(kind: str, shape: Sequence[int], generator: torch.Generator | None,
          device: torch.device | None) -> torch.Tensor:
    shape = tuple(int(s) for s in shape)
    gdev = _gen_device(generator)
    draw = torch.rand if kind == "rand" else torch.randn
    if gdev.type != "cpu" or len(shape) < 2 or shape[0] <= NOISE_BLOCK:
        return to_device(draw(*shape, generator=generator, device=gdev), device)
    n = shape[0]
    seeds = torch.randint(0, 2**62, ((n + NOISE_BLOCK - 1) // NOISE_BLOCK,), generator=generator).tolist()
    out = torch.empty(shape)

    def part(i: int, j: int) -> None:
        seed = int(seeds[i // NOISE_BLOCK])
        if kind == "rand":  # NumPy's PCG64 fills float32 uniforms ~3x faster than torch's MT19937
            np.random.Generator(np.random.PCG64(seed)).random(out=out[i:j].numpy().reshape(-1), dtype=np.float32)
        else:  # torch's normal_ is faster than NumPy's ziggurat for float32 here (257 vs 91 M/s)
            out[i:j].normal_(generator=torch.Generator().manual_seed(seed))

    map_chunks(part, n, NOISE_BLOCK)
    return to_device(out, device)


def bulk_rand(*shape: int, generator: torch.Generator | None = None, device: torch.device | None = None) -> torch.Tensor:
    """Image-sized ``U[0, 1)`` float32 noise ``shape = (N, ...)``, drawn on the generator's device
    and moved to ``device``. On the CPU the samples come in blocks of :data:`NOISE_BLOCK`, each
    from its own generator seeded by one draw of ``generator``, filled in parallel
    (:func:`~medrobust.augment.functional.chunks.map_chunks`), the uniforms by NumPy's PCG64
    (24-bit floats, as torch's; 650 against torch's 210 M values/s on one thread here): the
    largest item of the noise corruptions. The same seed gives the same values with any thread
    count; elsewhere (CUDA) one draw, as :func:`rand`."""
    return _bulk("rand", shape, generator, device)


def bulk_randn(*shape: int, generator: torch.Generator | None = None, device: torch.device | None = None) -> torch.Tensor:
    """``N(0, 1)`` float32 counterpart of :func:`bulk_rand`."""
    return _bulk("randn", shape, generator, device)


def randint(
    low: int,
    high: int,
    shape: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Integers in ``[low, high)`` (int64) drawn on the generator's device, moved to ``device``."""
    out = torch.randint(low, high, tuple(shape), generator=generator, device=_gen_device(generator))
    return to_device(out, device)


def choice(
    values: Sequence[int | float],
    n: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
) -> torch.Tensor:
    """``n`` values drawn uniformly (with replacement) from ``values``."""
    table = torch.as_tensor(list(values))
    idx = randint(0, len(table), (n,), generator=generator)
    out = table[idx.cpu()]
    return out.to(device) if device is not None else out


def select_params(params: Params, index: torch.Tensor | slice | int, n: int) -> Params:
    """Slice every per-sample entry of ``params`` (first dimension ``n``) with ``index``.

    Entries that are not tensors with leading dimension ``n`` (flags, shared scalars) are kept as
    they are; nested dicts and lists of dicts are sliced recursively. ``apply(x[index],
    select_params(p, index, N))`` equals ``apply(x, p)[index]`` for every conforming core.
    """
    if isinstance(index, int):
        index = slice(index, index + 1)
    out: Params = {}
    for key, value in params.items():
        if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == n:
            out[key] = value[index.to(value.device) if isinstance(index, torch.Tensor) else index]
        elif isinstance(value, dict):
            out[key] = select_params(value, index, n)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            out[key] = [select_params(v, index, n) for v in value]
        else:
            out[key] = value
    return out


class BatchAugment(torch.nn.Module):
    """Base class of the augmentation cores.

    Subclasses implement ``_sample(x, generator) -> Params`` and ``_apply(x, params) -> Tensor``;
    this class validates inputs, draws the per-sample ``p`` coin and keeps unselected samples
    unchanged. It is an ``nn.Module`` so cores compose with ``nn.Sequential`` and can hold frozen
    networks, but it has no trainable parameters of its own.

    Args:
        p: probability, per sample, that the sample is augmented (the rest pass unchanged).
    """

    #: spatial dimensionalities the core supports (2 = images, 3 = volumes)
    spatial_dims: ClassVar[tuple[int, ...]] = (2, 3)
    #: True for bases and combinators that are not registered themselves (``class B(BatchAugment,
    #: abstract=True)``); set on every class, never inherited. Every other core must be registered.
    abstract: ClassVar[bool] = True
    #: the name :func:`~medrobust.augment.registry.register` gave the class (None: unregistered)
    registry_name: ClassVar[str | None] = None
    #: constructor arguments that take data (tensors, networks) rather than settings; a config can
    #: only name them by a file path, which the task layer loads before ``build`` (augment reads no
    #: files; :func:`~medrobust.augment.registry.validate` checks such entries without them)
    data_args: ClassVar[tuple[str, ...]] = ()
    #: whether the output stays in [0, 1] for inputs in [0, 1] (checked by the contract test)
    keeps_range: ClassVar[bool] = True
    #: whether a sample's output depends on other samples of the batch (amplitude mixing, mixup):
    #: such cores are exempt from the per-sample independence check and declare it here
    mixes_samples: ClassVar[bool] = False
    #: whether the core takes class labels: ``core(x, generator, labels=y)`` (DFM-X); adapters pass
    #: them when this is set, and the core still works without them
    uses_labels: ClassVar[bool] = False
    #: whether the core moves pixels (rotation, shear, translation, elastic warp): its output no longer
    #: lines up with the input's label map, so segmentation training refuses it (a core whose
    #: settings decide it, such as AugMix's op list, sets it per instance)
    geometric: ClassVar[bool] = False

    def __init_subclass__(cls, *, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.abstract = abstract

    def __init__(self, *, p: float = 1.0) -> None:
        super().__init__()
        if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p: expected a probability in [0, 1], got {p!r}")
        self.p = float(p)

    # -- subclass hooks -------------------------------------------------------------------------
    def _sample(self, x: torch.Tensor, generator: torch.Generator | None) -> Params:
        raise NotImplementedError

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        raise NotImplementedError

    def _sample_apply_mask(self, n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
        """Per-sample Bernoulli(p) coin; subclasses may share it across the batch."""
        return rand(n, generator=generator, device=device) < self.p

    # -- public API -----------------------------------------------------------------------------
    def check(self, x: Any, name: str = "x") -> torch.Tensor:
        return check_input(x, name=name, spatial_dims=self.spatial_dims)

    def sample_params(self, x: torch.Tensor, generator: torch.Generator | None = None) -> Params:
        """Draw all random parameters for the batch ``x`` (per sample)."""
        return self._sample_checked(self.check(x), generator)

    def _sample_checked(self, x: torch.Tensor, generator: torch.Generator | None) -> Params:
        params = self._sample(x, generator)
        # the coin stays where it was drawn (the CPU for a CPU generator): apply() decides from it
        # without waiting for the device
        params["apply"] = self._sample_apply_mask(x.shape[0], generator, _gen_device(generator))
        return params

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        """Apply the transform with fixed ``params`` (deterministic)."""
        return self._apply_checked(self.check(x), params)

    def _apply_checked(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        # cores compute in the input's dtype: an enclosing autocast region (AMP training) would
        # otherwise turn their convolutions/matmuls into half precision behind their back
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self._apply_masked(x, params)

    def _apply_masked(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        mask = params.get("apply")
        if mask is None:
            raise KeyError("params: missing 'apply' mask; get params from sample_params()")
        if mask.shape != (x.shape[0],):
            raise ValueError(f"params['apply']: expected shape ({x.shape[0]},), got {tuple(mask.shape)}")
        host = mask.cpu()
        if not bool(host.any()):
            return x.clone()
        out = self._apply(x, params)
        if bool(host.all()):
            return out
        return torch.where(to_device(mask, x.device).view(-1, *([1] * (x.ndim - 1))), out, x)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = self.check(x)  # validated once for both steps
        return self._apply_checked(x, self._sample_checked(x, generator))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def per_sample_view(v: torch.Tensor, ndim: int) -> torch.Tensor:
    """Reshape a per-sample vector ``(N,)`` to broadcast against an ``ndim`` tensor."""
    return v.reshape(-1, *([1] * (ndim - 1)))


def as_range(value: float | Sequence[float], name: str) -> tuple[float, float]:
    """TorchIO convention: a scalar means a fixed value, a ``(low, high)`` pair a random range."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), float(value)
    try:
        low, high = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number or a (low, high) pair, got {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"{name}: expected finite low <= high, got {value!r}")
    return low, high
