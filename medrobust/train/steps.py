"""How tasks meet the cores: the ``step_fn`` of :func:`medrobust.train.loop.fit` for segmentation and
classification. Images are augmented on the device; labels never are.

* without consistency: one view (the augmented image, or the clean one when no core is configured),
  the task loss on it;
* with consistency (K views): every view is drawn independently **from the clean input** (the
  original RandConv code draws views 2..K on top of view 1; we do not), one forward pass over all
  views, the task loss on view 1 plus ``weight · kl_to_mean/jsd`` over the K views' logits.
  ``clean_first_view`` makes view 1 the clean image (AugMix style).
"""

from __future__ import annotations

from typing import Any

import torch

from ..augment.base import BatchAugment, trusted_values
from ..losses.consistency import consistency_loss
from ..losses.segmentation import DiceCELoss

__all__ = ["AugmentedViews", "SegmentationAdapter", "ClassificationAdapter"]


class AugmentedViews:
    """The views of a batch for the configured cores and consistency settings (shared by the adapters)."""

    image_key = "image"
    label_key = "label"

    def __init__(self, augment: BatchAugment | None = None, consistency: Any | None = None) -> None:
        if consistency is not None and augment is None:
            raise ValueError("consistency: needs at least one augmentation core in 'augment'")
        self.augment = augment
        self.consistency = consistency
        self._consistency_fn = consistency_loss(consistency.name) if consistency is not None else None

    def views(self, image: torch.Tensor, generator: torch.Generator | None,
              labels: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The training views of a batch, each augmented independently from the clean input; cores
        that take class labels (DFM-X) get ``labels``."""
        if self.augment is None:
            return [image]
        k = self.consistency.views if self.consistency is not None else 1
        out = [image] if self.consistency is not None and self.consistency.clean_first_view else []
        kw = {"labels": labels} if labels is not None and getattr(self.augment, "uses_labels", False) else {}
        check = getattr(self.augment, "check", None)  # every BatchAugment has one
        image = check(image) if check is not None else image  # validated once per batch ...
        with trusted_values():  # ... not once per view and per core (each a host sync on a GPU)
            while len(out) < k:
                out.append(self.augment(image, generator, **kw))
        return out


class SegmentationAdapter(AugmentedViews):
    """Segmentation: Dice+CE (or ``criterion(logits, label)``, e.g. CE with ``ignore_index=255``)."""

    def __init__(self, augment: BatchAugment | None = None, *, consistency: Any | None = None, ce_weight: float = 1.0,
                 dice_weight: float = 1.0, criterion: torch.nn.Module | None = None,
                 slaug_fusion: int | None = None) -> None:
        super().__init__(augment, consistency)
        from ..augment import refuse_geometric

        refuse_geometric(augment)  # the label map would no longer line up with the image
        self.criterion = criterion if criterion is not None else DiceCELoss(ce_weight, dice_weight)
        # SLAug's saliency-balancing fusion (grid size; None: off): see _slaug_step
        slaug = augment.cores[0] if len(getattr(augment, "cores", ())) == 1 else augment  # type: ignore[union-attr]
        if slaug_fusion is not None:
            if not hasattr(slaug, "views") or getattr(slaug, "registry_name", None) != "slaug":
                raise ValueError("train.slaug_fusion: needs the slaug core as the augmentation (augment: [{name: slaug}])")
            if consistency is not None:
                raise ValueError("train.slaug_fusion: cannot be combined with consistency (SLAug trains two views itself)")
        self.slaug_fusion = slaug_fusion
        self._slaug = slaug if slaug_fusion is not None else None

    def _slaug_step(self, model: torch.nn.Module, image: torch.Tensor, label: torch.Tensor,
                    generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        """SLAug: task loss on the global view, its input gradient's saliency fuses the global and class-wise
        views, plus the task loss on the fused view (the original's two backward passes before one step)."""
        from ..augment.slaug import saliency_fusion

        glob, local = self._slaug.views(image, generator, labels=label)  # type: ignore[union-attr]
        glob = glob.detach().requires_grad_(True)
        loss_g = self.criterion(model(glob), label)
        (grad,) = torch.autograd.grad(loss_g, glob, retain_graph=True)
        mixed = saliency_fusion(glob, local, grad, grid_size=int(self.slaug_fusion or 3))
        loss_m = self.criterion(model(mixed), label)
        return loss_g + loss_m, {"task_loss": float(loss_g.detach()), "fused_loss": float(loss_m.detach())}

    def step(self, model: torch.nn.Module, batch: dict[str, Any], generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        image, label = batch[self.image_key], batch[self.label_key]
        if self.slaug_fusion is not None:
            return self._slaug_step(model, image, label, generator)
        views = self.views(image, generator, label)  # label-taking cores (slaug local) get the segmentation map
        if len(views) == 1:
            logits = model(views[0])
            loss = self.criterion(logits, label)
            return loss, {"task_loss": float(loss.detach())}
        logits = list(model(torch.cat(views)).chunk(len(views)))  # one forward pass for all views
        task = self.criterion(logits[0], label)
        cons = self._consistency_fn(logits, weight=self.consistency.weight)
        return task + cons, {"task_loss": float(task.detach()), "consistency_loss": float(cons.detach())}


class ClassificationAdapter(AugmentedViews):
    """Classification: cross-entropy (optional label smoothing) on view 1, training accuracy logged."""

    def __init__(self, augment: BatchAugment | None = None, *, consistency: Any | None = None,
                 label_smoothing: float = 0.0) -> None:
        super().__init__(augment, consistency)
        self.label_smoothing = float(label_smoothing)

    def criterion(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (the task loss, also used by AFA's auxiliary path)."""
        return torch.nn.functional.cross_entropy(logits.float(), label, label_smoothing=self.label_smoothing)

    def step(self, model: torch.nn.Module, batch: dict[str, Any], generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        image, label = batch[self.image_key], batch[self.label_key]
        views = self.views(image, generator, label)
        logits = model(torch.cat(views)) if len(views) > 1 else model(views[0])
        chunks = list(logits.float().chunk(len(views)))
        ce = torch.nn.functional.cross_entropy(chunks[0], label, label_smoothing=self.label_smoothing)
        acc = float((chunks[0].argmax(1) == label).float().mean())
        if len(views) == 1:
            return ce, {"task_loss": float(ce.detach()), "train_acc": acc}
        cons = self._consistency_fn(chunks, weight=self.consistency.weight)
        return ce + cons, {"task_loss": float(ce.detach()), "consistency_loss": float(cons.detach()), "train_acc": acc}
