import math

import pytest
import torch

import medrobust.augment as A
from medrobust.augment import DFMX, AmplitudeMix, BandFilter, FourierBasisNoise
from medrobust.augment.dfm import as_dfms, example_dfms, filter_to_masks
from medrobust.augment.fourier import N_ORIENTATIONS, planar_wave


def slow_wave(size, f, theta):
    """The published formula, one wave at a time in float64 with explicit loops over pixels' grid."""
    grid = torch.linspace(-size / 2, size / 2, size, dtype=torch.float64)
    u, v = torch.meshgrid(grid, grid, indexing="ij")
    w = torch.sin(2 * math.pi * f / size * (u * math.cos(theta) + v * math.sin(theta)) - math.pi / 4)
    return w / w.norm()


def test_planar_wave_matches_formula_and_is_unit_norm():
    for size, f, th in [(32, 3, 0.0), (32, 17, -1.2), (64, 5, -math.pi / 3)]:
        w = planar_wave(size, f, th)
        assert w.shape == (size, size) and w.dtype == torch.float32
        torch.testing.assert_close(w.double(), slow_wave(size, f, th), atol=1e-6, rtol=0)
        assert abs(float(w.norm()) - 1) < 1e-5
    # orientation 0 varies along rows (u) only; -pi/2 along columns only
    w = planar_wave(32, 4, 0.0)
    assert torch.allclose(w, w[:, :1].expand_as(w))
    w = planar_wave(32, 4, -math.pi / 2)
    assert torch.allclose(w, w[:1].expand_as(w), atol=1e-6)
    # energy at the expected frequency
    spec = torch.fft.fft2(planar_wave(64, 6, 0.0)).abs()
    assert int(spec[:, 0].argmax()) in (6, 58)


def test_fourier_basis_noise_parity_with_slow_reference():
    x = torch.rand(3, 2, 32, 32) * 0.5 + 0.25
    core = FourierBasisNoise(mean_strength=10.0, clamp=False)
    p = core.sample_params(x, torch.Generator().manual_seed(0))
    y = core.apply(x, p)
    for n in range(3):
        for c in range(2):
            ref = x[n, c].double() + p["strength"][n, c].double() * slow_wave(32, float(p["frequency"][n, c]), float(p["orientation"][n, c])) * 32 / 32
            torch.testing.assert_close(y[n, c].double(), ref, atol=1e-4, rtol=0)


def test_direct_and_factored_waves_agree():
    """The accelerator path (full-size sin) and the CPU path (1D factors, closed-form norm) agree."""
    x = torch.rand(4, 3, 40, 56)
    core = FourierBasisNoise()
    p = core.sample_params(x, torch.Generator().manual_seed(1))
    torch.testing.assert_close(core.waves(x, p, direct=True), core.waves(x, p, direct=False), atol=2e-5, rtol=0)


def test_parameter_distributions_follow_the_original():
    x = torch.rand(512, 3, 16, 16)
    p = FourierBasisNoise(min_strength=1.0, mean_strength=4.0).sample_params(x, torch.Generator().manual_seed(0))
    f, th, s = p["frequency"], p["orientation"], p["strength"]
    assert f.min() >= 1 and f.max() <= 16 and len(f.unique()) == 16
    assert th.min() >= -math.pi - 1e-6 and th.max() <= 1e-6
    allowed = -math.pi * torch.arange(N_ORIENTATIONS) / (N_ORIENTATIONS - 1)
    assert torch.isclose(th.flatten()[:, None], allowed[None]).any(1).all()
    assert s.min() >= 1.0 and abs(float(s.mean()) - 5.0) < 0.3  # min + Exp(mean 4)
    assert not torch.equal(p["frequency"][:, 0], p["frequency"][:, 1]), "per channel"
    capped = FourierBasisNoise(max_frequency=4).sample_params(x, torch.Generator().manual_seed(0))
    assert capped["frequency"].max() <= 4


def test_rms_is_strength_over_32_at_any_size():
    for size in (32, 128):
        x = torch.full((4, 1, size, size), 0.5)
        core = FourierBasisNoise(clamp=False)
        p = core.sample_params(x, torch.Generator().manual_seed(0))
        p["strength"] = torch.ones_like(p["strength"])
        d = core.apply(x, p) - x
        rms = d.flatten(1).square().mean(1).sqrt()
        torch.testing.assert_close(rms, torch.full((4,), 1 / 32), rtol=1e-3, atol=1e-5)


def test_strength_is_differentiable_and_3d_waves_are_planar():
    x = torch.rand(2, 1, 16, 16)
    core = FourierBasisNoise(clamp=False)
    p = core.sample_params(x, torch.Generator().manual_seed(0))
    p["strength"] = p["strength"].clone().requires_grad_(True)
    core.apply(x, p).sum().backward()
    assert p["strength"].grad is not None
    v = torch.rand(2, 1, 8, 16, 16)
    p3 = core.sample_params(v, torch.Generator().manual_seed(0))
    w = core.waves(v, p3)
    assert w.shape == v.shape
    torch.testing.assert_close(w.flatten(2).norm(dim=-1), torch.full((2, 1), math.sqrt(8 * 16 * 16) / 32), rtol=1e-4, atol=1e-4)


