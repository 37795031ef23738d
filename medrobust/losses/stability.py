"""Stability training (Zheng, Song, Leung, Goodfellow, CVPR 2016): the stability term between the
outputs on a clean input ``x`` and on a distorted copy ``x'``.

``L = L_task(x) + α · L_stab(x, x')`` with

* ``kind="kl"`` (classification and segmentation): ``KL(P(y|x) ‖ P(y|x'))``, summed over classes
  (dim 1) and averaged over the batch and every spatial position. For ``(N, K)`` logits this is
  PyTorch's ``reduction="batchmean"``; for segmentation logits ``(N, K, *S)`` it is the per-pixel mean
  of the same KL, so α means the same for images of any size.
* ``kind="l2"`` (embeddings ``(N, D, ...)``): the L2 distance ``‖f(x) − f(x')‖₂`` per sample (over
  every non-batch element), averaged over the batch, as in the paper's ranking/embedding variant.

Gradient through the clean branch: the paper writes the stability objective as a function of the
shared weights on both inputs and describes no stop-gradient, so by default (``detach_clean=False``)
the term is differentiated through both branches. ``detach_clean=True`` treats ``P(y|x)`` as a fixed
target (the TRADES/knowledge-distillation style), so only the distorted branch is pulled.

The caller multiplies by α and adds the task loss (:func:`stability_loss` returns the bare term).
"""

from __future__ import annotations

import torch

__all__ = ["stability_loss", "STABILITY_KINDS"]

#: the kinds of :func:`stability_loss`
STABILITY_KINDS = ("kl", "l2")


def stability_loss(logits_clean: torch.Tensor, logits_distorted: torch.Tensor, kind: str = "kl", *,
                   detach_clean: bool = False) -> torch.Tensor:
    """The stability term between clean and distorted outputs (a scalar, >= 0; 0 when they are equal).

    Args:
        logits_clean: ``(N, K)`` or ``(N, K, *S)`` logits (``kind="kl"``), or ``(N, D, ...)``
            embeddings (``kind="l2"``) of the clean inputs.
        logits_distorted: the same for the distorted inputs (same shape).
        kind: ``"kl"`` — ``KL(softmax(clean) ‖ softmax(distorted))`` over dim 1, mean over batch and
            positions; ``"l2"`` — per-sample Euclidean distance, mean over the batch.
        detach_clean: stop the gradient through the clean branch (default False, see the module doc).
    Computed in float32 (safe under AMP).
    """
    if not isinstance(logits_clean, torch.Tensor) or not isinstance(logits_distorted, torch.Tensor):
        raise TypeError("logits_clean, logits_distorted: expected torch.Tensors")
    if logits_clean.shape != logits_distorted.shape:
        raise ValueError(f"logits_clean {tuple(logits_clean.shape)} and logits_distorted "
                         f"{tuple(logits_distorted.shape)}: expected the same shape")
    if logits_clean.ndim < 2:
        raise ValueError(f"logits_clean: expected (N, K[, *S]) with a class/feature dim 1, got shape "
                         f"{tuple(logits_clean.shape)}")
    if kind not in STABILITY_KINDS:
        raise ValueError(f"kind: expected one of {list(STABILITY_KINDS)}, got {kind!r}")
    clean = logits_clean.detach() if detach_clean else logits_clean
    clean, dist = clean.float(), logits_distorted.float()
    if kind == "l2":
        diff = (clean - dist).flatten(1)
        return torch.linalg.vector_norm(diff, dim=1).mean()
    logp = torch.log_softmax(clean, dim=1)
    logq = torch.log_softmax(dist, dim=1)
    kl = (logp.exp() * (logp - logq)).sum(1)  # (N, *S)
    return kl.mean()
