"""Run folders: a trained run is never replaced without --overwrite, --resume refuses a changed config
(except the safe keys) and names unreadable or foreign checkpoints in one line."""

import hashlib
import inspect

import pytest
import torch

from medrobust.cli import main
from medrobust.config import read_yaml, save_config
from medrobust.io import read_jsonl
from medrobust.tasks import TASKS, load_config
from medrobust.tasks.cardiac import train_cardiac
from medrobust.train.loop import RESUME_SAFE_KEYS, config_changes, prepare_run_dir

TINY = [
    "data.synthetic.n_train=4", "data.synthetic.n_test=1", "data.synthetic.size=[48, 48]", "data.synthetic.n_slices=2",
    "data.spatial_size=[32, 32]", "model.channels=[4, 8, 16]", "model.strides=[2, 2]", "train.batch_size=4",
    "train.val_every=3", "train.ckpt_every=1", "train.log_every=1", "evaluate.batch_size=8", "train.device=cpu",
]


def tiny(tmp_path, name, *extra):
    return [f"output_dir={tmp_path}", f"name={name}", *TINY, *extra]


def cfg_of(tmp_path, name, *extra):
    return load_config(None, tiny(tmp_path, name, *extra))


def cli(*argv, sets):
    return main([*argv, "--no-progress", *[a for s in sets for a in ("--set", s)]])


def fake_run(cfg, files=("last.pt", "best.pt")):
    """A run folder as an earlier `medrobust train` leaves it (checkpoint contents do not matter here)."""
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, cfg.run_dir / "config.yaml")
    for name in files:
        (cfg.run_dir / name).write_bytes(b"weights of an earlier run")
    (cfg.run_dir / "metrics.jsonl").write_text("".join(f'{{"step": {i}, "loss": 1.0}}\n' for i in range(1, 121)))
    return cfg.run_dir


def digest(run_dir):
    return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(run_dir.iterdir()) if p.is_file()}


def one_line_error(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("medrobust "), err
    return err


def test_every_task_trainer_takes_overwrite():
    for name, task in TASKS.items():
        assert "overwrite" in inspect.signature(task.train).parameters, name


def test_rerun_without_flags_refuses_a_trained_run(tmp_path, capsys):
    for ckpt in ("last.pt", "best.pt", "model.pt"):
        run = fake_run(cfg_of(tmp_path, f"r_{ckpt[:-3]}"), files=(ckpt,))
        before = digest(run)
        assert cli("train", sets=tiny(tmp_path, run.name, "train.steps=5")) == 2
        err = one_line_error(capsys)
        assert str(run) in err and "--resume" in err and "--overwrite" in err and ckpt in err, err
        assert digest(run) == before, "nothing in the run folder may change"
        with pytest.raises(FileExistsError, match="--overwrite"):
            train_cardiac(cfg_of(tmp_path, run.name), progress=False)
    # the blur trainer refuses the same way
    from medrobust.config import load_config as load_model_config
    from medrobust.tasks.microscopy import BlurConfig

    bcfg = load_model_config(None, [f"output_dir={tmp_path}", "name=blur"], model=BlurConfig)
    run = fake_run(bcfg, files=("model.pt",))
    before = digest(run)
    assert main(["blur", "train", "--no-progress", "--set", f"output_dir={tmp_path}", "--set", "name=blur"]) == 2
    assert "--overwrite" in one_line_error(capsys)
    assert digest(run) == before
    # a folder without a checkpoint (a run killed before its first one) is no trained run
    cfg = cfg_of(tmp_path, "empty")
    cfg.run_dir.mkdir()
    (cfg.run_dir / "metrics.jsonl").write_text('{"step": 1}\n')
    assert prepare_run_dir(cfg) == cfg.run_dir and (cfg.run_dir / "config.yaml").is_file()


def test_overwrite_removes_only_the_run_files_and_trains_as_fresh(tmp_path, capsys):
    run = fake_run(cfg_of(tmp_path, "old", "train.steps=120"), files=("last.pt", "best.pt", "model.pt"))
    (run / ".last.pt.abc123.tmp.pt").write_bytes(b"half-written by a killed save")
    (run / "notes.txt").write_text("mine")
    (run / "report").mkdir()
    (run / "report" / "report.md").write_text("an evaluation the user wrote here")
    (tmp_path / "beside.pt").write_bytes(b"not the run's")
    assert cli("train", "--overwrite", sets=tiny(tmp_path, "old", "train.steps=2")) == 0
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "config.yaml", "last.pt", "metrics.jsonl", "notes.txt",
                                                     "report"]
    assert (run / "notes.txt").read_text() == "mine" and (run / "report" / "report.md").is_file()
    assert (tmp_path / "beside.pt").read_bytes() == b"not the run's"
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl") if "loss" in r] == [1, 2]
    assert read_yaml(run / "config.yaml")["train"]["steps"] == 2
    # bit-identical to a fresh run of the same config
    assert cli("train", sets=tiny(tmp_path, "fresh", "train.steps=2")) == 0
    a = torch.load(run / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "fresh" / "last.pt", weights_only=True)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert [r["loss"] for r in read_jsonl(run / "metrics.jsonl") if "loss" in r] == \
           [r["loss"] for r in read_jsonl(tmp_path / "fresh" / "metrics.jsonl") if "loss" in r]
    # --resume and --overwrite together: one line, nothing touched
    before = digest(run)
    assert cli("train", "--resume", "--overwrite", sets=tiny(tmp_path, "old", "train.steps=2")) == 2
    assert "exclude each other" in one_line_error(capsys)
    assert digest(run) == before


