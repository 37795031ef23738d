"""Segmentation task losses on logits ``(N, K, *S)`` and integer labels ``(N, 1, *S)``."""

from __future__ import annotations

import torch

__all__ = ["DiceCELoss", "CrossEntropyIgnore"]


class DiceCELoss(torch.nn.Module):
    """MONAI's Dice + cross-entropy on logits ``(N, K, *S)`` and integer labels ``(N, 1, *S)``."""

    def __init__(self, ce_weight: float = 1.0, dice_weight: float = 1.0) -> None:
        super().__init__()
        from monai.losses import DiceCELoss as _DiceCE

        self.loss = _DiceCE(to_onehot_y=True, softmax=True, lambda_ce=ce_weight, lambda_dice=dice_weight)

    def forward(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.loss(logits.float(), label)


class CrossEntropyIgnore(torch.nn.Module):
    """Pixel-wise cross-entropy on logits ``(N, K, H, W)`` and labels ``(N, 1, H, W)``, ignoring 255.

    Averaged over the labelled pixels of the batch; a batch with none gives 0 (not NaN).
    """

    def __init__(self, ignore_index: int = 255) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        target = label[:, 0] if label.ndim == logits.ndim else label
        target = target.long()
        total = torch.nn.functional.cross_entropy(logits.float(), target, ignore_index=self.ignore_index, reduction="sum")
        count = (target != self.ignore_index).sum().clamp_min(1)
        return total / count
