"""Seeds of the on-the-fly test conditions: every (seed, corruption, severity, case) gets its own
generator seed, so every model, batch size and run sees the same corrupted inputs."""

from __future__ import annotations

import zlib
from typing import Any

__all__ = ["condition_seed"]


def condition_seed(*parts: Any) -> int:
    """A 31-bit seed from the parts' ``str`` forms (CRC-32 of ``"a|b|c"``), stable across processes."""
    return zlib.crc32("|".join(map(str, parts)).encode()) & 0x7FFFFFFF
