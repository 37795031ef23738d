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


def test_subcommands_dispatch_through_the_task_registry(tmp_path, capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    bench = next(a for a in sub.choices["bench"]._actions if a.dest == "target")
    from medrobust.bench import BENCHES

    assert sorted(bench.choices) == sorted(BENCHES)
    # a task without a corrupted-set writer, an unknown task and a bad device: one line each, exit 2
    root = tmp_path / "root"
    root.mkdir()
    for argv, msg in ((["--task", "driving"], "--task driving: no corrupted-set writer for this task; choose one of "
                                              "['cardiac', 'classification']"),
                      (["--task", "mri"], "--task: unknown task 'mri'"),
                      (["--task", "cardiac", "--device", "gpu"], "--device: expected cpu, cuda, cuda:N or auto")):
        assert main(["corrupt", *argv, "--root", str(root), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1, err


def test_train_reads_a_shipped_recipe_by_name(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--config", "classification/digits/baseline", "--no-progress", "--set", "train.steps=1",
                 "--set", "train.val_every=1", "--set", "model.name=digitnet", "--set", "output_dir=runs"]) == 0
    assert "trained digits_baseline: step 1" in capsys.readouterr().out
    assert (tmp_path / "runs" / "digits_baseline" / "config.yaml").read_text().startswith("name: digits_baseline\ntask: classification\n")
