"""Inference shared by the tasks: batched prediction over a dataset and sliding-window prediction of
images larger (or smaller) than the network's window."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["argmax_classes", "predict_logits", "predict", "predict_dataset"]


def argmax_classes(logits: torch.Tensor) -> torch.Tensor:
    """``logits.argmax(1)`` (int64, the class axis dropped), computed along a contiguous last axis: the same
    indices (first maximum on ties, NaN counts as the maximum) about ten times faster on the CPU."""
    return logits.movedim(1, -1).contiguous().argmax(-1)


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module,
    x: torch.Tensor,
    *,
    window: Sequence[int] | None,
    overlap: float = 0.25,
    sw_batch_size: int = 4,
    out_size: Sequence[int] | None = None,
) -> torch.Tensor:
    """Logits ``(N, K, *out_size)`` for images ``x (N, 3, H, W)`` in [0, 1].

    ``window = (h, w)``: MONAI sliding-window inference with that ROI (images smaller than the window
    are padded, larger ones tiled with ``overlap``); None: one forward pass of the whole image padded
    to a multiple of 32. ``out_size``: bilinear upsampling of the logits (e.g. to the label size).
    """
    import torch.nn.functional as F

    if window is None:
        h, w = x.shape[-2:]
        ph, pw = (-h) % 32, (-w) % 32
        logits = model(F.pad(x, (0, pw, 0, ph)))[..., :h, :w]
    else:
        from monai.inferers import sliding_window_inference

        logits = sliding_window_inference(x, roi_size=tuple(int(s) for s in window), sw_batch_size=sw_batch_size,
                                          predictor=model, overlap=overlap)
    logits = logits.float()
    if out_size is not None and tuple(logits.shape[-2:]) != tuple(out_size):
        logits = F.interpolate(logits, size=tuple(int(s) for s in out_size), mode="bilinear", align_corners=False)
    return logits


def predict(model: torch.nn.Module, x: torch.Tensor, **kw: Any) -> torch.Tensor:
    """Train-ID predictions ``(N, H, W)`` (int64); arguments as :func:`predict_logits`."""
    return argmax_classes(predict_logits(model, x, **kw))


@torch.no_grad()
def predict_dataset(model: torch.nn.Module, dataset: Any, device: torch.device, *, collate: Callable[[list[Any]], dict[str, Any]],
                    batch_size: int = 256, indices: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """``(predicted classes, labels)`` of a classifier over ``dataset`` items (``{"image", "label"}``),
    batched by ``collate``; optionally over a subset of ``indices``."""
    idx = list(range(len(dataset))) if indices is None else list(indices)
    preds, labels = [], []
    for start in range(0, len(idx), batch_size):
        batch = collate([dataset[i] for i in idx[start : start + batch_size]])
        preds.append(model(batch["image"].to(device)).argmax(1).cpu().numpy())
        labels.append(batch["label"].numpy())
    if not preds:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(preds), np.concatenate(labels)
