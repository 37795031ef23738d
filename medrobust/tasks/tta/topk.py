"""DynTTA's follow-up, "retrain with the estimated augmentations": rank the ops of a trained enhancer by
their mean blend weight on a shifted set (an evaluation report of ``medrobust evaluate --tta``) and turn
the top ones into an AugMix op list, written into a training recipe (``medrobust tta topk``).

Only the ops with an AugMix counterpart count (:data:`~medrobust.tasks.tta.report.AUGMIX_EQUIVALENT`:
rotate, saturation -> color, contrast, brightness, sharpness, autocontrast, equalize); the FFT filters,
gamma, hue, invert, scale and the restoration network are skipped in the ranking.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ...config import read_yaml, resolve_config_path
from .report import AUGMIX_EQUIVALENT, augmix_followup_ops, top_ops

__all__ = ["DEFAULT_RECIPE", "DEFAULT_RECIPES", "augmix_recipe", "default_recipe", "recipe_label_maps", "read_blend_weights", "topk_augmix_ops", "write_augmix_recipe"]

#: the shipped recipe ``medrobust tta topk --out`` fills in by default
DEFAULT_RECIPE = "classification/digits/augmix_topk"
#: the default recipe by the evaluation report's task
DEFAULT_RECIPES = {"classification": DEFAULT_RECIPE, "cardiac": "cardiac/augmix_topk"}


def default_recipe(report: str | os.PathLike[str]) -> str:
    """The shipped top-k recipe for the task of an evaluation ``report`` (folder or ``report.json``):
    :data:`DEFAULT_RECIPES`, the digits recipe when the report names no known task."""
    path = Path(report)
    path = path / "report.json" if path.is_dir() else path
    try:
        task = json.loads(path.read_text(encoding="utf-8")).get("task")
    except (OSError, ValueError, AttributeError):
        task = None
    return DEFAULT_RECIPES.get(str(task), DEFAULT_RECIPE)


def recipe_label_maps(recipe: str | os.PathLike[str]) -> bool:
    """Whether ``recipe``'s task trains on label maps (segmentation), so AugMix must keep pixels in place."""
    from ..registry import DEFAULT_TASK, get_task

    task = read_yaml(resolve_config_path(recipe)).get("task", DEFAULT_TASK)
    return bool(getattr(get_task(task, where=f"{recipe}: task").config, "label_maps", False))


def read_blend_weights(report: str | os.PathLike[str], *, tta: str | None = None,
                       kind: str = "corrupt") -> tuple[str, dict[str, float]]:
    """``(enhancer name, {op: mean blend weight})`` of ``kind`` images (``corrupt``, ``clean``,
    ``domain`` or ``shifted``) from an evaluation report (its folder or its ``report.json``).
    ``tta`` picks the enhancer when the report has several."""
    path = Path(report)
    path = path / "report.json" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"report: {report} has no report.json (the --out folder of `medrobust evaluate --tta`)")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"report: {path} is not valid JSON ({err})") from None
    enhancers = results.get("tta") if isinstance(results, Mapping) else None
    if not isinstance(enhancers, Mapping) or not enhancers:
        raise ValueError(f"report: {path} has no DynTTA results; evaluate with `medrobust evaluate --run ... --tta NAME=RUN`")
    if tta is None:
        if len(enhancers) > 1:
            raise ValueError(f"--tta: the report has several enhancers {sorted(enhancers)}; pick one")
        tta = next(iter(enhancers))
    if tta not in enhancers:
        raise ValueError(f"--tta: no enhancer {tta!r} in {path}; it has {sorted(enhancers)}")
    weights = (enhancers[tta].get("mean_weights") or {})
    if kind not in weights:
        raise ValueError(f"--kind: no {kind!r} blend weights for {tta!r} in {path}; it has {sorted(weights)}")
    return tta, {str(o): float(w) for o, w in weights[kind].items()}


def topk_augmix_ops(weights: Mapping[str, float], k: int = 3, *, photometric_only: bool = False) -> list[str]:
    """The AugMix ops of the ``k`` highest-weighted DynTTA ops with an AugMix equivalent (a one-line
    error when ``k < 1`` or when no op of ``weights`` has one); ``photometric_only``: skip the ones
    that move pixels (for recipes that train on label maps)."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"--k: expected a positive int, got {k!r}")
    ops = augmix_followup_ops(weights, k, photometric_only=photometric_only)
    if not ops:
        raise ValueError(f"--k: none of the enhancer's ops has an AugMix equivalent ({sorted(AUGMIX_EQUIVALENT)})")
    return ops


def augmix_recipe(ops: list[str], recipe: str | os.PathLike[str] = DEFAULT_RECIPE, *,
                  name: str | None = None) -> dict[str, Any]:
    """The training ``recipe`` (a shipped name or a YAML file) with its ``augmix`` entry of ``augment``
    restricted to ``ops`` (``all_ops`` dropped) and, with ``name``, renamed. The result is validated as
    a training config of its task."""
    from ...config import validate
    from ..registry import DEFAULT_TASK, get_task

    source = str(recipe)
    raw = read_yaml(resolve_config_path(recipe))
    entries = [a for a in (raw.get("augment") or []) if isinstance(a, dict) and a.get("name") == "augmix"]
    if len(entries) != 1:
        raise ValueError(f"--config: {recipe} must have exactly one `augment: [{{name: augmix, ...}}]` entry, "
                         f"found {len(entries)}")
    entries[0].pop("all_ops", None)
    entries[0]["ops"] = list(ops)
    if name is not None:
        raw["name"] = name
    validate(raw, source=source, model=get_task(raw.get("task", DEFAULT_TASK), where=f"{source}: task").config)
    return raw


def write_augmix_recipe(report: str | os.PathLike[str], out: str | os.PathLike[str], *, tta: str | None = None,
                        kind: str = "corrupt", k: int = 3, recipe: str | os.PathLike[str] = DEFAULT_RECIPE,
                        name: str | None = None) -> tuple[list[str], Path]:
    """Rank the ops of ``report``'s enhancer, write ``recipe`` with AugMix restricted to the top-``k``
    AugMix ops to ``out`` (a YAML file; a header comment records where the list came from) and return
    ``(ops, out)``."""
    from ...io import atomic_write_text

    tname, weights = read_blend_weights(report, tta=tta, kind=kind)
    label_maps = recipe_label_maps(recipe)
    ops = topk_augmix_ops(weights, k, photometric_only=label_maps)
    raw = augmix_recipe(ops, recipe, name=name)
    ranked = ", ".join(f"{o} {100 * w:.1f}%" for o, w in top_ops(weights, 8))
    skipped = " (geometric ops skipped: the task trains on label maps)" if label_maps else ""
    header = (f"# Written by `medrobust tta topk`: AugMix restricted to the top-{k} AugMix ops{skipped} of DynTTA {tname!r}\n"
              f"# (mean blend weight on the {kind!r} images of {Path(report)}): {', '.join(ops)}.\n"
              f"# Top DynTTA ops: {ranked}.\n# Recipe: {recipe}. Train with: medrobust train --config {out}\n")
    out = Path(out)
    if out.suffix not in (".yaml", ".yml"):
        raise ValueError(f"--out: expected a .yaml file, got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, header + yaml.safe_dump(raw, sort_keys=False))
    return ops, out
