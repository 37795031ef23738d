"""Image classification tasks (CIFAR-10/100, PACS-style domain folders, the embedded digits) on the
shared loop.

Datasets (``data.dataset``):

* ``cifar10`` / ``cifar100``: the python pickle batches under ``data.root``; ``data.val_fraction``
  of the training set (stratified, seeded) is held out for validation, ``test_batch``/``test`` is the
  clean test set. Corrupted test sets: on the fly with the natural-image suite, or CIFAR-10-C files.
* ``pacs`` (any ``ROOT/<domain>/<class>/<image>`` set): leave-one-domain-out. ``data.target_domains``
  are held out and tested whole (per-domain accuracy); the sources are split into
  train/val/in-domain test (``val_fraction``, ``test_fraction``).
* ``digits``: single-source domain generalisation. With ``data.root: null`` the embedded digits
  (:mod:`medrobust.data.synthetic.digits`) are written under ``<output_dir>/data/`` in the same
  domain-folder layout and read back with the same reader; ``source`` is the training domain and
  the four styled domains are the targets.

Training (:func:`train_classification`): cross-entropy on view 1 plus, with ``consistency``, a
KL-to-mean/JSD term over K views, every view drawn **from the clean input** (``clean_first_view``:
view 1 is the clean image, AugMix style). The configured cores run on the device, after the batch
arrives there; CPU-side transforms are the standard pad-crop/flip (``data.train_transform``).
Validation accuracy on the held-out source split picks ``best.pt``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...data.collate import collate_image_label
from ...evaluate.inference import predict_dataset
from ...train.steps import ClassificationAdapter
from ..base import build_augment, check_data_root
from .config import DATASETS, ClassificationConfig

__all__ = [
    "ClassificationConfig",
    "ClassificationData",
    "ClassificationAdapter",
    "prepare_data",
    "build_model",
    "train_classification",
    "DATASETS",
    "digits_root",
]



# -------------------------------------------------------------------------------------------- data
@dataclass
class ClassificationData:
    """Datasets of one task: ``train``/``val``/``test`` (clean, in-domain) and ``domains`` (targets)."""

    classes: list[str]
    train: Any
    val: Any
    test: Any
    domains: dict[str, Any] = field(default_factory=dict)
    root: Path | None = None
    image_size: int = 32

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def digits_root(cfg: ClassificationConfig) -> Path:
    """Where the embedded digits live (keyed by their settings)."""
    s = cfg.data.synthetic
    tag = hashlib.sha1(json.dumps(s.model_dump(), sort_keys=True).encode()).hexdigest()[:8]
    return Path(cfg.output_dir) / "data" / f"digits_synthetic_s{s.size}_seed{s.seed}_{tag}"


def _train_transform(cfg: ClassificationConfig):
    from ...data.cifar import random_crop_flip

    kind, pad = cfg.data.train_transform, cfg.data.crop_padding
    if kind == "none":
        return None
    crop = kind == "crop_flip"

    def transform(x: torch.Tensor) -> torch.Tensor:
        return random_crop_flip(x, pad=pad, crop=crop, flip=True)

    return transform


def _stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(keep, held_out)`` with ``fraction`` of every class held out (seeded)."""
    rng = np.random.default_rng([seed, 7])
    held: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = int(round(len(idx) * fraction))
        if fraction > 0 and k == 0 and len(idx) > 1:
            k = 1
        held.append(rng.permutation(idx)[:k])
    out = np.sort(np.concatenate(held)) if held else np.array([], dtype=np.int64)
    keep = np.setdiff1d(np.arange(len(labels)), out)
    return keep, out


