"""Command line: ``medrobust train | evaluate | corrupt | benchmark | tta | analyze | bench | blur | demo``.

Each subcommand has ``--help``. Configs are YAML files (see ``configs/``); ``--set a.b=c`` overrides
any key. Errors in inputs are reported in one line naming the file/key and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import nifti as nifti_cli
from .common import check_in_folder, check_out_folder, parse_runs, report_training

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
    from ..bench.common import competing_load
    from ..train.loop import resolve_device

    device = str(resolve_device(args.device, what="--device"))
    if args.compete < 0:
        raise ValueError(f"--compete: expected a number of processes >= 0, got {args.compete}")
    with competing_load(args.compete):
        rows = BENCHES[args.target](device=device, repeats=args.repeats, quick=args.quick)
        env = environment()
    env["competing_processes"] = args.compete
    print(f"# medrobust bench {args.target} on {device}: {env}")
    print_table(rows)
    if args.json:
        dump_json(rows, args.json)
        print(f"wrote {args.json}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ..tasks import get_task, load_config

    cfg = load_config(args.config, args.overrides)
    result = get_task(cfg.task).train(cfg, resume=args.resume, overwrite=args.overwrite,
                                      progress=not args.no_progress)
    print(report_training(cfg, result))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..tasks import run_task
    from ..train.loop import resolve_device

    runs = parse_runs(args.run)
    resolve_device(args.device, what="--device")  # the cheap checks first: device, folders, then the runs
    check_out_folder(args.out)
    check_in_folder(args.corrupted_root, "--corrupted-root")
    tasks = {t.name: t for t in map(run_task, runs.values())}
    if len(tasks) != 1:
        raise ValueError(f"--run: runs of different tasks {sorted(tasks)} cannot be compared in one report")
    task = next(iter(tasks.values()))
    from .tta import evaluate_kwargs

    results = task.evaluate(runs, out_dir=args.out, overrides=args.overrides, corrupted_root=args.corrupted_root,
                            device=args.device, progress=not args.no_progress, **evaluate_kwargs(args, task))
    print(task.table(results))
    print(f"report: {results['files'].get('markdown')}")
    return 0


def cmd_corrupt(args: argparse.Namespace) -> int:
    from ..corrupt import parse_severities
    from ..tasks import TASKS, get_task

    if args.task == nifti_cli.TASK_NAME:  # any folder of NIfTI volumes (--images/--labels), not a task
        return nifti_cli.cmd_corrupt_nifti(args)
    if args.root is None:
        raise ValueError(f"--root: required with --task {args.task} (the dataset root in its public layout)")
    writers = sorted(n for n, t in TASKS.items() if t.corrupt is not None)
    task = get_task(_CORRUPT_ALIASES.get(args.task, args.task), where="--task")
    if task.corrupt is None:
        raise ValueError(f"--task {args.task}: no corrupted-set writer for this task; choose one of {writers}")
    check_in_folder(args.root, "--root")
    check_out_folder(args.out)
    summary = task.corrupt(args.root, args.out, corruptions=args.corruptions, severities=parse_severities(args.severities),
                           seed=args.seed, overwrite=args.overwrite, progress=not args.no_progress, device=args.device)
    print(f"wrote corrupted copy to {args.out}: {summary}")
    return 0


#: names ``medrobust corrupt --task`` took before the task registry (``acdc``: the ACDC-C writer, ``cifar``: the
#: CIFAR-10-C writer); ``corrupt --help`` lists them beside the tasks with a writer
_CORRUPT_ALIASES = {"acdc": "cardiac", "cifar": "classification"}


def cmd_dfm(args: argparse.Namespace) -> int:
    from ..tasks.classification.dfm import run_dfm

    check_out_folder(args.out)
    check_in_folder(args.data, "--data")
    report = run_dfm(args.checkpoint, args.out, data_root=args.data, overrides=args.overrides, split=args.split,
                     patch=args.patch, top=args.top, max_images=args.max_images, device=args.device,
                     progress=not args.no_progress)
    print(report["table"])
    print(f"DFMs: {report['files']['dfms']}; report: {Path(args.out) / 'report.md'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    check_out_folder(args.out)
    run_demo(args.out, steps=args.steps, seed=args.seed, progress=not args.no_progress)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medrobust",
        description="Robustness toolkit: batched augmentation cores, corrupted test sets, robust training and evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"medrobust {__import__('medrobust').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "bench", help="throughput benchmarks against reference implementations",
        description="Time one target on one device against the implementation it replaces, measured in the same "
                    "run, and print one table (median of --repeats). Results are collected in docs/benchmarks.md.")
    from ..bench import BENCHES

    p.add_argument("target", choices=sorted(BENCHES), help="what to benchmark: augment (RandConv/GIN/IPA cores), "
                   "cardiac (training step, MRI corruptions), classification and driving (training and inference "
                   "throughput), corruptions (the natural corruptions vs imagecorruptions), fourier (AFA planar "
                   "waves, amplitude mixing, band filter), blur (defocus synthesis, deconvolution, training step), mri (MRI "
                   "artifacts vs TorchIO/MONAI), benchmark (the `medrobust benchmark` pipeline vs reading -C JPEGs), "
                   "sparse (mask maintenance), objectives (stability/FMA step cost), tta (DynTTA enhancement)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda when available)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per row (median reported)")
    p.add_argument("--quick", action="store_true", help="tiny inputs (smoke test)")
    p.add_argument("--json", metavar="FILE", help="also write the rows to this JSON file")
    p.add_argument("--compete", type=int, default=0, metavar="N",
                   help="run N busy CPU processes during the benchmark (cores shared with other jobs)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "train", help="train a model from a YAML config (resumable, DDP under torchrun)",
        description="Train one model as a YAML config says; its 'task:' key picks the task (cardiac, classification, "
                    "driving, microscopy). The run goes to <output_dir>/<name>/ (both keys of the config; default "
                    "output_dir: runs): config.yaml (the resolved config, every default filled in), metrics.jsonl "
                    "(one JSON line per logged and validation step), last.pt (the latest checkpoint, for --resume) "
                    "and best.pt (the best validation metric; what `medrobust evaluate` reads). Recipes: "
                    "configs/<task>/..., also by name from an installed package (--config cardiac/randconv). "
                    "Under torchrun: DDP, one process per GPU.")
    _add_config_args(p)
    from ..train.loop import RESUME_SAFE_KEYS

    p.add_argument("--resume", action="store_true", help="continue exactly from <run>/last.pt; the config may differ "
                   f"from the run's config.yaml only in {', '.join(RESUME_SAFE_KEYS)} (train.steps: larger, with "
                   "train.schedule constant)")
    p.add_argument("--overwrite", action="store_true", help="start over in a run folder that holds a checkpoint: "
                   "removes its last.pt, best.pt, model.pt, metrics.jsonl first (without it such a folder is refused)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "evaluate", help="evaluate trained runs on clean, corrupted and shifted test data",
        description="Evaluate one or more runs of the same task (their config.yaml says which) on the clean test "
                    "set, every corruption x severity (on the fly with fixed seeds, or read from --corrupted-root) "
                    "and the shifted domains; writes OUT/report.md, OUT/report.json and OUT/figures/ and prints the "
                    "comparison table.")
    p.add_argument("--run", action="append", required=True, metavar="[NAME=]DIR",
                   help="a run directory from `medrobust train` (repeat to compare models; NAME defaults to the "
                        "folder's name)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder (created) for report.md, report.json and figures/")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override evaluation/data keys of the first run's config, e.g. evaluate.severities=[1,3,5]")
    p.add_argument("--corrupted-root", metavar="DIR",
                   help="read the corrupted test sets written by `medrobust corrupt` (cardiac, driving) or the public "
                        "CIFAR-10-C files (classification) instead of corrupting on the fly; microscopy: another data "
                        "folder to evaluate on")
    p.add_argument("--tta", action="append", metavar="[NAME=]DIR",
                   help="a DynTTA run from `medrobust tta train` (repeatable): every --run model is also evaluated "
                        "behind this enhancer, as MODEL+NAME (classification, cardiac)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_evaluate)

    from ..tasks import TASKS

    writers = [n for n, t in TASKS.items() if t.corrupt is not None]
    choices = [*writers, *(a for a, n in _CORRUPT_ALIASES.items() if n in writers), nifti_cli.TASK_NAME]
    p = sub.add_parser(
        "corrupt", help="write a corrupted copy of a dataset (ACDC-C, CIFAR-10-C), resumable",
        description="Write a corrupted copy of a test set once (fixed seed per corruption, severity and case), for "
                    "`medrobust evaluate --corrupted-root`. Interrupted runs resume: files already written with the "
                    "same settings (OUT/manifest.json) are skipped.")
    p.add_argument("--task", required=True, metavar="{" + ",".join(choices) + "}",
                   help="cardiac (ACDC layout: a NIfTI copy per corruption/severity) or classification (CIFAR-10 "
                        "test batch -> CIFAR-10-C <corruption>.npy + labels.npy); the earlier names "
                        f"{' and '.join(a for a in choices if a not in writers)} still work")
    p.add_argument("--root", metavar="DIR",
                   help="dataset root in its public layout (ACDC: ROOT/training, ROOT/testing; CIFAR-10: the folder "
                        "with test_batch or cifar-10-batches-py/); not with --task nifti")
    nifti_cli.add_arguments(p)
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder (created): cardiac OUT/<corruption>/<severity>/<ACDC layout>, classification "
                        "OUT/<corruption>.npy + labels.npy; and OUT/manifest.json")
    p.add_argument("--corruptions", default="all", help="'all' (default) or a comma-separated list of names")
    p.add_argument("--severities", default="1-5", help="e.g. 1-5 (default), 1,3,5 or 2")
    p.add_argument("--seed", type=int, default=0, help="base seed of the random draws (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output written with other settings")
    p.add_argument("--device", default="cpu", help="where the corruption cores run: cpu (default), cuda, cuda:N or auto")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_corrupt)

    p = sub.add_parser(
        "dfm", help="dominant frequency maps and frequency-shortcut test of a trained classifier",
        description="Per class, zero each frequency patch of the images and record the loss increase (loss maps); "
                    "keep the --top share as the class's dominant frequency map (DFM), then test for frequency "
                    "shortcuts (TPR/FPR on DFM-filtered images). The DFMs feed the dfmx core (DFM-X training).")
    p.add_argument("--checkpoint", required=True, metavar="RUN",
                   help="run directory (or its best.pt) of a classification run")
    p.add_argument("--data", metavar="DIR",
                   help="dataset root to analyse (default: the run's data.root / embedded default)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder (created): dfms.npy, loss_maps.npy, figures/, report.md")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override keys of the run's config (e.g. data settings)")
    p.add_argument("--split", default="test", choices=["test", "val"], help="which split to analyse")
    p.add_argument("--patch", type=int, default=2, help="frequency patch side in bins (must divide the image size)")
    p.add_argument("--top", type=float, default=0.1, help="share of patches kept in a DFM (0.01..1)")
    p.add_argument("--max-images", type=int, default=1000, help="at most this many images (class-balanced)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_dfm)

    from .blur import add_blur_parser

    add_blur_parser(sub)

    from .tta import add_parser as add_tta_parser

    add_tta_parser(sub)

    from .benchmark import add_parser as add_benchmark_parser

    add_benchmark_parser(sub)

    from .analyze import add_parser as add_analyze_parser

    add_analyze_parser(sub)

    p = sub.add_parser(
        "demo", help="the main job on the embedded default: train baseline and RandConv, evaluate both",
        description="No data, no downloads: write a synthetic cohort in the ACDC layout (and a shifted-contrast "
                    "one), train the cardiac baseline and RandConv recipes briefly, evaluate both on clean, ACDC-C "
                    "and shifted data and print the table. Runs go to OUT/acdc_baseline/ and OUT/acdc_randconv/, "
                    "the report to OUT/report/report.md (figures in OUT/report/figures/).")
    p.add_argument("--out", default="runs/demo", metavar="DIR", help="output folder (default runs/demo)")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps per model (default: the recipes' train.steps)")
    p.add_argument("--seed", type=int, default=0, help="seed of both runs (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ..config import ConfigError

    try:
        return int(args.func(args) or 0)
    except (ConfigError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError,
            ValueError) as err:  # user errors (inputs, paths): one line, exit 2; anything else is a bug
        print(f"medrobust {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
