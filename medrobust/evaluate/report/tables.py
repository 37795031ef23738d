"""Markdown tables, the number formatters and the JSON-safe copy every report uses.

A missing value (``None``, NaN, inf, or anything that is not a number) is shown as :data:`DASH`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DASH", "finite", "fmt_num", "fmt_mm", "fmt_pct", "nan_mean", "format_table", "non_empty_columns", "sanitize"]

#: what a missing / undefined cell shows (an en dash)
DASH = "–"


def finite(v: Any) -> float | None:
    """``float(v)`` when it is a finite number, else None (bools are not numbers here)."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def fmt_num(v: Any, decimals: int = 2) -> str:
    """``v`` with ``decimals`` decimals, or :data:`DASH`."""
    f = finite(v)
    return DASH if f is None else f"{f:.{decimals}f}"


def fmt_mm(v: Any) -> str:
    """A distance in mm (2 decimals), or :data:`DASH`."""
    return fmt_num(v, 2)


def fmt_pct(v: Any, decimals: int = 2) -> str:
    """A fraction in [0, 1] shown as a percentage (``0.9123`` -> ``91.23``), or :data:`DASH`."""
    f = finite(v)
    return DASH if f is None else f"{100.0 * f:.{decimals}f}"


def nan_mean(values: Iterable[Any]) -> float | None:
    """Mean of the finite values (None, NaN and non-numbers skipped); None when there are none."""
    vals = [f for f in (finite(v) for v in values) if f is not None]
    return sum(vals) / len(vals) if vals else None


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return DASH
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.2f}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def format_table(rows: Iterable[Mapping[str, Any] | Sequence[Any]], columns: Sequence[Any]) -> str:
    """Markdown table with the given columns; ends with a newline.

    A row is a mapping (cells looked up by column name; a missing column is empty) or a sequence of
    cells in column order. Cells that are None / NaN show :data:`DASH`, floats 2 decimals, anything
    else ``str`` with ``|`` escaped and newlines replaced by spaces (format numbers with the ``fmt_*``
    helpers first when they need another precision).
    """
    columns = list(columns)
    if not columns:
        raise ValueError("columns must name at least one column")
    lines = [
        "| " + " | ".join(_cell(c) for c in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for r in rows:
        if isinstance(r, Mapping):
            cells = [r.get(c) for c in columns]
        elif isinstance(r, Sequence) and not isinstance(r, str):
            if len(r) > len(columns):
                raise ValueError(f"table row has {len(r)} cells, the table {len(columns)} columns: {list(r)!r}")
            cells = [*r, *[None] * (len(columns) - len(r))]
        else:
            raise ValueError(f"table rows must be dicts or sequences of cells, got {type(r).__name__}")
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _empty(v: Any) -> bool:
    return v is None or v == DASH or v == "" or (isinstance(v, float) and not math.isfinite(v))


def non_empty_columns(rows: Sequence[Mapping[str, Any]], columns: Sequence[Any], keep: int = 1) -> list[Any]:
    """``columns`` without those no row has a value in (None, NaN, ``""`` or :data:`DASH` in every
    row); the first ``keep`` columns (the row names) always stay."""
    columns = list(columns)
    return columns[:keep] + [c for c in columns[keep:] if any(not _empty(r.get(c)) for r in rows)]


def sanitize(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, numpy/torch scalars and arrays -> python, Paths -> str, keys -> str."""
    if isinstance(obj, Mapping):
        return {str(k): sanitize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [sanitize(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy / torch arrays and scalars
        return sanitize(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return obj
