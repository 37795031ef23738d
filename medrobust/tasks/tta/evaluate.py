"""What ``medrobust evaluate --tta`` adds to a task's evaluation: every model behind every enhancer.

For ``--run base=RUN --tta dyntta=TTA_RUN`` the evaluation gets a second model ``base+dyntta`` =
``base(enhancer(x))`` that sees the same images as ``base`` in every condition, and records the mean
blend weight of every op per condition kind (clean, corrupt, domain) for the report's bar chart.
Imports only :mod:`medrobust.tta` and the report parts (the task packages use it without a cycle).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ...config import read_yaml
from ...tta import Enhanced, load_enhancer
from .report import augmix_followup_ops

__all__ = ["attach_enhancers", "enhancer_summary", "refuse_tta_runs"]


def refuse_tta_runs(runs: Mapping[str, str | Path]) -> None:
    """A DynTTA run given as ``--run`` is a one-line error pointing at ``--tta``."""
    for name, path in runs.items():
        cfg = Path(path) / "config.yaml"
        if cfg.is_file() and isinstance(read_yaml(cfg).get("tta"), dict):
            raise ValueError(f"--run {name}={path}: is a DynTTA run (it has a tta: section); pass it as --tta "
                             f"NAME={path} next to the --run of a model")


def attach_enhancers(loaded: dict[str, tuple[Any, torch.nn.Module]], tta: Mapping[str, str | Path] | None,
                     device: torch.device) -> tuple[dict[str, Enhanced], dict[str, str], dict[str, dict[str, Any]]]:
    """Add ``<model>+<tta>`` to ``loaded`` (``{name: (cfg, model)}``, in place) for every model and
    enhancer. Returns ``(enhanced models by combined name, combined name -> base model name,
    {tta name: {"run_dir", "config"}})``."""
    enhanced: dict[str, Enhanced] = {}
    base_of: dict[str, str] = {}
    info: dict[str, dict[str, Any]] = {}
    for tname, tdir in (tta or {}).items():
        raw, enhancer = load_enhancer(tdir, device=device)
        info[tname] = {"run_dir": str(tdir), "config": raw}
        for mname, (cfg, model) in list(loaded.items()):
            if mname in base_of:
                continue
            combined = f"{mname}+{tname}"
            if combined in loaded:
                raise ValueError(f"--tta {tname}: the model name {combined!r} is taken; rename the --run or --tta")
            enhanced[combined] = Enhanced(enhancer, model).eval()
            loaded[combined] = (cfg, enhanced[combined])
            base_of[combined] = mname
    return enhanced, base_of, info


def enhancer_summary(enhanced: Mapping[str, Enhanced], base_of: Mapping[str, str],
                     info: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``results["tta"]``: per enhancer its run folder, what it was trained against (frozen run, mode,
    ops, predictor), ``mean_weights`` ``{condition kind: {op: mean blend weight}}`` (recorded in
    front of the first model it was combined with; the weights depend only on the images) and
    ``augmix_followup_ops`` ``{condition kind: the AugMix ops of the top 3}``."""
    out: dict[str, Any] = {}
    for tname, meta in info.items():
        section = (meta["config"].get("tta") or {})
        first = next((c for c in enhanced if c.endswith(f"+{tname}") and base_of.get(c)), None)
        out[tname] = {
            "run_dir": meta["run_dir"],
            "frozen_model": section.get("model"),
            "mode": section.get("mode"),
            "predictor": section.get("predictor"),
            "ops": list(enhanced[first].enhancer.op_names) if first else [],
            "models": [c for c in enhanced if c.endswith(f"+{tname}")],
            "mean_weights": enhanced[first].mean_weights() if first else {},
        }
        # the follow-up's AugMix ops (top 3 with an AugMix equivalent) per condition kind (`medrobust tta topk`)
        out[tname]["augmix_followup_ops"] = {kind: augmix_followup_ops(w) for kind, w in out[tname]["mean_weights"].items()}
    return out
