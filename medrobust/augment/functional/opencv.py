"""OpenCV kernels for CPU tensors: the C++ routines the published corruption code itself called
(``cv2.sepFilter2D``, ``cv2.Canny``, ``cv2.distanceTransform``, ...), run on the planes of a batch.

On the CPU a batched torch reimplementation of these small image ops is many short passes over
the batch (a 9-tap Gaussian as banded matrix products costs ~40 multiply-adds per value and two
transposes); OpenCV's fused SIMD loops do the same work in one pass, release the GIL (so the
:func:`~.chunks.map_chunks` workers run them in parallel) and are the reference's own definitions.
Each call here is one C++ call per ``(H, W)`` plane: the Python loop only hands views of the
batch to OpenCV, with no per-sample math in Python. Accelerators and the autograd path keep the
torch kernels. :func:`opencv_disabled` switches the OpenCV paths off (tests of the torch kernels
on the CPU, or a process without OpenCV).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

__all__ = ["cv2_module", "opencv_disabled", "cv2_border", "cv2_planes", "cv2_sep_filter"]

@functools.lru_cache(maxsize=1)
def _import_cv2() -> Any:
    try:
        import cv2
    except ImportError:  # pragma: no cover - opencv-python-headless is a dependency
        return None
    return cv2


def cv2_module() -> Any:
    """The ``cv2`` module, or None (OpenCV not importable, or inside :func:`opencv_disabled`)."""
    if _DISABLED_ALL[0]:
        return None
    return _import_cv2()


_DISABLED_ALL = [0]  # process-wide switch (the workers of map_chunks are other threads)


@contextmanager
def opencv_disabled() -> Iterator[None]:
    """Within the block, every OpenCV path of medrobust falls back to its torch kernel (process-
    wide: the chunk workers run in other threads). For tests and comparisons; not thread-safe
    against concurrent callers that want OpenCV."""
    _DISABLED_ALL[0] += 1
    try:
        yield
    finally:
        _DISABLED_ALL[0] -= 1


#: scipy.ndimage boundary mode -> OpenCV border type (see :mod:`.filters`)
_BORDERS = {"nearest": "BORDER_REPLICATE", "mirror": "BORDER_REFLECT_101", "reflect": "BORDER_REFLECT"}


def cv2_border(cv2: Any, mode: str) -> int:
    """OpenCV's border constant for a scipy.ndimage boundary ``mode`` (nearest, mirror, reflect)."""
    try:
        return int(getattr(cv2, _BORDERS[mode]))
    except KeyError:
        raise ValueError(f"mode: expected one of {sorted(_BORDERS)}, got {mode!r}") from None


def cv2_planes(fn: Callable[[np.ndarray, np.ndarray], object], x: torch.Tensor,
               out: torch.Tensor | None = None) -> torch.Tensor:
    """``fn(src, dst)`` for every ``(H, W)`` plane of a CPU tensor ``(..., H, W)``; ``dst`` is the
    matching plane of ``out`` (a new contiguous tensor of ``x``'s shape and dtype by default; any
    contiguous tensor with as many planes), both C-contiguous NumPy views. ``fn`` writes ``dst``,
    or returns an OpenCV result called with ``dst=dst``: an array that is not ``dst`` (OpenCV
    reallocated it) is copied in. Returns ``out``."""
    src = x.detach().contiguous()
    if out is None:
        out = torch.empty_like(src)
    a = src.numpy().reshape(-1, *src.shape[-2:])
    b = out.numpy().reshape(-1, *out.shape[-2:])
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"cv2_planes: {a.shape[0]} input planes but {b.shape[0]} output planes")
    for k in range(a.shape[0]):
        dst = b[k]
        r = fn(a[k], dst)
        if isinstance(r, np.ndarray) and r is not dst and not np.may_share_memory(r, dst):
            dst[...] = r
    return out


def cv2_sep_filter(x: torch.Tensor, weights_h: tuple[float, ...], weights_w: tuple[float, ...],
                   mode: str) -> torch.Tensor | None:
    """``cv2.sepFilter2D`` correlation of the last two dims of a CPU float32/float64 tensor with
    1D kernels ``weights_h`` (along H) and ``weights_w`` (along W) and a scipy boundary ``mode``;
    None where this path does not apply (no OpenCV, not the CPU, another dtype, a tensor that
    needs a gradient, or a kernel wider than the image, which the torch path's dense operator
    handles). Accumulates in the input's precision, like the torch path (float32: ~2e-7 of
    scipy's float64 result for a Gaussian of values in [0, 1])."""
    cv2 = cv2_module()
    if (cv2 is None or x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64)
            or (x.requires_grad and torch.is_grad_enabled()) or x.ndim < 2 or x.numel() == 0):
        return None
    h, w = x.shape[-2:]
    if len(weights_h) > h or len(weights_w) > w or min(h, w) < 2:
        return None
    np_dt = np.float32 if x.dtype == torch.float32 else np.float64
    kx = np.asarray(weights_w, dtype=np_dt)
    ky = np.asarray(weights_h, dtype=np_dt)
    border = cv2_border(cv2, mode)

    return cv2_planes(lambda src, dst: cv2.sepFilter2D(src, -1, kx, ky, dst=dst, borderType=border), x)
