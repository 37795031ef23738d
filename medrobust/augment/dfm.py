"""DFM-X (Wang et al., ICCV-W 2023; nis-research/dfmX-augmentation): train on images filtered to
another class's dominant frequency map so the network cannot rely on frequency shortcuts.

Per image a class ``m`` is drawn uniformly; if ``m`` differs from the image's label (and the label is
among ``classes``), with probability ``p`` the image keeps only the frequencies in ``m``'s DFM (DC
always kept, the same mask on every channel); the label is unchanged. DFMs are boolean maps
``(K, H, W)`` in **centred** layout (``fftshift``: DC at ``(H // 2, W // 2)``), as written by
``medrobust dfm`` / :func:`medrobust.analysis.dfm.dominant_frequency_maps`. Maps of another size are
resized to the image (nearest, in centred frequency coordinates). The originals filter one image at a
time on the CPU in complex128; here one batched FFT on the device.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .base import BatchAugment, Params, randint
from .functional.fft import centred_to_fft, masked_fft2
from .registry import register

__all__ = ["DFMX", "as_dfms", "load_dfms", "filter_to_masks", "example_dfms"]


def as_dfms(dfms: np.ndarray | torch.Tensor, *, name: str = "dfms") -> torch.Tensor:
    """Validated boolean DFMs ``(K >= 2, H, W)`` from an array or tensor (0/1 values accepted).

    File paths are refused (augment reads no files): load them with
    :func:`medrobust.analysis.dfm.load_dfms`.
    """
    if isinstance(dfms, (str, bytes, os.PathLike)):
        raise TypeError(f"{name}: got the path {os.fspath(dfms)!r}; cores take tensors — load the maps with "
                        "medrobust.analysis.dfm.load_dfms (configs: the task loads them)")
    t = torch.as_tensor(np.asarray(dfms) if not isinstance(dfms, torch.Tensor) else dfms)
    if t.ndim != 3 or t.shape[0] < 2:
        raise ValueError(f"{name}: expected DFMs of shape (classes >= 2, H, W), got {tuple(t.shape)}")
    if t.dtype != torch.bool:
        if not bool(((t == 0) | (t == 1)).all()):
            raise ValueError(f"{name}: expected boolean / 0-1 maps")
        t = t.bool()
    return t


#: former name of :func:`as_dfms` (it no longer reads files: see :func:`medrobust.analysis.dfm.load_dfms`)
load_dfms = as_dfms


def _resize_centred(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks
    return F.interpolate(masks[:, None].float(), size=size, mode="nearest")[:, 0] > 0.5


def filter_to_masks(x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Keep only the frequencies in ``masks`` (centred layout, ``(N, H, W)`` bool) of each image
    ``(N, C, H, W)``; DC is always kept. Returns the real part of the inverse FFT (not clamped)."""
    h, w = x.shape[-2:]
    m = _resize_centred(masks.to(x.device), (h, w)).clone()
    m[:, h // 2, w // 2] = True
    return masked_fft2(x.float(), centred_to_fft(m)[:, None]).real.to(x.dtype)


def example_dfms(k: int = 10, size: int = 32) -> torch.Tensor:
    """Deterministic example maps (rings of growing radius) for tests and docs — not real DFMs."""
    yy, xx = torch.meshgrid(torch.arange(size) - size // 2, torch.arange(size) - size // 2, indexing="ij")
    r = torch.sqrt(yy.float() ** 2 + xx.float() ** 2)
    step = (size / 2) / k
    return torch.stack([(r >= i * step) & (r < (i + 2) * step) for i in range(k)])


@register("dfmx")
class DFMX(BatchAugment):
    """Filter images to the dominant frequency map of a randomly drawn other class.

    Args:
        dfms: boolean maps ``(K, H, W)`` (centred layout), an array or tensor (a ``.npy`` file:
            :func:`medrobust.analysis.dfm.load_dfms`).
        p: probability per image of being filtered when the drawn class differs from its label
            (DFM-X: 0.3).
        classes: labels whose images may be filtered (default: all).

    Call with labels (``core(x, generator, labels=y)``) so images are only filtered to *other*
    classes' maps; without labels every draw counts as another class.
    """

    spatial_dims = (2,)
    uses_labels = True
    data_args = ("dfms",)

    def __init__(self, dfms: Any, p: float = 0.3, classes: Sequence[int] | None = None) -> None:
        super().__init__(p=p)
        self.register_buffer("dfms", as_dfms(dfms), persistent=False)
        k = self.dfms.shape[0]
        if classes is not None and any(not 0 <= int(c) < k for c in classes):
            raise ValueError(f"classes: expected labels in 0..{k - 1}, got {list(classes)}")
        self.classes = None if classes is None else sorted({int(c) for c in classes})

    @property
    def num_classes(self) -> int:
        return int(self.dfms.shape[0])

    def sample_params(self, x: torch.Tensor, generator: torch.Generator | None = None, *,
                      labels: torch.Tensor | None = None) -> Params:
        x = self.check(x)
        params = self._sample_checked(x, generator)
        if labels is not None:
            labels = torch.as_tensor(labels, device=x.device).long().reshape(-1)
            if labels.shape[0] != x.shape[0]:
                raise ValueError(f"labels: expected {x.shape[0]} labels, got {labels.shape[0]}")
            if bool(((labels < 0) | (labels >= self.num_classes)).any()):
                raise ValueError(f"labels: expected values in 0..{self.num_classes - 1} (one DFM per class)")
            eligible = params["target"] != labels
            if self.classes is not None:
                eligible &= torch.isin(labels, torch.tensor(self.classes, device=x.device))
            params["apply"] = params["apply"].to(eligible.device) & eligible
        return params

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None, *,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.apply(x, self.sample_params(x, generator, labels=labels))

    def _sample(self, x: torch.Tensor, generator: torch.Generator | None) -> Params:
        return {"target": randint(0, self.num_classes, (x.shape[0],), generator=generator, device=x.device)}

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        masks = self.dfms.to(x.device)[params["target"]]
        return filter_to_masks(x, masks).clamp(0, 1)

