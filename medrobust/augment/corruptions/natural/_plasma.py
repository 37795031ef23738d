"""The published diamond-square plasma fractal (fog), batched."""

from __future__ import annotations

import torch

__all__ = ["plasma_uniform_count", "plasma_fractal", "next_power_of_2"]


def plasma_uniform_count(mapsize: int) -> int:
    return mapsize * mapsize - 1


def plasma_fractal(u: torch.Tensor, mapsize: int, decay: torch.Tensor) -> torch.Tensor:
    """The published diamond-square ``plasma_fractal`` for a batch, from pre-drawn uniforms.

    ``u``: ``(N, mapsize**2 - 1)`` in [0, 1) (consumed level by level: squares, then the two
    diamond sets, as the NumPy code draws them); ``decay``: ``(N,)`` wibble decay. Each filled
    value is ``mean / 4 + wibble * U(-wibble, wibble)`` with ``wibble = 100 / decay**level``.
    Returns ``(N, mapsize, mapsize)`` normalised to [0, 1] per sample.
    """
    n = u.shape[0]
    dt = torch.float32 if u.dtype != torch.float64 else torch.float64
    a = torch.zeros(n, mapsize, mapsize, dtype=dt, device=u.device)
    wibble = torch.full((n, 1, 1), 100.0, dtype=dt, device=u.device)
    decay = decay.to(device=u.device, dtype=dt).reshape(n, 1, 1)
    step = mapsize
    pos = 0

    def noise(shape: tuple[int, int]) -> torch.Tensor:
        nonlocal pos
        k = shape[0] * shape[1]
        v = u[:, pos : pos + k].to(dt).reshape(n, *shape)
        pos += k
        return wibble * wibble * (2 * v - 1)

    while step >= 2:
        half = step // 2
        corner = a[:, 0::step, 0::step]
        acc = corner + torch.roll(corner, shifts=-1, dims=1)
        acc = acc + torch.roll(acc, shifts=-1, dims=2)
        a[:, half::step, half::step] = acc / 4 + noise(tuple(acc.shape[1:]))
        dr = a[:, half::step, half::step]
        ul = a[:, 0::step, 0::step]
        lt = dr + torch.roll(dr, 1, dims=1) + ul + torch.roll(ul, -1, dims=2)
        a[:, 0::step, half::step] = lt / 4 + noise(tuple(lt.shape[1:]))
        tt = dr + torch.roll(dr, 1, dims=2) + ul + torch.roll(ul, -1, dims=1)
        a[:, half::step, 0::step] = tt / 4 + noise(tuple(tt.shape[1:]))
        step //= 2
        wibble = wibble / decay
    flat = a.reshape(n, -1)
    lo = flat.amin(dim=1, keepdim=True)
    flat = flat - lo
    hi = flat.amax(dim=1, keepdim=True).clamp_min(1e-12)
    return (flat / hi).reshape(n, mapsize, mapsize)


def next_power_of_2(v: int) -> int:
    return 1 if v <= 1 else 2 ** (v - 1).bit_length()
