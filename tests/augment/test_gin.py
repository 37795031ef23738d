import pytest
import torch

from medrobust.augment import GIN, IPA
from medrobust.augment.gin import control_grid_size, smooth_blend_mask


@pytest.mark.parametrize("shape", [(4, 3, 32, 32), (3, 1, 6, 24, 24)])
def test_gin_preserves_frobenius_norm_per_image(shape):
    x = torch.rand(*shape)
    for core in (GIN(), IPA()):
        y = core(x, torch.Generator().manual_seed(0))
        if isinstance(core, GIN):
            torch.testing.assert_close(y.flatten(1).norm(dim=1), x.flatten(1).norm(dim=1), rtol=1e-4, atol=1e-4)
        assert not torch.allclose(y, x)


def test_gin_alpha_zero_is_identity_and_params_per_sample():
    x = torch.rand(6, 3, 16, 16)
    y = GIN(alpha_range=0.0)(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(y, x, rtol=1e-5, atol=1e-5)
    p = GIN().sample_params(x, torch.Generator().manual_seed(0))
    assert len(set(p["alpha"].tolist())) == 6
    w = p["weight0"].flatten(1)
    assert all(not torch.equal(w[0], w[i]) for i in range(1, 6))
    # channel plan C -> 2 -> 2 -> 2 -> C and kernel sizes in {1, 3}
    assert [tuple(p[f"weight{i}"].shape[1:3]) for i in range(4)] == [(2, 3), (2, 2), (2, 2), (3, 2)]
    for i in range(4):
        w = p[f"weight{i}"]
        one_by_one = (w[..., 0, :].abs().sum((1, 2, 3)) == 0) & (w[..., :, 0].abs().sum((1, 2, 3)) == 0)
        centre_only = w.abs().sum((1, 2)) .flatten(1)[:, [0, 1, 2, 3, 5, 6, 7, 8]].sum(1) == 0
        assert torch.equal(one_by_one, centre_only)


def test_gin_is_a_nonlinear_intensity_map_that_keeps_structure():
    x = torch.zeros(2, 1, 32, 32)
    x[:, :, 8:24, 8:24] = 1.0
    y = GIN(kernel_size=(1,), alpha_range=1.0)(x, torch.Generator().manual_seed(2))
    # with 1×1 kernels GIN is a pointwise map: equal inputs give equal outputs
    inside = y[:, :, 10:22, 10:22]
    assert torch.allclose(inside, inside[:, :, :1, :1].expand_as(inside))


def test_ipa_mask_is_smooth_in_unit_range_and_blends():
    size = (64, 64)
    control = (torch.rand(3, 1, *control_grid_size(size), generator=torch.Generator().manual_seed(0)) * 2 - 1) * 0.3
    m = smooth_blend_mask(control, size)
    assert m.shape == (3, 1, 64, 64)
    assert m.min() >= 0 and m.max() <= 1
    assert torch.allclose(m.flatten(1).amin(1), torch.zeros(3)) and torch.allclose(m.flatten(1).amax(1), torch.ones(3))
    assert (m[..., 1:, :] - m[..., :-1, :]).abs().max() < 0.1, "mask should be smooth"
    m3 = smooth_blend_mask(torch.rand(1, 1, *control_grid_size((8, 40, 40))), (8, 40, 40))
    assert m3.shape == (1, 1, 8, 40, 40)
    # the IPA output lies between the two GIN views everywhere
    x = torch.rand(2, 1, 48, 48)
    ipa = IPA()
    p = ipa.sample_params(x, torch.Generator().manual_seed(0))
    y = ipa.apply(x, p)
    g1, g2 = ipa.gin._apply(x, p["gin1"]), ipa.gin._apply(x, p["gin2"])
    assert ((y >= torch.minimum(g1, g2) - 1e-5) & (y <= torch.maximum(g1, g2) + 1e-5)).all()


def test_gin_errors():
    with pytest.raises(ValueError, match="n_layers"):
        GIN(n_layers=1)
    with pytest.raises(ValueError, match="kernel_size"):
        GIN(kernel_size=4)
    with pytest.raises(ValueError, match="alpha_range"):
        GIN(alpha_range=(0.5, 2.0))
    with pytest.raises(ValueError, match="epsilon"):
        IPA(epsilon=0)


def slow_blend_mask(control, size, spacing=24, downscale=2, order=2):
    """Reference: the B-spline field by explicit upsampling and iterated box filters per axis."""
    import math

    import torch.nn.functional as F

    dims = len(size)
    low = [math.ceil(s / downscale) for s in size]
    f = control.double()
    for d in range(dims):
        f = f.repeat_interleave(spacing, dim=2 + d)
    pool = F.avg_pool2d if dims == 2 else F.avg_pool3d
    for _ in range(order + 1):
        for d in range(dims):
            k = [1] * dims
            k[d] = spacing
            f = pool(f, kernel_size=tuple(k), stride=1)
    idx = [slice(None), slice(None)] + [slice((f.shape[2 + d] - low[d]) // 2, (f.shape[2 + d] - low[d]) // 2 + low[d]) for d in range(dims)]
    f = F.interpolate(f[tuple(idx)], size=tuple(size), mode="bilinear" if dims == 2 else "trilinear", align_corners=False).exp()
    flat = f.flatten(1)
    return ((f - flat.amin(1).view(-1, *[1] * (f.ndim - 1))) / (flat.amax(1) - flat.amin(1)).view(-1, *[1] * (f.ndim - 1))).float()


@pytest.mark.parametrize("size", [(96, 96), (224, 160), (8, 40, 40)])
def test_blend_mask_matrix_form_equals_explicit_bspline(size):
    control = torch.rand(3, 1, *control_grid_size(size), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(smooth_blend_mask(control, size), slow_blend_mask(control, size), atol=1e-5, rtol=0)
