"""AFA training: auxiliary Fourier-basis augmentation (Vaish, Wang, Strisciuglio, CVPR 2024).

Pieces, usable by any task whose adapter exposes a ``criterion(logits, target)``:

* :func:`convert_dual_bn` / :func:`aux_bn`: AugMax's dual batch norm (DuBIN's BN part). Every
  ``BatchNorm{1,2,3}d`` becomes a :class:`DualBatchNorm` with ``main`` and ``aux`` statistics; inside
  ``with aux_bn(model):`` the auxiliary ones are used (AFA images), the main ones otherwise and at test
  time. Models without batch norm (e.g. MONAI's U-Net with instance norm) simply get an auxiliary
  *loss* on AFA images — documented, not an error.
* :func:`adversarial_strengths`: the optional gradient ascent on the per-sample, per-channel wave
  strengths (``steps`` signed-gradient steps of ``step_size``, kept ``>= min_strength``). The released
  code samples strengths at random (``steps=0``, the default); the paper frames the step as adversarial.
* :class:`AFAAdapter`: the combined objective.
  ``mode="dual"``: ``(L(main-augmented, main BN) + L(AFA(clean), aux BN)) / 2``;
  ``mode="jsd"``: ``L(clean) + λ·JSD(clean, main-augmented, AFA)`` (λ = 10 CIFAR-10, 1 CIFAR-100,
  12 ImageNet in the paper).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from ..augment.base import BatchAugment, Params
from ..augment.fourier import FourierBasisNoise
from ..losses.consistency import jsd

__all__ = ["DualBatchNorm", "convert_dual_bn", "aux_bn", "has_batch_norm", "adversarial_strengths", "AFAAdapter", "wrap_afa"]


class DualBatchNorm(torch.nn.Module):
    """Two batch norms sharing nothing: ``main`` (clean/main-augmented data, test time) and ``aux``."""

    def __init__(self, bn: torch.nn.modules.batchnorm._BatchNorm) -> None:
        super().__init__()
        import copy

        self.main = bn
        self.aux = copy.deepcopy(bn)
        self.route = "main"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.aux if self.route == "aux" else self.main)(x)


def convert_dual_bn(model: torch.nn.Module) -> torch.nn.Module:
    """Replace every batch-norm layer of ``model`` (in place) by a :class:`DualBatchNorm`."""
    for name, child in list(model.named_children()):
        if isinstance(child, torch.nn.modules.batchnorm._BatchNorm) and not isinstance(child, torch.nn.SyncBatchNorm):
            setattr(model, name, DualBatchNorm(child))
        else:
            convert_dual_bn(child)
    return model


def has_batch_norm(model: torch.nn.Module) -> bool:
    return any(isinstance(m, (DualBatchNorm, torch.nn.modules.batchnorm._BatchNorm)) for m in model.modules())


@contextmanager
def aux_bn(model: torch.nn.Module) -> Iterator[None]:
    """Route every :class:`DualBatchNorm` of ``model`` to its auxiliary statistics inside the block."""
    duals = [m for m in model.modules() if isinstance(m, DualBatchNorm)]
    for m in duals:
        m.route = "aux"
    try:
        yield
    finally:
        for m in duals:
            m.route = "main"


def adversarial_strengths(
    model: torch.nn.Module,
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    target: torch.Tensor,
    core: FourierBasisNoise,
    params: Params,
    *,
    steps: int = 1,
    step_size: float = 1.0,
) -> Params:
    """Signed-gradient ascent on ``params["strength"]`` to increase the task loss; returns new params.

    Only the strengths receive gradients (model weights are not touched); strengths stay
    ``>= core.min_strength``. Batch-norm statistics are not updated during the ascent.
    """
    if steps <= 0:
        return params
    s = params["strength"].detach().clone()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:  # forward passes for the attack must not move the running statistics
        m.momentum = 0.0
    try:
        for _ in range(steps):
            s.requires_grad_(True)
            loss = criterion(model(core.apply(x, {**params, "strength": s})), target)
            (grad,) = torch.autograd.grad(loss, s)
            s = (s.detach() + step_size * grad.sign()).clamp_min(core.min_strength)
    finally:
        for m, mom in zip(bns, momenta):
            m.momentum = mom
    return {**params, "strength": s.detach()}


class AFAAdapter:
    """Wrap a task adapter (``criterion``, ``augment``, ``image_key``/``label_key``) with AFA's objective.

    Args:
        base: the task adapter; its ``augment`` core is the main augmentation (may be None).
        fourier: the AFA core (default ``FourierBasisNoise()``: min 0, mean 10).
        mode: ``"dual"`` (auxiliary BN / auxiliary loss, averaged) or ``"jsd"``.
        jsd_weight: λ for ``mode="jsd"``.
        steps, step_size: adversarial ascent on the strengths (0 = the released behaviour).
    """

    def __init__(self, base: Any, fourier: FourierBasisNoise | None = None, *, mode: str = "dual",
                 jsd_weight: float = 10.0, steps: int = 0, step_size: float = 1.0) -> None:
        if mode not in ("dual", "jsd"):
            raise ValueError(f"afa.mode: expected 'dual' or 'jsd', got {mode!r}")
        if not hasattr(base, "criterion"):
            raise TypeError("AFAAdapter: the task adapter must expose criterion(logits, target)")
        self.base = base
        self.fourier = fourier or FourierBasisNoise()
        self.mode = mode
        self.jsd_weight = float(jsd_weight)
        self.steps = int(steps)
        self.step_size = float(step_size)

    @property
    def main_augment(self) -> BatchAugment | None:
        return getattr(self.base, "augment", None)

    def step(self, model: torch.nn.Module, batch: dict[str, Any], generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        x = batch[self.base.image_key]
        y = batch[self.base.label_key]
        crit = self.base.criterion
        main = self.main_augment(x, generator) if self.main_augment is not None else x
        params = self.fourier.sample_params(x, generator)
        if self.steps > 0:
            with aux_bn(model):
                params = adversarial_strengths(model, crit, x, y, self.fourier, params,
                                               steps=self.steps, step_size=self.step_size)
        afa = self.fourier.apply(x, params)
        logs: dict[str, float] = {"afa_strength": float(params["strength"].mean())}
        if self.mode == "dual":
            loss_main = crit(model(main), y)
            with aux_bn(model):
                loss_aux = crit(model(afa), y)
            logs.update(main_loss=float(loss_main.detach()), aux_loss=float(loss_aux.detach()))
            return (loss_main + loss_aux) / 2, logs
        logits = model(torch.cat([x, main, afa])).chunk(3)
        task = crit(logits[0], y)
        cons = jsd(list(logits), weight=self.jsd_weight)
        logs.update(task_loss=float(task.detach()), consistency_loss=float(cons.detach()))
        return task + cons, logs


def wrap_afa(adapter: Any, afa: Any | None) -> Any:
    """Return ``adapter`` wrapped in :class:`AFAAdapter` as configured by an ``afa:`` section (or as is)."""
    if afa is None:
        return adapter
    fourier = FourierBasisNoise(min_strength=afa.min_strength, mean_strength=afa.mean_strength,
                                max_frequency=afa.max_frequency)
    return AFAAdapter(adapter, fourier, mode=afa.mode, jsd_weight=afa.jsd_weight, steps=afa.steps,
                      step_size=afa.step_size)
