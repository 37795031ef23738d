"""Driving-scene semantic segmentation across domains (GTA5/Cityscapes → BDD100K, Mapillary, SYNTHIA).

The task trains a segmentation-models-pytorch network (DeepLabV3+ or U-Net, ResNet encoder,
never downloaded weights) on one source domain and evaluates it on other domains and on corrupted
source images (:mod:`medrobust.evaluate.driving`). It runs on the shared loop
(:func:`medrobust.train.loop.fit`): CPU-side albumentations (random scale, crop, flip) in DataLoader
workers, the configured cores (RandConv, GIN, ...) applied on the device to images only, optional
KL/JSD consistency over K views, cross-entropy with ``ignore_index=255``, exact ``--resume``, DDP.

Images enter the network in [0, 1]; ImageNet mean/std normalisation happens inside the model
(:class:`DrivingSegmenter`), so the cores always see [0, 1] images.

With ``data.root: null`` the embedded default is written once under
``<output_dir>/data/driving_synthetic_<settings>/`` (:func:`~medrobust.data.synthetic.driving.write_default_driving`):
the source domain in the layout of ``data.source`` and every target with ``root: null`` in its own
layout, all read back with the real readers.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator

from ..augment import build
from ..config import EvaluateBase, ExperimentBase, Strict, TrainBase, register_task_config, save_config
from .segmentation import SegmentationAdapter

__all__ = [
    "DrivingConfig",
    "DomainConfig",
    "DrivingData",
    "DrivingSegmenter",
    "CrossEntropyIgnore",
    "prepare_driving_data",
    "build_model",
    "load_run",
    "train_driving",
    "bench_driving",
]

DatasetName = Literal["cityscapes", "gta5", "bdd100k", "mapillary", "synthia"]


# ------------------------------------------------------------------------------------------- config
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


register_task_config("driving", DrivingConfig)


# --------------------------------------------------------------------------------------------- model
class DrivingSegmenter(torch.nn.Module):
    """An smp network behind ImageNet normalisation: inputs ``(N, 3, H, W)`` in [0, 1], logits
    ``(N, 19, H, W)``."""

    def __init__(self, net: torch.nn.Module, normalize: bool = True) -> None:
        super().__init__()
        self.net = net
        self.normalize = bool(normalize)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        return self.net(x)


def _load_encoder_weights(encoder: torch.nn.Module, path: str) -> None:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"model.encoder_weights: {p} does not exist")
    state = torch.load(p, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    state = {k.removeprefix("module.").removeprefix("encoder."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"model.encoder_weights: {p} does not match the encoder: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")


def build_model(cfg: DrivingConfig) -> DrivingSegmenter:
    """The configured network (random init unless ``model.weights``/``model.encoder_weights`` name local files)."""
    from ..data.driving import NUM_CLASSES
    from ..models.factory import create_segmentation_model

    m = cfg.model
    net = create_segmentation_model(m.name, in_channels=3, num_classes=NUM_CLASSES, encoder_name=m.encoder_name)
    if m.encoder_weights:
        _load_encoder_weights(net.encoder, m.encoder_weights)  # type: ignore[arg-type]
    model = DrivingSegmenter(net, normalize=m.normalize)
    if m.weights:
        p = Path(m.weights)
        if not p.is_file():
            raise FileNotFoundError(f"model.weights: {p} does not exist")
        state = torch.load(p, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            state = state["model"]
        target: torch.nn.Module = model if any(k.startswith("net.") for k in state) else net
        try:
            target.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"model.weights: {p} does not match the model: {err}") from None
    return model


class CrossEntropyIgnore(torch.nn.Module):
    """Pixel-wise cross-entropy on logits ``(N, K, H, W)`` and labels ``(N, 1, H, W)``, ignoring 255.

    Averaged over the labelled pixels of the batch; a batch with none gives 0 (not NaN).
    """

    def __init__(self, ignore_index: int = 255) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        target = label[:, 0] if label.ndim == logits.ndim else label
        target = target.long()
        total = torch.nn.functional.cross_entropy(logits.float(), target, ignore_index=self.ignore_index, reduction="sum")
        count = (target != self.ignore_index).sum().clamp_min(1)
        return total / count


# ---------------------------------------------------------------------------------------------- data
@dataclass
class DrivingData:
    source: str
    root: Path
    train: list[Any]  # Samples
    val: list[Any]
    targets: dict[str, tuple[DomainConfig, Path]]


def synthetic_base(cfg: DrivingConfig) -> Path:
    s = cfg.data.synthetic
    embedded = sorted({t.dataset for t in cfg.data.targets if t.root is None})
    tag = (f"{cfg.data.source}_n{s.n_train}-{s.n_val}-{s.n_target}_s{s.size[0]}x{s.size[1]}_seed{s.seed}"
           f"_{'-'.join(embedded) or 'none'}")
    return Path(cfg.output_dir) / "data" / f"driving_synthetic_{tag}"


def _ensure_synthetic(cfg: DrivingConfig) -> dict[str, Path]:
    """Write the embedded default once (into a temporary folder renamed into place)."""
    from ..data.synthetic.driving import write_default_driving

    base = synthetic_base(cfg)
    s = cfg.data.synthetic
    targets = tuple(sorted({t.dataset for t in cfg.data.targets if t.root is None}))
    roots = {"source": base / f"source_{cfg.data.source}", **{t: base / f"target_{t}" for t in targets}}
    if (base / ".complete").exists():
        return roots
    base.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{base.name}.", dir=base.parent))
    try:
        write_default_driving(tmp, n_train=s.n_train, n_val=s.n_val, n_target=s.n_target, size=tuple(s.size),
                              seed=s.seed, source=cfg.data.source, targets=targets)
        (tmp / ".complete").write_text("ok\n")
        try:
            os.replace(tmp, base)
        except OSError:  # another process finished first
            if not (base / ".complete").exists():
                shutil.rmtree(base, ignore_errors=True)
                os.replace(tmp, base)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return roots


def prepare_driving_data(cfg: DrivingConfig) -> DrivingData:
    """Resolve roots (writing the embedded default if needed) and list the source splits and targets."""
    from ..data.driving import default_split, list_samples

    d = cfg.data
    synthetic = _ensure_synthetic(cfg) if d.root is None else {}
    root = Path(d.root) if d.root is not None else synthetic["source"]
    train = list_samples(root, d.source, d.train_split or default_split(d.source, "train"))
    val = list_samples(root, d.source, d.val_split or default_split(d.source, "val"))
    targets: dict[str, tuple[DomainConfig, Path]] = {}
    for t in d.targets:
        troot = Path(t.root) if t.root is not None else synthetic[t.dataset]
        targets[t.name] = (t, troot)
    return DrivingData(d.source, root, train, val, targets)


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"image": torch.stack([it["image"] for it in items]), "label": torch.stack([it["label"] for it in items])}


def _val_fn(cfg: DrivingConfig, val_set: Any, device: torch.device):
    """mIoU (%-free, in [0, 1]) on the source validation set from one dataset-wide confusion matrix."""
    from ..evaluate.driving import predict
    from ..evaluate.metrics import confusion_matrix, iou_from_confusion

    window = tuple(cfg.evaluate.window or cfg.data.crop_size)

    def validate(model: torch.nn.Module) -> dict[str, float]:
        from ..data.driving import IGNORE_INDEX, NUM_CLASSES

        cm = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
        for i in range(len(val_set)):
            item = val_set[i]
            pred = predict(model, item["image"][None].to(device), window=window, overlap=cfg.evaluate.overlap,
                           sw_batch_size=cfg.evaluate.sw_batch_size, out_size=tuple(item["label"].shape[-2:]))
            cm += confusion_matrix(pred[0].cpu().numpy(), item["label"][0].numpy(), NUM_CLASSES, IGNORE_INDEX)
        _, miou = iou_from_confusion(cm)
        acc = float(np.trace(cm) / max(cm.sum(), 1))
        return {"val_miou": float(miou) if np.isfinite(miou) else 0.0, "val_pixel_acc": acc}

    return validate


def train_driving(cfg: DrivingConfig, *, resume: bool = False, progress: bool = True, stop_after: int | None = None):
    """Train on the source domain as configured.

    Writes ``runs/<name>/{config.yaml, metrics.jsonl, last.pt, best.pt}`` (best = highest source
    validation mIoU) and returns the :class:`~medrobust.train.loop.FitResult`.
    """
    from ..data.driving import DrivingDataset, driving_transforms
    from ..train.loop import dist_env, fit_config, resolve_device

    env = dist_env()
    device = resolve_device(cfg.train.device, env)
    data = prepare_driving_data(cfg)
    run_dir = cfg.run_dir
    if env.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
    d = cfg.data
    train_tf = driving_transforms(train=True, crop_size=tuple(d.crop_size), scale=tuple(d.scale), hflip=d.hflip,
                                  resize=tuple(d.resize) if d.resize else None)
    val_tf = driving_transforms(train=False, resize=tuple(d.eval_resize) if d.eval_resize else None)
    train_set = DrivingDataset(data.root, transform=train_tf, dataset=d.source, samples=data.train)
    val_set = DrivingDataset(data.root, transform=val_tf, dataset=d.source, samples=data.val)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg)
    augment = build(cfg.augment) if cfg.augment else None
    adapter = SegmentationAdapter(augment, consistency=cfg.consistency, criterion=CrossEntropyIgnore())
    return fit_config(cfg, model=model, train_set=train_set, collate=_collate, step_fn=adapter.step,
                      validate_fn=_val_fn(cfg, val_set, device), device=device, metric_name="val_miou",
                      resume=resume, progress=progress, stop_after=stop_after)


def load_run(run_dir: str | Path, device: torch.device | str = "cpu", checkpoint: str = "best.pt") -> tuple[DrivingConfig, torch.nn.Module]:
    """``run_dir/config.yaml`` and the model with the weights of ``run_dir/<checkpoint>``, in eval mode."""
    from ..config import load_config
    from ..models.factory import load_weights
    from ..train.loop import run_paths

    cfg_path, ckpt_path = run_paths(run_dir, checkpoint)
    cfg = load_config(cfg_path, model=DrivingConfig)
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"weights": None, "encoder_weights": None})})
    model = build_model(cfg)
    load_weights(model, ckpt_path, what="checkpoint")
    return cfg, model.to(device).eval()


# --------------------------------------------------------------------------------------------- bench
def bench_driving(device: str = "cpu", repeats: int = 3, quick: bool = False) -> list[dict[str, Any]]:
    """Training throughput with and without augmentation, and inference throughput.

    Training rows: one optimiser step (forward, CE with ignore, backward, AdamW) of DeepLabV3+ on a
    batch of 512×512 crops (ResNet-50 and 8 images on CUDA; ResNet-18 and 2 images on CPU; ``quick``:
    ResNet-18, 2×128×128), the augmentation applied on the device inside the step. ``overhead`` is the
    step time relative to no augmentation; ``aug_share`` is the time of the augmentation call alone
    divided by the step time (also printed as a "core alone" row). Inference rows: sliding-window prediction (window 512×512, overlap
    0.25) of a 1024×2048 image on CUDA (512×1024 on CPU, 128×256 with ``quick``), and one whole-image
    forward of the same image.
    """
    from ..augment import GIN, RandConv
    from ..bench import timeit
    from ..config import ConsistencyConfig
    from ..data.driving import NUM_CLASSES
    from ..evaluate.driving import predict
    from ..models.factory import create_segmentation_model

    dev = torch.device(device)
    cuda = dev.type == "cuda"
    encoder = "resnet50" if cuda and not quick else "resnet18"
    n, size = (2, 128) if quick else ((8, 512) if cuda else (2, 512))
    gen = torch.Generator(device="cpu").manual_seed(0)
    image = torch.rand(n, 3, size, size, device=dev)
    label = torch.randint(0, NUM_CLASSES, (n, 1, size, size), device=dev)
    label[:, :, :8] = 255
    batch = {"image": image, "label": label}
    crit = CrossEntropyIgnore()
    cores: dict[str, Any] = {"no augmentation": None, "RandConv (1 view)": RandConv(kernel_sizes=(1, 3, 5, 7), mixing=True),
                             "GIN (1 view)": GIN()}
    rows: list[dict[str, Any]] = []
    base = None
    setups = [(k, SegmentationAdapter(c, criterion=crit), c) for k, c in cores.items()]
    setups.append(("RandConv + KL, 2 views", SegmentationAdapter(cores["RandConv (1 view)"],
                                                                consistency=ConsistencyConfig(views=2), criterion=crit),
                   cores["RandConv (1 view)"]))
    for label_, adapter, core in setups:
        torch.manual_seed(0)
        model = DrivingSegmenter(create_segmentation_model("smp_deeplabv3plus", in_channels=3, num_classes=NUM_CLASSES,
                                                           encoder_name=encoder)).to(dev).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step() -> None:
            with torch.autocast(device_type=dev.type, enabled=cuda):
                loss, _ = adapter.step(model, batch, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        t = timeit(step, dev, repeats=repeats, warmup=1)
        row: dict[str, Any] = {"input": f"train DLv3+ {encoder} {n}x3x{size}x{size}", "method": label_, "seconds": t,
                               "steps_per_s": 1 / t, "images_per_s": n / t}
        if base is None:
            base = t
        else:
            row["overhead"] = t / base - 1
        rows.append(row)
        if core is not None and "2 views" not in label_:
            # the core alone on the same batch: its share of the augmented step
            t_aug = timeit(lambda: core(image, gen), dev, repeats=max(repeats, 5), warmup=1)
            row["aug_share"] = t_aug / t
            rows.append({"input": row["input"], "method": f"{label_.split(' (')[0]} core alone (overhead = share of step)",
                         "seconds": t_aug, "images_per_s": n / t_aug, "overhead": t_aug / t})
        del model, opt
    h, w = (128, 256) if quick else ((1024, 2048) if cuda else (512, 1024))
    win = (128, 128) if quick else (512, 512)
    torch.manual_seed(0)
    model = DrivingSegmenter(create_segmentation_model("smp_deeplabv3plus", in_channels=3, num_classes=NUM_CLASSES,
                                                       encoder_name=encoder)).to(dev).eval()
    x = torch.rand(1, 3, h, w, device=dev)
    with torch.no_grad():
        for method, fn in (
            (f"sliding window {win[0]}x{win[1]}, overlap 0.25",
             lambda: predict(model, x, window=win, overlap=0.25, sw_batch_size=4)),
            ("whole image", lambda: model(x).argmax(1)),
        ):
            with torch.autocast(device_type=dev.type, enabled=cuda):
                t = timeit(fn, dev, repeats=repeats, warmup=1)
            rows.append({"input": f"infer DLv3+ {encoder} 1x3x{h}x{w}", "method": method, "seconds": t, "images_per_s": 1 / t})
    return rows
