"""``medrobust tta train``: train a DynTTA enhancer in front of a frozen model (see
:mod:`medrobust.tasks.tta.train`); ``medrobust evaluate --tta`` evaluates it."""

from __future__ import annotations

import argparse
from typing import Any

from .common import check_in_folder, report_training

__all__ = ["add_parser", "cmd_tta_topk", "cmd_tta_train"]


def cmd_tta_train(args: argparse.Namespace) -> int:
    from ..tasks.tta.train import load_tta_config, train_dyntta

    check_in_folder(args.model, "--model")
    cfg = load_tta_config(args.config, args.overrides, model=args.model)
    result = train_dyntta(cfg, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress)
    print(report_training(cfg, result))
    return 0


def cmd_tta_topk(args: argparse.Namespace) -> int:
    from ..tasks.tta.report import top_ops
    from ..tasks.tta.topk import (
        default_recipe,
        read_blend_weights,
        recipe_label_maps,
        topk_augmix_ops,
        write_augmix_recipe,
    )

    recipe = args.config or default_recipe(args.report)
    name, weights = read_blend_weights(args.report, tta=args.tta, kind=args.kind)
    ops = topk_augmix_ops(weights, args.k, photometric_only=recipe_label_maps(recipe))
    print(f"DynTTA {name!r}, mean blend weight on the {args.kind!r} images: "
          + ", ".join(f"{o} {100 * w:.1f}%" for o, w in top_ops(weights, 8)))
    print(f"AugMix top-{args.k} ops: {ops}")
    if args.out:
        _, out = write_augmix_recipe(args.report, args.out, tta=args.tta, kind=args.kind, k=args.k,
                                     recipe=recipe, name=args.name)
        print(f"recipe: {out} (train with `medrobust train --config {out}`)")
    else:
        print(f"train with: medrobust train --config {recipe} --set 'augment.0.ops=[{','.join(ops)}]'")
    return 0


def add_parser(subparsers: Any) -> None:
    """Register ``tta`` (with ``train``) on the main parser's subcommands."""
    p = subparsers.add_parser(
        "tta", help="test-time enhancement (DynTTA): train an enhancer in front of a frozen model",
        description="DynTTA (Enomoto et al., IEEE Access 2024): a predictor blends 50 differentiable image ops "
                    "(rotate, scale, colour, contrast, sharpness, gamma, auto-contrast, equalize, invert, 19 FFT "
                    "low-pass and 19 high-pass filters, a restoration U-Net) per image, trained with the frozen "
                    "model's loss on corrupted (non-blind) or AugMix (blind) training images. Evaluate with "
                    "`medrobust evaluate --run base=RUN --tta dyntta=TTA_RUN`.")
    sub = p.add_subparsers(dest="tta_command", metavar="ACTION", required=True)
    t = sub.add_parser(
        "train", help="train the enhancer of a frozen model (resumable)",
        description="Train a DynTTA enhancer for the frozen model of --model (a run folder from `medrobust train`; "
                    "its data: and model: sections are used) or for model.name with a local model.weights file. "
                    "The run goes to <output_dir>/<name>/ like every run: config.yaml, metrics.jsonl, last.pt, "
                    "best.pt (the enhancer's weights only; the frozen model is never changed).")
    t.add_argument("--model", metavar="RUN", help="the frozen classifier's run folder (sets tta.model)")
    t.add_argument("--config", "-c", help="DynTTA recipe, e.g. classification/digits/dyntta (default: its defaults)")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set tta.mode=blind --set train.steps=100 (repeatable)")
    t.add_argument("--resume", action="store_true", help="continue exactly from <run>/last.pt")
    t.add_argument("--overwrite", action="store_true", help="start over in a run folder that holds a checkpoint")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_tta_train)
    from ..tasks.tta.topk import DEFAULT_RECIPES

    k = sub.add_parser(
        "topk", help="the AugMix ops of an enhancer's top-ranked ops, as a training recipe (DynTTA's follow-up)",
        description="Rank the ops of a DynTTA enhancer by their mean blend weight on a shifted set (the report.json "
                    "of `medrobust evaluate --run base=RUN --tta NAME=TTA_RUN --out REPORT`), map the top ones to "
                    "AugMix ops (rotate, color, contrast, brightness, sharpness, autocontrast, equalize; the other "
                    "ops have no AugMix equivalent; for a segmentation recipe rotate is skipped, it would move the "
                    "slice but not its labels) and print them or write a training recipe with "
                    "`augment: [{name: augmix, ops: [...]}]` (\"retrain with the estimated augmentations\").")
    k.add_argument("report", metavar="REPORT", help="the --out folder (or report.json) of `medrobust evaluate --tta`")
    k.add_argument("--tta", metavar="NAME", help="the enhancer, when the report has several")
    k.add_argument("--kind", default="corrupt", choices=("corrupt", "domain", "shifted", "clean"),
                   help="the images whose blend weights rank the ops (default corrupt: every corruption x severity; "
                        "domain: the classification target domains; shifted: the cardiac shifted domain)")
    k.add_argument("--k", type=int, default=3, help="how many AugMix ops (default 3)")
    k.add_argument("--config", "-c", metavar="RECIPE",
                   help="the training recipe with one augmix entry to fill in (default by the report's task: "
                        + ", ".join(f"{t}: {r}" for t, r in DEFAULT_RECIPES.items()) + ")")
    k.add_argument("--out", metavar="FILE.yaml", help="write the recipe there (else only print the ops)")
    k.add_argument("--name", help="the written recipe's run name (default: the recipe's)")
    k.set_defaults(func=cmd_tta_topk)


def parse_tta(items: list[str] | None) -> dict[str, str]:
    """``--tta [NAME=]DIR`` items -> ``{name: dir}`` (the name defaults to the folder's name)."""
    from pathlib import Path

    out: dict[str, str] = {}
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = "", item
        name = name or Path(path).name
        if name in out:
            raise ValueError(f"--tta: name {name!r} given twice (use NAME=DIR)")
        check_in_folder(path, "--tta")
        out[name] = path
    return out


def evaluate_kwargs(args: argparse.Namespace, task: Any) -> dict[str, Any]:
    """``{"tta": {...}}`` for ``task.evaluate`` when ``--tta`` is given (a task whose evaluate takes no
    ``tta`` is a one-line error), else ``{}``."""
    import inspect

    tta = parse_tta(getattr(args, "tta", None))
    if not tta:
        return {}
    if "tta" not in inspect.signature(task.evaluate).parameters:
        raise ValueError(f"--tta: the {task.name} task's evaluation has no test-time enhancement yet")
    return {"tta": tta}
