"""The task registry: one record per task with the same members, names, legacy names, config dispatch,
shipped recipes and protocols (package data)."""

from __future__ import annotations

import dataclasses
import inspect
from importlib import resources

import pytest
import yaml

from medrobust.config import ConfigError, packaged_configs, resolve_config_path
from medrobust.tasks import TASKS, Task, get_task, load_config, run_task, task_name
from medrobust.tasks.base import read_protocol, references
from medrobust.tasks.registry import LEGACY_NAMES


def test_one_record_per_task_with_the_same_members():
    assert sorted(TASKS) == ["cardiac", "classification", "driving", "microscopy"]
    members = [f.name for f in dataclasses.fields(Task)]
    for name, task in TASKS.items():
        assert task.name == name and task.config.model_fields["task"].default == name
        for m in members:
            if m not in ("name", "summary", "config", "corrupt"):
                assert callable(getattr(task, m)), (name, m)
        assert "num_classes" in inspect.signature(task.build_model).parameters
        assert {"device", "checkpoint"} <= set(inspect.signature(task.load_run).parameters)
        assert {"out_dir", "overrides", "corrupted_root", "device", "progress"} <= set(inspect.signature(task.evaluate).parameters)
        assert {"resume", "progress", "stop_after"} <= set(inspect.signature(task.train).parameters)
    assert TASKS["cardiac"].corrupt is not None and TASKS["classification"].corrupt is not None
    for task in TASKS.values():
        if task.corrupt is not None:
            assert "device" in inspect.signature(task.corrupt).parameters


def test_names_and_legacy_names(capsys):
    assert LEGACY_NAMES == {"acdc": "cardiac", "cifar10": "classification", "cifar100": "classification",
                            "digits": "classification", "pacs": "classification", "microscopy_blur": "microscopy"}
    assert task_name("acdc") == "cardiac" and get_task("microscopy_blur") is TASKS["microscopy"]
    with pytest.raises(ConfigError, match=r"--task: unknown task 'mri'; choose one of \['cardiac'"):
        get_task("mri", where="--task")
    cfg = load_config(None, ["task=acdc", "train.steps=3"])
    assert cfg.task == "cardiac" and cfg.train.steps == 3
    assert "'task: acdc' is now 'task: cardiac'" in capsys.readouterr().err
    assert load_config(None).task == "cardiac"  # no task key: the default task


def test_run_directories_of_earlier_releases_still_load(tmp_path, capsys):
    run = tmp_path / "old"
    run.mkdir()
    (run / "config.yaml").write_text("name: old\ntask: digits\nmodel: {name: digitnet}\n")
    assert run_task(run) is TASKS["classification"]
    cfg = load_config(run / "config.yaml")
    assert cfg.task == "classification" and cfg.data.dataset == "digits"
    with pytest.raises(FileNotFoundError, match="no config.yaml"):
        run_task(tmp_path / "nope")


def test_shipped_recipes_resolve_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = packaged_configs()
    assert {"cardiac/randconv", "classification/digits/baseline", "driving/baseline", "microscopy/linear_latent"} <= set(names)
    for name in names:
        path = resolve_config_path(name)
        assert path.is_file() and resolve_config_path(f"configs/{name}.yaml") == path
        if name.startswith(("classification/cifar10c/", "classification/pacs/")):
            # no embedded default: the recipe says data.root: null and stops at load with a one-line hint
            with pytest.raises(ConfigError) as e:
                load_config(name)
            hint = str(e.value).split("invalid config:\n", 1)[1].strip()
            assert hint.startswith("data.root: ") and "pass --set data.root=<folder with" in hint and "\n" not in hint
            cfg = load_config(name, ["data.root=/somewhere"])
        else:
            cfg = load_config(name)
        assert cfg.task == name.split("/")[0], name
        assert "/data/" not in yaml.safe_dump(cfg.model_dump(mode="json")), name  # no machine-specific roots
    with pytest.raises(ConfigError, match="config file not found"):
        resolve_config_path("cardiac/nope")
    (tmp_path / "mine.yaml").write_text("task: cardiac\nname: mine\n")
    assert load_config("mine.yaml").name == "mine"  # a real file wins


def test_protocols_are_package_data():
    seen = 0
    for name, task in TASKS.items():
        package = f"medrobust.tasks.{name}"
        files = sorted(p.name for p in (resources.files(package) / "protocols").iterdir() if p.name.endswith(".yaml"))
        assert files, package
        for f in files:
            data = read_protocol(package, f[:-5])
            assert data["name"] == f[:-5] and yaml.safe_dump(data)
            assert isinstance(references(package, f[:-5]), dict)
            seen += 1
    assert seen == 6
    with pytest.raises(FileNotFoundError, match="no protocol 'nope'"):
        read_protocol("medrobust.tasks.cardiac", "nope")


@pytest.mark.parametrize("task,extra", [("cardiac", []), ("classification", ["data.dataset=digits"]),
                                        ("classification", ["data.dataset=cifar10"]),
                                        ("driving", ["data.targets=[]"]), ("microscopy", [])])
def test_a_missing_data_root_names_the_key(tmp_path, task, extra):
    cfg = load_config(None, [f"task={task}", f"output_dir={tmp_path}", f"data.root={tmp_path / 'nope'}", *extra])
    with pytest.raises(FileNotFoundError, match=r"^data\.root: .*nope does not exist; expected .*\(pass --set data\.root=<folder>\)$"):
        TASKS[task].prepare_data(cfg)
