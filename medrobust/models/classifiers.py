"""Image classifiers (timm-style ``create_classifier(name, num_classes, **kw)``). Weights are never
downloaded; ``weights=`` loads a local ``state_dict`` file (``weights_only=True``).

Names:

* ``resnet18`` / ``resnet34`` / ``resnet50``: torchvision ResNets built with ``weights=None``. With
  ``cifar_stem=True`` (the default for inputs of 64 pixels or less) the 7x7 stride-2 stem
  convolution becomes a 3x3 stride-1 convolution and the max-pool is removed, the usual CIFAR
  variant, so 32x32 inputs keep a 4x4 map before global pooling.
* ``digitnet``: the RandConv digits network (Xu et al., ICLR 2021; wildphoton/RandConv
  ``DigitNet``): conv5x5-64 (no padding), ReLU, max-pool 2, conv5x5-128, ReLU, max-pool 2,
  FC 1024, ReLU, FC 1024, ReLU, FC ``num_classes``. For 32x32 inputs the flattened map is 128x5x5,
  as in the original; other sizes adapt the first FC layer.
* ``timm:<name>``: ``timm.create_model(<name>, pretrained=False, num_classes=..., in_chans=...)``.

Models take images in [0, 1]; ``mean``/``std`` (per channel) add a fixed input normalisation inside
the model (buffers, saved with the checkpoint), so cores and corruptions always see [0, 1] images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["CLASSIFIERS", "create_classifier", "DigitNet", "Classifier", "NORMALIZATIONS"]

CLASSIFIERS = ("resnet18", "resnet34", "resnet50", "digitnet", "timm:<name>")

#: named input normalisations (mean, std)
NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # AugMix's CIFAR scripts: [0, 1] -> [-1, 1]
}


class DigitNet(nn.Module):
    """RandConv's digits network (see the module docstring)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> None:
        super().__init__()
        side = ((image_size - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"digitnet: image_size {image_size} is too small (needs >= 14 pixels)")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
            nn.Conv2d(64, 128, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(128 * side * side, 1024), nn.ReLU(inplace=True),
            nn.Linear(1024, 1024), nn.ReLU(inplace=True),
            nn.Linear(1024, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class Classifier(nn.Module):
    """``net`` behind an optional fixed per-channel normalisation ``(x − mean) / std``."""

    def __init__(self, net: nn.Module, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        super().__init__()
        self.net = net
        if (mean is None) != (std is None):
            raise ValueError("model.mean and model.std: give both or neither")
        self.normalize = mean is not None
        if mean is not None and std is not None:
            if len(mean) != len(std) or any(s <= 0 for s in std):
                raise ValueError(f"model.mean/std: expected equal lengths and std > 0, got {list(mean)}, {list(std)}")
            self.register_buffer("mean", torch.tensor([float(v) for v in mean]).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor([float(v) for v in std]).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        return self.net(x)


def _resnet(name: str, num_classes: int, in_channels: int, cifar_stem: bool) -> nn.Module:
    import torchvision

    net = getattr(torchvision.models, name)(weights=None, num_classes=num_classes)
    if cifar_stem:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return net


def create_classifier(
    name: str,
    num_classes: int,
    in_channels: int = 3,
    *,
    image_size: int = 32,
    cifar_stem: bool | None = None,
    weights: str | Path | None = None,
    mean: Sequence[float] | str | None = None,
    std: Sequence[float] | None = None,
    **kw: Any,
) -> Classifier:
    """Build a classifier producing logits ``(N, num_classes)`` from ``(N, in_channels, H, W)`` in [0, 1].

    Args:
        name: one of :data:`CLASSIFIERS` (``timm:<name>`` for any timm architecture).
        image_size: input side (sets the ResNet stem default and DigitNet's first FC layer).
        cifar_stem: ResNets only; None = ``image_size <= 64``.
        weights: local ``state_dict`` of the backbone (torchvision/timm keys) or a checkpoint from
            ``medrobust train`` (``{"model": ...}`` with this wrapper's keys); never downloaded.
        mean, std: input normalisation, or ``mean`` = a name in :data:`NORMALIZATIONS`.
        kw: passed to ``timm.create_model`` for ``timm:`` models (e.g. ``drop_rate``).
    """
    from .factory import load_weights

    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes: expected a positive int, got {num_classes!r}")
    if isinstance(mean, str):
        if mean not in NORMALIZATIONS:
            raise ValueError(f"model.mean: unknown normalisation {mean!r}; choose from {sorted(NORMALIZATIONS)} or give numbers")
        if std is not None:
            raise ValueError("model.std: leave it unset when model.mean names a normalisation")
        mean, std = NORMALIZATIONS[mean]
    if mean is not None and len(mean) != in_channels:
        raise ValueError(f"model.mean: expected {in_channels} values (one per channel), got {len(mean)}")
    if name.startswith("timm:"):
        import timm

        arch = name.split(":", 1)[1]
        if not arch or not timm.list_models(arch):
            raise ValueError(f"model.name: unknown timm model {arch!r}")
        net: nn.Module = timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=in_channels, **kw)
    elif kw:
        raise ValueError(f"model: unexpected options {sorted(kw)} for {name!r}")
    elif name in ("resnet18", "resnet34", "resnet50"):
        net = _resnet(name, num_classes, in_channels, image_size <= 64 if cifar_stem is None else bool(cifar_stem))
    elif name == "digitnet":
        net = DigitNet(num_classes, in_channels, image_size)
    else:
        raise ValueError(f"model.name: unknown classifier {name!r}; choose one of {CLASSIFIERS}")
    model = Classifier(net, mean, std)
    if weights:
        _load(model, weights, load_weights)
    return model


def _load(model: Classifier, path: str | Path, load_weights: Any) -> None:
    """Checkpoints of this wrapper (keys ``net.*``) load into the wrapper, plain backbones into ``net``."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True) if Path(path).is_file() else None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if isinstance(state, dict) and any(str(k).startswith("net.") for k in state):
        load_weights(model, path)
    else:
        load_weights(model.net, path)
