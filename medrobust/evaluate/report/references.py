"""The references section: published numbers next to a run's own, printed as reported.

``refs`` (a protocol's ``references:``, :func:`medrobust.tasks.base.references`) is free-form. Each
entry whose value is a mapping is one table row (nested mappings flattened to ``dice.RV``-style
columns; keep units in the names); anything else is shown as a JSON block.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from .tables import format_table, sanitize

__all__ = ["REFERENCES_HEADING", "references_heading", "references_markdown"]

#: the heading of the references section (``references_heading(note)`` adds a note in the brackets)
REFERENCES_HEADING = "References (published numbers, as reported)"


def references_heading(note: str | None = None) -> str:
    """``References (published numbers, as reported[; note])``."""
    return REFERENCES_HEADING if not note else f"{REFERENCES_HEADING[:-1]}; {note})"


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def references_markdown(refs: Any, *, decimals: int | None = None) -> str:
    """The body of the references section (markdown, ends with a newline; ``""`` for no references).

    ``decimals``: None prints numbers as given (``str``, so published precision is kept); an int
    formats every finite float with that many decimals. Missing / None / NaN cells show ``–``.
    """
    if not isinstance(refs, Mapping):
        return "" if refs is None else "```json\n" + json.dumps(sanitize(refs), indent=2) + "\n```\n"
    table_rows, other = [], {}
    for k, v in refs.items():
        if isinstance(v, Mapping):
            table_rows.append({"Reference": str(k), **_flatten(v)})
        else:
            other[k] = v
    parts = []
    if table_rows:
        cols = ["Reference"]
        for r in table_rows:
            cols += [c for c in r if c not in cols]
        fmt = "{}" if decimals is None else f"{{:.{decimals}f}}"
        rows = [{c: (fmt.format(v) if isinstance(v, float) and math.isfinite(v) else v) for c, v in r.items()}
                for r in table_rows]
        parts.append(format_table(rows, cols))
    if other:
        parts.append("```json\n" + json.dumps(sanitize(other), indent=2) + "\n```\n")
    return "\n".join(parts)
