import re

import pytest
import yaml

from medrobust.config import ConfigError, apply_overrides, save_config
from medrobust.tasks import load_config
from medrobust.tasks.cardiac import CardiacConfig


def write(tmp_path, text, name="c.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_and_overrides(tmp_path):
    cfg = load_config(write(tmp_path, "name: a\ntrain: {steps: 7}\naugment: [{name: randconv, mixing: true}]\n"),
                      ["train.lr=0.5", "augment.0.kernel_sizes=[3, 5]", "consistency.weight=5", "data.root=null"])
    assert isinstance(cfg, CardiacConfig)
    assert cfg.train.steps == 7 and cfg.train.lr == 0.5
    assert cfg.augment == [{"name": "randconv", "mixing": True, "kernel_sizes": [3, 5]}]
    assert cfg.consistency.weight == 5 and cfg.consistency.views == 3
    assert cfg.data.root is None


def test_unknown_key_names_dotted_path_and_allowed_keys(tmp_path):
    p = write(tmp_path, "train:\n  stepz: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg and "train.stepz" in msg and "steps" in msg and "batch_size" in msg
    with pytest.raises(ConfigError, match=r"unknown key 'data.synthetic.sizes'.*n_train"):
        load_config(None, ["data.synthetic.sizes=3"])


def test_mistyped_values_and_bad_augment(tmp_path):
    with pytest.raises(ConfigError, match=r"'train.lr'.*valid number"):
        load_config(None, ["train.lr=fast"])
    with pytest.raises(ConfigError, match=r"model.name"):
        load_config(None, ["model.name=resnet9000"])
    with pytest.raises(ConfigError, match=r"augment\[0\].*mixin.*allowed keys"):
        load_config(write(tmp_path, "augment:\n  - {name: randconv, mixin: true}\n"))
    with pytest.raises(ConfigError, match=r"split"):
        load_config(None, ["data.split=[0.5, 0.5, 0.5]"])
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "train: [\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(None, ["train.steps"])


def test_override_parsing_creates_nested_and_list_entries():
    d = {"augment": [{"name": "gin"}]}
    apply_overrides(d, ["a.b.c=1", "augment.0.p=0.5", "augment.1={name: randconv}", "x=[1, 2]"])
    assert d == {"augment": [{"name": "gin", "p": 0.5}, {"name": "randconv"}], "a": {"b": {"c": 1}}, "x": [1, 2]}
    with pytest.raises(ConfigError, match="out of range"):
        apply_overrides(d, ["augment.5=1"])


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(None, ["name=rt", "augment.0={name: gin}", "consistency.name=jsd"])
    save_config(cfg, tmp_path / "config.yaml")
    data = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert data["train"]["steps"] == cfg.train.steps  # defaults are written out (resolved config)
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg


@pytest.mark.parametrize("bad", ["../x", "/tmp/x", "a/b", "a\\b", "", "  ", ".", ".."])
def test_run_name_is_a_plain_folder_name(tmp_path, bad):
    # a run name must not lead the run directory out of output_dir (name: ../x, an absolute path, ...)
    with pytest.raises(ConfigError, match=r"'name': expected a plain folder name") as e:
        load_config(write(tmp_path, yaml.safe_dump({"name": bad, "output_dir": str(tmp_path / "runs")})))
    assert "\n" not in str(e.value).split("invalid config:\n", 1)[1].strip()
    cfg = load_config(None, ["name=run-1.b_2", f"output_dir={tmp_path / 'runs'}"])
    assert cfg.run_dir == tmp_path / "runs" / "run-1.b_2"


# ------------------------------------------------------------------ numbers: booleans are not numbers
def _number_fields(model, prefix=""):
    """``(dotted key, YAML value holding a boolean)`` for every int/float field of ``model`` and its
    nested sections (lists of models aside), e.g. ``("train.steps", "true")``, ``("data.split", "[true]")``."""
    import typing

    from pydantic import BaseModel

    def unwrap(ann):
        args = [a for a in typing.get_args(ann) if a is not type(None)] if typing.get_origin(ann) in (
            typing.Union, __import__("types").UnionType) else [ann]
        return args

    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        for ann in unwrap(field.annotation):
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                yield from _number_fields(ann, key + ".")
            elif ann in (int, float) and bool not in unwrap(field.annotation):
                yield key, "true"
            elif typing.get_origin(ann) in (list, tuple) and typing.get_args(ann) and typing.get_args(ann)[0] in (int, float):
                n = len(typing.get_args(ann)) if typing.get_args(ann)[-1] is not Ellipsis else 1
                yield key, "[" + ", ".join(["true"] * n) + "]"


def test_booleans_are_not_numbers_in_any_task_config():
    # YAML 1.1 reads true/on/yes as True; pydantic's lax mode turned that into 1 (`--set train.steps=true`)
    from medrobust.tasks import TASKS

    seen = 0
    for name, task in TASKS.items():
        for key, value in _number_fields(task.config):
            with pytest.raises(ConfigError, match=rf"'{re.escape(key)}': (\[0\]: )?expected an? (integer|number), not a "
                                                  "boolean"):
                load_config(None, [f"task={name}", f"{key}={value}"])
            seen += 1
    assert seen > 100  # every int/float field of the four configs, nested sections included
    for override in ("seed=on", "train.steps=yes", "data.targets=[{name: a, dataset: bdd100k, resize: [64, true]}]"):
        with pytest.raises(ConfigError, match="not a boolean"):
            load_config(None, ["task=driving", override])


def test_numbers_stay_lax_where_yaml_needs_it(tmp_path):
    # ints for floats, whole floats for ints, lists for tuples, and PyYAML's string '1e-3' still load
    cfg = load_config(write(tmp_path, "train: {lr: 1, steps: 100.0, grad_clip: 2}\ndata: {spatial_size: [64, 64]}\n"),
                      ["train.weight_decay=1e-3", "evaluate.severities=[1, 3]"])
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float) and cfg.train.steps == 100
    assert cfg.data.spatial_size == (64, 64) and cfg.train.weight_decay == 1e-3 and cfg.evaluate.severities == [1, 3]
    with pytest.raises(ConfigError, match=r"'train.steps'.*fractional part"):
        load_config(None, ["train.steps=2.5"])
    assert load_config(None, ["train.amp=false", "train.grad_clip=null"]).train.amp is False  # booleans stay booleans


def test_train_device_is_checked_at_load():
    with pytest.raises(ConfigError, match=r"'train.device': expected auto, cpu, cuda or cuda:N"):
        load_config(None, ["train.device=gpu"])
    for name in ("auto", "cpu", "cuda", "cuda:1"):  # whether the GPU is there is checked when training starts
        assert load_config(None, [f"train.device={name}"]).train.device == name


def test_checks_across_keys_name_their_keys_without_the_whole_config():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["task=classification", "data.dataset=cifar10"])
    msg = str(e.value)
    assert "data.root: dataset 'cifar10' needs a dataset root" in msg and "pass --set data.root=" in msg
    assert "<root>" not in msg and "{" not in msg.split("\n", 1)[1].replace("<folder", "")


def test_recipes_resolve_by_their_earlier_folder_names(tmp_path, monkeypatch):
    from medrobust.config import PACKAGED_CONFIGS, resolve_config_path

    monkeypatch.chdir(tmp_path)  # as from an installed wheel: no configs/ folder here
    assert resolve_config_path("configs/acdc/randconv.yaml") == PACKAGED_CONFIGS / "cardiac" / "randconv.yaml"
    assert resolve_config_path("digits/baseline") == PACKAGED_CONFIGS / "classification" / "digits" / "baseline.yaml"
    assert resolve_config_path("cardiac/gin") == PACKAGED_CONFIGS / "cardiac" / "gin.yaml"
    with pytest.raises(ConfigError, match="acdc/nope: config file not found"):
        resolve_config_path("acdc/nope")
