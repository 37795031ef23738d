"""The frozen model's run folder merged into a DynTTA recipe (shared by the classification and cardiac paths)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ...config import read_yaml, validate

__all__ = ["merge_frozen_run"]


def merge_frozen_run(raw: dict[str, Any], model: str | os.PathLike[str] | None, *, config_model: type,
                     what: str, task: str | None = None) -> None:
    """Put the frozen run (``--model``, else ``raw["tta"]["model"]``) into the recipe dict ``raw``: its
    ``data`` section under the recipe's own keys and its ``model`` section (weights from the run's
    checkpoint). One-line errors for a folder that is not a run, a DynTTA run, or (``task``) another task."""
    tta = raw["tta"]
    if model is not None:
        tta["model"] = str(model)
    if not tta.get("model"):
        return
    run = Path(str(tta["model"]))
    cfg_path = run / "config.yaml"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"--model {run}: no config.yaml (expected a run folder from `medrobust train`)")
    frozen_raw = read_yaml(cfg_path)
    if frozen_raw.get("tta"):
        raise ValueError(f"--model {run}: is a DynTTA run; expected the frozen {what}'s run folder")
    if task is not None and frozen_raw.get("task", task) != task:
        raise ValueError(f"--model {run}: is a task: {frozen_raw.get('task')!r} run; the recipe is task: {task}")
    dump = validate(frozen_raw, source=str(cfg_path), model=config_model).model_dump(mode="json")
    raw["data"] = {**dump["data"], **(raw.get("data") or {})}
    raw["model"] = {**dump["model"], "weights": None}
