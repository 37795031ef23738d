"""The provenance section every report has: which runs (folder, checkpoint, training steps) and which
test data (roots, corrupted set read from ``--corrupted-root`` or generated on the fly with its seed)
the numbers come from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..provenance import describe_source
from .tables import DASH, format_table, non_empty_columns
from .writer import Section

__all__ = ["SOURCES_HEADING", "runs_table", "sources_section", "describe_source"]

#: the heading of the provenance section
SOURCES_HEADING = "Where the numbers come from"

_COLUMNS = ["Model", "Run folder", "Checkpoint", "Checkpoint step", "Trained steps", "Configured steps"]


def _steps(v: Any) -> str:
    return DASH if v is None else str(v)


def runs_table(models: Mapping[str, Mapping[str, Any]]) -> str | None:
    """One row per model from its ``provenance`` (:func:`medrobust.evaluate.provenance.run_provenance`):
    run folder, checkpoint file, the step its weights were saved at, steps trained and configured;
    None when no model has a provenance."""
    rows = []
    for name, m in models.items():
        p = m.get("provenance") if isinstance(m, Mapping) else None
        if not isinstance(p, Mapping):
            continue
        ckpt = str(p.get("checkpoint") or "")
        run_dir = str(p.get("run_dir") or "")
        rel = ckpt[len(run_dir):].lstrip("/\\") if run_dir and ckpt.startswith(run_dir) else ckpt
        rows.append({"Model": name, "Run folder": f"`{run_dir}`" if run_dir else DASH, "Checkpoint": rel or DASH,
                     "Checkpoint step": _steps(p.get("checkpoint_step")), "Trained steps": _steps(p.get("trained_steps")),
                     "Configured steps": _steps(p.get("configured_steps"))})
    if not rows:
        return None
    return format_table(rows, non_empty_columns(rows, _COLUMNS))


def sources_section(models: Mapping[str, Mapping[str, Any]], lines: Sequence[str] = ()) -> Section:
    """The provenance section: ``lines`` (the test data, the corrupted set) as a list, then the runs table."""
    body = ["\n".join(f"- {line}" for line in lines if line)] if any(lines) else []
    table = runs_table(models)
    if table:
        body.append(table)
    return Section(SOURCES_HEADING, body)
