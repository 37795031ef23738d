"""Combined augmentation (CA, Kapoor et al., arXiv 2012.01386): a mixture of member cores, one drawn per
sample, with its own severity.

``build({"name": "combined", "members": ["natural_gaussian_noise", {"name": "natural_fog",
"severity": [2, 5]}, "randconv"], "defaults": {"table": "cifar"}})``

Per sample, :meth:`Combined.sample_params` draws one member (uniform, or by ``weights``); every
member then draws its own parameters **on its subset of the batch only** (so image-sized noise is
drawn once per sample, not once per member), and :meth:`~Combined.apply` calls each member once on
its subset (no Python loop over samples). Corruption cores (:class:`~.corruptions._common.
SeverityCore`: the ``natural_*`` and ``mri_*`` ones) draw a severity per sample in their range
(default 1..5; ``severity`` sets it for every corruption member that does not set its own), and the
``(n_k,)`` severity tensor reaches the core in its params; other cores use their own defaults or the
strengths their entry gives.

Params: ``member`` ``(N,)`` int64 (the member of each sample; ``-1`` where the ``p`` coin is off),
``position`` ``(N,)`` (the sample's row in its member's subset), and ``members``, a *tuple* with one
params dict per member (drawn on its subset; ``None`` when no sample drew it). The tuple is kept whole
by :func:`~.base.select_params`, which slices ``member``/``position`` only, so a slice of the batch
replays exactly: each member gets the rows of its params named by ``position``.

Members that mix samples (``mixes_samples``) or take labels (``uses_labels``) are refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .base import BatchAugment, Params, _gen_device, check_input, rand, select_params
from .corruptions._common import SeverityCore
from .registry import REGISTRY, allowed_kwargs, build, register

__all__ = ["Combined"]


def _member_class(spec: Any) -> type | None:
    name = spec if isinstance(spec, str) else spec.get("name") if isinstance(spec, Mapping) else None
    return REGISTRY.get(name.lower()) if isinstance(name, str) else None


@register("combined")
class Combined(BatchAugment):
    """One member core per sample (see the module doc).

    Args:
        members: registry entries (a name or ``{"name": ..., **kwargs}``) or built cores; at least one.
        weights: relative probability of each member (default: uniform).
        severity: the severity (int 1..5 or inclusive ``[low, high]``) of every corruption member
            whose entry does not set one (default: each core's own, 1..5).
        defaults: keyword arguments given to every member entry whose core takes them and does not set
            them (e.g. ``{"table": "cifar"}`` for the natural corruptions on 32x32 images).
        p: probability, per sample, that the sample is augmented at all.
    """

    def __init__(self, members: Sequence[Any], *, weights: Sequence[float] | None = None,
                 severity: int | Sequence[int] | None = None, defaults: Mapping[str, Any] | None = None,
                 p: float = 1.0) -> None:
        super().__init__(p=p)
        if isinstance(members, (str, Mapping)) or not isinstance(members, Sequence) or not members:
            raise ValueError(f"members: expected a non-empty list of core entries, got {members!r}")
        if defaults is not None and not isinstance(defaults, Mapping):
            raise ValueError(f"defaults: expected a mapping of keyword arguments, got {defaults!r}")
        cores = []
        for i, spec in enumerate(members):
            where = f"members[{i}]"
            if isinstance(spec, BatchAugment):
                core = spec
            else:
                cls = _member_class(spec)
                entry = {"name": spec} if isinstance(spec, str) else dict(spec) if isinstance(spec, Mapping) else spec
                if cls is not None and isinstance(entry, dict):
                    allowed = allowed_kwargs(cls)
                    for k, v in (defaults or {}).items():
                        if k in allowed and k not in entry:
                            entry[k] = v
                    if severity is not None and issubclass(cls, SeverityCore) and "severity" not in entry:
                        entry["severity"] = list(severity) if isinstance(severity, Sequence) else severity
                core = build(entry, where=where)
            if core.mixes_samples or core.uses_labels:
                why = "mixes samples across the batch" if core.mixes_samples else "takes class labels"
                raise ValueError(f"{where}: {type(core).__name__} {why}; combined applies members to subsets "
                                 "of the batch and supports neither")
            cores.append(core)
        self.members = torch.nn.ModuleList(cores)
        self.geometric = any(c.geometric for c in cores)  # type: ignore[misc]
        if weights is None:
            w = [1.0] * len(cores)
        else:
            w = [float(v) for v in weights] if isinstance(weights, Sequence) and not isinstance(weights, str) else []
            if len(w) != len(cores) or any(v < 0 for v in w) or sum(w) <= 0 or any(isinstance(v, bool) for v in weights):
                raise ValueError(f"weights: expected {len(cores)} numbers >= 0 (one per member, not all 0), "
                                 f"got {weights!r}")
        total = sum(w)
        self.register_buffer("_cdf", torch.tensor(w, dtype=torch.float64).cumsum(0) / total, persistent=False)
        dims = {2, 3}
        for c in cores:
            dims &= set(c.spatial_dims)
        if not dims:
            raise ValueError("members: no spatial dimensionality (2D/3D) is supported by every member")
        self.spatial_dims = tuple(sorted(dims))  # type: ignore[misc]
        self.keeps_range = all(c.keeps_range for c in cores)  # type: ignore[misc]

    # the coin first, so samples left alone draw no member and no member parameters
    def _sample_checked(self, x: torch.Tensor, generator: torch.Generator | None) -> Params:
        dev = _gen_device(generator)
        n = x.shape[0]
        coin = self._sample_apply_mask(n, generator, dev)
        u = rand(n, generator=generator).double()
        member = torch.searchsorted(self._cdf.cpu(), u, right=True).clamp_(max=len(self.members) - 1)
        member = torch.where(coin.cpu(), member, torch.full_like(member, -1))
        position = torch.zeros(n, dtype=torch.long)
        subs: list[Params | None] = []
        for k, core in enumerate(self.members):
            rows = torch.nonzero(member == k).squeeze(1)
            if rows.numel() == 0:
                subs.append(None)
                continue
            position[rows] = torch.arange(rows.numel())
            subs.append(core.sample_params(x.index_select(0, rows.to(x.device)), generator))
        return {"member": member.to(dev), "position": position.to(dev), "members": tuple(subs), "apply": coin}

    def _sample(self, x: torch.Tensor, generator: torch.Generator | None) -> Params:  # pragma: no cover
        raise NotImplementedError("Combined draws its params in _sample_checked")

    def check(self, x: Any, name: str = "x") -> torch.Tensor:
        return check_input(x, name=name, spatial_dims=self.spatial_dims)

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        member, position, subs = params["member"].cpu(), params["position"].cpu(), params["members"]
        if member.shape != (x.shape[0],) or position.shape != (x.shape[0],):
            raise ValueError(f"params['member'/'position']: expected shape ({x.shape[0]},), got "
                             f"{tuple(member.shape)}/{tuple(position.shape)}")
        if not isinstance(subs, tuple) or len(subs) != len(self.members):
            raise ValueError(f"params['members']: expected a tuple of {len(self.members)} params (one per member)")
        out = x.clone()
        for k, core in enumerate(self.members):
            rows = torch.nonzero(member == k).squeeze(1)
            if rows.numel() == 0:
                continue
            sub = subs[k]
            if sub is None:
                raise ValueError(f"params['members'][{k}]: missing, but samples {rows.tolist()} drew member {k}")
            n_k = int(sub["apply"].shape[0])
            pos = position[rows]
            if not (pos.numel() == n_k and torch.equal(pos, torch.arange(n_k))):
                sub = select_params(sub, pos, n_k)
            idx = rows.to(x.device)
            out.index_copy_(0, idx, core.apply(x.index_select(0, idx), sub).to(x.dtype))
        return out

    def extra_repr(self) -> str:
        return f"members={len(self.members)}, p={self.p}"

