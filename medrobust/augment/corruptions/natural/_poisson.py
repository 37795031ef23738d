"""Poisson sampling by inversion of a stored standard normal field (shot noise)."""

from __future__ import annotations

import functools

import numpy as np
import torch

__all__ = ["poisson_quantile"]


_POISSON_LMAX, _POISSON_STEP, _POISSON_K, _POISSON_M = 64, 1.0 / 128, 160, 256


@functools.lru_cache(maxsize=8)
def _poisson_tables(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """CDF table ``F[j, k] = P(Poisson(j * step) <= k)`` (rates 0 .. 64 + step, counts 0 .. 159)
    and guide table ``G[j, m] = min{k : F[j, k] >= m / 256}`` (the quantile at ``u = m / 256``)."""
    lam = np.arange(int(_POISSON_LMAX / _POISSON_STEP) + 2) * _POISSON_STEP
    pmf = np.exp(-lam)
    cols = [pmf.copy()]
    for k in range(1, _POISSON_K):
        pmf = pmf * lam / k
        cols.append(cols[-1] + pmf)
    cdf = np.minimum(np.stack(cols, 1), 1.0)
    grid = np.arange(_POISSON_M + 1) / _POISSON_M
    guide = np.stack([np.searchsorted(row, grid, side="left") for row in cdf]).clip(max=_POISSON_K - 1)
    return (torch.as_tensor(cdf, dtype=torch.float32, device=device).reshape(-1),
            torch.as_tensor(guide, dtype=torch.uint8, device=device).reshape(-1))  # counts < 160: 2 MB, cache-friendlier


def poisson_quantile(lam: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Poisson(``lam``) counts as the quantile at ``u = Phi(z)`` of a standard normal ``z``.

    Rates below 64: the exact quantile ``min{k : F(k; lam) >= u}``, up to the linear
    interpolation in ``lam`` of a precomputed CDF table (step 1/128, |error| < 1e-5: at most
    ~1e-5 of the draws can land one count off). A guide table of the quantiles on a grid of
    ``(lam, u)`` brackets it (the quantile grows with both); ~10 % of the draws, where the bracket
    is not a single count, compare ``u`` with the CDF inside it. Rates of 64 and more: the
    Cornish-Fisher quantile ``floor(lam + sqrt(lam) z + (z^2 - 1) / 6 + 1/2)`` (total-variation
    distance to the Poisson law < 0.05 %). The same ``z`` at a larger ``lam`` gives a larger
    count, so a fixed seed is monotone in the rate.
    """
    shape, dt = lam.shape, lam.dtype
    lam = lam.reshape(-1).float()
    z = z.reshape(-1).float()
    every = bool(lam.amax() < _POISSON_LMAX)  # one reduction (a mask and all() cost ~15x more)
    if every:
        k = torch.empty_like(lam)
    else:
        small = lam < _POISSON_LMAX
        k = torch.sqrt(lam).mul_(z).add_(lam)
        k.addcmul_(z, z, value=1.0 / 6).add_(0.5 - 1.0 / 6).floor_().clamp_(min=0)
    idx = None if every else torch.nonzero(small).squeeze(1)
    if idx is None or idx.numel():
        cdf, guide = _poisson_tables(lam.device)
        width, kk = _POISSON_M + 1, _POISSON_K
        ls = lam if idx is None else lam[idx]
        # below 1 (float32 rounds Phi(z) to 1 from z ~ 5.4): u = 1 would index past the guide table's row
        u = torch.special.ndtr(z if idx is None else z[idx]).clamp_(max=1.0 - 2.0**-24)
        jf = ls * (1.0 / _POISSON_STEP)
        jfl = jf.floor()
        j = jfl.to(torch.int32)
        t = jf.sub_(jfl)  # float - float: a float - int32 difference is ~9x slower on the CPU
        # G[j, floor(u M)], indexed as int32 (a float -> int64 conversion costs ~10x an int32 one
        # on the CPU)
        cell = torch.add((u * _POISSON_M).to(torch.int32), j, alpha=width)
        lo = guide.index_select(0, cell)
        hi = guide.index_select(0, cell.add_(width + 1))  # G[j + 1, floor(u M) + 1]
        ks = lo.float()
        amb = torch.nonzero(lo != hi).squeeze(1)
        if amb.numel():  # count the CDF values below u inside the bracket
            cur, top = lo.index_select(0, amb).long(), hi.index_select(0, amb).long()
            base = j.index_select(0, amb).long() * kk
            ta, ua = t.index_select(0, amb), u.index_select(0, amb)

            def below(k_at: torch.Tensor, top_: torch.Tensor, base_: torch.Tensor, t_: torch.Tensor,
                      u_: torch.Tensor) -> torch.Tensor:
                q = k_at.clamp(max=kk - 1) + base_
                return (k_at < top_) & (torch.lerp(cdf.take(q), cdf.take(q + kk), t_) < u_)

            # the interpolated CDF grows with k, so "F(k) < u" holds on a prefix of the bracket: the
            # first few counts run on every ambiguous draw at once (most brackets are 1-2 wide) ...
            head = min(4, int((top - cur).max()))
            res = cur.clone()
            last = None
            for step in range(head):
                last = below(cur + step, top, base, ta, ua)
                res += last
            # ... and the rare wide brackets (the upper tail) go on one count at a time, compacted
            if last is not None:
                rest = torch.nonzero(last & (top - cur > head)).squeeze(1)
                r_cur, r_top, r_base = res.index_select(0, rest), top.index_select(0, rest), base.index_select(0, rest)
                r_t, r_u = ta.index_select(0, rest), ua.index_select(0, rest)
                while rest.numel():
                    go = below(r_cur, r_top, r_base, r_t, r_u)
                    r_cur = r_cur + go
                    stop = torch.nonzero(~go).squeeze(1)
                    res.index_copy_(0, rest.index_select(0, stop), r_cur.index_select(0, stop))
                    keep = torch.nonzero(go).squeeze(1)
                    rest, r_cur, r_top, r_base, r_t, r_u = (v.index_select(0, keep) for v in (rest, r_cur, r_top, r_base, r_t, r_u))
            ks.index_copy_(0, amb, res.to(ks.dtype))
        if idx is None:
            k = ks
        else:
            k[idx] = ks
    return k.reshape(shape).to(dt)
