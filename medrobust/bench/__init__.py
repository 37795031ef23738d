"""``medrobust bench NAME``: throughput of the cores and the tasks' steps against references.

One module per target, each defining ``bench_<name>(device, repeats, quick) -> rows`` (a list of
dicts: ``input``, ``method``, ``seconds`` and rates such as ``images_per_s``); :data:`BENCHES` is the
one table of targets the CLI dispatches through, and :func:`format_table` the one formatter of their
rows. Layer: the top, beside ``cli``; imports ``tasks`` and everything below, and only ``cli``
imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .augment import bench_augment
from .benchmark import bench_benchmark
from .blur import bench_blur
from .cardiac import bench_cardiac
from .classification import bench_classification
from .common import dump_json, environment, format_table, print_table, timeit
from .corruptions import bench_corruptions
from .driving import bench_driving
from .fourier import bench_fourier
from .mri import bench_mri
from .objectives import bench_objectives
from .sparse import bench_sparse
from .tta import bench_tta

__all__ = ["BENCHES", "dump_json", "environment", "format_table", "print_table", "timeit"]

#: every ``medrobust bench NAME`` target: name -> ``fn(device, repeats, quick) -> rows``
BENCHES: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "augment": bench_augment,
    "cardiac": bench_cardiac,
    "fourier": bench_fourier,
    "classification": bench_classification,
    "corruptions": bench_corruptions,
    "mri": bench_mri,
    "driving": bench_driving,
    "blur": bench_blur,
    "benchmark": bench_benchmark,
    "sparse": bench_sparse,
    "objectives": bench_objectives,
    "tta": bench_tta,
}
