"""Tasks: one package per task (config, data and model set-up, training, evaluation, report sections)
and :data:`TASKS`, the registry the CLI dispatches through."""

from .base import Task
from .registry import TASKS, get_task, load_config, load_run_config, run_task, task_name

__all__ = ["TASKS", "Task", "get_task", "load_config", "load_run_config", "run_task", "task_name"]
