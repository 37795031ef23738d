"""Dynamic sparse training: SET, RigL, MEST and GraNet over name-keyed boolean masks.

The masks live beside the model (``SparseMasks.masks``: parameter name -> bool tensor), never inside
it: no ``torch.nn.utils.prune`` re-parametrisation, so parameter names, ``state_dict`` keys and the
dense gradient stay as they are. Only the weights of convolutions and linear layers are masked
(never biases or normalisation parameters). After every optimiser step the updater zeroes the
masked weights in place (:meth:`SparseMasks.apply_`), so ``p.grad`` of the next backward is the
dense gradient RigL needs.

Layer densities (``distribution``):

* ``erk`` -- Erdős–Rényi-Kernel (google-research/rigl): a layer's density is proportional to
  ``sum(shape) / prod(shape)``, one multiplier solved so the total of all masked-type weights (the
  dense first layer included) meets the target; a layer whose density would exceed 1 is made dense
  and the solve repeated. Counts are exact integers (floor, then the remainder of the total given
  to the layers with the largest fractional parts), so the realised total density equals the
  target to one weight.
* ``uniform`` -- every sparse layer gets ``round((1 - sparsity) * n)`` weights.

Updates (:func:`make_updater`) happen after the optimiser steps ``s`` (0-based) with ``(s + 1) %
update_every == 0`` while ``s + 1 <= end * total_steps``; the drop fraction decays from
``drop_fraction`` on a cosine to 0 at ``end``. Each layer keeps its exact count. Random draws (random
regrowth) come from a generator seeded with ``(seed, layer index, step)``, so every
DDP rank draws the same; masks are also broadcast from rank 0 after each update. Connections that
appear start at 0 and their optimiser state (SGD momentum, Adam moments) is reset. Ties (equal
magnitudes or gradients) are broken by ``torch.topk``, deterministically for a given input, so ranks
with the same weights pick the same positions (and rank 0's broadcast settles any doubt).
"""

from __future__ import annotations

import fnmatch
import math
from typing import Any

import torch

from .seeding import mix_seed

__all__ = ["METHODS", "SparseMasks", "SparseUpdater", "erk_counts", "make_updater", "prunable_weights"]

#: method name -> default regrowth (``random`` or ``gradient``)
METHODS: dict[str, str] = {"set": "random", "rigl": "gradient", "mest": "random", "granet": "gradient"}

_CONV_LINEAR = (torch.nn.Linear, torch.nn.modules.conv._ConvNd)


_mix = mix_seed


