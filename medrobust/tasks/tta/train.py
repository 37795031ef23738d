"""``medrobust tta train``: a DynTTA enhancer trained in front of a frozen classifier.

The recipe (``configs/classification/<dataset>/dyntta.yaml``) is a ``task: classification`` config
with a ``tta:`` section (:class:`medrobust.config.DynTTAConfig`). With ``--model RUN`` (``tta.model``)
the frozen classifier is that run's ``best.pt`` and the run's ``data``/``model`` sections become the
TTA run's (the recipe's own ``data`` keys and ``--set`` overrides win, e.g. a smaller
``data.max_train``); without it, ``model.weights`` must name a local ``state_dict`` of
``model.name`` (torchvision/timm; never downloaded).

Training (:func:`train_dyntta`) runs the shared loop (:func:`medrobust.train.loop.fit_config`) with
the enhancer as the model: only its parameters get an optimiser (AdamW, the loop's), ``last.pt`` /
``best.pt`` hold only its weights, ``--resume`` works as for every run. The step is the
classification step (:class:`medrobust.train.steps.ClassificationAdapter`) with the training-time
shift as its augmentation and ``frozen(enhancer(x))`` as the model: the frozen model's cross-entropy.
Validation: accuracy of the frozen model behind the enhancer on ``tta.val_images`` validation images,
clean and shifted by the training shift with a fixed seed (``val_acc``: their mean, picks ``best.pt``);
the frozen model alone on the same images is logged as ``val_*_frozen``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ...config import (
    ConfigError,
    apply_overrides,
    read_yaml,
    resolve_config_path,
    validate,
)
from ...data.collate import collate_image_label
from ...train.steps import ClassificationAdapter
from ...tta import DynTTA, RandomCorruption, freeze
from ..classification.config import ClassificationConfig
from .frozen import merge_frozen_run

__all__ = ["TTA_TASKS", "frozen_classifier", "load_tta_config", "make_step", "train_dyntta", "training_shift"]

#: the tasks ``medrobust tta train`` supports (cardiac: :mod:`medrobust.tasks.tta.cardiac`)
TTA_TASKS = ("classification", "cardiac")


def load_tta_config(path: str | os.PathLike[str] | None, overrides: Sequence[str] = (), *,
                    model: str | os.PathLike[str] | None = None) -> Any:
    """The validated TTA run config: the recipe at ``path`` (or a shipped recipe's name), ``--set``
    overrides, ``--model`` (``tta.model``) and the frozen run's ``data``/``model`` sections merged in."""
    src_path = resolve_config_path(path) if path is not None else None
    source = str(src_path) if src_path is not None else "<defaults>"
    raw: dict[str, Any] = read_yaml(src_path) if src_path is not None else {"task": "classification", "tta": {}}
    apply_overrides(raw, list(overrides))
    if not isinstance(raw.get("tta"), dict):
        raise ConfigError(f"{source}: no tta: section; expected a DynTTA recipe such as classification/digits/dyntta")
    task = raw.get("task", "classification")
    if task not in TTA_TASKS:
        raise ConfigError(f"{source}: task: {task!r}; medrobust tta train supports {list(TTA_TASKS)}")
    if task == "cardiac":
        from .cardiac import load_cardiac_tta_config

        return load_cardiac_tta_config(raw, source, model=model)
    merge_frozen_run(raw, model, config_model=ClassificationConfig, what="classifier")
    tta = raw["tta"]
    tta.setdefault("num_channels", 3)
    cfg = validate(raw, source=source, model=ClassificationConfig)
    assert cfg.tta is not None
    if cfg.tta.num_channels != 3:
        raise ConfigError(f"{source}: tta.num_channels: classification images are RGB (3), got {cfg.tta.num_channels}")
    if not cfg.tta.model and not cfg.model.weights:
        raise ConfigError(f"{source}: tta.model: give the frozen classifier (--model RUN), or model.weights: a local "
                          "state_dict of model.name")
    return cfg


def frozen_classifier(cfg: ClassificationConfig, num_classes: int, device: torch.device) -> torch.nn.Module:
    """The frozen classifier (eval mode, no gradients to its parameters): ``tta.model``'s checkpoint
    or ``model.name`` with the local ``model.weights``."""
    from ..classification.evaluate import load_run
    from ..classification.train import build_model

    assert cfg.tta is not None
    if cfg.tta.model:
        _, model = load_run(cfg.tta.model, device=device, checkpoint=cfg.tta.checkpoint, num_classes=num_classes)
    else:
        model = build_model(cfg.model_copy(update={"afa": None}), num_classes).to(device)
    return freeze(model)


def training_shift(cfg: ClassificationConfig) -> Any:
    """The shift the enhancer is trained against: :class:`~medrobust.tta.RandomCorruption` over the
    natural corruptions (non-blind) or the AugMix core (blind)."""
    from ...augment import AugMix, corrupt, corruption_names

    t = cfg.tta
    assert t is not None
    if t.mode == "blind":
        return AugMix(**t.augmix)
    known = corruption_names("all")
    names = corruption_names(t.corruptions) if isinstance(t.corruptions, str) else list(t.corruptions)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"tta.corruptions: unknown {unknown}; choose from {known} or common/extra/all")
    table = t.table if t.table != "auto" else ("cifar" if cfg.data.image_size <= 64 else "imagenet")

    def corrupt_fn(x: torch.Tensor, name: str, severity: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return corrupt(x, name, severity, table=table, generator=generator)

    return RandomCorruption(corrupt_fn, names, t.severities, t.p)


def make_step(frozen: torch.nn.Module, shift: Any):
    """The loop's ``step_fn(net, batch, generator)`` for an enhancer ``net`` in front of ``frozen``: the
    classification step (cross-entropy, training accuracy) on ``frozen(net(shift(image)))``."""
    adapter = ClassificationAdapter(shift)

    def step(net: torch.nn.Module, batch: Any, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        return adapter.step(lambda x: frozen(net(x)), batch, generator)

    return step


def _validation_images(cfg: ClassificationConfig, val_set: Any, shift: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(clean, shifted, labels)`` of up to ``tta.val_images`` validation images (seeded choice and shift)."""
    assert cfg.tta is not None
    n = len(val_set)
    idx = np.sort(np.random.default_rng([cfg.seed, 5]).permutation(n)[: cfg.tta.val_images])
    batch = collate_image_label([val_set[int(i)] for i in idx])
    clean, labels = batch["image"], batch["label"]
    gen = torch.Generator().manual_seed(cfg.seed + 7919)
    shifted = torch.cat([shift(clean[a : a + 256], gen) for a in range(0, len(clean), 256)]) if len(clean) else clean
    return clean, shifted, labels


def _accuracy(model: Any, x: torch.Tensor, y: torch.Tensor, device: torch.device, bs: int) -> float:
    correct = 0
    for a in range(0, len(x), bs):
        correct += int((model(x[a : a + bs].to(device)).argmax(1).cpu() == y[a : a + bs]).sum())
    return correct / max(1, len(x))


def train_dyntta(cfg: Any, *, resume: bool = False, overwrite: bool = False, progress: bool = True,
                 stop_after: int | None = None):
    """Train the enhancer of ``cfg.tta`` (see the module docstring); writes ``<run>/{config.yaml,
    metrics.jsonl, last.pt, best.pt}`` and returns the loop's :class:`~medrobust.train.loop.FitResult`."""
    from ...train.loop import dist_env, fit_config, prepare_run_dir, resolve_device
    from ..classification.train import prepare_data

    t = cfg.tta
    if t is None:
        raise ValueError("tta: the config has no tta: section (medrobust tta train needs a DynTTA recipe)")
    if cfg.task == "cardiac":
        from .cardiac import train_dyntta_cardiac

        return train_dyntta_cardiac(cfg, resume=resume, overwrite=overwrite, progress=progress, stop_after=stop_after)
    env = dist_env()
    device = resolve_device(cfg.train.device, env)
    prepare_run_dir(cfg, resume=resume, overwrite=overwrite, env=env)
    data = prepare_data(cfg)
    frozen = frozen_classifier(cfg, data.num_classes, device)
    torch.manual_seed(cfg.seed)
    enhancer = DynTTA(3, t.ops, t.predictor, image_size=cfg.data.image_size, predictor_weights=t.predictor_weights)
    shift = training_shift(cfg)
    step = make_step(frozen, shift)
    clean, shifted, labels = _validation_images(cfg, data.val, shift)
    bs = cfg.evaluate.batch_size
    with torch.no_grad():
        ref = {"val_clean_acc_frozen": _accuracy(frozen, clean, labels, device, bs),
               "val_shift_acc_frozen": _accuracy(frozen, shifted, labels, device, bs)}

    def validate_fn(model: torch.nn.Module) -> dict[str, float]:
        def enhanced(x: torch.Tensor) -> torch.Tensor:
            return frozen(model(x))

        c = _accuracy(enhanced, clean, labels, device, bs)
        s = _accuracy(enhanced, shifted, labels, device, bs)
        return {"val_acc": (c + s) / 2, "val_clean_acc": c, "val_shift_acc": s, **ref}

    return fit_config(cfg, model=enhancer, train_set=data.train, collate=collate_image_label, step_fn=step,
                      validate_fn=validate_fn, device=device, metric_name="val_acc", resume=resume, progress=progress,
                      stop_after=stop_after)
