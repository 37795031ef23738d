"""DynTTA end to end on tiny embedded digits: train a classifier, train its enhancer through the CLI,
resume exactly, evaluate with and without enhancement (report rows, blend weights, bar chart)."""

from __future__ import annotations

import json

import pytest
import torch

from medrobust.cli import main

pytestmark = pytest.mark.slow

DATA = ["data.synthetic.size=16", "data.image_size=16", "data.max_train=64", "data.val_fraction=0.2"]


def test_dyntta_train_resume_evaluate(tmp_path, capsys):
    out = str(tmp_path)
    assert main(["train", "--config", "classification/digits/baseline", "--no-progress", "--set", f"output_dir={out}",
                 "--set", "train.steps=6", "--set", "train.val_every=6", *sum((["--set", s] for s in DATA), [])]) == 0
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
    # a TTA run given as a model is a one-line error
    assert main(["evaluate", "--run", str(run), "--out", str(tmp_path / "bad"), "--no-progress"]) == 2
    assert "pass it as --tta" in capsys.readouterr().err
