"""DynTTA training pieces: the training-time shift, the frozen model (bitwise unchanged, no optimiser
state), the enhanced model's blend-weight record, the TTA config, and loading an enhancer."""

from __future__ import annotations

import pytest
import torch

from medrobust.augment import corrupt
from medrobust.config import ConfigError
from medrobust.models.classifiers import create_classifier
from medrobust.tasks.tta.train import load_tta_config, make_step
from medrobust.train.loop import fit
from medrobust.tta import DynTTA, Enhanced, RandomCorruption, freeze, load_enhancer


def _corrupt_fn(x, name, sev, gen):
    return corrupt(x, name, sev, table="cifar", generator=gen)


def test_random_corruption_probability_and_replay():
    x = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    names = ["gaussian_noise", "contrast", "pixelate"]
    assert torch.equal(RandomCorruption(_corrupt_fn, names, p=0.0)(x, torch.Generator().manual_seed(1)), x)
    shift = RandomCorruption(_corrupt_fn, names, severities=[2, 5], p=1.0)
    a = shift(x, torch.Generator().manual_seed(1))
    b = shift(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 1
    assert bool(((a - x).abs().flatten(1).amax(1) > 0).all())  # every image corrupted at p = 1
    which, sev = shift.sample(1000, torch.Generator().manual_seed(2))
    assert set(which.tolist()) == {0, 1, 2} and set(sev.tolist()) == {2, 5}
    which, _ = RandomCorruption(_corrupt_fn, names, p=15 / 16).sample(4000, torch.Generator().manual_seed(3))
    assert abs(float((which == -1).float().mean()) - 1 / 16) < 0.02
    with pytest.raises(ValueError, match="severities"):
        RandomCorruption(_corrupt_fn, names, severities=[6])
    assert shift.check(x) is x  # the training adapters validate each batch once through it
    with pytest.raises(ValueError, match="shape"):
        shift.check(x[0])


def test_training_keeps_the_frozen_model_bitwise_and_without_optimiser_state(tmp_path):
    torch.manual_seed(0)
    frozen = freeze(create_classifier("digitnet", 4, 3, image_size=16))
    before = {k: v.clone() for k, v in frozen.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    data = [{"image": torch.rand(3, 16, 16, generator=g), "label": torch.tensor(i % 4)} for i in range(16)]
    enhancer = DynTTA(3, ["rotate", "contrast", "gamma", "lowpass_50", "highpass_50", "restore"])
    e_before = {k: v.clone() for k, v in enhancer.state_dict().items()}
    shift = RandomCorruption(_corrupt_fn, ["gaussian_noise", "brightness"], p=1.0)
    res = fit(model=enhancer, train_set=data, collate=_collate, step_fn=make_step(frozen, shift),
              validate_fn=None, run_dir=tmp_path / "run", steps=3, batch_size=8, lr=1e-2, amp=False, log_every=1,
              ckpt_every=3, progress=False)
    assert res.step == 3
    after = frozen.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # bitwise unchanged (BN statistics too)
    assert all(p.grad is None for p in frozen.parameters()) and not frozen.training
    assert any(not torch.equal(e_before[k], v) for k, v in enhancer.state_dict().items())  # the enhancer learned
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    n_enh = len(list(enhancer.parameters()))
    assert sum(len(g["params"]) for g in ckpt["optimizer"]["param_groups"]) == n_enh
    assert len(ckpt["optimizer"]["state"]) <= n_enh and set(ckpt["model"]) == set(enhancer.state_dict())


def _collate(items):
    return {"image": torch.stack([i["image"] for i in items]), "label": torch.stack([i["label"] for i in items])}


def test_enhanced_records_blend_weights():
    enhancer = DynTTA(3, ["rotate", "brightness", "invert"]).eval()
    model = Enhanced(enhancer, freeze(create_classifier("digitnet", 3, 3, image_size=16)))
    x = torch.rand(5, 3, 16, 16)
    model.condition = "clean"
    assert model(x).shape == (5, 3)
    model.condition = None
    model(x)
    w = model.mean_weights()
    assert list(w) == ["clean"] and set(w["clean"]) == {"rotate", "brightness", "invert"}
    assert sum(w["clean"].values()) == pytest.approx(1.0)


def test_tta_config_and_enhancer_loading(tmp_path):
    run = tmp_path / "base"
    run.mkdir()
    (run / "config.yaml").write_text("task: classification\nname: base\nmodel: {name: digitnet}\n"
                                     "data: {image_size: 16, synthetic: {size: 16}, max_train: 50}\n")
    cfg = load_tta_config("classification/digits/dyntta", ["data.max_train=20", f"output_dir={tmp_path}"], model=run)
    assert cfg.tta.model == str(run) and cfg.tta.num_channels == 3 and cfg.model.name == "digitnet"
    assert cfg.data.image_size == 16 and cfg.data.max_train == 20  # the run's data, the --set on top
    with pytest.raises(ConfigError, match="tta.model"):
        load_tta_config("classification/digits/dyntta")
    with pytest.raises(ConfigError, match="no tta: section"):
        load_tta_config("classification/digits/baseline")
    with pytest.raises(ConfigError, match="tta.augmix"):
        load_tta_config("classification/digits/dyntta", ["tta.augmix.width=0"], model=run)
    # a TTA run folder: config.yaml with the tta section + the enhancer's checkpoint
    from medrobust.config import save_config

    out = tmp_path / "tta"
    out.mkdir()
    save_config(cfg, out / "config.yaml")
    enhancer = DynTTA(3, "all", image_size=16)
    with torch.no_grad():
        enhancer.restore.alpha.fill_(0.25)
    torch.save({"model": enhancer.state_dict()}, out / "best.pt")
    raw, loaded = load_enhancer(out)
    assert raw["tta"]["model"] == str(run) and not loaded.training
    assert float(loaded.restore.alpha) == 0.25
    with pytest.raises(ValueError, match="no tta: section"):
        load_enhancer(run)


def test_report_parts_rank_ops_and_map_them_to_augmix(tmp_path):
    from medrobust.tasks.tta.report import (
        augmix_followup_ops,
        plot_blend_weights,
        top_ops,
        tta_sections,
    )

    w = {"lowpass_50": 0.4, "contrast": 0.3, "invert": 0.05, "sharpness": 0.2, "rotate": 0.05}
    assert [o for o, _ in top_ops(w, 2)] == ["lowpass_50", "contrast"]
    assert augmix_followup_ops(w, 2) == ["contrast", "sharpness"]  # lowpass has no AugMix equivalent
    results = {"models": {"m": {"summary": {"clean_accuracy": 0.9, "mean_corruption_accuracy": 0.5}},
                          "m+t": {"summary": {"clean_accuracy": 0.88, "mean_corruption_accuracy": 0.6}}},
               "tta": {"t": {"run_dir": "r", "frozen_model": "m", "mode": "non_blind", "predictor": "small",
                             "ops": list(w), "models": ["m+t"], "mean_weights": {"clean": w, "corrupt": w}}}}
    text = "\n".join(b for s in tta_sections(results) for b in s.blocks())
    assert "+10.00" in text and "-2.00" in text and "contrast, sharpness" in text
    assert plot_blend_weights(results, tmp_path / "w.png").is_file()
    assert tta_sections({"models": {}}) == [] and plot_blend_weights({}, tmp_path / "x.png") is None
