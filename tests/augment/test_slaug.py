"""SLAug core against a NumPy transcription of Kaiseem/SLAug's location_scale_augmentation.py (same draws),
class-wise version, saliency map, the adapter's fusion step and the cardiac recipe."""

from math import comb

import numpy as np
import pytest
import torch

from medrobust.augment import build
from medrobust.augment.slaug import SLAug, saliency_fusion, saliency_map

T = np.linspace(0.0, 1.0, 100000)
BERN = np.array([comb(3, i) * T ** (3 - i) * (1 - T) ** i for i in range(4)])


def _ref_remap(values, control, inverse):
    """SLAug's non_linear_transformation with the interior points given (control: [[x1, y1], [x2, y2]])."""
    s, e = values.min(), values.max()
    xp = [s, s + (e - s) * control[1, 0], s + (e - s) * control[0, 0], e]
    yp = [s, s + (e - s) * control[1, 1], s + (e - s) * control[0, 1], e]
    xv, yv = np.dot(xp, BERN), np.dot(yp, BERN)
    xv, yv = (np.sort(xv), yv) if inverse else (np.sort(xv), np.sort(yv))
    return np.interp(values, xv, yv)


def _ref_ls(values, scale, shift):
    loc = np.clip(shift, 0 - np.percentile(values, 20), 1 - np.percentile(values, 80))
    return np.clip(values * scale + loc, 0, 1)


