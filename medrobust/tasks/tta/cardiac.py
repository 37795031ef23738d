"""``medrobust tta train`` for cardiac MRI: a 1-channel DynTTA in front of a frozen 2D segmenter.

Beyond the paper (METHODS.md section 7 is classification only). The recipe
(``configs/cardiac/dyntta.yaml``) is a ``task: cardiac`` config with a ``tta:`` section; ``--model RUN``
(``tta.model``, a 2D ``medrobust train --config cardiac/...`` run) is the frozen segmenter, whose
``data``/``model`` sections become the TTA run's (the recipe's ``data`` keys and ``--set`` win). Without
it, ``model.weights`` must be a local ``state_dict`` of the configured segmenter.

* bank: :func:`medrobust.tta.op_names` ``(1)`` (48 ops, no colour ops);
* non-blind shift: :class:`~medrobust.tta.RandomCorruption` over the MRI corruptions
  (:func:`~medrobust.augment.corruptions.mri.corrupt_mri`, batched, per-sample severity), each corrupted
  slice re-normalised to [0, 1] (0.5/99.5 percentiles) as the evaluation normalises every slice it
  feeds the model; blind: the AugMix core on the 1-channel slices;
* loss: the frozen segmenter's Dice+CE (:class:`~medrobust.train.steps.SegmentationAdapter`, the
  task's ``train.ce_weight``/``dice_weight``) on ``frozen(enhancer(shift(slice)))``;
* validation: mean foreground Dice of the frozen model behind the enhancer on up to ``tta.val_images``
  validation slices, clean and shifted with a fixed seed (``val_dice``: their mean, picks ``best.pt``);
  the frozen model alone on the same slices is logged as ``val_*_frozen``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from ...augment.augmix import PHOTOMETRIC_OPS
from ...config import ConfigError, validate
from ...data.collate import collate_image_label
from ...train.steps import SegmentationAdapter
from ...tta import DynTTA, RandomCorruption, freeze
from ..cardiac.config import CardiacConfig
from .frozen import merge_frozen_run

#: the blind mode's default AugMix ops for segmentation: AugMix's own ops without the geometric ones
#: (rotate, shear, translate would move the slice but not its label map)
BLIND_OPS = PHOTOMETRIC_OPS

__all__ = [
    "BLIND_OPS",
    "cardiac_shift",
    "frozen_segmenter",
    "load_cardiac_tta_config",
    "make_segmentation_step",
    "train_dyntta_cardiac",
]


def load_cardiac_tta_config(raw: dict[str, Any], source: str, *,
                            model: str | os.PathLike[str] | None = None) -> CardiacConfig:
    """The validated cardiac TTA config from the recipe dict ``raw`` (overrides applied): ``--model``
    (``tta.model``) and the frozen run's ``data``/``model`` sections merged in."""
    merge_frozen_run(raw, model, config_model=CardiacConfig, what="segmenter", task="cardiac")
    tta = raw["tta"]
    tta.setdefault("num_channels", 1)
    augmix = tta.setdefault("augmix", {}) if tta.get("mode") == "blind" else None
    if isinstance(augmix, dict) and "ops" not in augmix and not augmix.get("all_ops"):
        augmix["ops"] = list(BLIND_OPS)  # AugMix's own ops less the geometric ones: the labels stay put
    cfg = validate(raw, source=source, model=CardiacConfig)
    assert cfg.tta is not None
    if cfg.tta.mode == "blind":
        from ...augment import validate as validate_core

        try:  # the segmentation loss needs the labels in place: no AugMix op that moves pixels
            validate_core({"name": "augmix", **cfg.tta.augmix}, where="tta.augmix", label_maps=True)
        except ValueError as err:
            raise ConfigError(f"{source}: {err}") from None
    if cfg.tta.num_channels != 1:
        raise ConfigError(f"{source}: tta.num_channels: cardiac MRI slices have 1 channel, got {cfg.tta.num_channels}")
    if cfg.data.mode != "2d":
        raise ConfigError(f"{source}: data.mode: DynTTA enhances 2D slices; the frozen segmenter must be a 2d run, "
                          f"got {cfg.data.mode!r}")
    if not cfg.tta.model and not cfg.model.weights:
        raise ConfigError(f"{source}: tta.model: give the frozen segmenter (--model RUN), or model.weights: a local "
                          "state_dict of the configured model")
    return cfg


def frozen_segmenter(cfg: CardiacConfig, device: torch.device) -> torch.nn.Module:
    """The frozen segmenter (eval mode, no gradients to its parameters): ``tta.model``'s checkpoint or
    the configured model with the local ``model.weights``."""
    from ..cardiac.evaluate import load_run
    from ..cardiac.train import build_model

    assert cfg.tta is not None
    if cfg.tta.model:
        _, model = load_run(cfg.tta.model, device=device, checkpoint=cfg.tta.checkpoint)
    else:
        model = build_model(cfg).to(device)
    return freeze(model)


