"""``medrobust bench tta`` (quick): rows with finite timings, the enhancer's cost beside the model's."""

import math

import pytest

pytestmark = pytest.mark.slow


def test_bench_tta_quick_rows():
    from medrobust.bench.tta import bench_tta

    rows = bench_tta(device="cpu", repeats=1, quick=True)
    assert {r["input"] for r in rows} == {"8x3x32x32", "8x3x64x64"}
    assert all(math.isfinite(r["images_per_s"]) and r["images_per_s"] > 0 for r in rows)
    assert any("overhead" in r for r in rows) and any("speedup_vs_naive" in r for r in rows)
