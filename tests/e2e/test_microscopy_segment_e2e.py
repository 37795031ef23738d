"""The microscopy task's downstream experiment (``experiment: segment``) end to end: fields with known
ground truth, a U-Net trained with no blur, DefocusBlur and LatentBlur (from a trained resize-decoder
autoencoder), scored on fields defocused by the physical model; plus its config checks."""

import json

import numpy as np
import pytest
import torch

from medrobust.config import ConfigError
from medrobust.tasks import TASKS, load_config

TINY_BLUR = [
    "data.synthetic.n_stacks=4", "data.synthetic.size=[32, 32]", "data.synthetic.planes=4",
    "data.synthetic.max_radius=3.0", "data.synthetic.skimage_tiles=0", "data.patch_size=16",
    "data.patches_per_stack=4", "data.val_patches=2", "model.widths=[4, 8]", "train.batch_size=2",
    "train.steps=2", "train.val_every=2", "train.ckpt_every=2", "train.device=cpu",
]
TINY_SEGMENT = [
    "segment.data.n_train=2", "segment.data.n_val=1", "segment.data.n_test=2", "segment.data.size=[32, 32]",
    "segment.data.crop=16", "segment.model.channels=[4, 8]", "segment.model.strides=[2]",
    "data.synthetic.planes=4", "data.synthetic.max_radius=3.0", "train.steps=2", "train.batch_size=2",
    "train.val_every=2", "train.ckpt_every=2", "train.device=cpu",
]


def test_fields_carry_their_ground_truth():
    from medrobust.data.synthetic.microscopy import make_cell_field, make_cell_image

    field = make_cell_field((64, 64), 3)
    np.testing.assert_array_equal(field.image, make_cell_image((64, 64), 3))  # same draws, same image
    assert field.labels.dtype == np.uint8 and set(np.unique(field.labels)) == {0, 1, 2}
    # nuclei are the brightest class, the background the darkest (the labels follow the drawn geometry)
    means = [field.image[field.labels == k].mean() for k in (0, 1, 2)]
    assert means[0] < means[1] < means[2]


def test_noise_free_planes_are_the_mean_of_the_noisy_ones():
    from medrobust.augment.blur import defocus_blur
    from medrobust.data.synthetic.microscopy import Optics, defocus_stack

    optics = Optics(planes=3, max_radius=2.0)
    img = np.random.default_rng(0).uniform(0.2, 0.8, (12, 12))
    clean = defocus_stack(img, optics, noise=False)
    assert clean.dtype == np.float32 and clean.shape == (3, 12, 12)
    # the same optics as the noisy planes, without the camera's draws
    x = defocus_blur(torch.from_numpy(img)[None, None], optics.diffraction_sigma, "gaussian")
    blurred = defocus_blur(x.expand(3, 1, 12, 12).contiguous(), torch.tensor(optics.radii()), "disk")[:, 0].numpy()
    np.testing.assert_allclose(clean, optics.offset + optics.gain * (blurred * optics.photons + optics.background), rtol=1e-6)
    # and their mean: a flat field, where every pixel draws from the same distribution
    flat = np.full((64, 64), 0.5)
    noisy = defocus_stack(flat, optics, np.random.default_rng(1)).astype(np.float64)
    level = defocus_stack(flat, optics, noise=False)
    sd = np.sqrt(optics.gain * (level - optics.offset) + optics.read_noise**2)  # per-pixel std (counts)
    assert np.abs(noisy.mean(axis=(1, 2)) - level.mean(axis=(1, 2))).max() < 5 * sd.max() / 64


def test_config_checks_name_the_key():
    with pytest.raises(ConfigError, match="augment: only used with experiment: segment"):
        load_config("microscopy/linear_latent", ["augment=[{name: defocus_psf}]"])
    with pytest.raises(ConfigError, match="data.root: experiment: segment runs on the embedded fields only"):
        load_config("microscopy/nuclei_baseline", ["data.root=/somewhere"])
    with pytest.raises(ConfigError, match=r"segment.data.test_planes \[9\]: the microscope .* has 7 planes"):
        load_config("microscopy/nuclei_baseline", ["segment.data.test_planes=[9]"])
    with pytest.raises(ConfigError, match="divisible by the U-Net's total stride 4"):
        load_config("microscopy/nuclei_baseline", ["segment.data.crop=30"])
    for name in ("nuclei_baseline", "nuclei_defocus", "nuclei_latent_blur"):
        cfg = load_config(f"microscopy/{name}")
        assert cfg.experiment == "segment" and cfg.segment.data.test_planes is None
    assert [a["name"] for a in load_config("microscopy/nuclei_latent_blur").augment] == ["latent_blur"]
    assert load_config("microscopy/linear_latent").model.decoder == "resize"