def test_resume_refuses_a_changed_config_naming_the_keys(tmp_path, capsys):
    cfg = cfg_of(tmp_path, "r", "train.steps=20", "augment.0={name: randconv}")
    run = fake_run(cfg)
    before = digest(run)
    for extra, keys in ((["train.steps=10"], ["train.steps 20 -> 10 (may only grow)"]),
                        (["train.lr=0.1", "augment=[]"], ["train.lr 0.002 -> 0.1", "augment [{"]),
                        (["augment.0.mixing=true"], ["augment.0.mixing <missing> -> true"]),
                        (["train.steps=40"], ["train.steps 20 -> 40 (train.schedule is cosine"]),
                        (["model.channels=[4, 8, 32]"], ["model.channels.2 16 -> 32"]),
                        (["consistency={views: 2}"], ["consistency null -> {"])):
        sets = tiny(tmp_path, "r", "train.steps=20", "augment.0={name: randconv}", *extra)
        assert cli("train", "--resume", sets=sets) == 2
        err = one_line_error(capsys)
        for key in keys:
            assert key in err, (key, err)
        assert "--overwrite" in err and "train.device" in err
        assert digest(run) == before, "the saved config must keep describing the weights"
    with pytest.raises(ValueError, match=r"train\.lr"):
        train_cardiac(cfg_of(tmp_path, "r", "train.steps=20", "augment.0={name: randconv}", "train.lr=0.1"),
                      resume=True, progress=False)
    # safe keys only: accepted, and config.yaml records them
    safe = cfg_of(tmp_path, "r", "train.steps=20", "augment.0={name: randconv}", "train.log_every=5",
                  "train.ckpt_every=7", "data.num_workers=1", "train.device=auto")
    assert prepare_run_dir(safe, resume=True) == run
    saved = read_yaml(run / "config.yaml")
    assert (saved["train"]["log_every"], saved["train"]["ckpt_every"], saved["data"]["num_workers"]) == (5, 7, 1)
    assert config_changes(safe) == []
    assert {"train.device", "data.num_workers", "train.log_every", "train.ckpt_every", "train.steps"} <= set(RESUME_SAFE_KEYS)


def test_resume_to_more_steps_with_a_constant_schedule_equals_the_longer_run(tmp_path):
    const = ["train.schedule=constant", "train.warmup_steps=1"]
    short = cfg_of(tmp_path, "grow", "train.steps=2", *const)
    train_cardiac(short, progress=False)
    longer = cfg_of(tmp_path, "grow", "train.steps=3", *const, "train.log_every=2")
    assert train_cardiac(longer, resume=True, progress=False).step == 3
    saved = read_yaml(tmp_path / "grow" / "config.yaml")
    assert saved["train"]["steps"] == 3 and saved["train"]["log_every"] == 2
    train_cardiac(cfg_of(tmp_path, "straight", "train.steps=3", *const), progress=False)
    a = torch.load(tmp_path / "grow" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_names_a_bad_checkpoint_in_one_line(tmp_path, capsys):
    sets = tiny(tmp_path, "bad", "train.steps=3")
    cfg = cfg_of(tmp_path, "bad", "train.steps=3")
    prepare_run_dir(cfg)
    last = cfg.run_dir / "last.pt"
    # no last.pt
    assert cli("train", "--resume", sets=sets) == 2
    err = one_line_error(capsys)
    assert str(last) in err and "without --resume" in err
    assert cli("train", "--resume", sets=tiny(tmp_path, "nowhere")) == 2
    assert "does not exist" in one_line_error(capsys)
    # a real checkpoint of this model, then broken copies of it
    model = TASKS["cardiac"].build_model(cfg)
    opt = torch.optim.AdamW(model.parameters())
    good = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": {}, "scaler": {}, "step": 1,
            "best_metric": 0.0, "best_step": 1, "rng": {}}
    torch.save(good, last)
    data = last.read_bytes()
    from medrobust.config import load_config as load_model_config
    from medrobust.tasks.classification import ClassificationConfig

    ccfg = load_model_config(None, ["model.name=digitnet"], model=ClassificationConfig)
    other = TASKS["classification"].build_model(ccfg, 10)
    cases = {
        "truncated": (data[: len(data) // 2], "not a readable checkpoint"),
        "garbage": (b"\x00\x01 not a checkpoint at all" * 20, "not a readable checkpoint"),
        "empty": (b"", "not a readable checkpoint"),
        "other task": ({**good, "model": other.state_dict()}, "checkpoint of another model"),
        "exported model": ({"state_dict": model.state_dict(), "config": {}}, "not a training checkpoint"),
        "a tensor": (torch.zeros(3), "not a training checkpoint"),
    }
    for name, (content, expected) in cases.items():
        if isinstance(content, bytes):
            last.write_bytes(content)
        else:
            torch.save(content, last)
        assert cli("train", "--resume", sets=sets) == 2, name
        err = one_line_error(capsys)
        assert str(last) in err and expected in err and "last.pt" in err, (name, err)
        assert "weights_only" not in err and len(err) < 400, (name, err)
