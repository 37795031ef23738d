"""``medrobust tta train``: train a DynTTA enhancer in front of a frozen model (see
:mod:`medrobust.tasks.tta.train`); ``medrobust evaluate --tta`` evaluates it."""

from __future__ import annotations

import argparse
from typing import Any

from .common import check_in_folder, report_training

__all__ = ["add_parser", "cmd_tta_train"]


def cmd_tta_train(args: argparse.Namespace) -> int:
    from ..tasks.tta.train import load_tta_config, train_dyntta

    check_in_folder(args.model, "--model")
    cfg = load_tta_config(args.config, args.overrides, model=args.model)
    result = train_dyntta(cfg, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress)
    print(report_training(cfg, result))
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
