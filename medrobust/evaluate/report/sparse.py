"""The sparse-training section of every report: for each evaluated run that trained with
``train.sparse`` (its run folder holds the loop's ``sparse.json``), the method, target and realised
total density, the per-layer densities, and how many connections the mask updates moved.

:func:`sparse_runs` reads the records (from ``results["models"][name]["provenance"]["run_dir"]``),
:func:`sparse_blocks` renders them as markdown blocks; :func:`~medrobust.evaluate.report.writer.write_report`
calls both (through :func:`~medrobust.evaluate.report.writer.sparse_section`), so ``report.json["sparse"]``
and the markdown section appear in every task's report without a task-side call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .tables import DASH, fmt_num, format_table

__all__ = ["SPARSE_HEADING", "SPARSE_FILE", "sparse_record", "sparse_runs", "sparse_blocks"]

#: the heading of the section
SPARSE_HEADING = "Sparse training"
#: the file the training loop writes in a sparse run's folder
SPARSE_FILE = "sparse.json"


def sparse_record(summary: Mapping[str, Any], *, models: Sequence[str] = (), run_dir: str | None = None) -> dict[str, Any]:
    """One run's record from its ``sparse.json`` (:meth:`medrobust.train.sparse.SparseUpdater.summary`).

    Returns ``{"models", "run_dir", "method", "grow", "distribution", "sparsity", "target_density",
    "density", "layers", "n_updates", "n_skipped", "moved_total", "last_update", "updates"}``:
    ``target_density`` = 1 − sparsity, ``density`` the realised total over the conv/linear weights,
    ``layers`` ``{name: {shape, nonzero, numel, density, dense}}``, ``n_updates`` the mask updates
    applied (``n_skipped`` those skipped on a non-finite AMP step), ``moved_total`` the connections
    moved (positions regrown; as many dropped, plus GraNet's gradual pruning) summed over all updates, ``last_update`` the last applied update's
    ``{step, fraction, moved_total}`` (None before the first), ``updates`` every update's record.
    Raises ValueError (one line) when ``summary`` lacks ``density`` or ``layers``.
    """
    if not isinstance(summary, Mapping) or not isinstance(summary.get("layers"), Mapping) or "density" not in summary:
        raise ValueError("expected the training loop's sparse summary with 'density' and 'layers'")
    updates = [u for u in summary.get("updates") or [] if isinstance(u, Mapping)]
    applied = [u for u in updates if "skipped" not in u]
    sparsity = summary.get("sparsity")
    last = applied[-1] if applied else None
    return {
        "models": list(models), "run_dir": run_dir,
        "method": summary.get("method"), "grow": summary.get("grow"), "distribution": summary.get("distribution"),
        "sparsity": sparsity,
        "target_density": round(1.0 - float(sparsity), 6) if isinstance(sparsity, (int, float)) else None,
        "density": summary.get("density"),
        "layers": {str(k): dict(v) for k, v in summary["layers"].items() if isinstance(v, Mapping)},
        "n_updates": len(applied), "n_skipped": len(updates) - len(applied),
        "moved_total": sum(int(u.get("moved_total") or 0) for u in applied),
        "last_update": None if last is None else {k: last.get(k) for k in ("step", "fraction", "moved_total")},
        "updates": [dict(u) for u in updates],
    }


def sparse_runs(models: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A :func:`sparse_record` per run folder (in model order) whose ``sparse.json`` exists.

    ``models``: a report's ``results["models"]`` (``{name: {"provenance": {"run_dir": ...}, ...}}``);
    models sharing a run folder (e.g. test-time variants of one run) share one record, ``models``
    listing them all. A ``sparse.json`` that cannot be read gives ``{"models", "run_dir", "error"}``
    instead (the report still gets written)."""
    by_dir: dict[str, dict[str, Any]] = {}
    for name, m in models.items() if isinstance(models, Mapping) else ():
        p = m.get("provenance") if isinstance(m, Mapping) else None
        run_dir = p.get("run_dir") if isinstance(p, Mapping) else None
        if not run_dir:
            continue
        if run_dir in by_dir:
            by_dir[run_dir]["models"].append(str(name))
            continue
        path = Path(run_dir) / SPARSE_FILE
        if not path.is_file():
            continue
        try:
            by_dir[run_dir] = sparse_record(json.loads(path.read_text(encoding="utf-8")), models=[str(name)],
                                            run_dir=str(run_dir))
        except (OSError, ValueError, TypeError) as e:
            by_dir[run_dir] = {"models": [str(name)], "run_dir": str(run_dir), "error": f"{path}: {e}"}
    return list(by_dir.values())


def _label(rec: Mapping[str, Any]) -> str:
    return ", ".join(rec.get("models") or []) or str(rec.get("run_dir") or DASH)


def _dens(v: Any) -> str:
    return fmt_num(v, 4)


def sparse_blocks(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Markdown blocks for :func:`sparse_runs`' records: a note, one summary row per run (method,
    regrowth, distribution, target and realised density, updates, connections moved in total and by
    the last update) and one per-layer density table (a row per layer, a column per run); ``[]``
    when there are no records."""
    if not records:
        return []
    ok = [r for r in records if "error" not in r]
    rows = [{"Model": _label(r), "Method": r.get("method") or DASH, "Regrowth": r.get("grow") or DASH,
             "Distribution": r.get("distribution") or DASH, "Target density": _dens(r.get("target_density")),
             "Realised density": _dens(r.get("density")), "Updates": r.get("n_updates"),
             "Connections moved": r.get("moved_total"),
             "Last update (step: moved)": DASH if not r.get("last_update") else
             f"{r['last_update'].get('step')}: {r['last_update'].get('moved_total')}"} for r in ok]
    body: list[str] = ["Masked conv/linear weights (biases and normalisation never); density = non-zero / total "
                       "weights; connections moved = positions regrown per update, summed (as many were dropped, "
                       "except that GraNet also prunes towards its target); from each run's "
                       f"`{SPARSE_FILE}` (all updates in `report.json`)."]
    if any(r.get("n_skipped") for r in ok):
        body[0] += " Updates skipped on non-finite AMP steps are not counted."
    if rows:
        body.append(format_table(rows, list(rows[0])))
        layers: dict[str, Mapping[str, Any]] = {}
        for r in ok:
            for name, layer in r["layers"].items():
                layers.setdefault(name, layer)
        cols = ["Layer", "Shape"] + [_label(r) for r in ok]
        table = []
        for name, first in layers.items():
            shape = first.get("shape")
            row = [f"`{name}`", "x".join(map(str, shape)) if isinstance(shape, (list, tuple)) else DASH]
            for r in ok:
                lay = r["layers"].get(name)
                row.append(DASH if lay is None else _dens(lay.get("density")) + (" (dense)" if lay.get("dense") else ""))
            table.append(row)
        body += ["Per-layer density:", format_table(table, cols)]
    body += [f"*{_label(r)}: `{SPARSE_FILE}` unreadable ({r['error']}).*" for r in records if "error" in r]
    return body
