"""train.init_from / train.freeze: strict load from a run, the source recorded, resume continues the
finetune, another architecture refused in one line."""

import json

import pytest
import torch

from medrobust.tasks import load_config
from medrobust.tasks.classification import train_classification
from medrobust.train.finetune import freeze_modules, load_init_weights

TINY = ["task=classification", "data.dataset=pacs", "data.target_domains=[b]", "model.name=digitnet",
        "train.steps=4", "train.batch_size=8", "train.val_every=2", "train.ckpt_every=2", "data.train_transform=none",
        "train.schedule=constant", "data.test_fraction=0.25", "data.val_fraction=0.2"]


@pytest.fixture(scope="module")
def source(tmp_path_factory, write_domains):
    out = tmp_path_factory.mktemp("ft")
    TINY.append(f"data.root={write_domains(out / 'data_root')}")
    cfg = load_config(None, [*TINY, f"output_dir={out}", "name=src"])
    train_classification(cfg, progress=False)
    return out


def weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def test_init_from_loads_records_and_resume_continues(source):
    out = source
    over = [*TINY, f"output_dir={out}", "name=ft", f"train.init_from={out / 'src'}", "train.steps=4"]
    cfg = load_config(None, over)
    # stop after one step: the finetune's last.pt is not the source
    train_classification(cfg, progress=False, stop_after=2)
    rec = json.loads((out / "ft" / "init_from.json").read_text())
    assert rec["checkpoint"] == str((out / "src" / "best.pt").resolve()) and len(rec["sha256"]) == 64
    assert rec["source"] == {"name": "src", "task": "classification", "model": "digitnet"} and rec["step"] in (2, 4)
    saved = (out / "ft" / "config.yaml").read_text()
    assert f"init_from: {out / 'src'}" in saved
    mid = weights(out / "ft" / "last.pt")
    src = weights(out / "src" / "best.pt")
    assert any(not torch.equal(mid[k], src[k]) for k in src)  # trained on from the source
    # the source changes after the finetune started: --resume must continue the finetune, not reload
    corrupted = {k: torch.zeros_like(v) for k, v in src.items()}
    ckpt = torch.load(out / "src" / "best.pt", weights_only=True)
    torch.save({**ckpt, "model": corrupted}, out / "src" / "best.pt")
    try:
        train_classification(cfg, progress=False, resume=True)
        end = weights(out / "ft" / "last.pt")
        assert all(float(v.abs().sum()) > 0 for k, v in end.items() if k.endswith("weight"))
    finally:
        torch.save(ckpt, out / "src" / "best.pt")


def test_init_from_refuses_another_architecture_in_one_line(source, tmp_path):
    cfg = load_config(None, [*TINY, f"output_dir={tmp_path}", "name=other", "model.name=resnet18",
                             f"train.init_from={source / 'src'}"])
    with pytest.raises(ValueError) as err:
        train_classification(cfg, progress=False)
    msg = str(err.value)
    assert "\n" not in msg and len(msg) < 400
    assert "train.init_from" in msg and "another architecture" in msg and "source model digitnet" in msg
    with pytest.raises(FileNotFoundError, match="train.init_from.*does not exist"):
        load_init_weights(torch.nn.Linear(2, 2), tmp_path / "nope")


def test_freeze_keeps_weights_and_batchnorm_statistics():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.LazyLinear(2))
    model(torch.rand(2, 3, 8, 8))
    frozen = freeze_modules(model, ["0", "1"])
    assert frozen == ["0.weight", "0.bias", "1.weight", "1.bias"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW([p for p in model.parameters()], lr=0.1)
    model.train()
    assert not model[1].training and model[4].training
    for _ in range(2):
        opt.zero_grad()
        model(torch.rand(4, 3, 8, 8) * 5).sum().backward()
        opt.step()
    after = model.state_dict()
    for k in ("0.weight", "1.weight", "1.running_mean", "1.running_var"):
        assert torch.equal(before[k], after[k]), k
    assert not torch.equal(before["4.weight"], after["4.weight"])
    with pytest.raises(ValueError, match=r"unknown module '5'"):
        freeze_modules(model, ["5"])
