"""The DynTTA op bank and module: shapes, ranges, gradients (gradcheck in float64), straight-through
ops, FFT filters against the centred-mask definition, blend weights, the public API."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medrobust.augment.augmix import autocontrast, equalize
from medrobust.tta import OPS, DynTTA, fft_blend, fft_masks, get_op, op_names

MAGNITUDE_OPS = ["rotate", "scale", "saturation", "contrast", "sharpness", "brightness", "hue", "gamma"]
FN_OPS = [n for n, op in OPS.items() if op.fn is not None]


def _img(n=2, c=3, h=8, w=8, seed=0, lo=0.0, hi=1.0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (lo + (hi - lo) * torch.rand(n, c, h, w, generator=g)).to(dtype)


def test_op_names_per_channel_count():
    rgb, grey = op_names(3), op_names(1)
    assert len(rgb) == 50 and len(grey) == 48 and rgb[-1] == "restore"
    assert "saturation" in rgb and "hue" in rgb and "saturation" not in grey and "hue" not in grey
    assert sum(n.startswith("lowpass_") for n in rgb) == 19 and sum(n.startswith("highpass_") for n in rgb) == 19
    assert [OPS[n].radius for n in rgb if n.startswith("lowpass_")] == pytest.approx([0.05 * i for i in range(1, 20)])
    with pytest.raises(ValueError, match="num_channels"):
        op_names(0)
    with pytest.raises(ValueError, match="unknown"):
        get_op("blur")


@pytest.mark.parametrize("name", FN_OPS)
def test_op_keeps_shape_and_range_and_passes_gradients(name):
    op = get_op(name)
    x = _img(3).requires_grad_(True)
    m = torch.tensor([-0.7, 0.3, 1.1], requires_grad=True)
    y = op.fn(x, m)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    (y * torch.linspace(0, 1, y.numel()).view_as(y)).sum().backward()
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0  # the gradient reaches the image
    if name in MAGNITUDE_OPS:
        assert torch.isfinite(m.grad).all() and bool((m.grad != 0).all()), (name, m.grad)
    else:
        assert m.grad is None or float(m.grad.abs().sum()) == 0


@pytest.mark.parametrize("name", [*MAGNITUDE_OPS, "invert"])
def test_gradcheck_smooth_ops_float64(name):
    fn = get_op(name).fn
    x = _img(1, 3, 5, 5, seed=1, lo=0.25, hi=0.75, dtype=torch.float64).requires_grad_(True)
    m = torch.tensor([0.2], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: fn(a, b), (x, m), eps=1e-6, atol=1e-5, fast_mode=True)


def test_ops_are_per_sample():
    x = _img(3, seed=2)
    m = torch.tensor([-1.0, 0.2, 0.9])
    for name in MAGNITUDE_OPS:
        fn = get_op(name).fn
        batched = fn(x, m)
        single = torch.cat([fn(x[i : i + 1], m[i : i + 1]) for i in range(3)])
        torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("name, ref", [("autocontrast", autocontrast), ("equalize", equalize)])
def test_straight_through_ops(name, ref):
    x = _img(2, seed=3, lo=0.2, hi=0.7).requires_grad_(True)
    y = get_op(name).fn(x, torch.zeros(2))
    torch.testing.assert_close(y, ref(x.detach()))
    assert not torch.equal(y, x)
    g = torch.rand_like(x)
    (y * g).sum().backward()
    torch.testing.assert_close(x.grad, g)  # the identity's gradient


def test_magnitude_identities():
    x = _img(2, seed=4, lo=0.1, hi=0.9)
    for name in MAGNITUDE_OPS:
        op = get_op(name)
        y = op.fn(x, torch.full((2,), op.identity))
        torch.testing.assert_close(y, x, rtol=0, atol=2e-3 if name in ("rotate", "scale") else 1e-5, msg=name)


def _centred_reference(x: np.ndarray, r: float, high: bool) -> np.ndarray:
    """The paper's definition: centred spectrum, circular mask of radius r·(centre-to-corner distance),
    real part of the inverse FFT (NumPy)."""
    h, w = x.shape[-2:]
    yy, xx = np.meshgrid(np.arange(h) - h // 2, np.arange(w) - w // 2, indexing="ij")
    dist = np.hypot(yy, xx) / math.hypot(h / 2, w / 2)
    mask = dist > r if high else dist <= r
    spec = np.fft.fftshift(np.fft.fft2(x), axes=(-2, -1)) * mask
    return np.fft.ifft2(np.fft.ifftshift(spec, axes=(-2, -1))).real


@pytest.mark.parametrize("size", [(8, 8), (7, 10)])
def test_fft_filters_match_the_centred_definition(size):
    x = _img(2, 3, *size, seed=5, dtype=torch.float64)
    names = [n for n in op_names(3) if OPS[n].radius is not None]
    ops = [OPS[n] for n in names]
    masks = fft_masks(ops, size, dtype=torch.float64)
    for k, op in enumerate(ops):
        w = torch.zeros(2, len(ops), dtype=torch.float64)
        w[:, k] = 1
        got = fft_blend(x, w, masks).numpy()
        np.testing.assert_allclose(got, _centred_reference(x.numpy(), op.radius, op.highpass), atol=1e-10, err_msg=op.name)
    lo, hi = names.index("lowpass_30"), names.index("highpass_30")
    w = torch.zeros(2, len(ops), dtype=torch.float64)
    w[:, lo] = w[:, hi] = 1
    torch.testing.assert_close(fft_blend(x, w, masks), x)  # complementary pair = identity
    xg = x[:1, :1].clone().requires_grad_(True)
    wg = torch.rand(1, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: fft_blend(a, b, masks[[0, 9, 20, 37]]), (xg, wg), fast_mode=True)


def test_dyntta_public_api_and_blend():
    torch.manual_seed(0)
    x = _img(4, 3, 16, 16, seed=6)
    model = DynTTA(num_channels=3, ops="all", predictor="small")
    y = model(x)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    assert float((y - x).abs().mean()) < 0.05  # the untrained enhancer starts near the identity
    m, w = model.predict(x)
    assert m.shape == w.shape == (4, 50)
    torch.testing.assert_close(w.sum(1), torch.ones(4))
    # all weight on a near-identity op: the output is the input
    k = model.op_names.index("brightness")
    forced = torch.full((4, 50), -1e4)
    forced[:, k] = 1e4
    torch.testing.assert_close(model.blend(x, torch.zeros(4, 50), torch.softmax(forced, 1)), x)
    k = model.op_names.index("restore")  # the restoration network starts as the identity
    torch.testing.assert_close(model.apply_op("restore", x), x)
    # gradients reach the predictor and the restoration network
    model.zero_grad()
    model(x).mul(torch.rand_like(x)).sum().backward()
    assert model.predictor.head.weight.grad.abs().sum() > 0 and model.restore.alpha.grad.abs() > 0


def test_dyntta_one_channel_subset_and_errors():
    grey = DynTTA(num_channels=1)
    x = _img(2, 1, 12, 10, seed=7)
    assert grey(x).shape == x.shape and len(grey.op_names) == 48
    sub = DynTTA(ops=["rotate", "lowpass_50", "highpass_50"])
    assert sub(_img(2)).shape == (2, 3, 8, 8) and sub.restore is None
    with pytest.raises(ValueError, match="ops"):
        DynTTA(num_channels=1, ops=["saturation"])
    with pytest.raises(ValueError, match="ops"):
        DynTTA(ops="some")
    with pytest.raises(ValueError, match="predictor"):
        DynTTA(predictor="vgg")
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        DynTTA()(torch.rand(2, 1, 8, 8))


def test_resnet18_predictor_and_local_weights(tmp_path):
    model = DynTTA(predictor="resnet18", ops=["rotate", "brightness"], image_size=32)
    x = _img(2, 3, 32, 32)
    assert model(x).shape == x.shape
    backbone = {k: v for k, v in model.predictor.state_dict().items() if not k.startswith("fc.")}
    backbone = {k: v + 1 if v.is_floating_point() else v for k, v in backbone.items()}
    torch.save({**backbone, "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}, tmp_path / "r18.pt")
    loaded = DynTTA(predictor="resnet18", ops=["rotate"], image_size=32, predictor_weights=tmp_path / "r18.pt")
    torch.testing.assert_close(loaded.predictor.conv1.weight, backbone["conv1.weight"])  # the head is not loaded
    assert loaded.predictor.fc.weight.shape == (2, 512) and float(loaded.predictor.fc.weight.abs().sum()) == 0
    torch.save({"x": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="predictor_weights"):
        DynTTA(predictor="resnet18", ops=["rotate"], predictor_weights=tmp_path / "bad.pt")
