"""Helpers shared by the MRI and natural-image corruption cores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["parse_severity", "lookup"]


def parse_severity(severity: Any) -> tuple[int, int]:
    """``int`` -> fixed ``(s, s)``; ``(low, high)`` -> inclusive random range; both within 1..5.

    Raises ``ValueError`` naming the argument otherwise (bools and floats are rejected).
    """

    def ok(v: Any) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 1 <= v <= 5

    if ok(severity):
        return int(severity), int(severity)
    if isinstance(severity, Sequence) and not isinstance(severity, str) and len(severity) == 2:
        low, high = severity
        if ok(low) and ok(high) and low <= high:
            return int(low), int(high)
    raise ValueError(
        "severity: expected an int in 1..5 or a (low, high) pair with 1 <= low <= high <= 5, "
        f"got {severity!r}"
    )


def lookup(name: Any, table: dict[str, Any], prefix: str, what: str) -> Any:
    """``table[name]`` for a corruption name, case-insensitive, with or without its registry
    ``prefix`` (``"mri_"``, ``"natural_"``); ``ValueError`` listing the names otherwise."""
    key = name.lower() if isinstance(name, str) else name
    if isinstance(key, str) and key.startswith(prefix):
        key = key[len(prefix):]
    if key not in table:
        raise ValueError(f"unknown {what} {name!r}; choose one of {list(table)}")
    return table[key]
