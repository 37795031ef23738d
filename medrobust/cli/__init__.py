"""Command line: ``medrobust train | evaluate | corrupt | bench | demo``.

Each subcommand has ``--help``. Configs are YAML files (see ``configs/``); ``--set a.b=c`` overrides
any key. Errors in inputs are reported in one line naming the file/key and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .common import parse_runs, report_training

__all__ = ["main", "build_parser"]


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", help="experiment YAML (see configs/); defaults when omitted")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.steps=100 --set augment.0.mixing=true (repeatable)",
    )


def cmd_bench(args: argparse.Namespace) -> int:
    from ..bench import BENCHES, dump_json, environment, print_table
    from ..train.loop import resolve_device

    device = str(resolve_device(args.device, what="--device"))
    rows = BENCHES[args.target](device=device, repeats=args.repeats, quick=args.quick)
    print(f"# medrobust bench {args.target} on {device}: {environment()}")
    print_table(rows)
    if args.json:
        dump_json(rows, args.json)
        print(f"wrote {args.json}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ..tasks import get_task, load_config

    cfg = load_config(args.config, args.overrides)
    result = get_task(cfg.task).train(cfg, resume=args.resume, progress=not args.no_progress)
    print(report_training(cfg, result))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..tasks import run_task

    runs = parse_runs(args.run)
    tasks = {run_task(path).name: run_task(path) for path in runs.values()}
    if len(tasks) != 1:
        raise ValueError(f"--run: runs of different tasks {sorted(tasks)} cannot be compared in one report")
    task = next(iter(tasks.values()))
    results = task.evaluate(runs, out_dir=args.out, overrides=args.overrides, corrupted_root=args.corrupted_root,
                            device=args.device, progress=not args.no_progress)
    print(task.table(results))
    print(f"report: {results['files'].get('markdown')}")
    return 0


def cmd_corrupt(args: argparse.Namespace) -> int:
    from ..corrupt import parse_severities
    from ..tasks import TASKS, get_task

    writers = sorted(n for n, t in TASKS.items() if t.corrupt is not None)
    task = get_task(_CORRUPT_ALIASES.get(args.task, args.task), where="--task")
    if task.corrupt is None:
        raise ValueError(f"--task {args.task}: no corrupted-set writer for this task; choose one of {writers}")
    summary = task.corrupt(args.root, args.out, corruptions=args.corruptions, severities=parse_severities(args.severities),
                           seed=args.seed, overwrite=args.overwrite, progress=not args.no_progress, device=args.device)
    print(f"wrote corrupted copy to {args.out}: {summary}")
    return 0


#: dataset names ``medrobust corrupt --task`` took before the task registry (``cifar``: the CIFAR-10 writer)
_CORRUPT_ALIASES = {"cifar": "classification"}


def cmd_dfm(args: argparse.Namespace) -> int:
    from ..tasks.classification.dfm import run_dfm

    report = run_dfm(args.checkpoint, args.out, data_root=args.data, overrides=args.overrides, split=args.split,
                     patch=args.patch, top=args.top, max_images=args.max_images, device=args.device,
                     progress=not args.no_progress)
    print(report["table"])
    print(f"DFMs: {report['files']['dfms']}; report: {Path(args.out) / 'report.md'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(args.out, steps=args.steps, seed=args.seed, progress=not args.no_progress)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medrobust",
        description="Robustness toolkit: batched augmentation cores, corrupted test sets, robust training and evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"medrobust {__import__('medrobust').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("bench", help="throughput benchmarks against reference implementations")
    from ..bench import BENCHES

    p.add_argument("target", choices=sorted(BENCHES), help="what to benchmark: augment (RandConv/GIN/IPA cores), "
                   "cardiac (training step, MRI corruptions), ...")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per row (median reported)")
    p.add_argument("--quick", action="store_true", help="tiny inputs (smoke test)")
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("train", help="train a model from a YAML config (resumable, DDP under torchrun)")
    _add_config_args(p)
    p.add_argument("--resume", action="store_true", help="continue exactly from <run>/last.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate trained runs on clean, corrupted and shifted test data")
    p.add_argument("--run", action="append", required=True, metavar="[NAME=]DIR",
                   help="a run directory from `medrobust train` (repeat to compare models)")
    p.add_argument("--out", required=True, help="where report.md, report.json and figures/ go")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override evaluation/data keys of the first run's config, e.g. evaluate.severities=[1,3,5]")
    p.add_argument("--corrupted-root", help="read corrupted volumes written by `medrobust corrupt` instead of corrupting on the fly")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("corrupt", help="write a corrupted copy of a dataset (ACDC-C), resumable")
    p.add_argument("--task", required=True, help="cardiac (ACDC layout: NIfTI copy per corruption/severity) or "
                   "classification (CIFAR-10 test batch -> CIFAR-10-C <corruption>.npy + labels.npy); the earlier "
                   "names acdc and cifar still work")
    p.add_argument("--root", required=True, help="dataset root in its public layout")
    p.add_argument("--out", required=True, help="output root: OUT/<corruption>/<severity>/<layout> + manifest.json")
    p.add_argument("--corruptions", default="all", help="'all' or a comma-separated list")
    p.add_argument("--severities", default="1-5", help="e.g. 1-5, 1,3,5 or 2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output written with other settings")
    p.add_argument("--device", default="cpu", help="where the corruption cores run: cpu (default), cuda, cuda:N or auto")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_corrupt)

    p = sub.add_parser("dfm", help="dominant frequency maps and frequency-shortcut test of a trained classifier")
    p.add_argument("--checkpoint", required=True, help="run directory (or its best.pt) of a classification run")
    p.add_argument("--data", help="dataset root to analyse (default: the run's data.root / embedded default)")
    p.add_argument("--out", required=True, help="output directory: dfms.npy, loss_maps.npy, figures/, report.md")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override keys of the run's config (e.g. data settings)")
    p.add_argument("--split", default="test", choices=["test", "val"], help="which split to analyse")
    p.add_argument("--patch", type=int, default=2, help="frequency patch side in bins (must divide the image size)")
    p.add_argument("--top", type=float, default=0.1, help="share of patches kept in a DFM (0.01..1)")
    p.add_argument("--max-images", type=int, default=1000, help="at most this many images (class-balanced)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_dfm)

    from .blur import add_blur_parser

    add_blur_parser(sub)

    p = sub.add_parser("demo", help="the main job on the embedded default: train baseline and RandConv, evaluate both")
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.add_argument("--steps", type=int, default=None, help="training steps per model (default from configs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ..config import ConfigError

    try:
        return int(args.func(args) or 0)
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"medrobust {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
