"""Cardiac MRI (ACDC) task: data preparation, model, training and validation on the shared loop.

Data protocol: patients of ``ROOT/training`` are split patient-level (stratified by pathology group,
``data.split`` fractions, ``data.split_seed``) into train/val/test; when ``ROOT/testing`` exists it is
the test set and the split's test share is unused. With ``data.root: null`` an embedded synthetic
cohort is written in the ACDC layout under ``<output_dir>/data/`` (once) and read by the same reader,
together with a shifted-domain cohort for the generalisation test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...data.collate import collate_image_label
from ...models.factory import create_segmentation_model
from ...train.steps import SegmentationAdapter
from ..base import build_augment, check_data_root
from .config import CardiacConfig

__all__ = ["CardiacData", "prepare_data", "build_model", "train_cardiac", "NUM_CLASSES", "CLASS_NAMES"]

NUM_CLASSES = 4
CLASS_NAMES = ("RV", "Myo", "LV")


@dataclass
class CardiacData:
    root: Path
    shifted_root: Path | None
    train: list[Any]
    val: list[Any]
    test: list[Any]
    shifted: list[Any]


def synthetic_roots(cfg: CardiacConfig) -> tuple[Path, Path]:
    """Where the embedded cohorts live (written on first use, keyed by their settings)."""
    s = cfg.data.synthetic
    tag = f"n{s.n_train}-{s.n_test}_s{s.size[0]}x{s.size[1]}x{s.n_slices}_seed{s.seed}"
    base = Path(cfg.output_dir) / "data"
    return base / f"acdc_synthetic_{tag}", base / f"acdc_shifted_{tag}"


def _ensure_synthetic(root: Path, domain: str, cfg: CardiacConfig, seed_offset: int) -> Path:
    from ...data.synthetic import write_synthetic_acdc

    marker = root / ".complete"
    if not marker.exists():
        s = cfg.data.synthetic
        n_train = s.n_train if domain == "bssfp" else 1
        write_synthetic_acdc(root, n_train=n_train, n_test=s.n_test, domain=domain, size=tuple(s.size),
                             n_slices=s.n_slices, seed=s.seed + seed_offset)
        marker.write_text("ok\n")
    return root


def prepare_data(cfg: CardiacConfig) -> CardiacData:
    """Resolve data roots (writing the synthetic default if needed) and the patient splits."""
    from ...data.acdc import load_cohort, split_patients

    if cfg.data.root is None:
        root, shifted_default = synthetic_roots(cfg)
        _ensure_synthetic(root, "bssfp", cfg, 0)
        shifted_root: Path | None = _ensure_synthetic(shifted_default, "shifted", cfg, 1000)
    else:
        root = check_data_root(cfg.data.root, expected="an ACDC folder (training/, testing/ of patientNNN/)")
        shifted_root = None
    if cfg.data.shifted_root is not None:
        shifted_root = check_data_root(cfg.data.shifted_root, key="data.shifted_root", expected="an ACDC-layout folder")
    training = load_cohort(root, "training", lazy=True)
    has_testing = (root / "testing").is_dir() and any((root / "testing").iterdir())
    split = split_patients(training, cfg.data.split, seed=cfg.data.split_seed)
    by_id = {p.id: p for p in training}
    train = [by_id[i] for i in split["train"]]
    val = [by_id[i] for i in split["val"]] or train[:1]
    test = load_cohort(root, "testing", lazy=True) if has_testing else [by_id[i] for i in split["test"]]
    shifted: list[Any] = []
    if shifted_root is not None:
        sub = "testing" if (shifted_root / "testing").is_dir() else "training"
        shifted = load_cohort(shifted_root, sub, lazy=True)
    if not train:
        raise ValueError(f"data.root {root}: no training patients after the split {cfg.data.split}")
    return CardiacData(root, shifted_root, train, val, test, shifted)


def build_model(cfg: CardiacConfig, num_classes: int | None = None) -> torch.nn.Module:
    """The configured network (background, RV, Myo, LV: ``num_classes`` must be None or 4); with ``afa.dual_bn`` its batch norms get auxiliary statistics."""
    from ...train.afa import convert_dual_bn

    if num_classes not in (None, NUM_CLASSES):
        raise ValueError(f"cardiac models have {NUM_CLASSES} classes, got num_classes={num_classes}")
    m = cfg.model
    model = create_segmentation_model(
        m.name, in_channels=1, num_classes=NUM_CLASSES, spatial_dims=2 if cfg.data.mode == "2d" else 3,
        channels=m.channels, strides=m.strides, num_res_units=m.num_res_units, dropout=m.dropout,
        encoder_name=m.encoder_name, weights=m.weights,
    )
    if cfg.afa is not None and cfg.afa.dual_bn:
        convert_dual_bn(model)
    return model


def _val_fn(cfg: CardiacConfig, val_set: Any, device: torch.device):
    """Global (dataset-wide) Dice per structure on the validation slices/volumes."""

    def validate(model: torch.nn.Module) -> dict[str, float]:
        inter = np.zeros(NUM_CLASSES)
        total = np.zeros(NUM_CLASSES)
        bs = cfg.evaluate.batch_size
        for start in range(0, len(val_set), bs):
            items = [val_set[i] for i in range(start, min(len(val_set), start + bs))]
            batch = collate_image_label(items)
            pred = model(batch["image"].to(device)).argmax(1).cpu()
            lab = batch["label"][:, 0]
            for c in range(1, NUM_CLASSES):
                inter[c] += float(((pred == c) & (lab == c)).sum())
                total[c] += float((pred == c).sum() + (lab == c).sum())
        dice = {name: (2 * inter[c] / total[c] if total[c] else 1.0) for c, name in enumerate(CLASS_NAMES, start=1)}
        return {"val_dice": float(np.mean(list(dice.values()))), **{f"val_dice_{k}": v for k, v in dice.items()}}

    return validate


def train_cardiac(cfg: CardiacConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True,
                  stop_after: int | None = None):
    """Train a segmentation model on ACDC (or the embedded cohort) as configured.

    Writes ``runs/<name>/{config.yaml, metrics.jsonl, last.pt, best.pt}``; returns the
    :class:`~medrobust.train.loop.FitResult`.
    """
    from ...data.acdc_datasets import (
        ACDCSliceDataset,
        ACDCVolumeDataset,
        acdc_transforms,
    )
    from ...train.loop import dist_env, fit_config, prepare_run_dir, resolve_device

    if cfg.tta is not None:
        raise ValueError(f"{cfg.name}: the config has a tta: section (a DynTTA recipe); train it with `medrobust tta "
                         "train --model RUN --config cardiac/dyntta`")
    env = dist_env()
    device = resolve_device(cfg.train.device, env)
    prepare_run_dir(cfg, resume=resume, overwrite=overwrite, env=env)
    data = prepare_data(cfg)
    ds_cls = ACDCSliceDataset if cfg.data.mode == "2d" else ACDCVolumeDataset
    size = tuple(cfg.data.spatial_size)
    train_set = ds_cls(data.train, transform=acdc_transforms(cfg.data.mode, size, cfg.data.pixel_spacing, train=True))
    val_set = ds_cls(data.val, transform=acdc_transforms(cfg.data.mode, size, cfg.data.pixel_spacing, train=False))
    torch.manual_seed(cfg.seed)
    model = build_model(cfg)
    augment = build_augment(cfg.augment)
    adapter: Any = SegmentationAdapter(augment, consistency=cfg.consistency, ce_weight=cfg.train.ce_weight,
                                       dice_weight=cfg.train.dice_weight, slaug_fusion=cfg.train.slaug_fusion)
    from ...train.afa import wrap_afa

    adapter = wrap_afa(adapter, cfg.afa)
    return fit_config(cfg, model=model, train_set=train_set, collate=collate_image_label, step_fn=adapter.step,
                      validate_fn=_val_fn(cfg, val_set, device), device=device, metric_name="val_dice",
                      resume=resume, progress=progress, stop_after=stop_after)
