"""Which function runs each task: the CLI dispatches ``train``/``evaluate``/``corrupt`` through here.

Entries are ``"module:function"`` strings, imported on use so ``medrobust --help`` stays fast.

* trainers: ``fn(cfg, *, resume: bool, progress: bool) -> result with .run_dir/.step/.best_metric/.best_step``
* evaluators: ``fn(runs: dict[name, run_dir], *, out_dir, overrides, corrupted_root, device, progress) -> results``
  (results carry ``files["markdown"]``; ``table`` below renders the comparison printed by the CLI)
* benches: ``fn(device, repeats, quick) -> rows`` printed as a markdown table by ``medrobust.bench.print_table``
* corrupters: ``fn(root, out, *, corruptions, severities, seed, overwrite, progress) -> summary``
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["CONFIG_MODULES", "TRAINERS", "EVALUATORS", "TABLES", "CORRUPTERS", "BENCHES", "resolve"]

_CLASSIFICATION = ("cifar10", "cifar100", "digits", "pacs")

#: modules that register a task's config model (imported on first use of ``task: NAME``)
CONFIG_MODULES: dict[str, str] = {
    "acdc": "medrobust.config",
    **{t: "medrobust.adapters.classification" for t in _CLASSIFICATION},
    "driving": "medrobust.adapters.driving",
    "microscopy_blur": "medrobust.adapters.microscopy",
}
TRAINERS: dict[str, str] = {
    "acdc": "medrobust.adapters.cardiac:train_cardiac",
    **{t: "medrobust.adapters.classification:train_classification" for t in _CLASSIFICATION},
    "driving": "medrobust.adapters.driving:train_driving",
    "microscopy_blur": "medrobust.adapters.microscopy:train_blur",
}
EVALUATORS: dict[str, str] = {
    "acdc": "medrobust.evaluate.cardiac:evaluate_cardiac",
    **{t: "medrobust.evaluate.classification:evaluate_classification" for t in _CLASSIFICATION},
    "driving": "medrobust.evaluate.driving:evaluate_driving",
    "microscopy_blur": "medrobust.adapters.microscopy:evaluate_blur_runs",
}
TABLES: dict[str, str] = {
    "acdc": "medrobust.evaluate.report:comparison_table",
    **{t: "medrobust.evaluate.classification:comparison_table" for t in _CLASSIFICATION},
    "driving": "medrobust.evaluate.driving:comparison_table",
    "microscopy_blur": "medrobust.adapters.microscopy:blur_table",
}
CORRUPTERS: dict[str, str] = {
    "acdc": "medrobust.data.corrupt_dataset:corrupt_acdc",
    "cifar": "medrobust.data.corrupt_cifar:corrupt_cifar",
}
#: ``medrobust bench NAME``: ``fn(device: str, repeats: int, quick: bool) -> list[row dict]``
BENCHES: dict[str, str] = {
    "augment": "medrobust.bench:bench_augment",
    "cardiac": "medrobust.bench:bench_cardiac",
    "fourier": "medrobust.bench:bench_fourier",
    "classification": "medrobust.evaluate.classification:bench_classification",
    "corruptions": "medrobust.bench_natural:bench_corruptions",
    "driving": "medrobust.adapters.driving:bench_driving",
    "blur": "medrobust.adapters.microscopy:bench_blur",
}


def resolve(table: dict[str, str], task: str, what: str) -> Callable[..., Any]:
    """Import and return the function registered for ``task`` in ``table``."""
    if task not in table:
        raise ValueError(f"{what}: task {task!r} is not supported; choose one of {sorted(table)}")
    module, _, name = table[task].partition(":")
    return getattr(importlib.import_module(module), name)
