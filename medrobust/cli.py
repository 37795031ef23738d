"""Command line: ``medrobust train | evaluate | corrupt | bench | demo``.

Each subcommand has ``--help``. Configs are YAML files (see ``configs/``); ``--set a.b=c`` overrides
any key. Errors in inputs are reported in one line naming the file/key and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

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
    from . import bench

    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.target == "augment":
        rows = bench.bench_augment(device=device, repeats=args.repeats, quick=args.quick)
    else:  # pragma: no cover - argparse restricts choices
        raise SystemExit(f"unknown benchmark {args.target}")
    print(f"# medrobust bench {args.target} on {device}: {bench.environment()}")
    bench.print_table(rows)
    if args.json:
        bench.dump_json(rows, args.json)
        print(f"wrote {args.json}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .demo import augment_grid

    out = Path(args.out)
    path = augment_grid(out / "augment_grid.png", seed=args.seed)
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medrobust",
        description="Robustness toolkit: batched augmentation cores, corrupted test sets, robust training and evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"medrobust {__import__('medrobust').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("bench", help="throughput benchmarks against reference implementations")
    p.add_argument("target", choices=["augment"], help="what to benchmark")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per row (median reported)")
    p.add_argument("--quick", action="store_true", help="tiny inputs (smoke test)")
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("demo", help="run the demo on the embedded default data")
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .config import ConfigError

    try:
        return int(args.func(args) or 0)
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"medrobust {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
