"""Microscopy defocus end to end through ``medrobust blur ...`` (the parser from ``add_blur_parser``):
train on the embedded default, evaluate against baselines, synthesize/deblur images and folders keeping
their bit depth, refuse to overwrite, resume exactly."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medrobust.cli import main
from medrobust.cli.blur import add_blur_parser
from medrobust.data.microscopy import read_image, write_image

CONFIG = str(Path(__file__).resolve().parents[2] / "configs" / "microscopy" / "linear_latent.yaml")
TINY = [
    "data.synthetic.n_stacks=4", "data.synthetic.size=[32, 32]", "data.synthetic.planes=4",
    "data.synthetic.max_radius=3.0", "data.synthetic.skimage_tiles=1", "data.patch_size=16",
    "data.patches_per_stack=4", "data.val_patches=2", "model.widths=[4, 8]", "train.batch_size=2",
    "train.steps=4", "train.val_every=2", "train.ckpt_every=2", "train.log_every=1", "train.device=cpu",
]


def sets(*items):
    return [a for s in items for a in ("--set", s)]


def run(argv):
    """Parse with a fresh parser built by add_blur_parser and call the action (exceptions propagate)."""
    parser = argparse.ArgumentParser(prog="medrobust")
    add_blur_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("blur")
    assert run(["blur", "train", "--config", CONFIG, "--no-progress", *sets(f"output_dir={out}", "name=tiny", *TINY)]) == 0
    return out


def test_train_writes_a_self_contained_model(trained):
    run_dir = trained / "tiny"
    for name in ("config.yaml", "blur_meta.json", "metrics.jsonl", "last.pt", "best.pt", "model.pt"):
        assert (run_dir / name).is_file(), name
    raw = torch.load(run_dir / "model.pt", weights_only=True)
    assert raw["hparams"]["widths"] == [4, 8] and raw["positions"] == [0.0, 1 / 3, 2 / 3, 1.0]
    assert raw["reference_sigma"] > 0 and raw["intensity"]["mode"] == "stack"
    vals = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [v["step"] for v in vals if "val_psnr" in v] == [2, 4]
    assert all({"loss_reconstruction", "loss_explicit", "loss_implicit"} <= set(v) for v in vals if "loss" in v)
    data_root = next((trained / "data").glob("microscopy_synthetic_*"))
    assert len(list(data_root.glob("*.tif"))) == 6  # 4 synthetic + 1 tile of each bundled scikit-image image


def test_evaluate_reports_model_and_baselines(trained, tmp_path, capsys):
    out = tmp_path / "report"
    assert run(["blur", "evaluate", "--run", str(trained / "tiny"), "--out", str(out), "--device", "cpu",
                "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "pixel interpolation" in printed and "report.md" in printed
    res = json.loads((out / "report.json").read_text())
    from medrobust.tasks.microscopy.evaluate import DEBLUR_METHODS, SYNTHESIS_METHODS

    assert list(res["synthesis"]) == list(SYNTHESIS_METHODS)  # models first, then the baselines
    assert list(res["deblur"]) == list(DEBLUR_METHODS)
    for section in ("synthesis", "deblur"):
        for m in res[section].values():
            assert 0 < m["psnr"] < 100 and -1 <= m["ssim"] <= 1 and set(m["per_plane"]) == {"1", "2"}
            assert m["detail"] > 0 and np.isfinite(m["nyquist_db"])
            assert m["detail_noise_free"] > 0  # every embedded stack has its noise-free planes
    assert sorted(res["data"]["noise_free_stacks"]) == sorted(res["data"]["stacks"])
    # against a noisy target even the true PSF keeps little detail (the target's noise dominates its Laplacian
    # variance); against the noise-free plane it keeps several times more
    oracle = res["synthesis"]["disk PSF, true radius (oracle)"]
    assert oracle["detail_noise_free"] > 2 * oracle["detail"]
    assert res["reconstruction"]["latent"]["detail_noise_free"] is not None
    # split by image: the real scikit-image tiles are held out (test only), reported on their own
    held = res["groups"]["held-out real images"]
    assert sorted(held["stacks"]) == ["skimage_cell_0", "skimage_immunohistochemistry_0"]
    assert set(res["groups"]) == {"held-out real images", "synthetic test fields"}
    assert held["reconstruction"]["latent"]["n"] == 4  # cell (grey) + 3 IHC channels
    assert res["true_psf"]["radii"] == [0.0, 1.0, 2.0, 3.0] and res["true_psf"]["psf"] == "disk"
    # the report's tables reproduce from its JSON
    from medrobust.tasks.microscopy import blur_table

    assert blur_table(json.loads((out / "report.json").read_text())) in (out / "report.md").read_text()
    assert 0 <= res["linearity"]["latent"]["relative_deviation"]
    md = (out / "report.md").read_text()
    assert "Gaussian blur" in md and "Per plane" in md
    for fig in ("planes.png", "levels.png", "strip_synthesis.png", "strip_deblur.png", "psnr_vs_t_held_out.png",
                "psnr_vs_t_synthetic.png"):
        assert (out / "figures" / fig).stat().st_size > 3000
        assert f"](figures/{fig})" in md
    # where the numbers come from: the run (not the report folder), its checkpoint and training steps
    assert res["runs"] == {"latent": str(trained / "tiny")} and "run" not in res
    prov = res["models"]["latent"]["provenance"]
    assert prov["checkpoint"] == str(trained / "tiny" / "model.pt") and prov["checkpoint_step"] in (2, 4)
    assert prov["trained_steps"] == 4 and prov["configured_steps"] == 4
    assert "## Where the numbers come from" in md and "Mazilu" in md and "*Protocol differs:" in md


def test_evaluate_checks_every_model_before_loading_any(trained, tmp_path):
    from medrobust.tasks.microscopy.evaluate import evaluate_blur

    with pytest.raises(FileNotFoundError) as err:
        evaluate_blur({"a": trained / "tiny", "b": tmp_path / "nope", "c": tmp_path / "gone.pt"}, tmp_path / "r",
                      device="cpu", progress=False)
    msg = str(err.value)
    assert msg.startswith("--run (3 runs): 2 of 3 expected paths missing") and str(tmp_path / "gone.pt") in msg
    (tmp_path / "f").write_text("")
    with pytest.raises(FileExistsError, match="exists and is not a folder"):
        evaluate_blur(trained / "tiny", tmp_path / "f", device="cpu", progress=False)
    with pytest.raises(FileNotFoundError, match="data root"):
        evaluate_blur(trained / "tiny", tmp_path / "r", data_root=tmp_path / "no_stacks", device="cpu", progress=False)


def test_ssim_and_psnr_agree_with_torchmetrics():
    tm = pytest.importorskip("torchmetrics.functional.image")
    from medrobust.evaluate.metrics import psnr, ssim

    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 1, 48, 40, generator=g)
    b = (a + 0.1 * torch.randn(1, 1, 48, 40, generator=g)).clamp(0, 1)
    assert ssim(a[0, 0], b[0, 0]) == pytest.approx(float(tm.structural_similarity_index_measure(b, a, data_range=1.0)), abs=2e-3)
    assert psnr(a, b) == pytest.approx(float(tm.peak_signal_noise_ratio(b, a, data_range=1.0)), abs=1e-4)


@pytest.mark.parametrize("suffix,dtype,rgb", [(".png", np.uint16, False), (".tif", np.uint8, True), (".tif", np.uint16, False)])
def test_synthesize_and_deblur_keep_format_bit_depth_and_range(trained, tmp_path, suffix, dtype, rgb):
    rng = np.random.default_rng(0)
    shape = (30, 27, 3) if rgb else (30, 27)  # not a multiple of the model's factor
    hi = 200 if dtype == np.uint8 else 9000
    img = rng.integers(50, hi, size=shape).astype(dtype)
    src = write_image(tmp_path / f"cells{suffix}", img)
    model = str(trained / "tiny" / "model.pt")
    assert run(["blur", "synthesize", "--checkpoint", model, "--input", str(src), "--level", "0.7", "--no-progress"]) == 0
    out = read_image(tmp_path / f"cells_blur0.7{suffix}")
    assert out.dtype == dtype and out.shape == shape
    assert out.min() >= img.min() and out.max() <= img.max()  # the input's intensity range
    assert run(["blur", "deblur", "--checkpoint", model, "--input", str(src), "--strength", "0.5",
                "--out", str(tmp_path / f"sharp{suffix}"), "--no-progress"]) == 0
    sharp = read_image(tmp_path / f"sharp{suffix}")
    assert sharp.dtype == dtype and sharp.shape == shape


def test_folders_references_and_overwrite_protection(trained, tmp_path, capsys):
    model = str(trained / "tiny" / "model.pt")
    rng = np.random.default_rng(1)
    (tmp_path / "in").mkdir()
    (tmp_path / "ref").mkdir()
    for name in ("a.png", "b.tif"):
        write_image(tmp_path / "in" / name, rng.integers(0, 60000, size=(20, 24)).astype(np.uint16))
        write_image(tmp_path / "ref" / name, rng.integers(0, 60000, size=(20, 24)).astype(np.uint16))
    argv = ["blur", "synthesize", "--checkpoint", model, "--input", str(tmp_path / "in"), "--level", "1.5",
            "--blurred", str(tmp_path / "ref"), "--no-progress"]
    assert run(argv) == 0
    outs = sorted(p.name for p in (tmp_path / "in_blur1.5").iterdir())
    assert outs == ["a.png", "b.tif"]
    before = (tmp_path / "in_blur1.5" / "a.png").read_bytes()
    assert main(argv) == 2  # outputs exist
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "in_blur1.5" / "a.png").read_bytes() == before
    assert run([*argv, "--overwrite"]) == 0
    # t = 0 with the input as its own reference is the plain reconstruction; deblur with strength 0 too
    assert run(["blur", "deblur", "--checkpoint", model, "--input", str(tmp_path / "in"), "--strength", "0",
                "--out", str(tmp_path / "d0"), "--no-progress"]) == 0
    assert run(["blur", "synthesize", "--checkpoint", model, "--input", str(tmp_path / "in"), "--level", "0",
                "--out", str(tmp_path / "s0"), "--no-progress"]) == 0
    for name in ("a.png", "b.tif"):
        np.testing.assert_array_equal(read_image(tmp_path / "d0" / name), read_image(tmp_path / "s0" / name))


def test_cli_errors_exit_2_with_one_line(trained, tmp_path, capsys):
    model = str(trained / "tiny" / "model.pt")
    img = write_image(tmp_path / "x.png", np.zeros((16, 16), np.uint8))
    small = write_image(tmp_path / "small.png", np.zeros((8, 8), np.uint8))
    cases = [
        (["synthesize", "--level", "-0.5"], "--level"),
        (["deblur", "--strength", "1"], "--strength"),
        (["synthesize", "--level", "0.5", "--blurred", str(small)], "differs"),
        (["synthesize", "--level", "0.5", "--out", str(img)], "overwrite an input"),
        (["synthesize", "--level", "0.5", "--out", str(tmp_path / "o.jpg")], "o.jpg"),
    ]
    for extra, needle in cases:
        action, rest = extra[0], extra[1:]
        assert main(["blur", action, "--checkpoint", model, "--input", str(img), "--no-progress", *rest]) == 2
        assert needle in capsys.readouterr().err
    assert main(["blur", "synthesize", "--checkpoint", str(tmp_path / "none.pt"), "--input", str(img), "--level", "1"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["blur", "train", "--config", CONFIG, "--set", "model.widthz=[4]"]) == 2
    assert "model.widthz" in capsys.readouterr().err
    assert main(["blur", "train", "--config", CONFIG, "--set", "data.patch_size=20", "--set", "model.widths=[4, 8, 16]"]) == 2
    assert "divisible" in capsys.readouterr().err


def test_resume_is_exact(tmp_path):
    from medrobust.config import load_config
    from medrobust.tasks.microscopy import BlurConfig, train_blur

    def cfg(name):
        return load_config(CONFIG, [f"output_dir={tmp_path}", f"name={name}", *TINY], model=BlurConfig)

    train_blur(cfg("full"), progress=False)
    train_blur(cfg("cut"), progress=False, stop_after=2)
    assert not (tmp_path / "cut" / "model.pt").exists()  # not exported before the last step
    assert run(["blur", "train", "--config", CONFIG, "--resume", "--no-progress",
                *sets(f"output_dir={tmp_path}", "name=cut", *TINY)]) == 0
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "cut" / "model.pt", weights_only=True)["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


@pytest.mark.slow
def test_default_recipe_beats_pixel_interpolation_on_the_middle_plane(tmp_path):
    """The CPU recipe, shortened to 600 steps (~30 s on 2 idle cores), on the embedded default: the
    latent rendering of the held-out middle plane beats pixel interpolation of its neighbours' endpoints."""
    from medrobust.tasks.microscopy import evaluate_blur

    assert run(["blur", "train", "--config", CONFIG, "--no-progress",
                *sets(f"output_dir={tmp_path}", "name=recipe", "train.steps=600", "train.val_every=300")]) == 0
    res = evaluate_blur(tmp_path / "recipe", tmp_path / "report", progress=False)
    mid = str(len(res["positions"]) // 2)
    latent = res["synthesis"]["latent (sharp + blurred planes)"]["per_plane"][mid]
    pixel = res["synthesis"]["pixel interpolation"]["per_plane"][mid]
    assert latent["psnr"] > pixel["psnr"] + 0.5, (latent, pixel)
    assert latent["ssim"] > pixel["ssim"]


def test_retrain_needs_overwrite_and_then_matches_a_fresh_run(tmp_path, capsys):
    """A run folder with a model is refused without --resume/--overwrite (one line, exit 2, untouched);
    --overwrite removes the old run's files first and trains exactly as a fresh run."""
    argv = ["blur", "train", "--config", CONFIG, "--no-progress", *sets(f"output_dir={tmp_path}", "name=again", *TINY)]
    assert run(argv) == 0
    run_dir = tmp_path / "again"
    first = torch.load(run_dir / "model.pt", weights_only=True)["state_dict"]
    (run_dir / "blur_meta.json").write_text('{"stale": true}')
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--resume" in err and "--overwrite" in err, err
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before
    assert run([*argv, "--overwrite"]) == 0
    assert "stale" not in (run_dir / "blur_meta.json").read_text()
    again = torch.load(run_dir / "model.pt", weights_only=True)["state_dict"]
    for k in first:
        torch.testing.assert_close(first[k], again[k], rtol=0, atol=0)