def cardiac_shift(cfg: CardiacConfig) -> Any:
    """The training shift: :class:`~medrobust.tta.RandomCorruption` over the MRI corruptions with the
    slices re-normalised after corruption (non-blind), or the AugMix core (blind)."""
    from ...augment import AugMix
    from ...augment.corruptions.mri import NAMES, corrupt_mri
    from ..cardiac.evaluate import normalise_volume

    t = cfg.tta
    assert t is not None
    if t.mode == "blind":
        return AugMix(**t.augmix)
    names = list(NAMES) if isinstance(t.corruptions, str) else list(t.corruptions)
    if isinstance(t.corruptions, str) and t.corruptions == "extra":
        raise ConfigError("tta.corruptions: 'extra' names natural corruptions; for cardiac use all (the MRI "
                          f"corruptions) or a list from {list(NAMES)}")
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise ConfigError(f"tta.corruptions: unknown {unknown}; choose from the MRI corruptions {list(NAMES)} or all")

    def corrupt_fn(x: torch.Tensor, name: str, severity: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return normalise_volume(corrupt_mri(x, name, severity, generator=generator), axes=tuple(range(1, x.ndim)))

    return RandomCorruption(corrupt_fn, names, t.severities, t.p)


def make_segmentation_step(frozen: torch.nn.Module, shift: Any, *, ce_weight: float = 1.0, dice_weight: float = 1.0):
    """The loop's ``step_fn(net, batch, generator)`` for an enhancer ``net`` in front of ``frozen``: the
    segmentation step (Dice+CE) on ``frozen(net(shift(image)))``."""
    adapter = SegmentationAdapter(shift, ce_weight=ce_weight, dice_weight=dice_weight)

    def step(net: torch.nn.Module, batch: Any, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        return adapter.step(lambda x: frozen(net(x)), batch, generator)

    return step


def _validation_slices(cfg: CardiacConfig, val_set: Any, shift: Any) -> tuple[list[dict[str, torch.Tensor]], list[dict[str, torch.Tensor]]]:
    """``(clean, shifted)`` items (``image``, ``label``) of up to ``tta.val_images`` validation slices."""
    assert cfg.tta is not None
    idx = np.sort(np.random.default_rng([cfg.seed, 5]).permutation(len(val_set))[: cfg.tta.val_images])
    batch = collate_image_label([val_set[int(i)] for i in idx])
    gen = torch.Generator().manual_seed(cfg.seed + 7919)
    img = batch["image"]
    shifted = torch.cat([shift(img[a : a + 256], gen) for a in range(0, len(img), 256)]) if len(img) else img
    clean_items = [{"image": img[i], "label": batch["label"][i]} for i in range(len(img))]
    shifted_items = [{"image": shifted[i], "label": batch["label"][i]} for i in range(len(img))]
    return clean_items, shifted_items


def train_dyntta_cardiac(cfg: CardiacConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True,
                         stop_after: int | None = None):
    """Train the 1-channel enhancer of ``cfg.tta`` in front of the frozen segmenter (module docstring);
    writes ``<run>/{config.yaml, metrics.jsonl, last.pt, best.pt}``, returns the loop's ``FitResult``."""
    from ...data.acdc_datasets import ACDCSliceDataset, acdc_transforms
    from ...train.loop import dist_env, fit_config, prepare_run_dir, resolve_device
    from ..cardiac.train import _val_fn, prepare_data

    t = cfg.tta
    assert t is not None
    env = dist_env()
    device = resolve_device(cfg.train.device, env)
    prepare_run_dir(cfg, resume=resume, overwrite=overwrite, env=env)
    data = prepare_data(cfg)
    size = tuple(cfg.data.spatial_size)
    train_set = ACDCSliceDataset(data.train, transform=acdc_transforms("2d", size, cfg.data.pixel_spacing, train=True))
    val_set = ACDCSliceDataset(data.val, transform=acdc_transforms("2d", size, cfg.data.pixel_spacing, train=False))
    frozen = frozen_segmenter(cfg, device)
    torch.manual_seed(cfg.seed)
    enhancer = DynTTA(1, t.ops, t.predictor, image_size=int(size[0]), predictor_weights=t.predictor_weights)
    shift = cardiac_shift(cfg)
    step = make_segmentation_step(frozen, shift, ce_weight=cfg.train.ce_weight, dice_weight=cfg.train.dice_weight)
    clean, shifted = _validation_slices(cfg, val_set, shift)
    dice_clean, dice_shift = _val_fn(cfg, clean, device), _val_fn(cfg, shifted, device)
    with torch.no_grad():
        ref = {"val_clean_dice_frozen": dice_clean(frozen)["val_dice"],
               "val_shift_dice_frozen": dice_shift(frozen)["val_dice"]}

    def validate_fn(model: torch.nn.Module) -> dict[str, float]:
        def enhanced(x: torch.Tensor) -> torch.Tensor:
            return frozen(model(x))

        c, s = dice_clean(enhanced)["val_dice"], dice_shift(enhanced)["val_dice"]  # type: ignore[arg-type]
        return {"val_dice": (c + s) / 2, "val_clean_dice": c, "val_shift_dice": s, **ref}

    return fit_config(cfg, model=enhancer, train_set=train_set, collate=collate_image_label, step_fn=step,
                      validate_fn=validate_fn, device=device, metric_name="val_dice", resume=resume, progress=progress,
                      stop_after=stop_after)
