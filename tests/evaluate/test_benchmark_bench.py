"""``medrobust bench benchmark`` runs and measures both paths (slow: ResNet-18 at 224² on the CPU)."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_bench_benchmark_quick_rows():
    from medrobust.bench import BENCHES

    rows = BENCHES["benchmark"](device="cpu", repeats=1, quick=True)
    methods = {r["method"] for r in rows}
    assert "read pre-generated -C JPEGs + infer" in methods and "inference alone" in methods
    assert all(r["images_per_s"] > 0 for r in rows)
