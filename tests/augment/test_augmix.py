"""AugMix core: the ops against PIL (the released code's reference), per-sample parameters, the mixing
distributions and errors. The shared contract (shape/dtype/device, replay, p, batched vs one-by-one)
is in test_contract.py."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from medrobust.augment import AugMix, build
from medrobust.augment.augmix import (
    GEOMETRIC_OPS,
    AUGMIX_OPS,
    _affine_theta,
    _posterize,
    _solarize,
    autocontrast,
    equalize,
    sample_beta,
    sample_dirichlet,
    sample_gamma,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _img(seed=0, h=32, w=40, smooth=False):
    rng = np.random.default_rng(seed)
    a = rng.random((h, w, 3))
    if smooth:  # interpolation comparisons need a smooth image
        k = np.ones(7) / 7
        for ax in (0, 1):
            a = np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), ax, a)
        a = (a - a.min()) / (a.max() - a.min())
        return (a * 255).astype(np.uint8)
    return (a * 200 + 20).astype(np.uint8)


def _t(img):
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255


def _np(x):
    return x[0].permute(1, 2, 0).numpy() * 255


def test_pointwise_ops_match_pil_exactly():
    img = _img()
    x = _t(img)
    assert np.abs(_np(equalize(x)) - np.asarray(ImageOps.equalize(Image.fromarray(img)))).max() == 0
    # autocontrast: PIL rounds its lookup table to integers, we keep floats
    assert np.abs(_np(autocontrast(x)) - np.asarray(ImageOps.autocontrast(Image.fromarray(img)))).max() <= 1.0
    for level in (0.2, 2.9, 5.5, 9.9):
        bits = 4 - int(level * 4 / 10)
        thr = 256 - int(level * 256 / 10)
        post = _np(_posterize(x, torch.tensor([level])))
        sol = _np(_solarize(x, torch.tensor([level])))
        assert np.abs(post - np.asarray(ImageOps.posterize(Image.fromarray(img), bits))).max() < 1e-3
        assert np.abs(sol - np.asarray(ImageOps.solarize(Image.fromarray(img), thr))).max() < 1e-3


def test_equalize_constant_and_two_level_images():
    x = torch.full((2, 3, 8, 8), 0.4)
    torch.testing.assert_close(equalize(x), torch.round(x * 255) / 255)
    img = np.zeros((8, 8, 3), np.uint8)
    img[:4] = 200
    ref = np.asarray(ImageOps.equalize(Image.fromarray(img)))
    assert np.abs(_np(equalize(_t(img))) - ref).max() == 0


@pytest.mark.parametrize("kind,level,sign", [(0, 2.5, 1), (0, 2.5, -1), (1, 2.5, 1), (2, 2.9, -1), (3, 2.5, 1), (4, 2.5, -1)])
def test_geometric_ops_follow_pil_conventions(kind, level, sign):
    """Rotation direction, shear origin (top-left corner) and translation sign as PIL's."""
    img = _img(smooth=True)
    h, w = img.shape[:2]
    theta = _affine_theta(torch.tensor([kind]), torch.tensor([level]), torch.tensor([float(sign)]), h, w).float()
    grid = F.affine_grid(theta, [1, 3, h, w], align_corners=False)
    ours = _np(F.grid_sample(_t(img), grid, align_corners=False))
    pil = Image.fromarray(img)
    name = GEOMETRIC_OPS[kind]
    if name == "rotate":
        ref = pil.rotate(sign * int(level * 30 / 10), resample=Image.BILINEAR)
    elif name in ("shear_x", "shear_y"):
        s = sign * level * 0.3 / 10
        data = (1, s, 0, 0, 1, 0) if name == "shear_x" else (1, 0, 0, s, 1, 0)
        ref = pil.transform(pil.size, Image.AFFINE, data, resample=Image.BILINEAR)
    else:
        t = sign * int(level * ((w if name == "translate_x" else h) / 3) / 10)
        data = (1, 0, t, 0, 1, 0) if name == "translate_x" else (1, 0, 0, 0, 1, t)
        ref = pil.transform(pil.size, Image.AFFINE, data, resample=Image.BILINEAR)
    diff = np.abs(ours - np.asarray(ref, dtype=np.float64))[4:-4, 4:-4]
    assert diff.mean() < 1.0 and diff.max() <= 1.5  # PIL interpolates on uint8


def test_per_sample_parameters_and_mixing_weights():
    core = AugMix()
    x = torch.rand(64, 3, 16, 16)
    p = core.sample_params(x, torch.Generator().manual_seed(0))
    assert p["ops"].shape == (64, 3, 3) and p["level"].shape == (64, 3, 3) and p["depth"].shape == (64, 3)
    assert set(p["depth"].unique().tolist()) == {1, 2, 3}
    assert set(p["ops"].unique().tolist()) == set(range(len(AUGMIX_OPS)))
    assert ((p["level"] >= 0.1) & (p["level"] <= 3.0)).all()
    assert set(p["sign"].unique().tolist()) == {-1.0, 1.0}
    torch.testing.assert_close(p["weights"].sum(1), torch.ones(64))
    assert (p["weights"] > 0).all() and ((p["m"] >= 0) & (p["m"] <= 1)).all()
    # per sample: the draws differ across samples
    assert len({tuple(r.tolist()) for r in p["ops"].flatten(1)}) > 60
    fixed = AugMix(depth=2, width=2).sample_params(x, torch.Generator().manual_seed(0))
    assert fixed["ops"].shape == (64, 2, 2) and (fixed["depth"] == 2).all()


