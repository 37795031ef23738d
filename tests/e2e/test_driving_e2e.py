"""Tiny train -> evaluate of the driving task on the embedded default (source + 3 target layouts)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from medrobust.tasks.driving import DrivingConfig, train_driving
from medrobust.config import ConfigError, load_config
from medrobust.tasks import load_config as load_task_config
from medrobust.tasks.driving.evaluate import evaluate_driving
from medrobust.tasks.driving.report import comparison_table

TINY = [
    "task=driving", "data.synthetic.n_train=4", "data.synthetic.n_val=1", "data.synthetic.n_target=1",
    "data.synthetic.size=[64, 128]", "data.crop_size=[64, 128]", "train.batch_size=2", "train.steps=2",
    "train.val_every=2", "train.ckpt_every=2", "train.log_every=1", "evaluate.window=[64, 128]",
    "evaluate.corruptions=[gaussian_noise]", "evaluate.severities=[2]", "evaluate.grid_images=1",
]


def cfg_for(tmp_path, name, *extra):
    return load_config(None, [f"output_dir={tmp_path}", f"name={name}", *TINY, *extra], model=DrivingConfig)


def test_train_and_evaluate_baseline_and_randconv(tmp_path, refuse_forward_passes):
    torch.manual_seed(0)
    for name, extra in (("base", []), ("rc", ["augment.0={name: randconv, mixing: true}", "consistency={views: 2}"])):
        res = train_driving(cfg_for(tmp_path, name, *extra), progress=False)
        assert res.step == 2 and 0 <= res.best_metric <= 1
        assert (tmp_path / name / "best.pt").is_file() and (tmp_path / name / "config.yaml").is_file()
        lines = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        assert any("val_miou" in r for r in lines) and all(np.isfinite(r.get("loss", 0)) for r in lines)
    out = tmp_path / "report"
    results = evaluate_driving({"baseline": tmp_path / "base", "randconv": tmp_path / "rc"}, out_dir=out,
                               device="cpu", progress=False)
    for name in ("baseline", "randconv"):
        m = results["models"][name]
        assert 0 <= m["source"]["miou"] <= 1 and m["source"]["n_images"] == 1
        assert set(m["targets"]) == {"bdd100k", "mapillary", "synthia"}
        for t in m["targets"].values():
            assert 0 <= t["miou"] <= 1 and t["n_pixels"] > 0
            assert np.asarray(t["confusion"]).shape == (19, 19)
        assert 0 <= m["corruptions"]["gaussian_noise"]["2"]["miou"] <= 1
    saved = json.loads((out / "report.json").read_text())
    assert set(saved["models"]) == {"baseline", "randconv"}
    md = (out / "report.md").read_text()
    assert "| baseline |" in md and "Per-class IoU" in md and "synthia" in md
    table = comparison_table(results)
    assert table.splitlines()[0].startswith("| Model | Source | bdd100k | mapillary | synthia | Targets mean")
    for fig in ("class_iou.png", "predictions.png"):
        assert (out / "figures" / fig).stat().st_size > 5000
    # where every number came from
    assert results["runs"] == {"baseline": str(tmp_path / "base"), "randconv": str(tmp_path / "rc")}
    assert "run" not in results
    for name, folder in (("baseline", "base"), ("randconv", "rc")):
        prov = results["models"][name]["provenance"]
        assert prov["run_dir"] == str(tmp_path / folder) and prov["checkpoint_step"] == 2
        assert prov["trained_steps"] == 2 and prov["configured_steps"] == 2
    src = results["protocol"]["corruption_source"]
    assert src["kind"] == "on the fly" and src["seed"] == 0
    assert "## Where the numbers come from" in md and "generated on the fly (seed 0;" in md
    assert "| Citation |" in md and "*Protocol differs:" in md
    for png in (out / "figures").glob("*.png"):
        assert f"](figures/{png.name})" in md, png.name

    # --corrupted-root: every corrupted copy of every source validation image is checked before the first
    # forward pass (a copy missing an image was evaluated on fewer images, or none, without a word)
    import shutil

    import medrobust.tasks.driving.evaluate as ev

    from pathlib import Path

    src_root = Path(results["domains"]["source"]["root"])
    croot = tmp_path / "driving_c"
    for sev in ("2", "4"):
        shutil.copytree(src_root, croot / "gaussian_noise" / sev)
    removed = sorted((croot / "gaussian_noise" / "4" / "leftImg8bit" / "val").rglob("*_leftImg8bit.png"))
    assert removed
    for p in removed:
        p.unlink()
    with pytest.MonkeyPatch.context() as mp:
        refuse_forward_passes(mp, ev)
        with pytest.raises(FileNotFoundError) as err:
            ev.evaluate_driving({"baseline": tmp_path / "base"}, out_dir=tmp_path / "rep_c", corrupted_root=croot,
                                overrides=["evaluate.severities=[2, 4]"], device="cpu", progress=False)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"--corrupted-root {croot}: {len(removed)} of {4 * len(removed)} expected")
    assert str(removed[0]) in msg
    # complete: every image is read
    shutil.rmtree(croot / "gaussian_noise" / "4")
    res = evaluate_driving({"baseline": tmp_path / "base"}, out_dir=tmp_path / "rep_c", corrupted_root=croot,
                           overrides=["evaluate.severities=[2]"], device="cpu", progress=False)
    assert res["models"]["baseline"]["corruptions"]["gaussian_noise"]["2"]["n_images"] == 1
    assert res["protocol"]["corruption_source"]["kind"] == "files"


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="data.crop_sise"):
        cfg_for(tmp_path, "x", "data.crop_sise=[64, 64]")
    with pytest.raises(ConfigError, match="multiples of 32"):
        cfg_for(tmp_path, "x", "data.crop_size=[60, 128]")
    with pytest.raises(ConfigError, match="consistency"):
        cfg_for(tmp_path, "x", "consistency={views: 2}")
    with pytest.raises(ConfigError, match="root is null"):
        cfg_for(tmp_path, "x", "data.root=/data/cityscapes")
    with pytest.raises(ConfigError, match="at least 2 images"):
        cfg_for(tmp_path, "x", "train.batch_size=1")
    with pytest.raises(ConfigError, match="augment"):
        cfg_for(tmp_path, "x", "augment.0={name: randconv, kernel_size: 3}")
    for recipe in ("baseline", "randconv"):
        assert load_task_config(f"configs/driving/{recipe}.yaml").task == "driving"


def test_cli_train_and_evaluate(tmp_path, capsys):
    from medrobust.cli import main

    sets = [a for s in [f"output_dir={tmp_path}", "name=cli", *TINY, "evaluate.corruptions=[]"] for a in ("--set", s)]
    assert main(["train", "--no-progress", *sets]) == 0
    assert main(["evaluate", "--run", f"m={tmp_path / 'cli'}", "--out", str(tmp_path / "rep"), "--no-progress"]) == 0
    assert "| m |" in capsys.readouterr().out


@pytest.mark.slow
def test_resume_is_exact(tmp_path):
    # on the CPU: CUDA kernels such as bilinear upsampling's backward add atomically, so two GPU runs
    # (resumed or not) agree to float rounding, not bit for bit
    run = ["train.steps=4", "train.ckpt_every=1", "augment.0={name: randconv}", "train.device=cpu"]
    a = cfg_for(tmp_path, "full", *run)
    train_driving(a, progress=False)
    b = cfg_for(tmp_path, "crash", *run)
    train_driving(b, progress=False, stop_after=2)
    train_driving(b, progress=False, resume=True)
    sa = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["model"]
    sb = torch.load(tmp_path / "crash" / "last.pt", weights_only=True)["model"]
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