@pytest.mark.slow
def test_blur_augmentation_recipe_end_to_end(tmp_path):
    from medrobust.models.blur_autoencoder import latent_blur_from_checkpoint
    from medrobust.tasks.microscopy import blur_table
    from medrobust.tasks.microscopy.segment import microscopy_table

    task = TASKS["microscopy"]
    blur = load_config("microscopy/linear_latent", [f"output_dir={tmp_path}", "name=ae", *TINY_BLUR])
    task.train(blur, progress=False)
    core = latent_blur_from_checkpoint(tmp_path / "ae" / "model.pt")
    assert core.model.decoder_kind == "resize"  # LatentBlur uses the improved (no-checkerboard) decoder
    arms = {"none": [], "defocus": ["augment=[{name: defocus_psf, radius: [0, 3]}]"],
            "latent": [f"augment=[{{name: latent_blur, model: {tmp_path / 'ae' / 'model.pt'}, levels: [0, 1]}}]"]}
    runs = {}
    for arm, extra in arms.items():
        for seed in (0, 1) if arm == "none" else (0,):
            cfg = load_config("microscopy/nuclei_baseline", [f"output_dir={tmp_path}", f"name={arm}{seed}",
                                                             f"seed={seed}", *TINY_SEGMENT, *extra])
            task.train(cfg, progress=False)
            runs[f"{arm}{seed}"] = str(tmp_path / f"{arm}{seed}")
            assert (tmp_path / f"{arm}{seed}" / "best.pt").is_file()
    # the fields on disk: uint16 stacks of every plane with uint8 label maps
    root = next((tmp_path / "data").glob("microscopy_nuclei_*"))
    assert len(list((root / "test").glob("field_*.tif"))) == 2 and len(list((root / "test").glob("*.labels.png"))) == 2
    with pytest.raises(ValueError, match="different experiments"):
        task.evaluate({"a": runs["none0"], "b": str(tmp_path / "ae")}, out_dir=tmp_path / "r0", device="cpu",
                      progress=False)
    res = task.evaluate(runs, out_dir=tmp_path / "report", device="cpu", progress=False)
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved["experiment"] == "segment" and saved["data"]["planes"] == [0, 1, 2, 3]
    assert saved["data"]["radii"] == [0.0, 1.0, 2.0, 3.0]
    assert set(saved["arms"]) == {"no blur augmentation", "defocus_psf", "latent_blur"}
    none = saved["arms"]["no blur augmentation"]
    assert none["runs"] == ["none0", "none1"] and none["mean"]["n"] == 2
    vals = [saved["per_run"][r]["mean"] for r in ("none0", "none1")]
    assert none["mean"]["mean"] == pytest.approx(np.mean(vals)) and none["mean"]["std"] == pytest.approx(np.std(vals, ddof=1))
    for r in saved["per_run"].values():
        assert all(0 <= p["nucleus"] <= 1 and 0 <= p["cytoplasm"] <= 1 for p in r["per_plane"].values())
    # the printed and markdown tables reproduce from the JSON
    table = microscopy_table(saved)
    assert table == microscopy_table(res) and table in (tmp_path / "report" / "report.md").read_text()
    assert "± " in table and "latent_blur" in table
    assert blur_table is not None
    # a segment run loads through the task record (weights only)
    cfg, model = task.load_run(runs["latent0"], device="cpu")
    assert cfg.experiment == "segment" and isinstance(model, torch.nn.Module)
    with pytest.raises(ValueError, match="medrobust train --config"):
        from medrobust.tasks.microscopy import train_blur

        train_blur(cfg, progress=False)
