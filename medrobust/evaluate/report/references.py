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

__all__ = ["REFERENCES_HEADING", "CITATION_KEYS", "references_heading", "references_markdown", "protocol_note"]

#: text fields of a reference entry listed under the table instead of shown as columns
CITATION_KEYS = ("citation", "source")

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


def _has_value(v: Any) -> bool:
    """A cell that shows something: not None and not a NaN / inf float."""
    return v is not None and not (isinstance(v, float) and not math.isfinite(v))


def references_markdown(refs: Any, *, decimals: int | None = None, note: str | None = None) -> str:
    """The body of the references section (markdown, ends with a newline; ``""`` for no references).

    ``decimals``: None prints numbers as given (``str``, so published precision is kept); an int
    formats every finite float with that many decimals. Missing / None / NaN cells show ``–``; a
    column no row has a value in is left out. The text fields of an entry (:data:`CITATION_KEYS`:
    ``citation``, ``source``) are not table columns: the row gets a ``[n]`` in a ``Citation`` column
    and the texts are listed under the table. ``note``: a paragraph after them (e.g. how the
    references' protocol differs from the data evaluated here).
    """
    if not isinstance(refs, Mapping):
        body = "" if refs is None else "```json\n" + json.dumps(sanitize(refs), indent=2) + "\n```\n"
        return body + (f"\n*{note}*\n" if note and body else "")
    table_rows, other, cited = [], {}, []
    for k, v in refs.items():
        if isinstance(v, Mapping):
            flat = _flatten({c: x for c, x in v.items() if c not in CITATION_KEYS})
            texts = [(c, str(v[c])) for c in CITATION_KEYS if isinstance(v.get(c), str) and v[c].strip()]
            row = {"Reference": str(k), **flat}
            if texts:
                cited.append((str(k), texts))
                row["Citation"] = f"[{len(cited)}]"
            table_rows.append(row)
        else:
            other[k] = v
    parts = []
    if table_rows:
        cols = ["Reference"]
        for r in table_rows:
            cols += [c for c in r if c not in cols and c != "Citation"]
        cols = [c for c in cols if c == "Reference" or any(_has_value(r.get(c)) for r in table_rows)]
        if cited:
            cols.append("Citation")
        fmt = "{}" if decimals is None else f"{{:.{decimals}f}}"
        rows = [{c: (fmt.format(v) if isinstance(v, float) and math.isfinite(v) else v) for c, v in r.items()}
                for r in table_rows]
        parts.append(format_table(rows, cols))
    if cited:
        parts.append("\n".join(f"{i}. **{name}**: " + "; ".join(t if c == "citation" else f"{c}: {t}" for c, t in texts)
                               for i, (name, texts) in enumerate(cited, start=1)) + "\n")
    if other:
        parts.append("```json\n" + json.dumps(sanitize(other), indent=2) + "\n```\n")
    if note and parts:
        parts.append(f"*{note}*\n")
    return "\n".join(parts)


def protocol_note(protocol: Mapping[str, Any], *, embedded: bool) -> str | None:
    """The note under the references when the data evaluated differs from the data the published numbers
    were measured on: ``embedded`` (the run evaluated the embedded default) and the protocol file's
    ``protocol_difference: {references: ..., embedded_default: ...}``; None otherwise."""
    diff = protocol.get("protocol_difference") if isinstance(protocol, Mapping) else None
    if not embedded or not isinstance(diff, Mapping):
        return None
    ref, emb = diff.get("references"), diff.get("embedded_default")
    if not ref or not emb:
        return None
    return (f"Protocol differs: the published numbers were measured on {str(ref).strip()}; this report evaluated the "
            f"embedded default, {str(emb).strip()}. The two are not comparable.")
