"""The ``objective:`` section: stability / FMA around any shared adapter, applied by fit_config."""

import json

import pytest
import torch

from medrobust.config import ConfigError
from medrobust.losses import stability_loss
from medrobust.models.classifiers import create_classifier
from medrobust.tasks import load_config
from medrobust.train.objectives import ObjectiveStep
from medrobust.train.steps import ClassificationAdapter, SegmentationAdapter

NOISE = "{name: combined, members: [natural_gaussian_noise, natural_contrast], defaults: {table: cifar}}"


def cls_cfg(*over):
    return load_config(None, ["task=classification", "data.dataset=digits", "model.name=digitnet", *over])


def test_config_section_is_checked_at_load():
    cfg = cls_cfg(f"objective={{name: fma, weight: 0.5, layers: [net.features.2], distortion: {NOISE}}}")
    assert cfg.objective.name == "fma" and cfg.objective.distortion["name"] == "combined"
    with pytest.raises(ConfigError, match="fma needs the names of the layers"):
        cls_cfg(f"objective={{name: fma, distortion: {NOISE}}}")
    with pytest.raises(ConfigError, match=r"objective\.distortion.*members\[0\].*unknown augmentation 'fogg'"):
        cls_cfg("objective={name: stability, distortion: {name: combined, members: [fogg]}}")
    with pytest.raises(ConfigError, match="without 'consistency'"):
        cls_cfg(f"objective={{name: stability, distortion: {NOISE}}}", "augment.0={name: randconv}",
                "consistency={name: jsd}")
    with pytest.raises(ConfigError, match=r"objective\.nme"):
        cls_cfg(f"objective={{nme: stability, distortion: {NOISE}}}")


def objective(**kw):
    return cls_cfg(f"objective={json.dumps({'distortion': {'name': 'natural_contrast', 'table': 'cifar'}, **kw})}"
                   ).objective


def batch(n=6):
    g = torch.Generator().manual_seed(0)
    return {"image": torch.rand(n, 3, 32, 32, generator=g), "label": torch.randint(0, 10, (n,), generator=g)}


def test_stability_step_is_task_loss_plus_weighted_term():
    torch.manual_seed(0)
    model = create_classifier("digitnet", 10, 3, image_size=32)
    step = ObjectiveStep(ClassificationAdapter(), objective(name="stability", weight=3.0), model)
    b = batch()
    loss, logs = step.step(model, b, torch.Generator().manual_seed(1))
    xd = step.distortion(b["image"], torch.Generator().manual_seed(1))
    lc, ld = model(b["image"]), model(xd)
    ce = torch.nn.functional.cross_entropy(lc, b["label"])
    torch.testing.assert_close(loss, ce + 3.0 * stability_loss(lc, ld), rtol=1e-4, atol=1e-5)
    assert logs["objective_loss"] > 0 and 0 <= logs["train_acc"] <= 1
    same = ObjectiveStep(ClassificationAdapter(), objective(name="stability", distortion={"name": "natural_contrast",
                                                                                          "p": 0.0}), model)
    assert same.step(model, b, torch.Generator().manual_seed(1))[1]["objective_loss"] == pytest.approx(0, abs=1e-7)


def test_fma_step_has_the_task_loss_on_the_distorted_view():
    torch.manual_seed(0)
    model = create_classifier("digitnet", 10, 3, image_size=32)
    step = ObjectiveStep(ClassificationAdapter(), objective(name="fma", layers=["net.features.2"]), model)
    b = batch()
    loss, logs = step.step(model, b, torch.Generator().manual_seed(1))
    xd = step.distortion(b["image"], torch.Generator().manual_seed(1))
    ce = torch.nn.functional.cross_entropy(model(xd), b["label"]).detach()
    assert logs["task_loss"] == pytest.approx(float(ce), rel=1e-4)
    assert logs["objective_loss"] > 0 and float(loss) == pytest.approx(float(ce) + logs["objective_loss"], rel=1e-4)
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0
    with pytest.raises(ValueError, match=r"objective\.layers: unknown layer 'features.2'.*net.features.2"):
        ObjectiveStep(ClassificationAdapter(), objective(name="fma", layers=["features.2"]), model)


def test_fit_config_applies_the_objective_to_a_segmentation_task(tmp_path):
    """No task code: a cardiac config, a segmentation adapter and fit_config are all it takes."""
    from medrobust.models.factory import create_segmentation_model
    from medrobust.train.loop import fit_config

    cfg = load_config(None, ["task=cardiac", f"output_dir={tmp_path}", "name=seg", "train.steps=3",
                             "train.batch_size=4", "train.log_every=1", "train.device=cpu",
                             "objective={name: fma, weight: 2.0, layers: [model.0, model.1.submodule.0], "
                             "distortion: {name: combined, members: [mri_rician_noise, mri_bias_field]}}"])
    torch.manual_seed(0)
    model = create_segmentation_model("monai_unet", in_channels=1, num_classes=4, channels=(8, 16, 32), strides=(2, 2))
    g = torch.Generator().manual_seed(0)
    data = [{"image": torch.rand(1, 32, 32, generator=g), "label": torch.randint(0, 4, (1, 32, 32), generator=g)}
            for _ in range(8)]
    from medrobust.data.collate import collate_image_label

    res = fit_config(cfg, model=model, train_set=data, collate=collate_image_label,
                     step_fn=SegmentationAdapter().step, validate_fn=None, device="cpu", metric_name="val_dice",
                     progress=False)
    logged = [r for r in res.history if "objective_loss" in r]
    assert len(logged) == 3 and all(r["objective_loss"] > 0 and r["task_loss"] > 0 for r in logged)
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0
