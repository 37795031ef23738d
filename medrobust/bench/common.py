"""What every bench target shares: the timer, the environment record, the one table formatter, JSON."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from ..threads import omp_wait_policy

__all__ = ["competing_load", "dump_json", "environment", "format_table", "print_table", "timeit"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timeit(fn: Callable[[], Any], device: torch.device, *, repeats: int = 3, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


@contextmanager
def competing_load(n: int) -> Iterator[None]:
    """``n`` busy single-threaded processes (a pure Python loop, no memory traffic) for the duration
    of the block: the benchmark's view of cores shared with other jobs. Plain subprocesses, so
    they run whatever the caller's ``__main__`` looks like."""
    import subprocess
    import sys

    procs = [subprocess.Popen([sys.executable, "-c", "x = 0\nwhile True:\n    x = (x * 1103515245 + 12345) & 0xFFFFFFFF"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(max(0, n))]
    try:
        if procs:
            time.sleep(0.5)  # let them get scheduled
            dead = [p.returncode for p in procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"--compete: a competing process exited at once (exit codes {dead})")
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(5)


def environment() -> dict[str, Any]:
    info = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "thp_alloc": os.environ.get("THP_MEM_ALLOC_ENABLE", "0"),
        "omp_wait_policy": omp_wait_policy(),
        "load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


#: the order of the columns the targets write; any other key follows, in the order rows first use it
COLUMNS = ("input", "method", "kernel", "images_per_s", "steps_per_s", "volumes_per_s", "seconds", "overhead",
           "aug_share", "reference_images_per_s", "vs_floor", "speedup_vs_naive", "speedup")
_RATES = ("images_per_s", "float_images_per_s", "steps_per_s", "volumes_per_s", "reference_images_per_s")
_RATIOS = ("vs_floor", "speedup_vs_naive", "speedup")


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if not isinstance(value, float):
        return str(value)
    if column in _RATES or column.endswith("_per_s"):
        return f"{value:.2f}"
    if column == "seconds":
        return f"{value:.4f}"
    if column == "overhead":
        return f"{value * 100:+.1f}%"
    if column == "aug_share":
        return f"{value * 100:.1f}%"
    if column in _RATIOS or column.startswith("speedup"):
        return f"{value:.2f}x"
    return f"{value:.4g}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of benchmark rows.

    Columns: the union of the rows' keys (:data:`COLUMNS` order first, then any other key in the order
    the rows first use it); a row without a key leaves its cell empty, ``None`` reads ``-``. Rates
    (``*_per_s``) have 2 decimals, ``seconds`` 4, ``overhead`` is a signed percentage, ``aug_share`` a
    percentage, speedups and ratios read ``1.23x``. Cells are padded so the columns line up; columns
    whose values are all numbers are right-aligned (``---:``). No rows give ``""``.
    """
    if not rows:
        return ""
    seen: dict[str, None] = {}
    for r in rows:
        seen.update(dict.fromkeys(r))
    cols = [c for c in COLUMNS if c in seen] + [c for c in seen if c not in COLUMNS]
    cells = [[_cell(c, r[c]) if c in r else "" for c in cols] for r in rows]
    numeric = [any(c in r for r in rows) and all(_is_number(r[c]) or r[c] is None for r in rows if c in r)
               for c in cols]
    widths = [max([len(c), 3] + [len(line[i]) for line in cells]) for i, c in enumerate(cols)]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.rjust(w) if num else v.ljust(w)
                                 for v, w, num in zip(values, widths, numeric, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" if num else "-" * (w + 2) for w, num in zip(widths, numeric, strict=True)) + "|"
    return "\n".join([line(cols), rule, *(line(r) for r in cells)])


def print_table(rows: Sequence[dict[str, Any]]) -> str:
    """Print :func:`format_table` of ``rows`` and return it."""
    text = format_table(rows)
    print(text)
    return text


def dump_json(rows: list[dict[str, Any]], path: str) -> None:
    """Write ``{"environment": ..., "rows": rows}`` to ``path`` (atomically)."""
    from ..io import atomic_write_json

    atomic_write_json(path, {"environment": environment(), "rows": rows})
