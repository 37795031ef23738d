"""Helpers shared by the subcommands."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["check_in_folder", "check_out_folder", "parse_runs", "report_training"]


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


def check_out_folder(path: str | Path, flag: str = "--out") -> Path:
    """``path`` as an output folder, checked before any compute: it may be missing (it is created) but
    neither it nor a parent may be a file. A ``ValueError`` naming ``flag`` otherwise."""
    p = Path(path)
    blocked = next((q for q in (p, *p.parents) if q.exists() and not q.is_dir()), None)
    if blocked is not None:
        where = "is a file" if blocked == p else f"{blocked} is a file"
        raise ValueError(f"{flag} {path}: {where}; expected a folder (created when missing)")
    return p


def check_in_folder(path: str | Path | None, flag: str) -> None:
    """An input folder given on the command line (``--corrupted-root``, ``--data-root``, ``--data``) must
    exist; a one-line ``FileNotFoundError``/``ValueError`` naming ``flag`` otherwise (None: not given)."""
    if path is None:
        return
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{flag} {path}: folder does not exist")
    if not p.is_dir():
        raise ValueError(f"{flag} {path}: is a file; expected a folder")