def prunable_weights(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """``{name: weight}`` of every convolution and linear layer, in module order (biases and
    normalisation parameters are never included; a weight shared by two modules appears once)."""
    out: dict[str, torch.nn.Parameter] = {}
    seen: set[int] = set()
    for mod_name, mod in model.named_modules():
        w = getattr(mod, "weight", None)
        if isinstance(mod, _CONV_LINEAR) and isinstance(w, torch.nn.Parameter) and id(w) not in seen:
            seen.add(id(w))
            out[f"{mod_name}.weight" if mod_name else "weight"] = w
    return out


def erk_counts(shapes: dict[str, tuple[int, ...]], density: float, dense: set[str] = frozenset()) -> dict[str, int]:  # type: ignore[assignment]
    """Exact ERK non-zero counts per layer for a total ``density`` over all ``shapes``.

    ``dense`` names layers kept full (counted in the total). Raises ``ValueError`` when the dense
    layers alone exceed the budget."""
    numel = {k: math.prod(s) for k, s in shapes.items()}
    total = sum(numel.values())
    budget = round(density * total)
    dense = set(dense)
    while True:
        sparse = [k for k in shapes if k not in dense]
        rest = budget - sum(numel[k] for k in dense)
        if rest < 0:
            raise ValueError(f"the dense layers ({', '.join(sorted(dense))}) alone hold more than the density "
                             f"{density:.4f} allows; lower train.sparse.sparsity or make fewer layers dense")
        if not sparse:
            break
        raw = {k: sum(shapes[k]) / numel[k] for k in sparse}
        eps = rest / sum(raw[k] * numel[k] for k in sparse)
        full = [k for k in sparse if eps * raw[k] >= 1.0]
        if not full:
            break
        dense.update(full)
    counts = {k: numel[k] for k in dense}
    if sparse:
        exact = {k: eps * raw[k] * numel[k] for k in sparse}
        counts.update({k: math.floor(v) for k, v in exact.items()})
        left = budget - sum(counts.values())
        for k in sorted(sparse, key=lambda k: (counts[k] - exact[k], k))[: max(0, left)]:
            counts[k] += 1
    return {k: counts[k] for k in shapes}


class SparseMasks:
    """Boolean masks on the conv and linear weights of ``model``.

    Args:
        model: the (unwrapped) model; masks are keyed by its parameter names.
        sparsity: share of zero weights in ``[0, 1)`` (0.1 = 90 % dense).
        distribution: ``erk`` (total over all conv/linear weights, dense layers included, meets
            ``sparsity`` to one weight) or ``uniform`` (each sparse layer meets it to one weight).
        dense_first_layer: keep the first convolution (or first layer when there is no
            convolution) dense.
        dense_layers: ``fnmatch`` patterns of weight names kept dense; a pattern matching no
            conv/linear weight is a ``ValueError`` naming ``train.sparse.dense_layers``.
        seed: seeds the random initial masks (each layer's positions drawn with an exact count).
    Attributes:
        masks: ``{name: bool tensor}`` shaped and placed like the weight (True = kept).
        targets: ``{name: int}`` the number of non-zeros each layer must hold.
        dense: names kept full by configuration (never updated).
    The model is not changed until :meth:`apply_`.
    """

    def __init__(self, model: torch.nn.Module, sparsity: float, distribution: str = "erk",
                 dense_first_layer: bool = True, *, dense_layers: list[str] | tuple[str, ...] = (),
                 seed: int = 0) -> None:
        if not (isinstance(sparsity, (int, float)) and 0 <= sparsity < 1):
            raise ValueError(f"train.sparse.sparsity: expected a share of zero weights in [0, 1), got {sparsity!r}")
        if distribution not in ("erk", "uniform"):
            raise ValueError(f"train.sparse.distribution: expected erk or uniform, got {distribution!r}")
        self.model, self.sparsity, self.distribution, self.seed = model, float(sparsity), distribution, int(seed)
        self.params = prunable_weights(model)
        if not self.params:
            raise ValueError(f"train.sparse: {type(model).__name__} has no convolution or linear weight to make sparse")
        names = list(self.params)
        dense: set[str] = set()
        if dense_first_layer:
            convs = [n for n, m in model.named_modules() if isinstance(m, torch.nn.modules.conv._ConvNd)
                     and f"{n}.weight" in self.params]
            dense.add(f"{convs[0]}.weight" if convs else names[0])
        for pat in dense_layers:
            hit = [n for n in names if fnmatch.fnmatchcase(n, pat) or fnmatch.fnmatchcase(n, f"{pat}.weight")]
            if not hit:
                listed = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
                raise ValueError(f"train.sparse.dense_layers: {pat!r} matches no conv/linear weight (they are {listed})")
            dense.update(hit)
        self.dense = dense
        shapes = {n: tuple(p.shape) for n, p in self.params.items()}
        density = 1.0 - self.sparsity
        if distribution == "erk":
            self.targets = erk_counts(shapes, density, dense)
        else:
            self.targets = {n: (p.numel() if n in dense else round(density * p.numel())) for n, p in self.params.items()}
        self.masks: dict[str, torch.Tensor] = {}
        self._cast: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._sparse_names = [n for n in self.params if n not in dense]
        self._plan: list[tuple[list[torch.Tensor], list[torch.Tensor]]] = []
        self._plan_key: tuple[Any, ...] | None = None
        for i, (n, p) in enumerate(self.params.items()):
            self.masks[n] = self.random_mask(n, self.targets[n], _mix(self.seed, i, 0x5EED))

    # -------------------------------------------------------------------------------------- helpers
    def random_mask(self, name: str, count: int, seed: int, keep: torch.Tensor | None = None) -> torch.Tensor:
        """A mask of ``count`` True positions drawn uniformly (a superset of ``keep`` when given)."""
        p = self.params[name]
        gen = torch.Generator().manual_seed(seed)
        score = torch.rand(p.numel(), generator=gen).to(p.device)
        if keep is not None:
            score = score + keep.flatten().float() * 2.0
        return _top_mask(score, count).view(p.shape)

    def density(self) -> float:
        """Realised share of non-masked weights over all conv/linear weights (dense ones included)."""
        kept = sum(_count(m) for m in self.masks.values())
        return kept / sum(m.numel() for m in self.masks.values())

    def layer_density(self) -> dict[str, float]:
        """``{name: share kept}`` per conv/linear weight."""
        return {n: _count(m) / m.numel() for n, m in self.masks.items()}

    @torch.no_grad()
    def apply_(self) -> None:
        """Zero the masked weights in place: one ``torch._foreach_mul_`` per (device, dtype) group by
        cached masks of the weights' dtype (rebuilt only when a mask object, dtype or device changes;
        no allocation on the steps between updates)."""
        key = tuple((id(self.masks[n]), self.params[n].dtype, self.params[n].device) for n in self._sparse_names)
        if self._plan_key != key:
            groups: dict[tuple[torch.dtype, torch.device], tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
            for n in self._sparse_names:
                p, m = self.params[n], self.masks[n]
                cached = self._cast.get(n)
                if cached is None or cached[0] is not m or cached[1].dtype != p.dtype or cached[1].device != p.device:
                    cached = self._cast[n] = (m, m.to(device=p.device, dtype=p.dtype))
                ps, ms = groups.setdefault((p.dtype, p.device), ([], []))
                ps.append(p)
                ms.append(cached[1])
            self._plan, self._plan_key = list(groups.values()), key
        for ps, ms in self._plan:
            torch._foreach_mul_(ps, ms)

    def summary(self) -> dict[str, Any]:
        """Per-layer counts and densities, and the total (JSON-friendly)."""
        layers = {n: {"shape": list(m.shape), "nonzero": _count(m), "numel": m.numel(),
                      "density": round(_count(m) / m.numel(), 6), "dense": n in self.dense}
                  for n, m in self.masks.items()}
        return {"sparsity": self.sparsity, "distribution": self.distribution, "density": round(self.density(), 6),
                "layers": layers}

    def state_dict(self) -> dict[str, Any]:
        return {"masks": {n: m.cpu().clone() for n, m in self.masks.items()}, "targets": dict(self.targets)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = [n for n in self.masks if n not in state["masks"]]
        if missing or len(state["masks"]) != len(self.masks):
            raise ValueError(f"sparse state does not fit this model (e.g. {missing[:1] or list(state['masks'])[:1]})")
        for n in self.masks:
            self.masks[n] = state["masks"][n].to(device=self.params[n].device, dtype=torch.bool).view(self.params[n].shape)
            self.targets[n] = int(state["targets"][n])


#: added to (subtracted from) the scores of positions a selection must skip; weight and gradient
#: magnitudes are far below it
_FAR = 1e30


def _count(mask: torch.Tensor) -> int:
    """Number of True entries (``count_nonzero``: no int64 copy of the mask, unlike ``sum``)."""
    return int(torch.count_nonzero(mask))


def _kth(score: torch.Tensor, rank: int) -> torch.Tensor:
    """The ``rank``-th smallest entry (1-based) of the 1-D ``score``: ``torch.kthvalue(score,
    rank).values``, found faster on large inputs by sample-based bracketing (Floyd & Rivest):
    the quantiles of a strided sample of 4096 entries bracket the answer, one pass counts the entries
    below the bracket and gathers those inside it, and ``kthvalue`` runs on that small set. When the
    bracket is a run of ties, one of its ends is checked by counting; when it misses (adversarial
    order, NaN) it falls back to ``kthvalue`` over everything."""
    n = score.numel()
    if n <= 1 << 16:
        return torch.kthvalue(score, rank).values
    step = n // 4096
    sample = torch.sort(score[::step]).values
    m = sample.numel()
    pos, half = (rank - 0.5) * m / n, 4.0 * math.sqrt(m) + 2
    lo_i, hi_i = int(pos - half), int(pos + half) + 1
    lo = sample[lo_i] if lo_i >= 0 else None
    hi = sample[hi_i] if hi_i < m else None
    band = score <= hi if hi is not None else torch.ones(n, dtype=torch.bool, device=score.device)
    below = 0
    if lo is not None:
        under = score < lo
        below = _count(under)
        band &= ~under
    n_in = _count(band)
    if below < rank <= below + n_in:
        if n_in <= n // 4:
            return torch.kthvalue(torch.masked_select(score, band), rank - below).values
        for v in (lo, hi):  # a wide band is a run of ties (zero gradients): is one bracket end the answer?
            if v is not None and _count(score < v) < rank <= _count(score <= v):
                return v
    return torch.kthvalue(score, rank).values


def _select(score: torch.Tensor, count: int, largest: bool) -> torch.Tensor:
    """Flat bool mask with True at exactly ``count`` extreme entries of the 1-D ``score``: every entry
    strictly beyond the threshold (:func:`_kth`, a linear-time selection instead of a ``topk`` with
    ``k`` in the hundreds of thousands) and the entries equal to it in index order until ``count`` is
    met. Exact and deterministic."""
    n = score.numel()
    if count <= 0:
        return torch.zeros(n, dtype=torch.bool, device=score.device)
    if count >= n:
        return torch.ones(n, dtype=torch.bool, device=score.device)
    thr = _kth(score, n - count + 1 if largest else count)
    out = score >= thr if largest else score <= thr
    extra = _count(out) - count  # > 0 only when the threshold value is tied: keep its first copies
    if extra > 0:
        ties = torch.nonzero(score == thr).squeeze(1)
        out[ties[ties.numel() - extra:]] = False
    return out


def _top_mask(score: torch.Tensor, count: int) -> torch.Tensor:
    """Flat bool mask with True at the ``count`` largest entries of the 1-D ``score``."""
    return _select(score, count, largest=True)


def _bottom_mask(score: torch.Tensor, count: int) -> torch.Tensor:
    """Flat bool mask with True at the ``count`` smallest entries of the 1-D ``score``."""
    return _select(score, count, largest=False)


def _cosine(step: int, end_step: int, start: float) -> float:
    return 0.5 * start * (1 + math.cos(math.pi * min(1.0, step / max(1, end_step))))


class SparseUpdater:
    """Drop-and-grow schedule over :class:`SparseMasks`; built by :func:`make_updater`.

    ``history`` holds one record per update (``step``, ``fraction``, ``moved`` per layer and in
    total, ``density``), or ``skipped`` when the AMP scaler found non-finite gradients.
    """

    def __init__(self, method: str, masks: SparseMasks, *, update_every: int, drop_fraction: float, end: float,
                 total_steps: int, grow: str | None = None, grad_weight: float = 1.0,
                 initial_density: float = 0.8, seed: int | None = None) -> None:
        if method not in METHODS:
            raise ValueError(f"train.sparse.method: expected one of {', '.join(METHODS)}, got {method!r}")
        if grow is not None and grow not in ("random", "gradient"):
            raise ValueError(f"train.sparse.grow: expected random or gradient, got {grow!r}")
        if grow is not None and method in ("set", "rigl") and grow != METHODS[method]:
            raise ValueError(f"train.sparse.grow: {method} always regrows by {METHODS[method]}; use mest or granet "
                             "to choose")
        if not (isinstance(update_every, int) and update_every >= 1):
            raise ValueError(f"train.sparse.update_every: expected an int >= 1, got {update_every!r}")
        if not 0 <= drop_fraction <= 1:
            raise ValueError(f"train.sparse.drop_fraction: expected a value in [0, 1], got {drop_fraction!r}")
        if not 0 < end <= 1:
            raise ValueError(f"train.sparse.end: expected a share of training in (0, 1], got {end!r}")
        self.method, self.masks = method, masks
        self.update_every, self.drop_fraction, self.end, self.total_steps = update_every, float(drop_fraction), float(end), int(total_steps)
        self.grow = grow or METHODS[method]
        self.grad_weight, self.seed = float(grad_weight), masks.seed if seed is None else int(seed)
        self.end_step = int(self.end * self.total_steps)
        self.last_update = (self.end_step // update_every) * update_every
        self.history: list[dict[str, Any]] = []
        self.final = dict(masks.targets)
        self.initial = dict(masks.targets)
        if method == "granet":
            if not 0 < initial_density <= 1:
                raise ValueError(f"train.sparse.initial_density: expected a density in (0, 1], got {initial_density!r}")
            start = max(float(initial_density), masks.density())
            if self.last_update > 0 and start > masks.density():
                shapes = {n: tuple(p.shape) for n, p in masks.params.items()}
                if masks.distribution == "erk":
                    init = erk_counts(shapes, start, masks.dense)
                else:
                    init = {n: (p.numel() if n in masks.dense else round(start * p.numel())) for n, p in masks.params.items()}
                self.initial = {n: max(init[n], self.final[n]) for n in init}
                for i, n in enumerate(masks.params):
                    if self.initial[n] != masks.targets[n]:
                        masks.masks[n] = masks.random_mask(n, self.initial[n], _mix(self.seed, i, 0x6A4E), keep=masks.masks[n])
                        masks.targets[n] = self.initial[n]

    # ------------------------------------------------------------------------------------ schedule
    def is_update(self, step: int) -> bool:
        """Whether the mask changes after the 0-based optimiser step ``step``."""
        n = step + 1
        return n % self.update_every == 0 and n <= self.end_step

    def fraction(self, step: int) -> float:
        """Drop fraction after step ``step`` (cosine-decayed from ``drop_fraction`` to 0 at ``end``)."""
        return _cosine(step + 1, self.end_step, self.drop_fraction)

    def target(self, name: str, step: int) -> int:
        """Non-zeros of layer ``name`` after the update of step ``step`` (GraNet: cubic schedule)."""
        if self.method != "granet" or self.last_update <= 0:
            return self.final[name]
        left = max(0.0, 1.0 - (step + 1) / self.last_update)
        return self.final[name] + round((self.initial[name] - self.final[name]) * left ** 3)

    # ---------------------------------------------------------------------------------------- step
    def step(self, step: int, optimizer: torch.optim.Optimizer | None = None, *, finite: bool = True) -> dict[str, Any] | None:
        """Call after each optimiser step (0-based ``step``): zero masked weights; on an update
        step drop and regrow. ``finite=False`` (the AMP scaler skipped the step) skips the update.
        Returns the update's record, or ``None``."""
        rec = None
        if self.is_update(step):
            if not finite:
                rec = {"step": step + 1, "skipped": "non-finite gradients"}
            else:
                rec = self._update(step, optimizer)
            self.history.append(rec)
        self.masks.apply_()
        return rec

    @torch.no_grad()
    def _update(self, step: int, optimizer: torch.optim.Optimizer | None) -> dict[str, Any]:
        frac = self.fraction(step)
        old_masks = dict(self.masks.masks)
        changed: list[str] = []
        for i, (name, p) in enumerate(self.masks.params.items()):
            old = old_masks[name]
            if name in self.masks.dense or (_count(old) == old.numel() and self.target(name, step) == old.numel()):
                continue
            gen = torch.Generator().manual_seed(_mix(self.seed, i, step + 1))
            self.masks.masks[name] = self._layer(name, p, old.flatten(), self.target(name, step), frac, gen).view(p.shape)
            changed.append(name)
        _broadcast(self.masks, changed)  # every rank continues with rank 0's masks
        moved: dict[str, int] = {}
        for name in changed:
            p, new = self.masks.params[name], self.masks.masks[name]
            grown = torch.nonzero((new & ~old_masks[name]).reshape(-1)).squeeze(1)  # flat indices, found once
            self.masks.targets[name] = _count(new)
            if grown.numel():
                _zero_at(p.data, grown)
                if optimizer is not None:
                    _reset_state(optimizer, p, grown)
            moved[name] = grown.numel()
        return {"step": step + 1, "fraction": round(frac, 6), "moved": moved, "moved_total": sum(moved.values()),
                "density": round(self.masks.density(), 6)}

    def _layer(self, name: str, p: torch.Tensor, old: torch.Tensor, target: int, frac: float,
               gen: torch.Generator) -> torch.Tensor:
        """New flat mask of one layer with exactly ``target`` True positions.

        Positions a selection must not pick are pushed out of reach by adding ``±_FAR`` in place on
        the fresh score tensors (an add by the mask as float; ``torch.where`` with a bool condition
        is several times slower on the CPU); scores are magnitudes far below ``_FAR``."""
        n_active = _count(old)
        k = int(frac * min(n_active, target) + 1e-6)  # floor (the epsilon absorbs cos rounding: 0.3 * 50 is 15)
        w = p.detach().reshape(-1).abs().float()
        need_grad = self.grow == "gradient" or self.method == "mest"
        grad = (p.grad.detach().reshape(-1).abs().float() if p.grad is not None else torch.zeros_like(w)) if need_grad else None
        if self.method == "mest":
            # grow before prune: the k regrown come from the currently inactive positions only, then the
            # k least important of the old connections (|w| + λ|g|) go
            score = self._grow_score(grad, w, gen)
            score = score.clone() if score is grad else score
            grown = _top_mask(score.sub_(old.float(), alpha=_FAR), min(k, w.numel() - n_active))
            importance = w.add_(grad, alpha=self.grad_weight)  # type: ignore[arg-type]
            n_drop = n_active + _count(grown) - target
            return (old & ~_bottom_mask(importance.add_((~old).float(), alpha=_FAR), n_drop)) | grown
        # drop the smallest magnitudes (GraNet: also down to its gradual target), then grow among the
        # inactive positions, the just-dropped included (google-research/rigl)
        kept = old & ~_bottom_mask(w.add_((~old).float(), alpha=_FAR), max(0, n_active - target) + k)
        score = self._grow_score(grad, w, gen).sub_(kept.float(), alpha=_FAR)
        return kept | _top_mask(score, target - _count(kept))

    def _grow_score(self, grad: torch.Tensor | None, like: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Fresh regrowth scores: uniform draws from ``gen`` (random regrowth), else ``grad`` itself."""
        if self.grow == "random" or grad is None:
            return torch.rand(like.numel(), generator=gen).to(like.device)
        return grad

    # ---------------------------------------------------------------------------------- checkpoint
    def state_dict(self) -> dict[str, Any]:
        return {"method": self.method, "masks": self.masks.state_dict(), "history": list(self.history),
                "initial": dict(self.initial), "final": dict(self.final)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("method") != self.method:
            raise ValueError(f"sparse state is of method {state.get('method')!r}, not {self.method!r}")
        self.masks.load_state_dict(state["masks"])
        self.history = list(state["history"])
        self.initial = {k: int(v) for k, v in state["initial"].items()}
        self.final = {k: int(v) for k, v in state["final"].items()}

    def summary(self) -> dict[str, Any]:
        """The masks' summary plus the method and every update's record."""
        return {"method": self.method, "grow": self.grow, **self.masks.summary(), "updates": list(self.history)}

    def markdown(self) -> str:
        """The summary as Markdown: per-layer and total density, and the connections each update moved."""
        s = self.summary()
        lines = [(f"# Sparse training: {s['method']} (regrowth {s['grow']}), sparsity {s['sparsity']:g}, "
                  f"{s['distribution']}"), "", f"Total density {s['density']:.4f} over the conv/linear weights.", "",
                 "| layer | shape | non-zero | density |", "|---|---|--:|--:|"]
        for name, layer in s["layers"].items():
            dense = " (dense)" if layer["dense"] else ""
            lines.append(f"| `{name}`{dense} | {'x'.join(map(str, layer['shape']))} | {layer['nonzero']} | "
                         f"{layer['density']:.4f} |")
        lines += ["", "| update after step | drop fraction | connections moved | density |", "|--:|--:|--:|--:|"]
        for u in s["updates"]:
            if "skipped" in u:
                lines.append(f"| {u['step']} | skipped: {u['skipped']} | | |")
            else:
                lines.append(f"| {u['step']} | {u['fraction']:.4f} | {u['moved_total']} | {u['density']:.4f} |")
        return "\n".join(lines) + "\n"


def _zero_at(t: torch.Tensor, flat_idx: torch.Tensor) -> None:
    """Set the entries of ``t`` at the flat indices ``flat_idx`` to 0 in place."""
    if t.is_contiguous():
        t.view(-1).index_fill_(0, flat_idx, 0)
    else:
        flat = t.reshape(-1)
        flat[flat_idx] = 0
        t.copy_(flat.view(t.shape))


def _reset_state(optimizer: torch.optim.Optimizer, p: torch.Tensor, grown: torch.Tensor) -> None:
    """Zero every per-weight optimiser buffer of ``p`` (SGD momentum, Adam moments) at the flat
    indices ``grown``."""
    state = optimizer.state.get(p)
    if not state:
        return
    for v in state.values():
        if isinstance(v, torch.Tensor) and v.shape == p.shape:
            _zero_at(v, grown)


def _broadcast(masks: SparseMasks, names: list[str]) -> None:
    """Rank 0's masks of ``names`` to every rank (a no-op outside ``torch.distributed``)."""
    import torch.distributed as dist

    if not names or not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return
    on_cpu = dist.get_backend() == "gloo"
    for n in names:
        m = masks.masks[n]
        buf = m.to(torch.uint8)
        buf = buf.cpu() if on_cpu else buf
        dist.broadcast(buf, src=0)
        masks.masks[n] = buf.to(device=m.device, dtype=torch.bool)


def make_updater(method: str, masks: SparseMasks, *, update_every: int, drop_fraction: float, end: float,
                 total_steps: int, **method_options: Any) -> SparseUpdater:
    """The updater of ``method`` (``set``, ``rigl``, ``mest``, ``granet``) over ``masks``.

    ``method_options``: ``grow`` (``random``/``gradient``; MEST and GraNet), ``grad_weight``
    (MEST's λ in ``|w| + λ|g|``, default 1), ``initial_density`` (GraNet, default 0.8; a value
    below the target density starts at the target), ``seed`` (default: the masks' seed).
    Call ``.step(step, optimizer)`` after each optimiser step (0-based ``step``).
    """
    allowed = {"grow", "grad_weight", "initial_density", "seed"}
    unknown = sorted(set(method_options) - allowed)
    if unknown:
        raise ValueError(f"train.sparse: unknown option {unknown[0]!r} (expected {', '.join(sorted(allowed))})")
    return SparseUpdater(method, masks, update_every=update_every, drop_fraction=drop_fraction, end=end,
                         total_steps=total_steps, **method_options)
