"""The ``task: driving`` config (``configs/driving/*.yaml``): source and target domains, the smp model,
training and evaluation sections."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ...config import EvaluateBase, ExperimentBase, Strict, TrainBase

__all__ = ["DrivingConfig", "DomainConfig", "DrivingDataConfig", "DrivingModelConfig", "DrivingTrainConfig",
           "DrivingEvaluateConfig", "DrivingSyntheticConfig", "DatasetName"]

DatasetName = Literal["cityscapes", "gta5", "bdd100k", "mapillary", "synthia"]


def _multiple_of_32(v: tuple[int, int] | None, what: str) -> tuple[int, int] | None:
    if v is None:
        return v
    if len(v) != 2 or any(int(s) < 32 or int(s) % 32 for s in v):
        raise ValueError(f"{what}: expected (H, W), both multiples of 32 (>= 32), got {list(v)}")
    return v


class DomainConfig(Strict):
    """A test domain: ``dataset`` layout under ``root`` (null: the embedded synthetic domain)."""

    name: str
    dataset: DatasetName
    root: str | None = None
    split: str | None = None  # null: the dataset's validation split
    resize: tuple[int, int] | None = None  # (H, W) network input size; labels stay at full resolution


def _default_targets() -> list[DomainConfig]:
    return [DomainConfig(name=d, dataset=d) for d in ("bdd100k", "mapillary", "synthia")]  # type: ignore[arg-type]


class DrivingSyntheticConfig(Strict):
    """The embedded default (used when ``data.root`` is null)."""

    n_train: int = Field(24, ge=1)
    n_val: int = Field(8, ge=1)
    n_target: int = Field(8, ge=1)
    size: tuple[int, int] = (256, 512)
    seed: int = 0


class DrivingDataConfig(Strict):
    source: DatasetName = "cityscapes"
    root: str | None = None  # null: the embedded synthetic source domain
    train_split: str | None = None  # null: the dataset's training split
    val_split: str | None = None  # null: the dataset's validation split
    crop_size: tuple[int, int] = (128, 256)  # (H, W) training crops
    scale: tuple[float, float] = (0.75, 1.5)  # random scale range before cropping
    hflip: bool = True
    resize: tuple[int, int] | None = None  # (H, W) resize of source images before the random scale
    eval_resize: tuple[int, int] | None = None  # (H, W) network input for the source val set
    targets: list[DomainConfig] = Field(default_factory=_default_targets)
    num_workers: int = Field(0, ge=0)
    synthetic: DrivingSyntheticConfig = DrivingSyntheticConfig()

    @field_validator("crop_size")
    @classmethod
    def _crop(cls, v: tuple[int, int]) -> tuple[int, int]:
        return _multiple_of_32(v, "crop_size")  # type: ignore[return-value]

    @field_validator("scale")
    @classmethod
    def _scale(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1]:
            raise ValueError(f"expected 0 < low <= high, got {list(v)}")
        return v

    @field_validator("targets")
    @classmethod
    def _unique(cls, v: list[DomainConfig]) -> list[DomainConfig]:
        names = [t.name for t in v]
        if len(set(names)) != len(names):
            raise ValueError(f"target names must be unique, got {names}")
        return v


class DrivingModelConfig(Strict):
    name: Literal["smp_deeplabv3plus", "smp_unet"] = "smp_deeplabv3plus"
    encoder_name: Literal["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"] = "resnet18"
    weights: str | None = None  # local state_dict of the whole model (never downloaded)
    encoder_weights: str | None = None  # local ResNet state_dict (torchvision/timm keys) for the encoder
    normalize: bool = True  # ImageNet mean/std inside the model (inputs stay in [0, 1])


class DrivingTrainConfig(TrainBase):
    steps: int = Field(150, ge=1)
    batch_size: int = Field(8, ge=1)
    val_every: int = Field(50, ge=1)
    ckpt_every: int = Field(50, ge=1)


class DrivingEvaluateConfig(EvaluateBase):
    # natural corruptions on the source val set: a subset name for medrobust.augment.corruption_names
    # ("all", "common", ...), or a list of names; [] for none
    corruptions: str | list[str] = "common"
    targets: bool = True
    window: tuple[int, int] | None = None  # sliding-window ROI (H, W); null: data.crop_size
    overlap: float = Field(0.25, ge=0, lt=1)
    sw_batch_size: int = Field(4, ge=1)
    max_images: int | None = Field(None, ge=1)  # cap per domain / condition (quick looks)
    grid_images: int = Field(2, ge=0)  # example rows per domain in the qualitative figure

    @field_validator("window")
    @classmethod
    def _window(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        return _multiple_of_32(v, "window")


class DrivingConfig(ExperimentBase):
    """``task: driving`` experiment config (``configs/driving/*.yaml``)."""

    label_maps: ClassVar[bool] = True

    name: str = "driving"
    task: Literal["driving"] = "driving"
    data: DrivingDataConfig = DrivingDataConfig()
    model: DrivingModelConfig = DrivingModelConfig()
    train: DrivingTrainConfig = DrivingTrainConfig()
    evaluate: DrivingEvaluateConfig = DrivingEvaluateConfig()

    @model_validator(mode="after")
    def _checks(self) -> DrivingConfig:
        if self.model.name == "smp_deeplabv3plus" and self.train.batch_size < 2:
            raise ValueError("train.batch_size: DeepLabV3+ needs at least 2 images per step (batch norm in its "
                             "image-pooling branch)")
        if self.data.root is not None:
            missing = [t.name for t in self.data.targets if t.root is None]
            if missing:
                raise ValueError(f"data.targets {missing}: root is null (the embedded synthetic domain), which is only "
                                 "available with data.root: null; give each target's root")
        return self
