"""The :class:`Task` record: what the CLI, the benchmarks and the test-time methods need from a task.

Every task (cardiac, classification, driving, microscopy) fills in the same members, so a new command
or a new training option is written once against this record instead of once per task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Task", "build_augment", "check_data_root", "read_protocol", "references"]


@dataclass(frozen=True)
class Task:
    """One task's entry points (all take the task's own config model).

    * ``config``: the pydantic model that ``task: <name>`` YAML files validate into.
    * ``prepare_data(cfg) -> data``: read (or write, for the embedded default) the task's datasets;
      the returned record has the splits and, for label tasks, ``num_classes``.
    * ``build_model(cfg, num_classes=None) -> nn.Module``: the configured model; ``num_classes`` only
      where the class count comes from the dataset (classification: read from the data when None).
    * ``train(cfg, *, resume, overwrite, progress, stop_after) -> FitResult``: a run directory with
      ``config.yaml``, ``metrics.jsonl``, ``last.pt``, ``best.pt``. A folder that already holds a
      checkpoint is refused unless ``resume`` (continue it; the config may differ only in
      :data:`medrobust.train.loop.RESUME_SAFE_KEYS`) or ``overwrite`` (its run files are removed first);
      see :func:`medrobust.train.loop.prepare_run_dir`.
    * ``load_run(run_dir, *, device, checkpoint) -> (cfg, model)``: a trained run, weights-only load.
    * ``evaluate(runs, *, out_dir, overrides, corrupted_root, device, progress) -> results``: evaluate
      ``{name: run_dir}`` and write ``report.{md,json}`` and ``figures/``; ``results["files"]`` lists them.
    * ``table(results) -> str``: the comparison table the CLI prints.
    * ``corrupt(root, out, *, corruptions, severities, seed, overwrite, progress, device)``: the
      corrupted-set writer, where the task has one.

    Names the task had in earlier releases are its config model's ``legacy_names``
    (:class:`medrobust.config.RunBase`): configs and run directories that use them still load.
    """

    name: str
    summary: str
    config: type
    prepare_data: Callable[..., Any]
    build_model: Callable[..., Any]
    train: Callable[..., Any]
    load_run: Callable[..., Any]
    evaluate: Callable[..., Mapping[str, Any]]
    table: Callable[[Mapping[str, Any]], str]
    corrupt: Callable[..., Any] | None = None


def read_protocol(package: str, name: str) -> dict[str, Any]:
    """The benchmark protocol ``<package>/protocols/<name>.yaml`` (package data, so it is found from an
    installed wheel in any working directory), e.g. ``read_protocol("medrobust.tasks.cardiac", "acdc")``."""
    res = resources.files(package) / "protocols" / f"{name}.yaml"
    if not res.is_file():
        raise FileNotFoundError(f"{package}: no protocol {name!r} (expected protocols/{name}.yaml in the package)")
    data = yaml.safe_load(res.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{package}/protocols/{name}.yaml: expected a mapping at the top level")
    return data


def references(package: str, name: str) -> dict[str, Any]:
    """The published reference numbers (``references:``) of a protocol, ``{}`` when it lists none."""
    return read_protocol(package, name).get("references", {}) or {}


def build_augment(spec: Any) -> Any:
    """The cores of a config's ``augment:`` list (``None`` when empty); data arguments given as paths
    (``dfmx.dfms``, ``latent_blur.model``) are loaded first, since cores take tensors and modules."""
    from ..analysis.dfm import resolve_augment_files
    from ..augment import build

    return build(resolve_augment_files(spec)) if spec else None


def check_data_root(root: Any, *, key: str = "data.root", expected: str = "the dataset folder") -> Path:
    """``root`` as a ``Path`` when it is an existing folder; else a one-line ``FileNotFoundError``
    naming the config key (``--set data.root=...``) and what was expected."""
    path = Path(root).expanduser()
    if not path.is_dir():
        what = "is a file" if path.exists() else "does not exist"
        raise FileNotFoundError(f"{key}: {root} {what}; expected {expected} (pass --set {key}=<folder>)")
    return path
