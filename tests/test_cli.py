import subprocess
import sys

import pytest

from medrobust.cli import build_parser, main


def test_help_lists_subcommands_and_each_has_help(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    names = list(sub.choices)
    assert {"bench", "demo"} <= set(names)
    for name in names:
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0
        assert "usage: medrobust " + name in capsys.readouterr().out


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "medrobust.cli", "--help"], capture_output=True, text=True, check=True)
    assert "bench" in out.stdout


def test_bench_augment_quick_runs(capsys, tmp_path):
    assert main(["bench", "augment", "--quick", "--repeats", "1", "--device", "cpu", "--json", str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "RandConv per-sample" in out and "naive per-sample loop" in out and "dense conv (floor)" in out
    assert (tmp_path / "b.json").is_file()