def test_amplitude_mix_keeps_phase_and_swaps_amplitude():
    x = torch.rand(4, 3, 16, 16)
    core = AmplitudeMix(beta=1.0, lam_range=1.0)
    p = core.sample_params(x, torch.Generator().manual_seed(0))
    p["partner"] = torch.tensor([1, 0, 3, 2])
    y = core.apply(x, p)
    # with lam = 1 over the whole spectrum: amplitude of the partner, phase of the sample (before the clamp)
    spec = torch.fft.fft2(x)
    expect = torch.fft.ifft2(torch.polar(spec.abs()[p["partner"]], spec.angle())).real.clamp(0, 1)
    torch.testing.assert_close(y, expect, atol=1e-5, rtol=0)
    low = AmplitudeMix(beta=0.25, lam_range=0.0)(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(low, x, atol=1e-5, rtol=0)


def test_band_filter_keeps_only_the_band():
    x = torch.rand(3, 1, 32, 32)
    lp = BandFilter(mode="low", radius_range=0.25)
    y = lp(x, torch.Generator().manual_seed(0))
    spec = torch.fft.fft2(y.clamp(0, 1))
    r = torch.sqrt(sum(g**2 for g in torch.meshgrid(torch.fft.fftfreq(32).abs() / 0.5, torch.fft.fftfreq(32).abs() / 0.5, indexing="ij")))
    unclamped = torch.fft.ifft2(torch.fft.fft2(x) * (r < 0.25)).real
    torch.testing.assert_close(y, unclamped.clamp(0, 1), atol=1e-5, rtol=0)
    hp = BandFilter(mode="high", radius_range=0.5)(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(hp.mean((-1, -2)), x.mean((-1, -2)), atol=0.05, rtol=0)  # DC kept
    _ = spec
    with pytest.raises(ValueError, match="mode"):
        BandFilter(mode="notch")


def test_dfmx_filters_only_to_other_classes_with_probability_p():
    dfms = example_dfms(4, 16)
    core = DFMX(dfms, p=1.0)
    x = torch.rand(64, 3, 16, 16)
    labels = torch.arange(64) % 4
    p = core.sample_params(x, torch.Generator().manual_seed(0), labels=labels)
    assert torch.equal(p["apply"], p["target"] != labels)
    y = core.apply(x, p)
    changed = ~(y == x).flatten(1).all(1)
    assert torch.equal(changed, p["apply"])
    i = int(p["apply"].nonzero()[0])
    expect = filter_to_masks(x[i : i + 1], dfms[p["target"][i : i + 1]]).clamp(0, 1)
    torch.testing.assert_close(y[i : i + 1], expect)
    # the kept image has energy only inside the target class's DFM (plus DC)
    spec = torch.fft.fftshift(torch.fft.fft2(expect[0, 0] - expect[0, 0].mean()).abs())
    outside = ~dfms[p["target"][i]]
    outside[8, 8] = False
    assert spec[outside].max() < 0.05 * spec.max() + 1e-3
    share = DFMX(dfms, p=0.3).sample_params(torch.rand(4000, 3, 16, 16), torch.Generator().manual_seed(1),
                                            labels=torch.arange(4000) % 4)["apply"].float().mean()
    assert abs(float(share) - 0.3 * 0.75) < 0.03
    only = DFMX(dfms, p=1.0, classes=[0]).sample_params(x, torch.Generator().manual_seed(0), labels=labels)
    assert not only["apply"][labels != 0].any()


def test_dfm_validation_errors(tmp_path):
    # augment reads no files: a path is refused with a pointer to the loader (medrobust.analysis.dfm)
    with pytest.raises(TypeError, match="analysis.dfm.load_dfms"):
        as_dfms(tmp_path / "dfms.npy")
    with pytest.raises(ValueError, match=r"dfmx.*analysis.dfm.load_dfms"):
        A.build({"name": "dfmx", "dfms": str(tmp_path / "dfms.npy")})
    with pytest.raises(ValueError, match="shape"):
        as_dfms(torch.zeros(16, 16))
    with pytest.raises(ValueError, match="0-1"):
        as_dfms(torch.full((2, 4, 4), 0.5))
    assert as_dfms(example_dfms(4, 8).numpy().astype("uint8")).dtype == torch.bool
    with pytest.raises(ValueError, match="labels"):
        DFMX(example_dfms(4, 16))(torch.rand(2, 3, 16, 16), labels=torch.tensor([0, 9]))


def test_compose_passes_labels_to_label_aware_cores():
    from medrobust.augment import build

    chain = build([{"name": "randconv", "kernel_sizes": [1]}, {"name": "dfmx", "dfms": example_dfms(4, 16), "p": 1.0}])
    assert chain.uses_labels
    x = torch.rand(8, 3, 16, 16)
    labels = torch.zeros(8, dtype=torch.long)
    y = chain(x, torch.Generator().manual_seed(0), labels=labels)
    assert y.shape == x.shape
