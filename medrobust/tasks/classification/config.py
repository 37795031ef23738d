"""The ``task: classification`` config (``configs/classification/<dataset>/*.yaml``)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ...config import (
    AFAConfig,
    DynTTAConfig,
    EvaluateBase,
    ExperimentBase,
    Strict,
    TrainBase,
)

__all__ = ["ClassificationConfig", "ClassificationDataConfig", "ClassifierConfig", "ClassificationTrainConfig",
           "ClassificationEvaluateConfig", "DigitsSyntheticConfig", "DATASETS"]

#: the benchmarks ``data.dataset`` selects
DATASETS = ("cifar10", "cifar100", "digits", "pacs")

#: what ``data.root`` holds for the datasets without an embedded default (the one-line hint when it is null)
ROOT_HINTS = {"cifar10": "<folder with cifar-10-batches-py/>", "cifar100": "<folder with cifar-100-python/>",
              "pacs": "<folder with art_painting/ cartoon/ photo/ sketch/>"}


class DigitsSyntheticConfig(Strict):
    """The embedded digits benchmark, written when ``data.root`` is null (dataset ``digits``)."""

    size: int = Field(32, ge=16, le=128)
    seed: int = 0
    target_fraction: float = Field(1 / 3, gt=0, lt=1)


class ClassificationDataConfig(Strict):
    dataset: Literal["cifar10", "cifar100", "digits", "pacs"] = "digits"  # the benchmark (reader and protocol)
    root: str | None = None  # null: the embedded digits (dataset digits only)
    image_size: int = Field(32, ge=8)  # images are resized to this side (CIFAR: 32)
    val_fraction: float = Field(0.1, ge=0, lt=1)  # of the training source, for validation / best.pt
    test_fraction: float = Field(0.2, ge=0, lt=1)  # domain tasks: in-domain clean test share of the sources
    split_seed: int = 0
    source_domains: list[str] | None = None  # domain tasks; null: every domain not in target_domains
    target_domains: list[str] | None = None  # domain tasks; null: digits -> every non-source domain
    cifar_label: Literal["fine", "coarse"] = "fine"  # cifar100
    train_transform: Literal["none", "flip", "crop_flip"] = "crop_flip"
    crop_padding: int = Field(4, ge=0)
    preload: bool | None = None  # folder tasks: read all images into memory (null: when < 1 GiB)
    max_train: int | None = Field(None, ge=1)  # cap on training images (quick runs)
    num_workers: int = Field(0, ge=0)
    synthetic: DigitsSyntheticConfig = DigitsSyntheticConfig()


class ClassifierConfig(Strict):
    name: str = "resnet18"  # resnet18 | resnet34 | resnet50 | digitnet | timm:<name>
    cifar_stem: bool | None = None  # ResNets: 3x3 stride-1 stem, no max-pool (null: image_size <= 64)
    weights: str | None = None  # local state_dict (never downloaded)
    mean: str | list[float] | None = None  # input normalisation: cifar10 | imagenet | half | [..]
    std: list[float] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        from ...models.classifiers import CLASSIFIERS

        if not (v.startswith("timm:") and len(v) > 5) and v not in CLASSIFIERS:
            raise ValueError(f"unknown classifier {v!r}; choose one of {list(CLASSIFIERS)}")
        return v


class ClassificationTrainConfig(TrainBase):
    steps: int = Field(1000, ge=1)
    batch_size: int = Field(64, ge=1)
    weight_decay: float = Field(0.0, ge=0)  # AdamW; 0 = Adam (the digits protocol)
    grad_clip: float | None = None
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    val_every: int = Field(200, ge=1)
    ckpt_every: int = Field(200, ge=1)
    log_every: int = Field(20, ge=1)


class ClassificationEvaluateConfig(EvaluateBase):
    corruptions: Literal["all", "common", "extra"] | list[str] = "common"
    table: Literal["auto", "imagenet", "cifar"] = "auto"  # severity table; auto: cifar for <= 64 px
    batch_size: int = Field(256, ge=1)
    max_images: int | None = Field(None, ge=1)  # per condition (quick runs); null: all
    domains: bool = True  # per-domain accuracy on the target domains


class ClassificationConfig(ExperimentBase):
    """``task: classification`` experiment config; ``data.dataset`` picks the benchmark
    (``cifar10 | cifar100 | digits | pacs``). Earlier releases named the dataset as the task
    (``task: cifar10``); such configs and run directories still load."""

    legacy_names: ClassVar[dict[str, dict[str, Any]]] = {d: {"data.dataset": d} for d in DATASETS}

    name: str = "classification"
    task: Literal["classification"] = "classification"
    data: ClassificationDataConfig = ClassificationDataConfig()
    model: ClassifierConfig = ClassifierConfig()
    afa: AFAConfig | None = None
    tta: DynTTAConfig | None = None  # a DynTTA run (`medrobust tta train`): the enhancer of a frozen classifier
    train: ClassificationTrainConfig = ClassificationTrainConfig()
    evaluate: ClassificationEvaluateConfig = ClassificationEvaluateConfig()

    @model_validator(mode="after")
    def _checks(self) -> "ClassificationConfig":
        if self.data.root is None and self.data.dataset != "digits":
            raise ValueError(f"data.root: dataset {self.data.dataset!r} needs a dataset root (only dataset 'digits' has an "
                             f"embedded default); pass --set data.root={ROOT_HINTS[self.data.dataset]}")
        if self.data.val_fraction + self.data.test_fraction >= 1:
            raise ValueError("data.val_fraction + data.test_fraction must be < 1")
        if self.data.dataset == "pacs" and not self.data.target_domains:
            raise ValueError("data.target_domains: dataset 'pacs' needs the held-out domain(s), e.g. [sketch]")
        return self
