"""Tiny train -> corrupt -> evaluate on the embedded default, through the CLI."""

import json

from medrobust.cli import main

TINY = [
    "data.synthetic.n_train=4", "data.synthetic.n_test=1", "data.synthetic.size=[48, 48]", "data.synthetic.n_slices=2",
    "data.spatial_size=[32, 32]", "model.channels=[4, 8, 16]", "model.strides=[2, 2]", "train.batch_size=4",
    "train.steps=4", "train.val_every=2", "evaluate.batch_size=8",
]


def sets(*items):
    return [a for s in items for a in ("--set", s)]


def test_train_corrupt_evaluate(tmp_path, capsys):
    for name, extra in (("base", []), ("rc", ["augment.0={name: randconv}"])):
        assert main(["train", "--no-progress", *sets(f"output_dir={tmp_path}", f"name={name}", *TINY, *extra)]) == 0
    root = next((tmp_path / "data").glob("acdc_synthetic_*"))
    corrupted = tmp_path / "acdc_c"
    assert main(["corrupt", "--task", "acdc", "--root", str(root), "--out", str(corrupted), "--corruptions",
                 "gibbs_ringing,rician_noise", "--severities", "1,5", "--seed", "0", "--no-progress"]) == 0
    assert (corrupted / "manifest.json").is_file()
    out = tmp_path / "report"
    ev = ["evaluate.corruptions=[gibbs_ringing, rician_noise]", "evaluate.severities=[1, 5]"]
    assert main(["evaluate", "--run", f"baseline={tmp_path / 'base'}", "--run", f"randconv={tmp_path / 'rc'}",
                 "--out", str(out), "--corrupted-root", str(corrupted), "--no-progress", *sets(*ev)]) == 0
    printed = capsys.readouterr().out
    assert "baseline" in printed and "randconv" in printed and "report.md" in printed
    results = json.loads((out / "report.json").read_text())
    for name in ("baseline", "randconv"):
        m = results["models"][name]
        assert 0 <= m["clean"]["dice"]["mean"] <= 1
        assert set(m["corruptions"]) == {"gibbs_ringing", "rician_noise"}
        assert set(m["corruptions"]["rician_noise"]) == {"1", "5"}
        assert "shifted" in m
    assert (out / "report.md").read_text().count("baseline") >= 2
    for fig in ("dice_vs_severity.png", "predictions.png"):
        assert (out / "figures" / fig).stat().st_size > 5000


def test_cli_errors_are_one_line_with_exit_2(tmp_path, capsys):
    assert main(["train", "--set", "train.stepz=3"]) == 2
    assert "train.stepz" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "config.yaml" in capsys.readouterr().err


def test_3d_volume_mode_with_sliding_window(tmp_path):
    tiny3d = [s for s in TINY if not s.startswith(("data.spatial_size", "train.batch_size"))]
    assert main(["train", "--no-progress", *sets(f"output_dir={tmp_path}", "name=v3d", *tiny3d, "data.mode=3d",
                                                  "data.spatial_size=[32, 32, 8]", "train.batch_size=2",
                                                  "augment.0={name: gin}")]) == 0
    out = tmp_path / "rep"
    assert main(["evaluate", "--run", str(tmp_path / "v3d"), "--out", str(out), "--no-progress",
                 *sets("evaluate.corruptions=[bias_field]", "evaluate.severities=[2]")]) == 0
    res = json.loads((out / "report.json").read_text())["models"]["v3d"]
    assert 0 <= res["clean"]["dice"]["mean"] <= 1 and "2" in res["corruptions"]["bias_field"]