def _image(n=2, size=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    disc = (yy**2 + xx**2 < 0.5).double()
    x = (0.2 + 0.6 * disc + 0.1 * torch.rand(n, 1, size, size, generator=g, dtype=torch.float64)).clamp(0, 1)
    x[:, :, :3] = 0.0  # background at zero (restored by the class-wise version)
    labels = (disc * 3).long().expand(n, size, size).clone()
    labels[:, size // 2 :, : size // 2] = torch.where(labels[:, size // 2 :, : size // 2] > 0, 1, 0)
    labels[:, :4, :4] = 2
    return x, labels


def test_global_matches_the_original_code():
    x, _ = _image()
    core = SLAug(curve_samples=100000)
    p = core.sample_params(x, torch.Generator().manual_seed(0))
    y = core.apply(x, p)
    for b in range(x.shape[0]):
        g = {k: v[b].double().numpy() for k, v in p["global"].items()}
        ref = _ref_ls(_ref_remap(x[b].numpy().ravel(), g["control"], False), float(g["scale"]), float(g["shift"]))
        np.testing.assert_allclose(y[b].numpy().ravel(), ref, atol=1e-9)
    assert not torch.allclose(y, x)
    assert 0.9 - 1e-6 <= float(p["global"]["scale"].min()) and float(p["global"]["scale"].max()) <= 1.1 + 1e-6


def test_class_wise_matches_the_original_code_and_restores_the_background():
    x, labels = _image()
    core = build({"name": "slaug", "mode": "local", "num_classes": 4, "curve_samples": 100000})
    p = core.sample_params(x, torch.Generator().manual_seed(1), labels=labels)
    y = core.apply(x, p)
    assert bool(p["local"]["inverse"][:, 0].all())  # the background always gets the inverse curve
    for b in range(x.shape[0]):
        img, lab = x[b, 0].numpy(), labels[b].numpy()
        ref = np.zeros_like(img)
        for c in range(4):
            m = lab == c
            if not m.any():
                continue
            loc = {k: v[b, c].double().numpy() for k, v in p["local"].items()}
            ref[m] = _ref_ls(_ref_remap(img[m], loc["control"], bool(loc["inverse"])), float(loc["scale"]),
                             float(loc["shift"]))
        ref[img <= 0.01] = img[img <= 0.01]
        np.testing.assert_allclose(y[b, 0].numpy(), ref, atol=1e-9)
    # views: one draw gives the global and the class-wise view; without labels local falls back to global
    g, loc = core.views(x, torch.Generator().manual_seed(1), labels=labels)
    assert torch.equal(loc, y)
    g2, loc2 = core.views(x, torch.Generator().manual_seed(1))
    assert torch.equal(g2, g) and torch.equal(loc2, g)
    with pytest.raises(ValueError, match="labels: expected values in 0..3"):
        core(x, labels=labels + 4)
    with pytest.raises(ValueError, match="labels: expected a segmentation map"):
        core(x, labels=labels[:, :5])
    with pytest.raises(ValueError, match="mode"):
        build({"name": "slaug", "mode": "both"})


def test_3d_float32_and_p():
    x = torch.rand(3, 1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    lab = torch.randint(0, 4, (3, 1, 4, 16, 16), generator=torch.Generator().manual_seed(1))
    y = SLAug(mode="local")(x, torch.Generator().manual_seed(2), labels=lab)
    assert y.shape == x.shape and y.dtype == torch.float32 and 0 <= float(y.min()) and float(y.max()) <= 1
    off = SLAug(p=0.0)(x, torch.Generator().manual_seed(2))
    assert torch.equal(off, x)


def test_saliency_map_and_fusion():
    grad = torch.zeros(2, 1, 30, 30)
    grad[0, :, 20:, 20:] = 1.0  # bottom-right cell salient
    grad[1, :, :10, :10] = 1.0
    s = saliency_map(grad, grid_size=3)
    assert s.shape == (2, 1, 30, 30) and float(s.min()) == 0.0 and float(s.max()) == pytest.approx(1.0)
    assert s[0, 0, 25, 25] > 0.9 and s[0, 0, 4, 4] < 0.1 and s[1, 0, 5, 5] > 0.9  # cell centres 5, 15, 25
    assert (s[0, 0, 25, 5:25].diff() >= -1e-6).all()  # smooth and monotone towards the salient cell
    a, b = torch.ones(2, 1, 30, 30), torch.zeros(2, 1, 30, 30)
    torch.testing.assert_close(saliency_fusion(a, b, grad), s)
    assert saliency_map(torch.rand(1, 1, 6, 12, 12)).shape == (1, 1, 6, 12, 12)


def test_adapter_fusion_step_and_recipe():
    from medrobust.config import load_config
    from medrobust.tasks.cardiac import CardiacConfig
    from medrobust.train.steps import SegmentationAdapter

    x, labels = _image(n=4, size=16)
    x = x.float()
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1))
    core = SLAug(mode="local")
    adapter = SegmentationAdapter(core, slaug_fusion=3)
    loss, logs = adapter.step(model, {"image": x, "label": labels[:, None]}, torch.Generator().manual_seed(0))
    loss.backward()
    assert set(logs) == {"task_loss", "fused_loss"} and all(p.grad is not None for p in model.parameters())
    # the same step by hand
    g, loc = core.views(x, torch.Generator().manual_seed(0), labels=labels[:, None])
    g = g.requires_grad_(True)
    lg = adapter.criterion(model(g), labels[:, None])
    (grad,) = torch.autograd.grad(lg, g, retain_graph=True)
    lm = adapter.criterion(model(saliency_fusion(g, loc, grad)), labels[:, None])
    assert float(loss.detach()) == pytest.approx(float((lg + lm).detach()), rel=1e-6)
    # a config's augment list builds a Compose of one core: the adapter finds the slaug core in it
    wrapped = SegmentationAdapter(build([{"name": "slaug", "mode": "local"}]), slaug_fusion=3)
    again, _ = wrapped.step(model, {"image": x, "label": labels[:, None]}, torch.Generator().manual_seed(0))
    assert float(again.detach()) == pytest.approx(float(loss.detach()), rel=1e-6)
    with pytest.raises(ValueError, match="slaug_fusion: needs the slaug core"):
        SegmentationAdapter(build({"name": "randconv"}), slaug_fusion=3)
    cfg = load_config("medrobust/configs/cardiac/slaug.yaml", model=CardiacConfig)
    assert cfg.train.slaug_fusion == 3 and cfg.augment[0]["name"] == "slaug"
