"""The shared contract every registered core must pass (albumentations-style: driven by the registry,
so a new core is tested without anyone adding it here)."""

import pytest
import torch
from contract_kwargs import CONTRACT_KWARGS, contract_kwargs

import medrobust.augment as A
from medrobust.augment import REGISTRY, select_params

NAMES = sorted(REGISTRY)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def make(name, **kw):
    return REGISTRY[name](**{**contract_kwargs(name), **kw})


def batch(dims, n=4, c=3, generator=None):
    shape = (n, c, 24, 24) if dims == 2 else (n, 1 if c == 3 else c, 6, 20, 20)
    return torch.rand(*shape, generator=generator or torch.Generator().manual_seed(0))


def test_registry_has_the_foundation_cores():
    assert {"randconv", "gin", "ipa"} <= set(NAMES)
    for name in NAMES:
        assert issubclass(REGISTRY[name], A.BatchAugment)
        assert REGISTRY[name].registry_name == name and not REGISTRY[name].abstract
    assert set(CONTRACT_KWARGS) <= set(NAMES), "contract kwargs for a core that is not registered"


def test_contract_kwargs_leave_the_global_rng_alone():
    state = torch.get_rng_state()
    for name in CONTRACT_KWARGS:
        contract_kwargs(name)
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_device_and_range(name, device):
    core = make(name)
    for dims in core.spatial_dims:
        for dtype in (torch.float32, torch.float64):
            x = batch(dims).to(device=device, dtype=dtype)
            y = core(x, torch.Generator().manual_seed(0))
            assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
            assert torch.isfinite(y).all()
            if core.keeps_range:
                assert y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NAMES)
def test_autocast_region_does_not_change_the_result(name, device):
    """Under AMP (an enclosing autocast region) a core still computes in the input dtype."""
    core = make(name)
    half = torch.bfloat16 if device == "cpu" else torch.float16
    for dims in core.spatial_dims:
        x = batch(dims).to(device)
        ref = core(x, torch.Generator().manual_seed(0))
        with torch.autocast(device_type=device, dtype=half):
            y = core(x, torch.Generator().manual_seed(0))
        assert y.dtype == x.dtype
        torch.testing.assert_close(y, ref, rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_seeded_replay(name):
    core = make(name)
    for dims in core.spatial_dims:
        x = batch(dims)
        y1 = core(x, torch.Generator().manual_seed(7))
        y2 = core(x, torch.Generator().manual_seed(7))
        y3 = core(x, torch.Generator().manual_seed(8))
        torch.testing.assert_close(y1, y2, rtol=0, atol=0)
        assert not torch.equal(y1, y3), "different seeds should give different outputs"
        # apply() with the same params replays exactly
        p = core.sample_params(x, torch.Generator().manual_seed(3))
        torch.testing.assert_close(core.apply(x, p), core.apply(x, p), rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_p0_is_identity_and_p_is_per_sample(name):
    for dims in make(name).spatial_dims:
        x = batch(dims, n=32)
        assert torch.equal(make(name, p=0.0)(x, torch.Generator().manual_seed(0)), x)
        core = make(name, p=0.5)
        params = core.sample_params(x, torch.Generator().manual_seed(0))
        y = core.apply(x, params)
        mask = params["apply"]
        assert 0 < int(mask.sum()) < 32, "p=0.5 should select some but not all of 32 samples"
        unchanged = (y == x).flatten(1).all(1)
        assert torch.equal(unchanged[~mask], torch.ones_like(unchanged[~mask]))
        assert not unchanged[mask].any()


@pytest.mark.parametrize("name", NAMES)
def test_per_sample_independence_batched_vs_one_by_one(name):
    """torchvision check_kernel style: the batched result equals applying each sample alone."""
    core = make(name)
    if core.mixes_samples:
        check_mixing_locality(core)
        return
    for dims in core.spatial_dims:
        x = batch(dims, n=5)
        params = core.sample_params(x, torch.Generator().manual_seed(11))
        y = core.apply(x, params)
        for i in range(5):
            yi = core.apply(x[i : i + 1], select_params(params, i, 5))
            torch.testing.assert_close(yi, y[i : i + 1], rtol=1e-5, atol=1e-5)
        # changing another sample does not change sample 0
        x2 = x.clone()
        x2[1:] = torch.rand_like(x2[1:])
        torch.testing.assert_close(core.apply(x2, params)[0], y[0], rtol=1e-5, atol=1e-5)


def check_mixing_locality(core):
    """Cores that mix samples name each sample's partner in params['partner']; sample i may depend on
    x[i] and x[partner[i]] only."""
    for dims in core.spatial_dims:
        x = batch(dims, n=6)
        params = core.sample_params(x, torch.Generator().manual_seed(11))
        partner = params["partner"]
        assert partner.shape == (6,) and sorted(partner.tolist()) == list(range(6))
        y = core.apply(x, params)
        for i in range(6):
            others = [j for j in range(6) if j not in (i, int(partner[i]))]
            x2 = x.clone()
            x2[others] = torch.rand_like(x2[others])
            torch.testing.assert_close(core.apply(x2, params)[i], y[i], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_errors(name):
    core = make(name)
    dims = core.spatial_dims[0]
    x = batch(dims)
    with pytest.raises(TypeError, match="floating-point"):
        core((x * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="shape"):
        core(x[0])
    with pytest.raises(ValueError, match="empty batch"):
        core(x[:0])
    bad = x.clone()
    bad.view(-1)[0] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        core(bad)
    bad.view(-1)[0] = float("inf")
    with pytest.raises(ValueError, match="NaN or Inf"):
        core(bad)
    with pytest.raises(TypeError, match="torch.Tensor"):
        core(x.numpy())
    with pytest.raises(ValueError, match="p"):
        make(name, p=1.5)


def test_build_from_config_and_errors():
    core = A.build({"name": "randconv", "kernel_sizes": [1, 3], "mixing": True})
    assert isinstance(core, A.RandConv) and core.kernel_sizes == (1, 3) and core.mixing
    assert isinstance(A.build("gin"), A.GIN)
    chain = A.build([{"name": "randconv"}, {"name": "gin"}])
    x = batch(2)
    assert chain(x, torch.Generator().manual_seed(0)).shape == x.shape
    with pytest.raises(ValueError, match="unknown augmentation 'randconvv'.*randconv"):
        A.build({"name": "randconvv"})
    with pytest.raises(ValueError, match=r"augment\[1\].*unknown key.*'mixin'.*allowed keys"):
        A.build([{"name": "gin"}, {"name": "randconv", "mixin": True}])
    with pytest.raises(ValueError, match="name: missing"):
        A.build({"mixing": True})
    with pytest.raises(ValueError, match="kernel_sizes"):
        A.build({"name": "randconv", "kernel_sizes": [2]})
