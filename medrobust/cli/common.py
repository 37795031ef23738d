"""Helpers shared by the subcommands."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["parse_runs", "report_training"]


def parse_runs(items: Sequence[str]) -> dict[str, str]:
    """``--run [NAME=]PATH`` items -> ``{name: path}``; the name defaults to the folder's name (a file's
    stem). A name given twice is an error naming ``--run``."""
    runs: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = "", item
        name = name or (Path(path).stem if Path(path).is_file() else Path(path).name)
        if name in runs:
            raise ValueError(f"--run: model name {name!r} given twice (use NAME=PATH)")
        runs[name] = path
    return runs


def report_training(cfg: Any, result: Any) -> str:
    """The line printed after ``medrobust train``."""
    return (f"trained {cfg.name}: step {result.step}, best validation metric {result.best_metric:.4f} at step "
            f"{result.best_step}; run directory {result.run_dir}")
