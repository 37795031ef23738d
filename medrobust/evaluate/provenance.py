"""Where a report's numbers come from: the run folder, checkpoint and training steps of each evaluated
model (read from the checkpoint dicts and ``metrics.jsonl`` of the shared training loop), and the
source of the corrupted test set."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["run_provenance", "corruption_source", "describe_source"]


def _checkpoint_meta(path: Path) -> dict[str, Any]:
    """``step``, ``best_step``, ``best_metric`` of a loop checkpoint (``{}`` when unreadable / absent)."""
    if not path.is_file():
        return {}
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - provenance only; the model load reports real errors
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001
            return {}
    if not isinstance(obj, dict):
        return {}
    out: dict[str, Any] = {}
    for key in ("step", "best_step", "best_metric"):
        v = obj.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = int(v) if key != "best_metric" else float(v)
    return out


def _last_logged_step(metrics: Path) -> int | None:
    if not metrics.is_file():
        return None
    last = None
    for line in metrics.read_text(encoding="utf-8").splitlines():
        try:
            step = json.loads(line).get("step")
        except (ValueError, AttributeError):
            continue
        if isinstance(step, int):
            last = step if last is None else max(last, step)
    return last


def run_provenance(run: str | os.PathLike[str], *, checkpoint: str = "best.pt",
                   configured_steps: int | None = None) -> dict[str, Any]:
    """Provenance of one evaluated run.

    ``run``: the run folder (or a checkpoint file inside it); ``checkpoint``: the file the weights
    came from. Returns ``{"run_dir", "checkpoint", "checkpoint_step", "trained_steps",
    "configured_steps", "best_metric"}``: ``checkpoint_step`` is the training step the weights were
    saved at (the checkpoint dict's ``step``; for an exported model without one, ``best.pt``'s),
    ``trained_steps`` the last step trained (``last.pt``'s ``step``, else the last step logged in
    ``metrics.jsonl``), ``configured_steps`` the config's ``train.steps``; None where unknown.
    """
    p = Path(run)
    run_dir, ckpt = (p.parent, p) if p.is_file() else (p, p / checkpoint)
    meta = _checkpoint_meta(ckpt)
    if "step" not in meta and ckpt.name != "best.pt":
        meta = {**_checkpoint_meta(run_dir / "best.pt"), **meta}
    last = _checkpoint_meta(run_dir / "last.pt").get("step") if ckpt.name != "last.pt" else meta.get("step")
    if last is None:
        last = _last_logged_step(run_dir / "metrics.jsonl")
    return {
        "run_dir": str(run_dir),
        "checkpoint": str(ckpt),
        "checkpoint_step": meta.get("step"),
        "trained_steps": last,
        "configured_steps": int(configured_steps) if configured_steps is not None else None,
        "best_metric": meta.get("best_metric"),
    }


def corruption_source(corrupted_root: str | os.PathLike[str] | None, *, seed: int, seeding: str) -> dict[str, Any]:
    """``{"kind": "on the fly", "seed", "seeding"}`` or ``{"kind": "files", "root", "seed" (from the
    root's manifest.json, None without one)}``."""
    if corrupted_root is None:
        return {"kind": "on the fly", "seed": int(seed), "seeding": seeding}
    from .checks import corrupted_manifest

    settings = corrupted_manifest(corrupted_root) or {}
    return {"kind": "files", "root": str(corrupted_root), "seed": settings.get("seed"),
            "manifest": str(Path(corrupted_root) / "manifest.json") if settings else None}


def describe_source(src: dict[str, Any] | None) -> str:
    """One phrase for a report: ``generated on the fly (seed 0; ...)`` / ``read from `<root>` (...)``."""
    if not src:
        return "none"
    if src.get("kind") == "files":
        seed = src.get("seed")
        how = f"written by `medrobust corrupt` with seed {seed}" if seed is not None else "no manifest.json: seed unknown"
        return f"read from `--corrupted-root {src.get('root')}` ({how})"
    return f"generated on the fly (seed {src.get('seed')}; generator per {src.get('seeding')})"