def _cap(indices: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    if cap is None or len(indices) <= cap:
        return indices
    return np.sort(np.random.default_rng([seed, 11]).permutation(indices)[:cap])


def _prepare_cifar(cfg: ClassificationConfig) -> ClassificationData:
    from ...data.cifar import ImageArrayDataset, read_cifar

    d = cfg.data
    assert d.root is not None
    check_data_root(d.root, expected=f"a folder with the {d.dataset} python release")
    if d.image_size != 32:
        raise ValueError(f"data.image_size: CIFAR images are 32x32, got {d.image_size}")
    train = read_cifar(d.root, d.dataset, "train", d.cifar_label)
    test = read_cifar(d.root, d.dataset, "test", d.cifar_label)
    keep, held = _stratified_holdout(train.labels, d.val_fraction, d.split_seed)
    keep = _cap(keep, d.max_train, d.split_seed)
    val_idx = held if len(held) else keep[: min(len(keep), 1000)]
    return ClassificationData(
        classes=train.classes,
        train=ImageArrayDataset(train.images[keep], train.labels[keep], transform=_train_transform(cfg)),
        val=ImageArrayDataset(train.images[val_idx], train.labels[val_idx]),
        test=ImageArrayDataset(test.images, test.labels),
        root=Path(d.root),
        image_size=32,
    )


def _prepare_folders(cfg: ClassificationConfig) -> ClassificationData:
    from ...data.folders import FolderDataset, leave_one_domain_out, scan_domains

    d = cfg.data
    if d.root is None:
        from ...data.synthetic.digits import SOURCE_DOMAIN, write_synthetic_digits

        s = d.synthetic
        root = digits_root(cfg)
        write_synthetic_digits(root, size=s.size, seed=s.seed, target_fraction=s.target_fraction)
        sources = d.source_domains or [SOURCE_DOMAIN]
    else:
        root = check_data_root(d.root, expected="a folder of <domain>/<class>/<image> files")
        sources = d.source_domains
    domains, classes = scan_domains(root)
    targets = d.target_domains
    if targets is None:
        if sources is None:
            raise ValueError("data.target_domains: name the held-out domain(s) (or data.source_domains)")
        targets = [n for n in domains if n not in sources]
    split = leave_one_domain_out(domains, classes, targets, sources=sources, val_fraction=d.val_fraction,
                                 test_fraction=d.test_fraction, seed=d.split_seed)
    if not split.test:
        raise ValueError(f"data.test_fraction {d.test_fraction}: no in-domain clean test images left")
    train_records = split.train
    if d.max_train is not None and len(train_records) > d.max_train:
        pick = np.sort(np.random.default_rng([d.split_seed, 11]).permutation(len(train_records))[: d.max_train])
        train_records = [train_records[i] for i in pick]
    size = d.image_size
    n_all = len(train_records) + len(split.val) + len(split.test) + sum(len(v) for v in split.targets.values())
    preload = d.preload if d.preload is not None else n_all * size * size * 3 < (1 << 30)
    val_records = split.val or train_records[: min(len(train_records), 256)]
    return ClassificationData(
        classes=classes,
        train=FolderDataset(train_records, size, _train_transform(cfg), preload=preload),
        val=FolderDataset(val_records, size, preload=preload),
        test=FolderDataset(split.test, size, preload=preload),
        domains={name: FolderDataset(recs, size, preload=preload) for name, recs in split.targets.items()},
        root=root,
        image_size=size,
    )


def prepare_data(cfg: ClassificationConfig) -> ClassificationData:
    """Read (or write, for the embedded digits) the task's data and return its datasets."""
    if cfg.data.dataset in ("cifar10", "cifar100"):
        return _prepare_cifar(cfg)
    return _prepare_folders(cfg)


def build_model(cfg: ClassificationConfig, num_classes: int | None = None) -> torch.nn.Module:
    """The configured classifier (``num_classes`` read from the data when None); with ``afa.dual_bn``
    its batch norms get auxiliary statistics."""
    from ...models.classifiers import create_classifier
    from ...train.afa import convert_dual_bn

    if num_classes is None:
        num_classes = prepare_data(cfg).num_classes
    m = cfg.model
    model = create_classifier(m.name, num_classes, 3, image_size=cfg.data.image_size, cifar_stem=m.cifar_stem,
                              weights=m.weights, mean=m.mean, std=m.std)
    if cfg.afa is not None and cfg.afa.dual_bn:
        convert_dual_bn(model)
    return model


# ----------------------------------------------------------------------------------------- adapter
def _val_fn(val_set: Any, device: torch.device, batch_size: int):
    def validate(model: torch.nn.Module) -> dict[str, float]:
        pred, lab = predict_dataset(model, val_set, device, collate=collate_image_label, batch_size=batch_size)
        return {"val_acc": float((pred == lab).mean()) if len(lab) else 0.0}

    return validate


def train_classification(cfg: ClassificationConfig, *, resume: bool = False, overwrite: bool = False,
                         progress: bool = True, stop_after: int | None = None):
    """Train a classifier as configured; writes ``runs/<name>/{config.yaml, metrics.jsonl, last.pt,
    best.pt}`` and returns the loop's :class:`~medrobust.train.loop.FitResult` (metric ``val_acc``)."""
    from ...train.loop import dist_env, fit_config, prepare_run_dir, resolve_device

    if cfg.tta is not None:
        raise ValueError(f"{cfg.name}: the config has a tta: section (a DynTTA recipe); train it with `medrobust tta "
                         "train --model RUN --config ...`")
    env = dist_env()
    device = resolve_device(cfg.train.device, env)
    prepare_run_dir(cfg, resume=resume, overwrite=overwrite, env=env)
    data = prepare_data(cfg)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, data.num_classes)
    augment = build_augment(cfg.augment)  # DFM-X maps: .npy paths
    adapter: Any = ClassificationAdapter(augment, consistency=cfg.consistency, label_smoothing=cfg.train.label_smoothing)
    from ...train.afa import wrap_afa

    adapter = wrap_afa(adapter, cfg.afa)
    return fit_config(cfg, model=model, train_set=data.train, collate=collate_image_label, step_fn=adapter.step,
                      validate_fn=_val_fn(data.val, device, cfg.evaluate.batch_size), device=device,
                      metric_name="val_acc", resume=resume, progress=progress, stop_after=stop_after)