def test_apply_semantics_m_zero_identity_and_single_chain():
    core = AugMix(width=2, depth=1, ops=["solarize"])
    x = torch.rand(3, 3, 12, 12)
    p = core.sample_params(x, torch.Generator().manual_seed(0))
    p0 = {**p, "m": torch.zeros(3)}
    torch.testing.assert_close(core.apply(x, p0), x)
    # m = 1, all weight on chain 0 with one solarize: the output is that op alone
    p1 = {**p, "m": torch.ones(3), "weights": torch.tensor([[1.0, 0.0]] * 3)}
    expected = torch.stack([_solarize(x[i : i + 1], p["level"][i, 0, :1])[0] for i in range(3)])
    torch.testing.assert_close(core.apply(x, p1), expected)
    # y = (1 - m) x + m mix, mix a convex combination of the chains
    y = core.apply(x, p)
    chains = [torch.stack([_solarize(x[i : i + 1], p["level"][i, k, :1])[0] for i in range(3)]) for k in range(2)]
    mix = p["weights"][:, 0, None, None, None] * chains[0] + p["weights"][:, 1, None, None, None] * chains[1]
    m = p["m"][:, None, None, None]
    torch.testing.assert_close(y, (1 - m) * x + m * mix)


def test_all_ops_and_op_subsets():
    x = torch.rand(16, 3, 20, 20)
    core = AugMix(all_ops=True, severity=5)
    assert len(core.ops) == 13
    y = core(x, torch.Generator().manual_seed(1))
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    # one channel and five channels work (colour ops fall back to the channel mean)
    for c in (1, 5):
        z = core(torch.rand(4, c, 16, 16), torch.Generator().manual_seed(2))
        assert z.shape == (4, c, 16, 16) and torch.isfinite(z).all()


def test_distributions_with_generator():
    g = torch.Generator().manual_seed(0)
    for alpha in (0.5, 1.0, 2.5):
        s = sample_gamma(alpha, (20000,), g)
        assert (s > 0).all() and abs(float(s.mean()) - alpha) < 0.05 * max(1, alpha)
    d = sample_dirichlet(1.0, 20000, 3, g)
    torch.testing.assert_close(d.mean(0), torch.full((3,), 1 / 3), atol=0.01, rtol=0)
    b = sample_beta(1.0, 1.0, 20000, g)
    assert abs(float(b.mean()) - 0.5) < 0.01 and abs(float(b.var()) - 1 / 12) < 0.005
    torch.testing.assert_close(sample_gamma(0.7, (5,), torch.Generator().manual_seed(3)),
                               sample_gamma(0.7, (5,), torch.Generator().manual_seed(3)))


@pytest.mark.parametrize("device", DEVICES)
def test_device_and_seed_parity(device):
    x = torch.rand(6, 3, 24, 24)
    core = AugMix()
    y_cpu = core(x, torch.Generator().manual_seed(5))
    y_dev = core(x.to(device), torch.Generator().manual_seed(5))
    torch.testing.assert_close(y_dev.cpu(), y_cpu, rtol=1e-4, atol=2e-3)


def test_errors_and_build():
    with pytest.raises(ValueError, match="width"):
        AugMix(width=0)
    with pytest.raises(ValueError, match="depth"):
        AugMix(depth=0)
    with pytest.raises(ValueError, match="severity"):
        AugMix(severity=0.05)
    with pytest.raises(ValueError, match="alpha"):
        AugMix(alpha=0)
    with pytest.raises(ValueError, match="ops"):
        AugMix(ops=["rotate", "blur"])
    with pytest.raises(ValueError, match="shape"):
        AugMix()(torch.rand(2, 1, 4, 16, 16))  # 2D only
    core = build({"name": "augmix", "width": 2, "severity": 4})
    assert isinstance(core, AugMix) and core.width == 2 and core.severity == 4.0
    with pytest.raises(ValueError, match="unknown key"):
        build({"name": "augmix", "widht": 2})


def test_ops_restricted_to_the_dyntta_top_k():
    """DynTTA's follow-up (``medrobust tta topk``): AugMix drawing only from a given op list."""
    core = AugMix(ops=["brightness", "contrast", "sharpness"], depth=2)
    x = torch.rand(32, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    p = core.sample_params(x, torch.Generator().manual_seed(1))
    assert core.ops == ("brightness", "contrast", "sharpness")
    assert set(p["ops"].unique().tolist()) == {0, 1, 2}
    # brightness alone, m = 1, one chain: each image times its factor level·1.8/10 + 0.1
    one = AugMix(ops=["brightness"], width=1, depth=1)
    q = {**one.sample_params(x, torch.Generator().manual_seed(2)), "m": torch.ones(32)}
    factor = (q["level"][:, 0, 0] * 1.8 / 10 + 0.1).view(-1, 1, 1, 1)
    torch.testing.assert_close(one.apply(x, q), (x * factor).clamp(0, 1))
