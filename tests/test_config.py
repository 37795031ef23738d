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
