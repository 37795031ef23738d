"""The ``task: microscopy`` config (``configs/microscopy/*.yaml``): focal-stack data, the linear-latent
autoencoder, loss weights, training and evaluation sections."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ...config import RunBase, Strict, TrainBase
from ...models.blur_autoencoder import (
    PAPER_WIDTHS,
)

#: widths of ``configs/microscopy/linear_latent.yaml`` (the CPU default; the paper's are PAPER_WIDTHS)
DEFAULT_WIDTHS: tuple[int, ...] = (32, 64)


class BlurSyntheticConfig(Strict):
    """The embedded default: synthetic fluorescence fields plus tiles of bundled scikit-image images."""

    n_stacks: int = Field(16, ge=1)
    size: tuple[int, int] = (128, 128)
    planes: int = Field(7, ge=3)
    max_radius: float = Field(6.0, gt=0)
    psf: Literal["disk", "gaussian"] = "disk"
    diffraction_sigma: float = Field(0.7, ge=0)
    photons: float = Field(1500.0, gt=0)
    skimage_tiles: int = Field(2, ge=0)
    seed: int = 0


class BlurDataConfig(Strict):
    root: str | None = None  # null: the embedded synthetic stacks (written under <output_dir>/data/)
    layout: Literal["auto", "tiff", "sample_folders", "plane_folders"] = "auto"
    planes: list[int] | None = None  # plane indices to use, in-focus first (BBBC006: [16, 14, ..., 0])
    positions: list[float] | None = None  # blur position t of each used plane (null: evenly spaced 0..1)
    patch_size: int = Field(64, ge=8)
    patches_per_stack: int = Field(32, ge=1)
    val_patches: int = Field(4, ge=1)  # fixed validation patches per validation stack
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    split_seed: int = 0
    # fnmatch patterns of stack names kept out of training and validation (split by image, never by
    # tile): they join the test split. The CPU recipe holds out every real scikit-image tile.
    holdout: list[str] = []
    intensity: Literal["stack", "dataset", "dtype"] = "stack"
    flips: bool = True
    num_workers: int = Field(0, ge=0)
    cache: bool = True
    synthetic: BlurSyntheticConfig = BlurSyntheticConfig()

    @field_validator("split")
    @classmethod
    def _split(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(f < 0 for f in v) or abs(sum(v) - 1.0) > 1e-6 or v[0] <= 0:
            raise ValueError(f"train/val/test fractions must be >= 0 (train > 0) and sum to 1, got {list(v)}")
        return v

    @field_validator("planes")
    @classmethod
    def _planes(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (len(v) < 3 or len(set(v)) != len(v) or min(v) < 0):
            raise ValueError(f"expected at least 3 distinct plane indices >= 0 (in-focus first), got {v}")
        return v

    @field_validator("positions")
    @classmethod
    def _positions(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return v
        if len(v) < 3 or abs(v[0]) > 1e-9 or abs(v[-1] - 1) > 1e-9 or any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError(f"expected >= 3 increasing positions from 0 (in focus) to 1 (most blurred), got {v}")
        return v


class BlurModelConfig(Strict):
    in_channels: int = Field(1, ge=1)  # 1: RGB stacks are processed channel by channel
    widths: list[int] = list(PAPER_WIDTHS)
    norm: Literal["batch", "group", "none"] = "batch"
    # up-sampling of the decoder: resize-convolution (no checkerboard), pixel shuffle, or the original's
    # transposed convolutions (files of earlier releases)
    decoder: Literal["resize", "subpixel", "transpose"] = "resize"

    @field_validator("widths")
    @classmethod
    def _widths(cls, v: list[int]) -> list[int]:
        if not v or any(w < 1 for w in v):
            raise ValueError(f"expected one or more positive channel counts, got {v}")
        return v


class BlurLossConfig(Strict):
    reconstruction: float = Field(1.0, ge=0)
    explicit: float = Field(1.0, ge=0)  # latent-space linearity
    implicit: float = Field(1.0, ge=0)  # decoded interpolations match the real planes
    triplets: Literal["endpoints", "midpoints", "all"] = "endpoints"


class BlurTrainConfig(TrainBase):
    steps: int = Field(300, ge=1)
    batch_size: int = Field(8, ge=1)  # stacks per step (each with all its planes)
    weight_decay: float = Field(0.0, ge=0)
    val_every: int = Field(50, ge=1)
    ckpt_every: int = Field(50, ge=1)


class BlurEvaluateConfig(Strict):
    split: Literal["train", "val", "test"] = "test"
    max_stacks: int | None = Field(None, ge=1)
    crop: int | None = Field(None, ge=16)  # centre crop of each test image (null: whole image, padded)
    levels: list[float] = [-0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5]  # the figure of synthesis across t
    figure_stacks: int = Field(2, ge=0)


class NucleiDataConfig(Strict):
    """The fields of the downstream experiment (``experiment: segment``): synthetic fluorescence fields
    with their ground-truth label maps (0 background, 1 cytoplasm, 2 nucleus; known from how the fields
    are drawn), seen through the microscope of ``data.synthetic`` (optics and camera). Training and
    validation fields are in focus (plane 0); test fields are scored at every plane of ``test_planes``."""

    n_train: int = Field(24, ge=1)
    n_val: int = Field(4, ge=1)
    n_test: int = Field(12, ge=1)
    size: tuple[int, int] = (128, 128)
    crop: int = Field(64, ge=8)  # training crop side
    seed: int = 1000  # other fields than the autoencoder's (data.synthetic.seed)
    test_planes: list[int] | None = None  # plane indices of data.synthetic (0 = in focus); null: all

    @field_validator("test_planes")
    @classmethod
    def _test_planes(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or min(v) < 0 or len(set(v)) != len(v)):
            raise ValueError(f"expected distinct plane indices >= 0, got {v}")
        return v


class SegmentModelConfig(Strict):
    """A MONAI U-Net (``monai_unet`` of :func:`medrobust.models.factory.create_segmentation_model`)."""

    channels: list[int] = [16, 32, 64]
    strides: list[int] = [2, 2]
    num_res_units: int = Field(1, ge=0)


class SegmentConfig(Strict):
    """``segment:`` — the downstream nucleus/cytoplasm segmentation that shows blur augmentation at work."""

    data: NucleiDataConfig = NucleiDataConfig()
    model: SegmentModelConfig = SegmentModelConfig()

    @model_validator(mode="after")
    def _sizes(self) -> SegmentConfig:
        if len(self.model.strides) != len(self.model.channels) - 1:
            raise ValueError(f"segment.model.strides: expected {len(self.model.channels) - 1} strides for "
                             f"{len(self.model.channels)} channels, got {len(self.model.strides)}")
        factor = 1
        for st in self.model.strides:
            factor *= st
        for what, side in (("segment.data.crop", self.data.crop), ("segment.data.size", self.data.size[0]),
                           ("segment.data.size", self.data.size[1])):
            if side % factor:
                raise ValueError(f"{what}: {side} must be divisible by the U-Net's total stride {factor}")
        if self.data.crop > min(self.data.size):
            raise ValueError(f"segment.data.crop {self.data.crop} is larger than the fields {list(self.data.size)}")
        return self


class BlurConfig(RunBase):
    """``task: microscopy`` config (``configs/microscopy/*.yaml``); earlier releases named the task
    ``microscopy_blur``."""

    legacy_names: ClassVar[dict[str, dict[str, Any]]] = {"microscopy_blur": {}}

    name: str = "microscopy_blur"
    task: Literal["microscopy"] = "microscopy"
    # blur: train the linear-latent autoencoder (data, model, loss); segment: the downstream segmentation
    # of `segment:` fields, with the `augment:` cores (e.g. latent_blur from a trained autoencoder)
    experiment: Literal["blur", "segment"] = "blur"
    augment: list[dict[str, Any]] = []
    segment: SegmentConfig = SegmentConfig()
    data: BlurDataConfig = BlurDataConfig()
    model: BlurModelConfig = BlurModelConfig()
    loss: BlurLossConfig = BlurLossConfig()
    train: BlurTrainConfig = BlurTrainConfig()
    evaluate: BlurEvaluateConfig = BlurEvaluateConfig()

    @field_validator("augment")
    @classmethod
    def _augment_entries(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # the registry checks names and keyword arguments (reads no files)
        from ...augment import validate

        for i, entry in enumerate(v):
            validate(entry, where=f"augment[{i}]")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> BlurConfig:
        if self.experiment == "blur" and self.augment:
            raise ValueError("augment: only used with experiment: segment (the autoencoder trains on real focal stacks)")
        if self.experiment == "segment":
            if self.data.root is not None:
                raise ValueError("data.root: experiment: segment runs on the embedded fields only (data.root: null); "
                                 "their ground truth comes from how they are drawn")
            planes = self.segment.data.test_planes
            if planes is not None and max(planes) >= self.data.synthetic.planes:
                raise ValueError(f"segment.data.test_planes {planes}: the microscope (data.synthetic) has "
                                 f"{self.data.synthetic.planes} planes")
        factor = 2 ** len(self.model.widths)
        if self.data.patch_size % factor:
            raise ValueError(f"data.patch_size {self.data.patch_size} must be divisible by 2**len(model.widths) = {factor}")
        n = len(self.data.planes) if self.data.planes is not None else (
            self.data.synthetic.planes if self.data.root is None else None)
        if self.data.positions is not None and n is not None and len(self.data.positions) != n:
            raise ValueError(f"data.positions has {len(self.data.positions)} entries for {n} planes")
        if self.data.root is None and self.data.planes is not None and max(self.data.planes) >= self.data.synthetic.planes:
            raise ValueError(f"data.planes {self.data.planes}: the embedded stacks have {self.data.synthetic.planes} planes")
        return self


