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
from typing import Any

import numpy as np
import torch

from ...data.collate import collate_image_label
from ...losses.segmentation import CrossEntropyIgnore
from ...train.steps import SegmentationAdapter
from ..base import build_augment, check_data_root
from .config import DomainConfig, DrivingConfig

__all__ = [
    "DrivingConfig",
    "DomainConfig",
    "DrivingData",
    "DrivingSegmenter",
    "CrossEntropyIgnore",
    "prepare_data",
    "build_model",
    "train_driving",
]

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


def build_model(cfg: DrivingConfig, num_classes: int | None = None) -> DrivingSegmenter:
    """The configured network (random init unless ``model.weights``/``model.encoder_weights`` name local files)."""
    from ...data.driving import NUM_CLASSES
    from ...models.factory import create_segmentation_model

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
    from ...data.synthetic.driving import write_default_driving

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


def prepare_data(cfg: DrivingConfig) -> DrivingData:
    """Resolve roots (writing the embedded default if needed) and list the source splits and targets."""
    from ...data.driving import default_split, list_samples

    d = cfg.data
    synthetic = _ensure_synthetic(cfg) if d.root is None else {}
    root = check_data_root(d.root, expected=f"a {d.source} folder") if d.root is not None else synthetic["source"]
    train = list_samples(root, d.source, d.train_split or default_split(d.source, "train"))
    val = list_samples(root, d.source, d.val_split or default_split(d.source, "val"))
    targets: dict[str, tuple[DomainConfig, Path]] = {}
    for t in d.targets:
        troot = Path(t.root) if t.root is not None else synthetic[t.dataset]
        targets[t.name] = (t, troot)
    return DrivingData(d.source, root, train, val, targets)


def _val_fn(cfg: DrivingConfig, val_set: Any, device: torch.device):
    """mIoU (%-free, in [0, 1]) on the source validation set from one dataset-wide confusion matrix."""
    from ...evaluate.inference import predict
    from ...evaluate.metrics import confusion_matrix, iou_from_confusion

    window = tuple(cfg.evaluate.window or cfg.data.crop_size)

    def validate(model: torch.nn.Module) -> dict[str, float]:
        from ...data.driving import IGNORE_INDEX, NUM_CLASSES

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


def train_driving(cfg: DrivingConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True,
                  stop_after: int | None = None):
    """Train on the source domain as configured.

    Writes ``runs/<name>/{config.yaml, metrics.jsonl, last.pt, best.pt}`` (best = highest source
    validation mIoU) and returns the :class:`~medrobust.train.loop.FitResult`.
    """
    from ...data.driving import DrivingDataset, driving_transforms
    from ...train.loop import dist_env, fit_config, prepare_run_dir, resolve_device

    env = dist_env()
    device = resolve_device(cfg.train.device, env)
    prepare_run_dir(cfg, resume=resume, overwrite=overwrite, env=env)
    data = prepare_data(cfg)
    d = cfg.data
    train_tf = driving_transforms(train=True, crop_size=tuple(d.crop_size), scale=tuple(d.scale), hflip=d.hflip,
                                  resize=tuple(d.resize) if d.resize else None)
    val_tf = driving_transforms(train=False, resize=tuple(d.eval_resize) if d.eval_resize else None)
    train_set = DrivingDataset(data.root, transform=train_tf, dataset=d.source, samples=data.train)
    val_set = DrivingDataset(data.root, transform=val_tf, dataset=d.source, samples=data.val)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg)
    augment = build_augment(cfg.augment)
    adapter = SegmentationAdapter(augment, consistency=cfg.consistency, criterion=CrossEntropyIgnore())
    return fit_config(cfg, model=model, train_set=train_set, collate=collate_image_label, step_fn=adapter.step,
                      validate_fn=_val_fn(cfg, val_set, device), device=device, metric_name="val_miou",
                      resume=resume, progress=progress, stop_after=stop_after)
