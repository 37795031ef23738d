"""``medrobust.bench``: the one table of targets, the one table formatter, and a quick real target."""

import ast
import importlib
import inspect
import math
import pkgutil
from pathlib import Path

import pytest

import medrobust
import medrobust.bench as bench
from medrobust.bench import BENCHES, format_table, print_table

TARGETS = {"augment", "cardiac", "fourier", "classification", "corruptions", "mri", "driving", "blur", "benchmark",
           "sparse", "objectives", "tta"}


# ------------------------------------------------------------------------------------------ formatter
def _split(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_format_table_columns_are_the_union_in_a_fixed_order():
    rows = [
        {"method": "a", "input": "x", "seconds": 0.5, "images_per_s": 16.0},
        {"input": "x", "method": "b", "seconds": 0.25, "overhead": -0.5, "extra": 7},
        {"input": "y", "method": "c", "seconds": 1.0, "speedup": None, "aug_share": 0.05},
    ]
    lines = format_table(rows).splitlines()
    # known columns in their fixed order, then keys no target is known to write, in first-use order
    assert _split(lines[0]) == ["input", "method", "images_per_s", "seconds", "overhead", "aug_share", "speedup", "extra"]
    assert len(lines) == 2 + len(rows)
    first, second, third = (dict(zip(_split(lines[0]), _split(line), strict=True)) for line in lines[2:])
    assert first["overhead"] == "" and first["extra"] == ""  # a missing key leaves the cell empty
    assert second["images_per_s"] == "" and second["extra"] == "7"
    assert third["speedup"] == "-"  # None: the measurement did not run


def test_format_table_number_formats():
    rows = [{"input": "i", "method": "m", "kernel": 3, "images_per_s": 1234.5678, "steps_per_s": 2.0,
             "volumes_per_s": 0.123, "seconds": 0.0123456, "overhead": 0.1234, "aug_share": 0.0512,
             "reference_images_per_s": 99.999, "vs_floor": 1.5, "speedup_vs_naive": 12.345, "speedup": 3.0}]
    header, _, body = format_table(rows).splitlines()
    cells = dict(zip(_split(header), _split(body), strict=True))
    assert cells == {"input": "i", "method": "m", "kernel": "3", "images_per_s": "1234.57", "steps_per_s": "2.00",
                     "volumes_per_s": "0.12", "seconds": "0.0123", "overhead": "+12.3%", "aug_share": "5.1%",
                     "reference_images_per_s": "100.00", "vs_floor": "1.50x", "speedup_vs_naive": "12.35x",
                     "speedup": "3.00x"}
    assert _split(format_table([{"overhead": -0.05}]).splitlines()[2]) == ["-5.0%"]


def test_format_table_aligns_columns():
    rows = [{"input": "2d 8x3x64x64", "method": "dense conv (floor)", "kernel": 3, "seconds": 0.001, "images_per_s": 8000.0},
            {"input": "3d", "method": "GIN", "kernel": "1,3", "seconds": 12.5, "images_per_s": 0.5}]
    lines = format_table(rows).splitlines()
    assert len({len(line) for line in lines}) == 1  # every line as wide as the others
    bars = [[i for i, ch in enumerate(line) if ch == "|"] for line in lines]
    assert all(b == bars[0] for b in bars)  # the separators line up
    rule = _split(lines[1])
    cols = _split(lines[0])
    # text columns (kernel mixes numbers and text) left-aligned, all-number columns right-aligned
    assert {c: r.endswith(":") for c, r in zip(cols, rule, strict=True)} == {
        "input": False, "method": False, "kernel": False, "images_per_s": True, "seconds": True}
    body = lines[3]
    seconds_cell = body.split("|")[cols.index("seconds") + 1]
    assert seconds_cell.endswith("12.5000 ") and seconds_cell.startswith(" ")
    input_cell = body.split("|")[cols.index("input") + 1]
    assert input_cell.startswith(" 3d ") and input_cell.endswith("  ")


def test_format_table_of_no_rows_is_empty():
    assert format_table([]) == ""


def test_print_table_prints_and_returns_the_formatted_table(capsys):
    rows = [{"input": "x", "method": "m", "seconds": 0.1}]
    assert print_table(rows) == format_table(rows)
    assert capsys.readouterr().out == format_table(rows) + "\n"


# ------------------------------------------------------------------------------------- target table
def _bench_functions() -> dict[str, object]:
    """Every ``bench_*`` function defined in a module of ``medrobust.bench``."""
    found = {}
    for info in pkgutil.iter_modules(bench.__path__, prefix="medrobust.bench."):
        mod = importlib.import_module(info.name)
        for name, obj in vars(mod).items():
            if name.startswith("bench_") and inspect.isfunction(obj) and obj.__module__ == mod.__name__:
                found[f"{mod.__name__}.{name}"] = obj
    return found


def test_benches_registers_every_bench_function():
    found = _bench_functions()
    registered = set(BENCHES.values())
    missing = sorted(name for name, fn in found.items() if fn not in registered)
    assert not missing, f"bench functions not in medrobust.bench.BENCHES: {missing}"
    assert set(BENCHES) == TARGETS
    for name, fn in BENCHES.items():
        assert fn.__name__ == f"bench_{name}" and fn.__module__ == f"medrobust.bench.{name}", name


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_every_target_takes_device_repeats_quick(name):
    params = inspect.signature(BENCHES[name]).parameters
    assert list(params)[:3] == ["device", "repeats", "quick"]
    assert params["device"].default == "cpu" and params["quick"].default is False


def test_only_cli_imports_bench():
    """``bench`` is the top layer beside ``cli``: no other package of medrobust imports it."""
    root = Path(medrobust.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if rel.parts[0] in ("bench", "cli"):
            continue
        package = ["medrobust", *rel.parts[:-1]]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            if any(n == "medrobust.bench" or n.startswith("medrobust.bench.") for n in names):
                offenders.append(f"{rel}:{node.lineno}")
    assert not offenders, f"only medrobust/cli may import medrobust.bench: {offenders}"


# ------------------------------------------------------------------------------------- a real target
def test_augment_quick_returns_rows_with_finite_timings():
    rows = BENCHES["augment"](device="cpu", repeats=1, quick=True)
    assert {r["input"] for r in rows} == {"2d 8x3x64x64", "3d 2x1x8x48x48"}
    methods = {r["method"] for r in rows}
    assert {"dense conv (floor)", "naive per-sample loop", "RandConv per-sample", "RandConv batch-shared",
            "RandConv per-sample mixed k, RC_mix", "GIN", "IPA"} == methods
    for r in rows:
        assert math.isfinite(r["seconds"]) and r["seconds"] > 0
        assert math.isfinite(r["images_per_s"]) and r["images_per_s"] > 0
    per_sample = [r for r in rows if r["method"] == "RandConv per-sample"]
    assert len(per_sample) == 4 and all(math.isfinite(r["vs_floor"]) and math.isfinite(r["speedup_vs_naive"])
                                        for r in per_sample)
    table = format_table(rows)
    assert len(table.splitlines()) == 2 + len(rows) and "vs_floor" in table.splitlines()[0]


def test_corruptions_bench_times_uint8_and_float_under_a_competing_process():
    from medrobust.bench.common import competing_load

    with competing_load(1):
        rows = BENCHES["corruptions"](device="cpu", repeats=1, quick=True, names=["contrast", "jpeg_compression"],
                                      inputs=[(4, 32)])
    assert [r["method"] for r in rows] == ["contrast", "jpeg_compression", "whole suite"]
    for r in rows:
        assert r["images_per_s"] > 0 and r["float_images_per_s"] > 0


def test_competing_load_starts_and_stops_busy_processes():
    import os
    import subprocess

    from medrobust.bench.common import competing_load

    def children() -> set[int]:  # this process' live children running the busy loop
        out = subprocess.run(["ps", "-o", "pid=,stat=,args=", "--ppid", str(os.getpid())], capture_output=True,
                             text=True).stdout
        return {int(line.split()[0]) for line in out.splitlines() if "while True" in line and " Z" not in line}

    before = children()
    with competing_load(2):
        busy = children() - before
        assert len(busy) == 2  # alive and busy for the whole block
    assert not children() & busy  # stopped (and reaped) at the end
