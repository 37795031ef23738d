"""DynTTA end to end on tiny embedded digits: train a classifier, train its enhancer through the CLI,
resume exactly, evaluate with and without enhancement (report rows, blend weights, bar chart)."""

from __future__ import annotations

import json

import pytest
import torch

from medrobust.cli import main
from medrobust.config import read_yaml

pytestmark = pytest.mark.slow

DATA = ["data.synthetic.size=16", "data.image_size=16", "data.max_train=64", "data.val_fraction=0.2"]


def test_dyntta_train_resume_evaluate(tmp_path, capsys):
    out = str(tmp_path)
    assert main(["train", "--config", "classification/digits/baseline", "--no-progress", "--set", f"output_dir={out}",
                 "--set", "train.steps=6", "--set", "train.val_every=6", *[w for s in DATA for w in ("--set", s)]]) == 0
    base = tmp_path / "digits_baseline"
    tta_args = ["tta", "train", "--model", str(base), "--config", "classification/digits/dyntta", "--no-progress",
                "--set", f"output_dir={out}", "--set", "train.steps=4", "--set", "train.val_every=2",
                "--set", "train.ckpt_every=2", "--set", "train.batch_size=8", "--set", "tta.val_images=16",
                "--set", "tta.corruptions=[gaussian_noise,contrast]"]
    assert main(tta_args) == 0
    run = tmp_path / "digits_dyntta"
    assert {"config.yaml", "last.pt", "best.pt", "metrics.jsonl"} <= {p.name for p in run.iterdir()}
    full = torch.load(run / "last.pt", weights_only=True)["model"]
    # resume: stop after 2 steps, continue, same weights as the uninterrupted run
    from medrobust.tasks.tta.train import load_tta_config, train_dyntta

    cfg = load_tta_config("classification/digits/dyntta", [a for a in tta_args[tta_args.index("--set") :] if a != "--set"],
                          model=base)
    train_dyntta(cfg, overwrite=True, progress=False, stop_after=2)
    assert main([*tta_args, "--resume"]) == 0
    resumed = torch.load(run / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    assert main(tta_args) == 2 and "--overwrite" in capsys.readouterr().err
    # blind mode trains too
    assert main([*tta_args, "--set", "name=blind", "--set", "tta.mode=blind", "--set", "train.steps=2"]) == 0

    rep = tmp_path / "report"
    ev = ["evaluate", "--run", f"base={base}", "--tta", f"dyntta={run}", "--tta", f"blind={tmp_path / 'blind'}",
          "--out", str(rep), "--no-progress", "--set", "evaluate.max_images=16", "--set",
          "evaluate.corruptions=[gaussian_noise,contrast]", "--set", "evaluate.severities=[1,3]"]
    assert main(ev) == 0
    res = json.loads((rep / "report.json").read_text())
    assert set(res["models"]) == {"base", "base+dyntta", "base+blind"}
    assert res["models"]["base+dyntta"]["clean"]["n"] == res["models"]["base"]["clean"]["n"] == 16
    w = res["tta"]["dyntta"]["mean_weights"]
    assert set(w) >= {"clean", "corrupt", "domain"} and sum(w["corrupt"].values()) == pytest.approx(1.0)
    assert (rep / "figures" / "tta_blend_weights.png").is_file()
    md = (rep / "report.md").read_text()
    assert "Test-time enhancement (DynTTA)" in md and "base+dyntta" in md
    # the follow-up: the report's ranking -> an AugMix recipe that trains
    ops = res["tta"]["dyntta"]["augmix_followup_ops"]["corrupt"]
    assert main(["tta", "topk", str(rep), "--tta", "dyntta", "--out", str(tmp_path / "topk.yaml"), "--name", "topk"]) == 0
    assert main(["train", "--config", str(tmp_path / "topk.yaml"), "--no-progress", "--set", f"output_dir={out}",
                 "--set", "train.steps=2", "--set", "train.val_every=2", *[w for s in DATA for w in ("--set", s)]]) == 0
    assert read_yaml(tmp_path / "topk" / "config.yaml")["augment"][0]["ops"] == ops
    # a TTA run given as a model is a one-line error
    assert main(["evaluate", "--run", str(run), "--out", str(tmp_path / "bad"), "--no-progress"]) == 2
    assert "pass it as --tta" in capsys.readouterr().err


CARDIAC = ["data.synthetic.n_train=4", "data.synthetic.n_test=1", "data.synthetic.size=[48,48]", "data.synthetic.n_slices=2",
           "data.spatial_size=[32,32]"]


def test_cardiac_dyntta_train_evaluate(tmp_path, capsys):
    """A tiny 2D cardiac segmenter, its 1-channel enhancer (MRI corruptions, Dice+CE) through the CLI, an
    exact resume, and the cardiac evaluation with ``base+dyntta`` next to ``base`` on the same slices (the
    report's DynTTA section and blend-weight chart)."""
    out = str(tmp_path)
    sets = [w for s in CARDIAC for w in ("--set", s)]
    assert main(["train", "--config", "cardiac/baseline", "--no-progress", "--set", f"output_dir={out}", *sets,
                 "--set", "model.channels=[4,8,16]", "--set", "model.strides=[2,2]", "--set", "train.steps=4",
                 "--set", "train.val_every=4", "--set", "train.ckpt_every=4", "--set", "train.batch_size=4"]) == 0
    base = tmp_path / "acdc_baseline"
    before = torch.load(base / "best.pt", weights_only=True)
    tta_sets = ["--set", f"output_dir={out}", "--set", "train.steps=4", "--set", "train.val_every=2",
                "--set", "train.ckpt_every=2", "--set", "train.batch_size=4", "--set", "tta.val_images=8"]
    tta_args = ["tta", "train", "--model", str(base), "--config", "cardiac/dyntta", "--no-progress", *tta_sets]
    assert main(tta_args) == 0
    run = tmp_path / "acdc_dyntta"
    full = torch.load(run / "last.pt", weights_only=True)
    # resume: stop after 2 steps, continue from last.pt: the weights, optimiser state and logged
    # training losses equal those of the uninterrupted run
    from medrobust.tasks.tta.train import load_tta_config, train_dyntta

    def train_losses():
        return [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]

    full_losses = train_losses()
    cfg = load_tta_config("cardiac/dyntta", [a for a in tta_sets if a != "--set"], model=base)
    train_dyntta(cfg, overwrite=True, progress=False, stop_after=2)
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 2
    assert main([*tta_args, "--resume"]) == 0
    resumed = torch.load(run / "last.pt", weights_only=True)
    assert resumed["step"] == full["step"] == 4
    assert all(torch.equal(full["model"][k], resumed["model"][k]) for k in full["model"])
    assert torch.equal(torch.cat([t.flatten() for s in full["optimizer"]["state"].values() for t in s.values()]),
                       torch.cat([t.flatten() for s in resumed["optimizer"]["state"].values() for t in s.values()]))
    assert train_losses() == full_losses
    ckpt = torch.load(run / "best.pt", weights_only=True)
    assert not any(k.startswith("model.") for k in ckpt["model"])  # the enhancer's weights only
    after = torch.load(base / "best.pt", weights_only=True)
    assert all(torch.equal(before["model"][k], after["model"][k]) for k in before["model"])
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("val_shift_dice" in r and "val_clean_dice_frozen" in r for r in lines)
    # `medrobust train` on the recipe is a one-line error
    assert main(["train", "--config", "cardiac/dyntta", "--set", f"output_dir={out}", "--no-progress"]) == 2
    assert "medrobust tta train" in capsys.readouterr().err

    rep = tmp_path / "report"
    assert main(["evaluate", "--run", f"base={base}", "--tta", f"dyntta={run}", "--out", str(rep), "--no-progress",
                 "--set", "evaluate.corruptions=[rician_noise,bias_field]", "--set", "evaluate.severities=[1,3]",
                 "--set", "evaluate.hd95=false"]) == 0
    res = json.loads((rep / "report.json").read_text())
    assert set(res["models"]) == {"base", "base+dyntta"}
    b, e = res["models"]["base"], res["models"]["base+dyntta"]
    assert e["clean"]["n_cases"] == b["clean"]["n_cases"] > 0 and set(e["corruptions"]) == {"rician_noise", "bias_field"}
    assert e["run_dir"] == str(base)
    w = res["tta"]["dyntta"]["mean_weights"]
    assert set(w) >= {"clean", "corrupt"} and sum(w["corrupt"].values()) == pytest.approx(1.0)
    md = (rep / "report.md").read_text()
    assert "base+dyntta" in md and "Test-time enhancement (DynTTA)" in md and "Δ corrupted (pt)" in md
    assert (rep / "figures" / "tta_blend_weights.png").is_file()
    assert res["tta"]["dyntta"]["augmix_followup_ops"]["corrupt"]  # the follow-up's AugMix ops are recorded
    # a TTA run given as a model is a one-line error
    assert main(["evaluate", "--run", str(run), "--out", str(tmp_path / "bad"), "--no-progress"]) == 2
    assert "pass it as --tta" in capsys.readouterr().err
