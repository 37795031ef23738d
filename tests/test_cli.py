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


def test_demo_resumes_only_a_run_with_the_same_config(tmp_path, monkeypatch, capsys):
    """`medrobust demo` reuses an earlier model only when its saved config equals the new one exactly;
    any other earlier run in its folder is started over (overwrite), with a line saying so."""
    import medrobust.tasks.cardiac as cardiac
    from medrobust.cli import demo
    from medrobust.config import load_config, resolve_config_path, save_config
    from medrobust.train.loop import FitResult

    calls = []

    def fake_train(cfg, *, resume=False, overwrite=False, progress=True):
        calls.append((cfg.name, resume, overwrite))
        return FitResult(cfg.run_dir, cfg.train.steps, 0.5, cfg.train.steps)

    monkeypatch.setattr(cardiac, "train_cardiac", fake_train)
    monkeypatch.setattr(cardiac, "evaluate_cardiac", lambda runs, **kw: {"files": {"markdown": "report.md"}})
    monkeypatch.setattr(cardiac, "comparison_table", lambda results: "| table |")
    monkeypatch.setattr(demo, "augment_grid", lambda *a, **kw: None)
    out = tmp_path / "demo"

    def earlier_runs(steps):
        for name in ("baseline", "randconv"):
            cfg = load_config(resolve_config_path(f"cardiac/{name}"), [f"output_dir={out}", "seed=0", "train.device=auto",
                                                                      f"train.steps={steps}"], model=cardiac.CardiacConfig)
            cfg.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, cfg.run_dir / "config.yaml")
            (cfg.run_dir / "last.pt").write_bytes(b"ckpt")

    demo.run_demo(out, steps=3, progress=False)
    assert [c[1:] for c in calls] == [(False, True)] * 2, "nothing to reuse: fresh runs"
    calls.clear()
    earlier_runs(3)
    demo.run_demo(out, steps=3, progress=False)
    assert [c[1:] for c in calls] == [(True, False)] * 2, "the same config: continue"
    assert "same config" in capsys.readouterr().out
    calls.clear()
    demo.run_demo(out, steps=5, progress=False)
    assert [c[1:] for c in calls] == [(False, True)] * 2, "another --steps: start over, never reuse the old model"
    printed = capsys.readouterr().out
    assert printed.count("starting it over") == 2 and "train.steps" in printed



# ------------------------------------------------------------------ user errors: one line, before any compute
def _boom(*args, **kwargs):
    raise AssertionError("compute started before the arguments were checked")


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(n in err for n in needles), err
    return err


def test_out_paths_that_are_files_fail_before_any_compute(tmp_path, capsys, monkeypatch):
    import dataclasses

    from medrobust.cli import demo
    from medrobust.tasks import TASKS, microscopy
    from medrobust.tasks.classification import dfm

    for name in ("cardiac", "classification"):
        monkeypatch.setitem(TASKS, name, dataclasses.replace(TASKS[name], evaluate=_boom, corrupt=_boom))
    monkeypatch.setattr(microscopy, "TASK", dataclasses.replace(microscopy.TASK, evaluate=_boom))
    monkeypatch.setattr(dfm, "run_dfm", _boom)
    monkeypatch.setattr(demo, "run_demo", _boom)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("task: cardiac\n")
    root = tmp_path / "root"
    root.mkdir()
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out in (afile, afile / "sub"):
        for argv in (["evaluate", "--run", str(run)],
                     ["corrupt", "--task", "cardiac", "--root", str(root)],
                     ["corrupt", "--task", "cifar", "--root", str(root)],
                     ["dfm", "--checkpoint", str(run)],
                     ["blur", "evaluate", "--run", str(run)],
                     ["demo"]):
            assert main([*argv, "--out", str(out)]) == 2, argv
            _one_line_error(capsys, f"--out {out}: ", "is a file; expected a folder")
    # input folders named on the command line
    assert main(["evaluate", "--run", str(run), "--out", str(tmp_path / "o"), "--corrupted-root", str(tmp_path / "nope")]) == 2
    _one_line_error(capsys, "--corrupted-root", "folder does not exist")
    assert main(["blur", "evaluate", "--run", str(run), "--out", str(tmp_path / "o"), "--data-root", str(afile)]) == 2
    _one_line_error(capsys, "--data-root", "expected a folder")
    assert main(["corrupt", "--task", "acdc", "--root", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "--root", "folder does not exist")
    assert not (tmp_path / "o").exists()


def test_blur_image_outputs_under_a_file_fail_before_loading_the_model(tmp_path, capsys):
    import numpy as np

    from medrobust.data.microscopy import write_image

    img = write_image(tmp_path / "in.png", np.zeros((16, 16), np.uint8))
    (tmp_path / "afile").write_text("x")
    for action, knob in (("synthesize", "--level"), ("deblur", "--strength")):
        assert main(["blur", action, "--checkpoint", str(tmp_path / "no_model.pt"), "--input", str(img), knob, "0.5",
                     "--out", str(tmp_path / "afile" / "out.png")]) == 2
        _one_line_error(capsys, "--out", "afile is a file, not a folder")


def test_bad_devices_are_one_line_errors_before_any_data_is_written(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "--config", "cardiac/baseline", "--set", "train.device=gpu", "--set", f"output_dir={runs}"]) == 2
    err = capsys.readouterr().err
    assert "'train.device': expected auto, cpu, cuda or cuda:N" in err and "Traceback" not in err
    assert not runs.exists()
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("task: cardiac\n")
    assert main(["evaluate", "--run", str(run), "--out", str(tmp_path / "o"), "--device", "gpu"]) == 2
    _one_line_error(capsys, "--device: expected auto, cpu, cuda or cuda:N")


