"""Model factories (smp / timm style ``create_model(name, **kw)``). Weights are never downloaded:
pass a local ``state_dict`` file in ``weights`` to start from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = ["create_segmentation_model", "load_weights", "SEGMENTATION_MODELS"]

SEGMENTATION_MODELS = ("monai_unet", "smp_unet", "smp_deeplabv3plus")


def load_weights(model: torch.nn.Module, path: str | Path, *, strict: bool = True, what: str = "model.weights",
                 detail: str = "") -> torch.nn.Module:
    """Load a local ``state_dict`` (``weights_only=True``); a checkpoint dict with a ``model`` key
    (what :func:`medrobust.train.loop.fit` writes) works too.

    Errors name ``what`` (the config key or role of the file) and the path; ``detail`` is added to
    the message when the weights do not fit the model (e.g. which config built it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"{what}: cannot read {path}: {err}") from err
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as err:
        raise ValueError(f"{what}: {path} does not match the model{detail}: {err}") from err
    return model


def create_segmentation_model(
    name: str,
    *,
    in_channels: int,
    num_classes: int,
    spatial_dims: int = 2,
    channels: tuple[int, ...] = (16, 32, 64, 128),
    strides: tuple[int, ...] = (2, 2, 2),
    num_res_units: int = 1,
    dropout: float = 0.0,
    encoder_name: str = "resnet18",
    weights: str | None = None,
    **unused: Any,
) -> torch.nn.Module:
    """Build a segmentation network producing logits ``(N, num_classes, *S)``.

    * ``monai_unet``: MONAI ``UNet`` (2D or 3D) with the given channels/strides;
    * ``smp_unet`` / ``smp_deeplabv3plus``: segmentation-models-pytorch with ``encoder_weights=None``
      (2D only; input sizes must be divisible by 32 for U-Net, 16 for DeepLabV3+).
    """
    if name == "monai_unet":
        from monai.networks.nets import UNet

        if len(strides) != len(channels) - 1:
            raise ValueError(f"model.strides: expected {len(channels) - 1} strides for {len(channels)} channels, got {len(strides)}")
        model: torch.nn.Module = UNet(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=num_classes,
            channels=tuple(channels),
            strides=tuple(strides),
            num_res_units=num_res_units,
            dropout=dropout,
        )
    elif name in ("smp_unet", "smp_deeplabv3plus"):
        if spatial_dims != 2:
            raise ValueError(f"model.name: {name} is 2D only; use monai_unet for volumes")
        import segmentation_models_pytorch as smp

        cls = smp.Unet if name == "smp_unet" else smp.DeepLabV3Plus
        model = cls(encoder_name=encoder_name, encoder_weights=None, in_channels=in_channels, classes=num_classes)
    else:
        raise ValueError(f"model.name: unknown model {name!r}; choose one of {SEGMENTATION_MODELS}")
    if weights:
        load_weights(model, weights)
    return model
