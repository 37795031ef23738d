"""``TASKS``: task name -> :class:`~medrobust.tasks.base.Task`, the only table the CLI dispatches through.

Adding a task: write ``medrobust/tasks/<name>/`` with a ``TASK = Task(...)`` in its ``__init__`` and
add it to :data:`TASKS` below (see ``docs/architecture.md``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import (
    ConfigError,
    apply_overrides,
    read_yaml,
    resolve_config_path,
    validate,
)
from . import cardiac, classification, driving, microscopy
from .base import Task

__all__ = ["TASKS", "LEGACY_NAMES", "DEFAULT_TASK", "get_task", "task_name", "load_config", "load_run_config", "run_task"]

TASKS: dict[str, Task] = {t.name: t for t in (cardiac.TASK, classification.TASK, driving.TASK, microscopy.TASK)}

#: the task a config without a ``task:`` key belongs to
DEFAULT_TASK = "cardiac"

#: earlier task names (configs and run directories written by earlier releases) -> current name
LEGACY_NAMES: dict[str, str] = {old: t.name for t in TASKS.values() for old in t.config.legacy_names}


def task_name(name: Any, *, where: str = "task") -> str:
    """The current name of task ``name`` (earlier names map to their task); one-line error otherwise."""
    if isinstance(name, str) and name in TASKS:
        return name
    if isinstance(name, str) and name in LEGACY_NAMES:
        return LEGACY_NAMES[name]
    raise ConfigError(f"{where}: unknown task {name!r}; choose one of {sorted(TASKS)}")


def get_task(name: Any, *, where: str = "task") -> Task:
    """The :class:`Task` record of ``name`` (current or earlier name)."""
    return TASKS[task_name(name, where=where)]


def load_config(path: str | os.PathLike[str] | None = None, overrides: Sequence[str] = (), *,
                task: str | None = None) -> Any:
    """Read ``path`` (or the defaults when None), apply ``--set`` overrides and validate into the config
    model of its ``task:`` (``task``: the default when the file names none; else ``cardiac``). ``path`` may
    name a shipped recipe (``cardiac/randconv``). Errors are :class:`ConfigError`."""
    path = resolve_config_path(path) if path is not None else None
    data = read_yaml(path) if path is not None else {}
    source = str(path) if path is not None else "<defaults>"
    apply_overrides(data, overrides)
    if task is not None:
        data.setdefault("task", task)
    model = get_task(data.get("task", DEFAULT_TASK), where=f"{source}: task").config
    return validate(data, source=source, model=model)


def load_run_config(run_dir: str | os.PathLike[str], overrides: Sequence[str] = ()) -> Any:
    """The validated ``config.yaml`` of a run directory written by ``medrobust train``."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"--run {run_dir}: no config.yaml (is this a run directory from `medrobust train`?)")
    return load_config(path, overrides)


def run_task(run_dir: str | os.PathLike[str]) -> Task:
    """The task a run directory belongs to (from its ``config.yaml``)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"--run {run_dir}: no config.yaml (is this a run directory from `medrobust train`?)")
    return get_task(read_yaml(path).get("task", DEFAULT_TASK), where=f"{path}: task")
