"""Tiny train -> corrupt -> evaluate on the embedded default, through the CLI."""

import json

import pytest

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
    # where every number came from: the run folders (not the report folder), checkpoints and steps, the
    # corrupted set read from --corrupted-root with the seed of its manifest, references with citations
    assert results["runs"] == {"baseline": str(tmp_path / "base"), "randconv": str(tmp_path / "rc")}
    assert "run" not in results
    for name, folder in (("baseline", "base"), ("randconv", "rc")):
        prov = results["models"][name]["provenance"]
        assert prov["run_dir"] == str(tmp_path / folder) and prov["checkpoint"] == str(tmp_path / folder / "best.pt")
        assert prov["checkpoint_step"] in (2, 4) and prov["trained_steps"] == 4 and prov["configured_steps"] == 4
    src = results["protocol"]["corruption_source"]
    assert src == {"kind": "files", "root": str(corrupted), "seed": 0, "manifest": str(corrupted / "manifest.json")}
    assert results["protocol"]["test"]["embedded_default"] is True and results["protocol"]["test"]["cases"] == 2
    md = (out / "report.md").read_text()
    assert "## Where the numbers come from" in md and f"read from `--corrupted-root {corrupted}` (written by " \
        "`medrobust corrupt` with seed 0)" in md
    assert f"| baseline | `{tmp_path / 'base'}` | best.pt | {results['models']['baseline']['provenance']['checkpoint_step']} | 4 | 4 |" in md
    assert all(r.get("citation") for r in results["references"].values())
    assert "| Citation |" in md and "1. **RandConv" in md and "*Protocol differs:" in md
    for png in (out / "figures").glob("*.png"):  # every figure is linked
        assert f"](figures/{png.name})" in md, png.name


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
    report = json.loads((out / "report.json").read_text())
    res = report["models"]["v3d"]
    assert 0 <= res["clean"]["dice"]["mean"] <= 1 and "2" in res["corruptions"]["bias_field"]
    src = report["protocol"]["corruption_source"]
    assert src["kind"] == "on the fly" and src["seed"] == 0 and "patient, frame" in src["seeding"]
    assert "generated on the fly (seed 0;" in (out / "report.md").read_text()


def test_evaluate_checks_everything_before_the_first_forward_pass(tmp_path, monkeypatch, capsys,
                                                                  refuse_forward_passes):
    assert main(["train", "--no-progress", *sets(f"output_dir={tmp_path}", "name=base", *TINY, "train.steps=2")]) == 0
    root = next((tmp_path / "data").glob("acdc_synthetic_*"))
    corrupted = tmp_path / "acdc_c"
    assert main(["corrupt", "--task", "acdc", "--root", str(root), "--out", str(corrupted), "--corruptions",
                 "gibbs_ringing", "--severities", "1", "--seed", "0", "--no-progress"]) == 0
    import medrobust.tasks.cardiac.evaluate as ev

    refuse_forward_passes(monkeypatch, ev)
    over = ["evaluate.corruptions=[gibbs_ringing]", "evaluate.severities=[1, 5]"]
    run = tmp_path / "base"
    # the corrupted set lacks severity 5: named (first few + count) before the clean pass, not after it
    with pytest.raises(FileNotFoundError) as err:
        ev.evaluate_cardiac({"b": run}, out_dir=tmp_path / "r", overrides=over, corrupted_root=corrupted, device="cpu",
                            progress=False)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"--corrupted-root {corrupted}: 5 of 10 expected paths missing (expected ")
    assert f"{corrupted}/gibbs_ringing/5/testing/patient" in msg or f"{corrupted}/gibbs_ringing/5/training/patient" in msg
    assert "... and 2 more" in msg
    assert main(["evaluate", "--run", str(run), "--out", str(tmp_path / "r"), "--corrupted-root", str(corrupted),
                 "--no-progress", *sets(*over)]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and "5 of 10 expected paths missing" in err_lines[0]
    # every run's config and checkpoint, in one line
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.yaml").write_text((run / "config.yaml").read_text())
    with pytest.raises(FileNotFoundError, match=r"--run \(3 runs\): 3 of 6 expected paths missing") as err:
        ev.evaluate_cardiac({"b": run, "h": tmp_path / "half", "n": tmp_path / "nope"}, out_dir=tmp_path / "r",
                            device="cpu", progress=False)
    assert str(tmp_path / "half" / "best.pt") in str(err.value) and str(tmp_path / "nope" / "config.yaml") in str(err.value)
    # the report folder
    (tmp_path / "a_file").write_text("")
    with pytest.raises(FileExistsError, match="--out .*a_file: exists and is not a folder"):
        ev.evaluate_cardiac({"b": run}, out_dir=tmp_path / "a_file", overrides=over, device="cpu", progress=False)
    # a data root that is not there
    with pytest.raises(FileNotFoundError, match=r"^data.root: 1 of 1 expected path missing"):
        ev.evaluate_cardiac({"b": run}, out_dir=tmp_path / "r", overrides=[*over, f"data.root={tmp_path / 'no_acdc'}"],
                            device="cpu", progress=False)
