"""Tiny train -> evaluate on the embedded digits default (no data, no downloads): baseline and RandConv,
clean / corrupted / per-domain accuracy, report files."""

import json
import math
from pathlib import Path

import pytest

from medrobust.tasks.classification import train_classification
from medrobust.tasks import load_config
from medrobust.tasks.classification.evaluate import evaluate_classification
from medrobust.tasks.classification.report import comparison_table

TINY = ["model.name=digitnet", "train.steps=8", "train.batch_size=16", "train.val_every=4", "train.ckpt_every=4",
        "train.lr=0.001", "evaluate.max_images=48", "evaluate.batch_size=64",
        "evaluate.corruptions=[gaussian_noise, contrast]", "evaluate.severities=[1, 5]"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits_e2e")
    for name, cfg_file, extra in (("base", "configs/classification/digits/baseline.yaml", []),
                                  ("rc", "configs/classification/digits/randconv.yaml", ["consistency.views=2"])):
        path = Path(__file__).resolve().parents[2] / cfg_file
        cfg = load_config(path, [f"output_dir={out}", f"name={name}", *TINY, *extra])
        result = train_classification(cfg, progress=False)
        assert result.step == 8 and (out / name / "best.pt").is_file() and (out / name / "config.yaml").is_file()
    return out


def test_train_evaluate_report(runs):
    out = runs / "report"
    res = evaluate_classification({"baseline": runs / "base", "randconv": runs / "rc"}, out_dir=out, progress=False)
    assert res["task"] == "classification" and res["dataset"] == "digits" and res["protocol"]["normalisation"] == "none"
    assert res["protocol"]["domains"] == ["colored", "inverted", "noisy", "textured"]
    for name in ("baseline", "randconv"):
        m = res["models"][name]
        values = [m["clean"]["accuracy"], *[v["accuracy"] for v in m["domains"].values()],
                  *[s["accuracy"] for by in m["corruptions"].values() for s in by.values()],
                  m["summary"]["mean_corruption_accuracy"], m["summary"]["mean_domain_accuracy"],
                  m["summary"]["mean_corruption_error"]]
        assert all(0 <= v <= 1 and math.isfinite(v) for v in values)
        assert set(m["corruptions"]) == {"gaussian_noise", "contrast"} and set(m["corruptions"]["contrast"]) == {"1", "5"}
        assert m["clean"]["n"] == 48 and all(v["n"] == 48 for v in m["domains"].values())
        assert "mCE" not in m["summary"]  # no AlexNet baseline at this scale
    saved = json.loads((out / "report.json").read_text())
    assert saved["models"]["baseline"]["clean"]["accuracy"] == res["models"]["baseline"]["clean"]["accuracy"]
    md = (out / "report.md").read_text()
    assert md.count("randconv") >= 3 and "Accuracy (%) per target domain" in md and "RandConv (Xu et al." in md
    for fig in ("accuracy_vs_severity.png", "corruption_bars.png", "domain_bars.png"):
        assert (out / "figures" / fig).stat().st_size > 5000
    table = comparison_table(res)
    assert "baseline" in table and "Mean corr. error (%)" in table
    # where every number came from
    assert res["runs"] == {"baseline": str(runs / "base"), "randconv": str(runs / "rc")} and "run" not in res
    for name, folder in (("baseline", "base"), ("randconv", "rc")):
        prov = res["models"][name]["provenance"]
        assert prov["run_dir"] == str(runs / folder) and prov["checkpoint_step"] in (4, 8)
        assert prov["trained_steps"] == 8 and prov["configured_steps"] == 8
    assert res["protocol"]["corrupted_set"]["kind"] == "on the fly" and res["protocol"]["corrupted_set"]["seed"] == 0
    assert res["protocol"]["embedded_default"] is True
    assert "## Where the numbers come from" in md and "generated on the fly (seed 0;" in md
    assert all(r.get("citation") for r in res["references"].values()) and "| Citation |" in md
    assert "*Protocol differs:" in md and "SVHN" in md and "scikit-learn" in md  # MNIST -> SVHN vs embedded digits
    for png in (out / "figures").glob("*.png"):
        assert f"](figures/{png.name})" in md, png.name


def test_evaluate_checks_every_corrupted_folder_before_the_first_forward_pass(runs, tmp_path, monkeypatch,
                                                                              refuse_forward_passes):
    import medrobust.tasks.classification.evaluate as ev

    refuse_forward_passes(monkeypatch, ev)
    root = tmp_path / "imagenet_c_style"
    for c in ("gaussian_noise", "contrast"):
        (root / c / "1" / "0").mkdir(parents=True)  # severity 5 of each is missing
    with pytest.raises(FileNotFoundError) as err:
        ev.evaluate_classification({"b": runs / "base"}, out_dir=tmp_path / "r", corrupted_root=root, progress=False)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"--corrupted-root {root}: 2 of 4 expected paths missing (expected ")
    assert f"{root / 'gaussian_noise' / '5'}, {root / 'contrast' / '5'}" in msg


def test_evaluation_is_reproducible(runs):
    over = ["evaluate.domains=false", "evaluate.corruptions=[gaussian_noise]", "evaluate.severities=[5]"]
    a = evaluate_classification({"b": runs / "base"}, out_dir=runs / "r1", overrides=over, progress=False)
    b = evaluate_classification({"b": runs / "base"}, out_dir=runs / "r2", overrides=over, progress=False)
    assert a["models"]["b"]["corruptions"] == b["models"]["b"]["corruptions"]
    assert "domains" not in a["models"]["b"]


def test_cli_train_and_evaluate(runs, capsys):
    from medrobust.cli import main

    sets = [a for s in [f"output_dir={runs}", "name=cli", *TINY] for a in ("--set", s)]
    config = Path(__file__).resolve().parents[2] / "configs" / "classification" / "digits" / "baseline.yaml"
    assert main(["train", "--config", str(config), "--no-progress", *sets]) == 0
    assert main(["evaluate", "--run", f"cli={runs / 'cli'}", "--out", str(runs / "cli_report"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "Clean acc (%)" in printed and "report.md" in printed
