"""The ``objective:`` config section: stability training or the FMA loss on a distorted copy of every
batch, for any task (applied by :func:`medrobust.train.loop.fit_config` around the task adapter of
:mod:`medrobust.train.steps`, so classification, cardiac and driving need no code of their own).

Per step, with ``x`` the adapter's training view (the clean image, or its ``augment`` output when
cores are configured) and ``x' = distortion(x)`` drawn from the loop's augmentation generator:

* ``stability`` (Zheng et al. 2016): ``L = L_task(f(x)) + weight · stability_loss(f(x), f(x'), kind)``;
* ``fma`` (Kapoor et al. 2020): ``L = L_task(f(x')) + weight · Σ_l d(F_l(x), F_l(x'))``
  (:class:`medrobust.losses.FMALoss`).

Both run one forward pass over ``cat([x, x'])``. ``L_task`` is the adapter's criterion
(cross-entropy, Dice+CE, CE with ignore). The distortion should be photometric for segmentation:
labels are never moved. Logged: ``task_loss``, ``objective_loss`` (and ``train_acc`` for
classification).
"""

from __future__ import annotations

from typing import Any

import torch

from ..augment import build
from ..losses.fma import FMALoss, unwrap_model
from ..losses.stability import stability_loss
from .steps import AugmentedViews

__all__ = ["ObjectiveStep", "objective_step"]


class ObjectiveStep:
    """The ``step`` of an adapter with an ``objective`` (see the module doc)."""

    def __init__(self, adapter: AugmentedViews, objective: Any, model: torch.nn.Module) -> None:
        if adapter.consistency is not None:
            raise ValueError("objective: use it without 'consistency' (it builds its own second view)")
        if getattr(adapter, "slaug_fusion", None) is not None:
            raise ValueError("objective: use it without train.slaug_fusion (both build their own second view)")
        self.adapter = adapter
        self.objective = objective
        self.distortion = build(objective.distortion, where="objective.distortion")
        self._fma: dict[int, FMALoss] = {}
        if objective.name == "fma":  # layer names are checked now, before any step
            self._fma[id(model)] = self._make_fma(model)

    def _make_fma(self, model: torch.nn.Module) -> FMALoss:
        o = self.objective
        try:
            return FMALoss(model, o.layers, distance=o.distance, weight=o.weight, detach_clean=o.detach_clean)
        except ValueError as err:
            raise ValueError(f"objective.{err}") from None

    def fma_for(self, model: torch.nn.Module) -> FMALoss:
        """The FMA loss on ``model`` (the loop passes the DDP wrapper: same layers, by the inner names)."""
        key = id(model)
        if key not in self._fma:
            base = unwrap_model(model)
            known = self._fma.get(id(base))
            self._fma[key] = self._make_fma(model) if known is None else FMALoss(
                model, known.layers, known.distance, known.weight, detach_clean=known.detach_clean)
        return self._fma[key]

    def step(self, model: torch.nn.Module, batch: dict[str, Any], generator: torch.Generator
             ) -> tuple[torch.Tensor, dict[str, float]]:
        a, o = self.adapter, self.objective
        image, label = batch[a.image_key], batch[a.label_key]
        x = a.views(image, generator, label)[0]
        xd = self.distortion(x, generator)
        if o.name == "fma":
            extra, lc, ld = self.fma_for(model)(x, xd)
            task = a.criterion(ld, label)
            head = ld
        else:
            lc, ld = model(torch.cat([x, xd])).chunk(2)
            task = a.criterion(lc, label)
            extra = o.weight * stability_loss(lc, ld, o.kind, detach_clean=o.detach_clean)
            head = lc
        logs = {"task_loss": float(task.detach()), "objective_loss": float(extra.detach())}
        if head.ndim == 2 and label.ndim == 1:
            logs["train_acc"] = float((head.detach().argmax(1) == label).float().mean())
        return task + extra, logs


def objective_step(cfg: Any, step_fn: Any, model: torch.nn.Module) -> Any:
    """``step_fn`` itself without ``cfg.objective``; else the :class:`ObjectiveStep` around the adapter
    whose ``step`` ``step_fn`` is (any :class:`~medrobust.train.steps.AugmentedViews` adapter)."""
    objective = getattr(cfg, "objective", None)
    if objective is None:
        return step_fn
    adapter = getattr(step_fn, "__self__", None)
    if not isinstance(adapter, AugmentedViews) or not hasattr(adapter, "criterion"):
        raise ValueError(f"objective: this task's training step ({type(adapter or step_fn).__name__}) is not a "
                         "shared adapter of medrobust.train.steps; objective needs one")
    return ObjectiveStep(adapter, objective, model).step
