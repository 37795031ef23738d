"""Deterministic seeds for the training loop and sparse masks."""

from __future__ import annotations

__all__ = ["mix_seed"]


def mix_seed(*values: int) -> int:
    """Deterministic 63-bit seed from integers (SplitMix-style mixing); the same on every rank and run."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h ^= (int(v) + 0x9E3779B97F4A7C15 + ((h << 6) & 0xFFFFFFFFFFFFFFFF) + (h >> 2)) & 0xFFFFFFFFFFFFFFFF
        h = (h * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    return h & 0x7FFFFFFFFFFFFFFF
