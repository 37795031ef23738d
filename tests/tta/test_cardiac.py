"""Cardiac DynTTA pieces (fast): the 1-channel enhancer in front of a frozen 2D segmenter keeps shape
and range, training it with Dice+CE on MRI-corrupted slices leaves the segmenter bitwise unchanged, the
MRI shift stays in [0, 1], and the cardiac TTA config is checked."""

from __future__ import annotations

import pytest
import torch

from medrobust.config import ConfigError
from medrobust.tasks.cardiac.config import CardiacConfig
from medrobust.tasks.tta.cardiac import (
    cardiac_shift,
    load_cardiac_tta_config,
    make_segmentation_step,
)
from medrobust.tta import DynTTA, Enhanced, freeze, op_names

NUM_CLASSES = 4
TINY = {"model": {"channels": [4, 8, 16], "strides": [2, 2]}, "data": {"spatial_size": [32, 32]}}


def _cfg(**tta) -> CardiacConfig:
    return CardiacConfig.model_validate({**TINY, "tta": {"num_channels": 1, "model": "x", **tta}})


def _segmenter() -> torch.nn.Module:
    """A tiny 2D segmenter with batch norm (the MONAI U-Net of the cardiac task is exercised by the slow
    end-to-end test; importing MONAI alone costs seconds)."""
    return torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                               torch.nn.Conv2d(8, NUM_CLASSES, 1))


def _collate(items):
    return {"image": torch.stack([i["image"] for i in items]), "label": torch.stack([i["label"] for i in items])}


def test_mri_shift_keeps_shape_and_range():
    x = torch.rand(6, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    shift = cardiac_shift(_cfg(p=1.0, corruptions=["kspace_spike", "rician_noise"]))
    a = shift(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, shift(x, torch.Generator().manual_seed(1)))  # replays from the generator
    assert a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 1
    assert bool(((a - x).abs().flatten(1).amax(1) > 0).all())
    with pytest.raises(ConfigError, match="tta.corruptions"):
        cardiac_shift(_cfg(corruptions=["gaussian_noise"]))


def test_cardiac_enhancer_keeps_shape_range_and_the_frozen_segmenter_bitwise():
    torch.manual_seed(0)
    cfg = _cfg(p=1.0, corruptions=["bias_field", "gaussian_blur"])
    frozen = freeze(_segmenter())
    before = {k: v.clone() for k, v in frozen.state_dict().items()}
    enhancer = DynTTA(1, ["rotate", "contrast", "gamma", "lowpass_50", "highpass_50", "restore"], image_size=32)
    assert set(enhancer.op_names) <= set(op_names(1))
    e_before = {k: v.clone() for k, v in enhancer.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    data = [{"image": torch.rand(1, 32, 32, generator=g), "label": torch.randint(0, NUM_CLASSES, (1, 32, 32), generator=g)}
            for _ in range(8)]
    step = make_segmentation_step(frozen, cardiac_shift(cfg))
    opt = torch.optim.SGD(enhancer.parameters(), lr=0.5)  # only the enhancer's parameters (fit() does the same)
    for i in range(2):
        loss, logs = step(enhancer, _collate(data[4 * i : 4 * i + 4]), g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.isfinite(loss) and "task_loss" in logs
    after = frozen.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN statistics bitwise
    assert all(p.grad is None for p in frozen.parameters()) and not frozen.training
    assert any(not torch.equal(e_before[k], v) for k, v in enhancer.state_dict().items())
    enhancer.eval()
    x = torch.stack([d["image"] for d in data])
    with torch.no_grad():
        y = enhancer(x)
        logits = Enhanced(enhancer, frozen)(x)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    assert logits.shape == (8, NUM_CLASSES, 32, 32)


def test_cardiac_tta_config_checks(tmp_path):
    raw = {"task": "cardiac", "tta": {}}
    with pytest.raises(ConfigError, match="tta.model"):
        load_cardiac_tta_config(raw, "recipe")
    with pytest.raises(FileNotFoundError, match="--model"):
        load_cardiac_tta_config({"task": "cardiac", "tta": {}}, "recipe", model=tmp_path)
    with pytest.raises(ConfigError, match="num_channels"):
        load_cardiac_tta_config({"task": "cardiac", "tta": {"num_channels": 3}, "model": {"weights": "w.pt"}}, "recipe")
    with pytest.raises(ConfigError, match="data.mode"):
        load_cardiac_tta_config({"task": "cardiac", "tta": {}, "data": {"mode": "3d"}, "model": {"weights": "w.pt"}}, "recipe")
    cfg = load_cardiac_tta_config({"task": "cardiac", "tta": {}, "model": {"weights": "w.pt"}}, "recipe")
    assert cfg.tta is not None and cfg.tta.num_channels == 1


def test_cardiac_report_has_the_dyntta_section_and_blend_weight_chart(tmp_path):
    """The classification report's DynTTA section and bar chart, with the cardiac Dice columns."""
    from medrobust.tasks.cardiac.report import write_cardiac_report

    def summary(d):
        return {"dice": {"mean": d}}

    w = {"rotate": 0.5, "contrast": 0.3, "lowpass_50": 0.2}
    results = {"task": "cardiac", "models": {
        "base": {"clean": summary(0.90), "corruptions": {"bias_field": {"1": summary(0.70), "3": summary(0.50)}},
                 "shifted": summary(0.20)},
        "base+dyntta": {"clean": summary(0.91), "corruptions": {"bias_field": {"1": summary(0.80), "3": summary(0.70)}},
                        "shifted": summary(0.20)}},
        "tta": {"dyntta": {"run_dir": "r", "frozen_model": "base", "mode": "non_blind", "predictor": "small",
                           "ops": list(w), "models": ["base+dyntta"],
                           "mean_weights": {"clean": w, "corrupt": w, "shifted": w}}}}
    files = write_cardiac_report(tmp_path, results)
    md = (tmp_path / "report.md").read_text()
    assert "Test-time enhancement (DynTTA)" in md and "Δ corrupted (pt)" in md
    assert "+15.00" in md and "+1.00" in md and "rotate 50.0%" in md and "rotate, contrast" in md
    assert files["tta_blend_weights"].is_file()
    del results["tta"]
    files = write_cardiac_report(tmp_path / "plain", results)
    assert "tta_blend_weights" not in files and "DynTTA" not in (tmp_path / "plain" / "report.md").read_text()


def test_cardiac_blind_mode_uses_photometric_augmix_and_refuses_geometric_ops():
    from medrobust.augment.augmix import PHOTOMETRIC_OPS

    base = {"task": "cardiac", "model": {"weights": "w.pt"}}
    cfg = load_cardiac_tta_config({**base, "tta": {"mode": "blind"}}, "recipe")
    assert cfg.tta is not None and tuple(cfg.tta.augmix["ops"]) == PHOTOMETRIC_OPS
    kept = load_cardiac_tta_config({**base, "tta": {"mode": "blind", "augmix": {"ops": ["contrast"]}}}, "recipe")
    assert kept.tta is not None and kept.tta.augmix["ops"] == ["contrast"]
    with pytest.raises(ConfigError, match=r"tta.augmix: augmix with \['rotate'\] moves pixels"):
        load_cardiac_tta_config({**base, "tta": {"mode": "blind", "augmix": {"ops": ["rotate", "equalize"]}}}, "recipe")
    with pytest.raises(ConfigError, match="moves pixels"):
        load_cardiac_tta_config({**base, "tta": {"mode": "blind", "augmix": {"all_ops": True}}}, "recipe")
