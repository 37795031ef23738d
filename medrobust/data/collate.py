"""Batch collation shared by the tasks' DataLoaders."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["collate_image_label"]


def collate_image_label(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack the ``image`` and ``label`` tensors of dataset items into a batch (other keys are dropped)."""
    return {"image": torch.stack([it["image"] for it in items]), "label": torch.stack([it["label"] for it in items])}
