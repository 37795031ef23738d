"""Consistency losses over K views of the same batch (RandConv / AugMix / GIN-IPA style).

Both take a list of logits tensors of identical shape ``(N, K_classes, *S)`` (class dim 1; ``S`` may be
empty for classification or spatial for segmentation). Divergences are summed over classes and
averaged over the batch and every spatial position, so the weight means the same for images of any
size (for ``(N, K)`` logits this equals PyTorch's ``reduction="batchmean"``).

* :func:`kl_to_mean` is the RandConv/AugMix formulation: ``mean_i KL(p_i || M)`` with
  ``M = clamp(mean_i p_i, 1e-7, 1)``; gradients flow through every view and through ``M``.
* :func:`jsd` is the generalised Jensen-Shannon divergence ``H(M) − mean_i H(p_i)`` computed in log
  space without clamping (``log M = logsumexp_i log p_i − log K``). Mathematically it equals
  ``mean_i KL(p_i || M)``; the two differ only by the clamp, and ``jsd`` stays exact when a view is
  very confident. ``normalize=True`` divides by ``log K`` so the value lies in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["kl_to_mean", "jsd", "CONSISTENCY_LOSSES", "consistency_loss"]


def _check(logits_list: Sequence[torch.Tensor], dim: int) -> list[torch.Tensor]:
    if isinstance(logits_list, torch.Tensor):
        raise TypeError("logits_list: expected a list of K >= 2 logits tensors, got a single tensor")
    views = list(logits_list)
    if len(views) < 2:
        raise ValueError(f"logits_list: expected at least 2 views, got {len(views)}")
    shape = views[0].shape
    for i, v in enumerate(views):
        if not isinstance(v, torch.Tensor) or not torch.is_floating_point(v):
            raise TypeError(f"logits_list[{i}]: expected a float tensor")
        if v.shape != shape:
            raise ValueError(f"logits_list[{i}]: shape {tuple(v.shape)} differs from view 0 {tuple(shape)}")
        if v.ndim < 2:
            raise ValueError(f"logits_list[{i}]: expected (N, classes, ...) logits, got shape {tuple(v.shape)}")
        if v.shape[0] == 0:
            raise ValueError(f"logits_list[{i}]: empty batch")
    if not -views[0].ndim <= dim < views[0].ndim:
        raise ValueError(f"dim: {dim} out of range for {views[0].ndim}-d logits")
    return views


def _mean_over_positions(per_position: torch.Tensor) -> torch.Tensor:
    """Average a tensor of per-position divergences (class dim already summed)."""
    return per_position.mean()


def kl_to_mean(logits_list: Sequence[torch.Tensor], weight: float = 1.0, dim: int = 1) -> torch.Tensor:
    """``weight · mean_i KL(p_i || M)``, ``M = clamp(mean_i softmax(logits_i), 1e-7, 1)``.

    Args:
        logits_list: K >= 2 tensors ``(N, classes, *S)`` of raw logits.
        weight: multiplier (RandConv: 5 for RC_img, 10 for RC_mix; IPA: 10).
        dim: the class dimension.
    Returns:
        a scalar tensor.
    """
    views = _check(logits_list, dim)
    log_p = [torch.log_softmax(v.float(), dim=dim) for v in views]
    probs = [lp.exp() for lp in log_p]
    log_m = torch.clamp(torch.stack(probs).mean(0), 1e-7, 1.0).log()
    kl = sum((p * (lp - log_m)).sum(dim) for p, lp in zip(probs, log_p)) / len(views)
    return weight * _mean_over_positions(kl)


def jsd(logits_list: Sequence[torch.Tensor], weight: float = 1.0, dim: int = 1, normalize: bool = False) -> torch.Tensor:
    """``weight · JSD(p_1, ..., p_K) = weight · (H(M) − mean_i H(p_i))``, ``M = mean_i p_i``.

    Args:
        logits_list: K >= 2 tensors ``(N, classes, *S)`` of raw logits.
        weight: multiplier (AFA JSD variant: 10 on CIFAR-10, 1 on CIFAR-100, 12 on ImageNet).
        dim: the class dimension.
        normalize: divide by ``log K`` so that the divergence is in [0, 1].
    Returns:
        a scalar tensor.
    """
    views = _check(logits_list, dim)
    k = len(views)
    log_p = torch.stack([torch.log_softmax(v.float(), dim=dim) for v in views])  # (K, N, C, *S)
    log_m = torch.logsumexp(log_p, dim=0) - math.log(k)
    p = log_p.exp()
    # mean_i sum_c p_i (log p_i - log M); xlogy-style: p = 0 contributes 0
    div = (p * (log_p - log_m.unsqueeze(0))).sum(dim + 1 if dim >= 0 else dim).mean(0)
    value = _mean_over_positions(div)
    if normalize:
        value = value / math.log(k)
    return weight * value


CONSISTENCY_LOSSES = {"kl_to_mean": kl_to_mean, "jsd": jsd}


def consistency_loss(name: str):
    """Look up a consistency loss by config name (``kl_to_mean`` or ``jsd``)."""
    try:
        return CONSISTENCY_LOSSES[name]
    except KeyError:
        raise ValueError(f"consistency loss: unknown name {name!r}; choose one of {sorted(CONSISTENCY_LOSSES)}") from None
