"""End to end: `medrobust train` with train.sparse on the embedded digits, then `medrobust analyze
fourier-map` of the run; the CLI's one-line errors."""

import json

import numpy as np
import pytest
import torch

from medrobust.cli import main


def test_fourier_map_cli_names_the_problem(tmp_path, capsys):
    from medrobust.tasks import load_config
    from medrobust.train.loop import prepare_run_dir

    cfg = load_config("driving/baseline", [f"output_dir={tmp_path}", "name=seg"])
    prepare_run_dir(cfg)
    assert main(["analyze", "fourier-map", "--run", str(tmp_path / "seg")]) == 2
    assert "needs a classification run" in capsys.readouterr().err
    cfg = load_config("cardiac/baseline", [f"output_dir={tmp_path}", "name=heart", "data.mode=3d",
                                           "data.spatial_size=[32,32,8]"])
    prepare_run_dir(cfg)
    assert main(["analyze", "fourier-map", "--run", str(tmp_path / "heart")]) == 2
    assert "a 3d cardiac run" in capsys.readouterr().err
    assert main(["analyze", "fourier-map", "--run", str(tmp_path / "nothing")]) == 2
    assert "no config.yaml" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["analyze", "fourier-map", "--run", str(tmp_path / "seg"), "--out", str(tmp_path / "file")]) == 2
    assert "--out" in capsys.readouterr().err


@pytest.mark.slow
def test_sparse_digits_run_and_its_fourier_map(tmp_path, capsys):
    common = ["--set", f"output_dir={tmp_path}", "--set", "data.image_size=16", "--set", "data.max_train=128",
              "--set", "train.steps=20", "--set", "train.device=cpu", "--set", "train.val_every=10", "--no-progress"]
    sparse = ["--set", "train.sparse={method: granet, sparsity: 0.5, update_every: 5, initial_density: 0.8}"]
    assert main(["train", "-c", "classification/digits/baseline", "--set", "name=granet", *common, *sparse]) == 0
    assert main(["train", "-c", "classification/digits/baseline", "--set", "name=dense", *common]) == 0
    rep = json.loads((tmp_path / "granet" / "sparse.json").read_text())
    assert abs(rep["density"] - 0.5) < 0.01 and [u["step"] for u in rep["updates"]] == [5, 10, 15]
    ckpt = torch.load(tmp_path / "granet" / "best.pt", weights_only=True)
    w = ckpt["model"] if "model" in ckpt else ckpt
    nz = sum(int((w[k] != 0).sum()) for k in w if k.endswith("weight") and w[k].ndim > 1)
    tot = sum(w[k].numel() for k in w if k.endswith("weight") and w[k].ndim > 1)
    assert abs(nz / tot - 0.5) < 0.01, "the saved model is sparse"
    out = tmp_path / "maps"
    assert main(["analyze", "fourier-map", "--run", f"dense={tmp_path / 'dense'}", "--run",
                 f"granet={tmp_path / 'granet'}", "--out", str(out), "--max-images", "40", "--max-frequency", "4",
                 "--device", "cpu", "--no-progress"]) == 0
    assert "heat map" in capsys.readouterr().out
    assert np.load(out / "fourier_map_dense.npy").shape == (9, 9) and (out / "fourier_map.png").is_file()
    summary = json.loads((out / "fourier_map.json").read_text())
    assert set(summary) == {"dense", "granet"} and len(summary["granet"]["band_error_low_to_high"]) == 4


def test_cardiac_fourier_map_of_a_tiny_sparse_run(tmp_path, capsys):
    """A 2D cardiac run (2 steps, RigL at 0.5) maps its Dice error on a coarse grid; the summary says so."""
    tiny = ["data.synthetic.n_train=4", "data.synthetic.n_test=1", "data.synthetic.size=[48, 48]",
            "data.synthetic.n_slices=2", "data.spatial_size=[32, 32]", "model.channels=[4, 8, 16]",
            "model.strides=[2, 2]", "train.batch_size=4", "train.steps=2", "train.val_every=2", "train.device=cpu"]
    args = [a for kv in tiny for a in ("--set", kv)]
    assert main(["train", "-c", "cardiac/sparse_rigl", "--set", f"output_dir={tmp_path}", "--set", "name=heart",
                 "--set", "train.sparse.sparsity=0.5", "--set", "train.sparse.update_every=1", *args,
                 "--no-progress"]) == 0
    out = tmp_path / "maps"
    assert main(["analyze", "fourier-map", "--run", f"rigl={tmp_path / 'heart'}", "--out", str(out), "--max-images", "3",
                 "--max-frequency", "4", "--frequency-step", "2", "--eps", "4", "--device", "cpu", "--no-progress"]) == 0
    assert "heat map" in capsys.readouterr().out
    grid = np.load(out / "fourier_map.npy")
    summary = json.loads((out / "fourier_map.json").read_text())["rigl"]
    assert grid.shape == (5, 5) and 0 <= grid.min() and grid.max() <= 1
    assert summary["metric"] == "1 - mean foreground Dice" and summary["frequencies"] == [-4, -2, 0, 2, 4]
    assert summary["images"] == 3
    assert main(["analyze", "fourier-map", "--run", str(tmp_path / "heart"), "--frequency-step", "3",
                 "--max-frequency", "4", "--out", str(out / "bad"), "--device", "cpu"]) == 2
    assert "frequency_step" in capsys.readouterr().err
