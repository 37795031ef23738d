"""How segmentation tasks meet the cores: images are augmented on the device, labels never are.

``SegmentationAdapter.step`` is the ``step_fn`` of :func:`medrobust.train.loop.fit`:

* without consistency: one view (the augmented image, or the clean one when no core is configured),
  Dice+CE on it;
* with consistency (K views): every view is drawn independently **from the clean input** (the
  original RandConv code draws views 2..K on top of view 1; we do not), Dice+CE on view 1 and
  ``weight · kl_to_mean/jsd`` over the K views' logits. ``clean_first_view`` makes view 1 the clean
  image (AugMix style).
"""

from __future__ import annotations

from typing import Any

import torch

from ..augment.base import BatchAugment
from ..losses.consistency import consistency_loss

__all__ = ["SegmentationAdapter", "DiceCELoss"]


class DiceCELoss(torch.nn.Module):
    """MONAI's Dice + cross-entropy on logits ``(N, K, *S)`` and integer labels ``(N, 1, *S)``."""

    def __init__(self, ce_weight: float = 1.0, dice_weight: float = 1.0) -> None:
        super().__init__()
        from monai.losses import DiceCELoss as _DiceCE

        self.loss = _DiceCE(to_onehot_y=True, softmax=True, lambda_ce=ce_weight, lambda_dice=dice_weight)

    def forward(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.loss(logits.float(), label)


class SegmentationAdapter:
    """Task glue for segmentation: which keys are images/labels, how views and losses are built."""

    image_key = "image"
    label_key = "label"

    def __init__(
        self,
        augment: BatchAugment | None = None,
        *,
        consistency: Any | None = None,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
        criterion: torch.nn.Module | None = None,
    ) -> None:
        self.augment = augment
        self.consistency = consistency
        # ``criterion(logits, label)`` replaces Dice+CE (e.g. cross-entropy with ignore_index=255)
        self.criterion = criterion if criterion is not None else DiceCELoss(ce_weight, dice_weight)
        if consistency is not None and augment is None:
            raise ValueError("consistency: needs at least one augmentation core in 'augment'")
        self._consistency_fn = consistency_loss(consistency.name) if consistency is not None else None

    def views(self, image: torch.Tensor, generator: torch.Generator | None) -> list[torch.Tensor]:
        """The training views of a batch of images, each augmented independently from the clean input."""
        if self.augment is None:
            return [image]
        k = self.consistency.views if self.consistency is not None else 1
        first_clean = self.consistency is not None and self.consistency.clean_first_view
        out = [image] if first_clean else []
        while len(out) < k:
            out.append(self.augment(image, generator))
        return out

    def step(self, model: torch.nn.Module, batch: dict[str, Any], generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        image, label = batch[self.image_key], batch[self.label_key]
        views = self.views(image, generator)
        if len(views) == 1:
            logits = model(views[0])
            loss = self.criterion(logits, label)
            return loss, {"task_loss": float(loss.detach())}
        logits_all = model(torch.cat(views))  # one forward pass for all views
        logits = list(logits_all.chunk(len(views)))
        task = self.criterion(logits[0], label)
        cons = self._consistency_fn(logits, weight=self.consistency.weight)
        return task + cons, {"task_loss": float(task.detach()), "consistency_loss": float(cons.detach())}
