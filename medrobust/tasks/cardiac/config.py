"""The ``task: cardiac`` config (``configs/cardiac/*.yaml``): ACDC data, the segmentation model, training
and evaluation sections. Shared sections (augment, consistency, AFA, train base) are in
:mod:`medrobust.config`."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from ...config import (
    AFAConfig,
    DynTTAConfig,
    EvaluateBase,
    ExperimentBase,
    Strict,
    TrainBase,
)

__all__ = ["CardiacConfig", "CardiacDataConfig", "CardiacModelConfig", "CardiacTrainConfig", "CardiacEvaluateConfig",
           "CardiacSyntheticConfig"]

class CardiacSyntheticConfig(Strict):
    """The embedded default cohort, written in the ACDC layout when ``data.root`` is null."""

    n_train: int = Field(12, ge=2)
    n_test: int = Field(4, ge=1)
    size: tuple[int, int] = (96, 96)
    n_slices: int = Field(6, ge=1)
    seed: int = 0

class CardiacDataConfig(Strict):
    root: str | None = None  # null: the embedded synthetic cohort
    shifted_root: str | None = None  # a second cohort from another domain (null: synthetic shifted)
    mode: Literal["2d", "3d"] = "2d"
    spatial_size: tuple[int, ...] = (96, 96)
    pixel_spacing: float | None = None  # in-plane resampling target in mm (null: keep)
    split: tuple[float, float, float] = (0.7, 0.1, 0.2)
    split_seed: int = 0
    num_workers: int = Field(0, ge=0)
    synthetic: CardiacSyntheticConfig = CardiacSyntheticConfig()

    @field_validator("split")
    @classmethod
    def _split_sums(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(f < 0 for f in v) or abs(sum(v) - 1.0) > 1e-6:
            raise ValueError(f"train/val/test fractions must be >= 0 and sum to 1, got {list(v)}")
        return v

class CardiacModelConfig(Strict):
    name: Literal["monai_unet", "smp_unet", "smp_deeplabv3plus"] = "monai_unet"
    channels: tuple[int, ...] = (16, 32, 64, 128)  # monai_unet
    strides: tuple[int, ...] = (2, 2, 2)  # monai_unet
    num_res_units: int = 1  # monai_unet
    dropout: float = 0.0
    encoder_name: str = "resnet18"  # smp models
    weights: str | None = None  # local state_dict path (never downloaded)

class CardiacTrainConfig(TrainBase):
    lr: float = Field(2e-3, gt=0)
    ce_weight: float = 1.0
    dice_weight: float = 1.0
    slaug_fusion: int | None = Field(None, ge=1)  # SLAug saliency-balancing fusion grid size (null: off)

class CardiacEvaluateConfig(EvaluateBase):
    corruptions: Literal["all"] | list[str] = "all"
    hd95: bool = True
    shifted: bool = True
    batch_size: int = Field(16, ge=1)
    sw_batch_size: int = Field(4, ge=1)  # sliding window inference (3d mode)
    grid_cases: int = Field(3, ge=0)  # rows of the image/prediction figure

class CardiacConfig(ExperimentBase):
    """``task: cardiac`` experiment config (``configs/cardiac/*.yaml``); ACDC layout or the embedded cohort."""

    legacy_names: ClassVar[dict[str, dict[str, Any]]] = {"acdc": {}}
    label_maps: ClassVar[bool] = True

    task: Literal["cardiac"] = "cardiac"
    data: CardiacDataConfig = CardiacDataConfig()
    model: CardiacModelConfig = CardiacModelConfig()
    afa: AFAConfig | None = None
    train: CardiacTrainConfig = CardiacTrainConfig()
    evaluate: CardiacEvaluateConfig = CardiacEvaluateConfig()
    tta: DynTTAConfig | None = None  # a DynTTA run (`medrobust tta train`): the enhancer of a frozen segmenter