def _walk_parsers(parser, path=()):
    import argparse

    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk_parsers(sub, (*path, name))


def test_every_subcommand_has_a_description_and_every_flag_help(capsys):
    import argparse

    from medrobust.tasks import TASKS

    parsers = dict(_walk_parsers(build_parser()))
    assert {("train",), ("evaluate",), ("corrupt",), ("dfm",), ("blur", "synthesize"), ("demo",)} <= set(parsers)
    for path, p in parsers.items():
        if path:
            assert p.description, f"medrobust {' '.join(path)}: no description"
        for action in p._actions:
            if not isinstance(action, argparse._SubParsersAction):
                assert action.help and action.help != argparse.SUPPRESS, (path, action.option_strings or action.dest)
    # corrupt --task lists its choices: the tasks with a writer and the earlier names
    writers = [n for n, t in TASKS.items() if t.corrupt is not None]
    with pytest.raises(SystemExit):
        main(["corrupt", "--help"])
    out = capsys.readouterr().out
    assert "--task {" + ",".join([*writers, "acdc", "cifar", "nifti"]) + "}" in out
    # train --help says where a run goes and what it holds
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for word in ("<output_dir>/<name>/", "config.yaml", "metrics.jsonl", "last.pt", "best.pt"):
        assert word in out, word


def _doc_commands(path):
    """Each shell command of the ```bash blocks of a Markdown file (continuations joined, comments cut)."""
    import re
    import shlex

    for block in re.findall(r"```bash\n(.*?)```", path.read_text(encoding="utf-8"), re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                yield words


def test_readme_and_docs_commands_exist_with_these_flags(tmp_path, monkeypatch):
    """Every `medrobust ...` command of README.md and docs/*.md parses, names a config that exists and
    validates with its --set overrides; `make` targets exist; the README's Python blocks run."""
    import re
    from pathlib import Path

    from medrobust.config import load_config as load_with_model
    from medrobust.tasks import load_config as load_task_config
    from medrobust.tasks.microscopy import BlurConfig

    root = Path(__file__).resolve().parents[1]
    makefile = (root / "Makefile").read_text()
    parser = build_parser()
    docs = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    monkeypatch.chdir(tmp_path)
    seen = 0
    for doc in docs:
        for words in _doc_commands(doc):
            if words[0] == "torchrun":
                words = ["medrobust", *words[words.index("medrobust.cli") + 1:]]
            if words[0] == "make":
                assert re.search(rf"^{words[1]}:", makefile, re.MULTILINE), (doc.name, words)
                continue
            if words[0] != "medrobust":
                continue
            args = parser.parse_args(words[1:])  # SystemExit on an unknown command or flag
            seen += 1
            if getattr(args, "config", None):
                if args.command == "blur":
                    load_with_model(args.config, args.overrides, model=BlurConfig)
                else:
                    load_task_config(args.config, args.overrides)
    assert seen >= 25
    for block in re.findall(r"```python\n(.*?)```", (root / "README.md").read_text(encoding="utf-8"), re.DOTALL):
        exec(compile(block, "README.md", "exec"), {})  # noqa: S102 - the README's own examples
