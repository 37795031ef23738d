import math

import pytest
import torch
import torch.nn.functional as F

from medrobust.augment import RandConv
from medrobust.augment.randconv import DISTRIBUTIONS, _crop_kernel, sample_conv_weights


def slow_reference(x, params, core):
    """Per-sample loop with ordinary dense convolutions (the published formula, one image at a time)."""
    dims = x.ndim - 2
    conv = F.conv2d if dims == 2 else F.conv3d
    outs = []
    for i in range(x.shape[0]):
        k = int(params["ksize"][i])
        w = _crop_kernel(params["weight"][i], k, dims)
        b = params["bias"][i] if "bias" in params else None
        y = conv(x[i : i + 1], w, b, padding=k // 2)
        if core.mixing:
            a = params["alpha"][i]
            y = a * y + (1 - a) * x[i : i + 1]
        if core.output == "clamp":
            y = y.clamp(0, 1)
        outs.append(y if params["apply"][i] else x[i : i + 1])
    return torch.cat(outs)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("mixing,rand_bias", [(False, False), (True, True)])
def test_grouped_conv_equals_slow_loop(dims, mixing, rand_bias):
    x = torch.rand(6, 3, 20, 20) if dims == 2 else torch.rand(4, 2, 6, 14, 14)
    core = RandConv(kernel_sizes=(1, 3, 5, 7), mixing=mixing, rand_bias=rand_bias, p=0.8)
    params = core.sample_params(x, torch.Generator().manual_seed(0))
    assert len(set(params["ksize"].tolist())) > 1, "test needs mixed kernel sizes in one batch"
    torch.testing.assert_close(core.apply(x, params), slow_reference(x, params, core), rtol=1e-5, atol=1e-5)


def test_per_sample_draws_differ_and_shared_draws_match():
    x = torch.rand(8, 3, 16, 16)
    ps = RandConv(kernel_sizes=(3,), mixing=True).sample_params(x, torch.Generator().manual_seed(0))
    w = ps["weight"].flatten(1)
    assert all(not torch.equal(w[0], w[i]) for i in range(1, 8))
    assert len(set(ps["alpha"].tolist())) == 8
    sizes = RandConv().sample_params(torch.rand(64, 3, 8, 8), torch.Generator().manual_seed(0))["ksize"]
    assert set(sizes.tolist()) == {1, 3, 5, 7}

    shared_core = RandConv(mixing=True, per_sample=False, p=0.5)
    sh = shared_core.sample_params(x, torch.Generator().manual_seed(0))
    for key in ("weight", "ksize", "alpha", "apply"):
        assert all(torch.equal(sh[key][0], sh[key][i]) for i in range(8)), key
    # identical images then give identical outputs when the draw is shared
    same = x[:1].repeat(8, 1, 1, 1)
    y = shared_core.apply(same, shared_core.sample_params(same, torch.Generator().manual_seed(1)))
    assert all(torch.equal(y[0], y[i]) for i in range(8))
    y_ps = RandConv().apply(same, RandConv().sample_params(same, torch.Generator().manual_seed(1)))
    assert not torch.equal(y_ps[0], y_ps[1])


def test_1x1_randconv_is_a_per_pixel_linear_colour_map():
    x = torch.rand(3, 3, 32, 32)
    core = RandConv(kernel_sizes=(1,), output="none")
    y = core(x, torch.Generator().manual_seed(0))
    for i in range(3):
        A = x[i].reshape(3, -1).T  # pixels × channels
        B = y[i].reshape(3, -1).T
        M = torch.linalg.lstsq(A, B).solution
        resid = (A @ M - B).abs().max()
        assert resid < 1e-5, f"sample {i}: not a per-pixel linear map (residual {resid})"
        assert not torch.allclose(M, torch.eye(3), atol=1e-2)


def test_spatial_structure_survives():
    """Edges of a test pattern stay where they were (random kernels are local)."""
    x = torch.zeros(4, 3, 48, 48)
    x[:, :, :, 24:] = 1.0  # a vertical edge at column 24
    x[:, :, 30:, :] *= 0.3  # and a horizontal one at row 30
    y = RandConv(kernel_sizes=(3,), output="none")(x, torch.Generator().manual_seed(0))
    for i in range(4):
        gx = (y[i, :, 5:25, 1:] - y[i, :, 5:25, :-1]).abs().sum((0, 1))  # away from the borders
        assert int(gx[10:-10].argmax()) + 10 in (22, 23, 24), "vertical edge moved"
        gy = (y[i, :, 1:, 30:45] - y[i, :, :-1, 30:45]).abs().sum((0, 2))
        assert int(gy[10:-5].argmax()) + 10 in (28, 29, 30), "horizontal edge moved"


@pytest.mark.parametrize("dist", DISTRIBUTIONS)
def test_weight_distributions_have_the_documented_scale(dist):
    c, k, dims = 3, 5, 2
    w = sample_conv_weights(4000, c, c, k, dims, dist, torch.Generator().manual_seed(0))
    fan_in = c * k * k
    std = {"kaiming_normal": 1 / math.sqrt(fan_in), "kaiming_uniform": 1 / math.sqrt(fan_in),
           "xavier_normal": math.sqrt(2 / (2 * fan_in))}.get(dist)
    if dist == "kaiming_normal_clamp":
        s = 1 / math.sqrt(fan_in)
        assert w.abs().max() <= 2 * s + 1e-7
        assert 0.85 * s < w.std() < s  # truncation shrinks the std to ~0.88 s
    else:
        assert abs(float(w.std()) - std) / std < 0.02
    if dist == "kaiming_normal":
        # METHODS.md: 0.577, 0.192, 0.115, 0.082 for k = 1, 3, 5, 7 with C = 3
        for k_, ref in ((1, 0.577), (3, 0.192), (5, 0.115), (7, 0.082)):
            assert abs(1 / math.sqrt(3 * k_ * k_) - ref) < 1e-3


def test_output_modes_and_value_range():
    x = torch.rand(4, 3, 16, 16)
    g = torch.Generator().manual_seed(0)
    y = RandConv(output="norm")(x, g)
    flat = y.flatten(1)
    torch.testing.assert_close(flat.min(1).values, torch.zeros(4), atol=1e-6, rtol=0)
    torch.testing.assert_close(flat.max(1).values, torch.ones(4), atol=1e-6, rtol=0)
    y = RandConv(output="none", kernel_sizes=(3,))(x, torch.Generator().manual_seed(0))
    assert y.min() < 0 or y.max() > 1
    y = RandConv(value_range=(-1.0, 1.0))(x * 2 - 1, torch.Generator().manual_seed(0))
    assert y.min() >= -1 and y.max() <= 1


def test_mixing_alpha_zero_limit_and_one_channel():
    x = torch.rand(2, 1, 16, 16)
    core = RandConv(mixing=True)
    p = core.sample_params(x, torch.Generator().manual_seed(0))
    p["alpha"] = torch.zeros(2)
    torch.testing.assert_close(core.apply(x, p), x)
    assert core(torch.rand(2, 5, 12, 12)).shape == (2, 5, 12, 12)  # any channel count


def test_generator_device_independence():
    """The same seed gives the same parameters whatever the input device (params drawn on the generator)."""
    x = torch.rand(3, 3, 8, 8)
    a = RandConv().sample_params(x, torch.Generator().manual_seed(5))
    b = RandConv().sample_params(x.double(), torch.Generator().manual_seed(5))
    assert torch.equal(a["weight"], b["weight"])


def test_constructor_errors():
    for kw, match in [({"kernel_sizes": (0,)}, "kernel_sizes"), ({"distribution": "he"}, "distribution"),
                      ({"output": "minmax"}, "output"), ({"value_range": (1, 0)}, "value_range")]:
        with pytest.raises(ValueError, match=match):
            RandConv(**kw)
