"""ACDC-C MRI corruptions: severities, determinism, per-sample severity, k-space behaviour, errors."""

import math

import pytest
import torch

from medrobust.augment import REGISTRY, select_params
from medrobust.augment.corruptions import mri
from medrobust.augment.corruptions.mri import CORRUPTIONS, NAMES, corrupt_mri

SEEDS = (0, 1, 2)


def phantom(shape, seed=0):
    """A disk with mild texture on a dark background, in [0, 1]; shape = (N, C, *S)."""
    g = torch.Generator().manual_seed(seed)
    h, w = shape[-2:]
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    disk = ((yy**2 + xx**2) < 0.5).float()
    return (0.6 * disk + 0.2 * torch.rand(*shape, generator=g)).clamp(0, 1)


X2 = phantom((2, 1, 32, 32))
X3 = phantom((1, 1, 4, 32, 32))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_names_and_registry():
    assert NAMES == [
        "bias_field", "gibbs_ringing", "kspace_spike", "motion_ghosting",
        "rician_noise", "gaussian_blur", "contrast_gamma", "resolution_loss",
    ]
    for name in NAMES:
        assert REGISTRY[f"mri_{name}"] is CORRUPTIONS[name]
        table = CORRUPTIONS[name].table
        assert table and all(len(v) == 5 for v in table.values())
        assert CORRUPTIONS[name].__doc__ and "severity" in CORRUPTIONS[name].__doc__
    assert set(mri.parameter_table()) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("x", [X2, X3], ids=["2d", "3d"])
def test_severity_is_monotone_and_output_valid(name, x):
    for seed in SEEDS:
        errors = []
        for s in range(1, 6):
            y = corrupt_mri(x, name, s, generator=gen(seed))
            assert y.shape == x.shape and y.dtype == x.dtype
            assert y.min() >= 0 and torch.isfinite(y).all()  # non-negative magnitudes, no clamp at 1
            errors.append((y - x).abs().mean().item())
        assert errors[0] > 0
        assert all(a < b for a, b in zip(errors, errors[1:])), f"{name} seed {seed}: {errors}"


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_given_seed(name):
    for x in (X2, X3):
        y1 = corrupt_mri(x, name, 3, generator=gen(5))
        y2 = corrupt_mri(x, name, 3, generator=gen(5))
        assert torch.equal(y1, y2)
        core = REGISTRY[f"mri_{name}"](severity=(2, 4))
        params = core.sample_params(x, gen(9))
        assert ((params["severity"] >= 2) & (params["severity"] <= 4)).all()
        assert torch.equal(core.apply(x, params), core.apply(x, params))
        for i in range(x.shape[0]):
            yi = core.apply(x[i : i + 1], select_params(params, i, x.shape[0]))
            torch.testing.assert_close(yi, core.apply(x, params)[i : i + 1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_per_sample_severity_tensor(name):
    # random draws do not depend on the severity: sample i equals the fixed-severity result
    y = corrupt_mri(X2, name, torch.tensor([1, 5]), generator=gen(3))
    y1 = corrupt_mri(X2, name, 1, generator=gen(3))
    y5 = corrupt_mri(X2, name, 5, generator=gen(3))
    torch.testing.assert_close(y[0], y1[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(y[1], y5[1], rtol=0, atol=1e-6)
    y2 = corrupt_mri(X2, name, 2, generator=gen(3))
    assert torch.equal(corrupt_mri(X2, name, torch.tensor(2), generator=gen(3)), y2)


def test_errors():
    with pytest.raises(ValueError, match=r"unknown MRI corruption 'fog'.*bias_field.*resolution_loss"):
        corrupt_mri(X2, "fog", 1)
    for bad in (0, 6, -1):
        with pytest.raises(ValueError, match="1..5"):
            corrupt_mri(X2, "gibbs_ringing", bad)
    with pytest.raises(ValueError, match="1..5"):
        corrupt_mri(X2, "gibbs_ringing", torch.tensor([1, 7]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        corrupt_mri(X2, "gibbs_ringing", torch.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match="integer"):
        corrupt_mri(X2, "gibbs_ringing", torch.tensor([1.0, 2.0]))
    with pytest.raises(TypeError):
        corrupt_mri(X2, "gibbs_ringing", 2.5)
    with pytest.raises(TypeError, match="floating-point"):
        corrupt_mri((X2 * 255).to(torch.uint8), "rician_noise", 1)
    with pytest.raises(ValueError, match="shape"):
        corrupt_mri(X2[0], "rician_noise", 1)
    with pytest.raises(ValueError, match="severity"):
        mri.MRIBiasField(severity=(4, 2))
    with pytest.raises(ValueError, match="severity"):
        mri.MRIBiasField(severity=True)
    assert corrupt_mri(X2, "mri_gibbs_ringing", 1).shape == X2.shape  # prefix accepted


def test_label_untouched_and_p0_identity():
    batch = {"image": X3.clone(), "label": torch.randint(0, 4, (1, 1, 4, 32, 32))}
    label = batch["label"].clone()
    batch["image"] = corrupt_mri(batch["image"], "motion_ghosting", 4, generator=gen(0))
    assert torch.equal(batch["label"], label) and batch["label"].dtype == torch.int64
    for cls in CORRUPTIONS.values():
        assert torch.equal(cls(p=0.0)(X2, gen(0)), X2)


def test_gibbs_zeroes_kspace_beyond_cutoff():
    x = torch.full((1, 1, 32, 32), 0.25)
    x[..., 8:24, 8:24] = 0.75  # mid-range: ringing stays inside [0, 1], no clamping
    for s in range(1, 6):
        y = corrupt_mri(x, "gibbs_ringing", s)
        frac = mri.MRIGibbsRinging.table["kept_fraction"][s - 1]
        keep = mri.MRIGibbsRinging.kept_mask(torch.tensor([frac]), 32, 32, torch.device("cpu"))[0]
        k = torch.fft.fft2(y[0, 0].double())
        assert k[~keep].abs().max() < 1e-3 * k[0, 0].abs()
        assert (y - x).abs().max() > 0.02  # visible ringing at the edges


def test_kspace_spike_puts_energy_at_the_spike():
    x = torch.full((1, 1, 32, 32), 0.5)
    core = mri.MRIKSpaceSpike(severity=3)
    params = core.sample_params(x, gen(4))
    params["active"] = torch.tensor([[True, False, False]])
    params["frequency"][0, 0] = torch.tensor([0.25, -0.125])  # k = (8, -4)
    y = core.apply(x, params)[0, 0]
    spec = torch.fft.fft2(y - y.mean()).abs()
    peak = divmod(int(spec.argmax()), 32)
    assert peak in {(8, 28), (24, 4)}  # (8, -4) or its conjugate (-8, 4)
    assert y.std() > 0.1  # stripes


def test_motion_ghosting_makes_shifted_ghosts():
    x = torch.zeros(1, 1, 32, 32)
    x[..., 4:10, 8:14] = 0.8
    core = mri.MRIMotionGhosting(severity=5)
    params = core.sample_params(x, gen(0))
    params.update(axis=torch.tensor([0]), period=torch.tensor([2]), offset=torch.tensor([0]))
    y = core.apply(x, params)[0, 0]
    ratio = mri.MRIMotionGhosting.table["ghost_ratio"][4]
    theta = float(mri.MRIMotionGhosting.phase_error(torch.tensor(ratio), torch.tensor(2)))
    ghost = 0.8 * math.sin(theta / 2)  # |exp(i theta) - 1| / 2 of the object, shifted by H / 2
    torch.testing.assert_close(y[20:26, 8:14], torch.full((6, 6), ghost), rtol=0, atol=1e-5)
    # the anatomy stays dominant: ghost / object = the severity's ratio (0.6 at severity 5)
    assert float(y[20:26, 8:14].mean() / y[4:10, 8:14].mean()) == pytest.approx(ratio, rel=1e-4)
    background = torch.ones(32, 32, dtype=torch.bool)
    background[4:10, 8:14] = background[20:26, 8:14] = False
    assert y[background].abs().max() < 1e-5
    core_w = mri.MRIMotionGhosting(severity=5)
    params.update(axis=torch.tensor([1]))
    y_w = core_w.apply(x, params)[0, 0]
    assert y_w[4:10, 24:30].min() > 0.5 * ghost  # ghost along W when W is the phase-encode axis


def test_rician_background_is_rayleigh_and_bias_field_bounded():
    x = torch.zeros(1, 1, 64, 64)
    y = corrupt_mri(x, "rician_noise", 5, generator=gen(0))
    sigma = mri.MRIRicianNoise.table["sigma"][4]
    assert abs(y.mean().item() - sigma * math.sqrt(math.pi / 2)) < 0.05 * sigma * math.sqrt(math.pi / 2)
    x = torch.full((1, 1, 4, 32, 32), 0.3)
    for s in range(1, 6):
        ratio = corrupt_mri(x, "bias_field", s, generator=gen(1)) / x
        strength = mri.MRIBiasField.table["log_strength"][s - 1]
        assert ratio.log().abs().max().item() == pytest.approx(strength, rel=1e-4)
        assert ratio[0, 0, 0].std() > 0 and ratio[0, 0, :, 0, 0].std() > 0  # varies in-plane and across slices


def test_blur_and_resolution_loss_remove_high_frequencies_in_plane():
    x = X3.clone()
    hi = torch.fft.fftfreq(32).abs() > 0.25
    band = hi[:, None] | hi[None, :]

    def hf(v):
        return torch.fft.fft2(v).abs()[..., band].sum().item()

    for name in ("gaussian_blur", "resolution_loss"):
        energies = [hf(corrupt_mri(x, name, s)) for s in range(1, 6)]
        assert energies[0] < hf(x) and all(a > b for a, b in zip(energies, energies[1:])), name
        # in-plane only: a volume made of identical slices keeps identical slices
        same = X2[:1].unsqueeze(2).expand(1, 1, 3, 32, 32).contiguous()
        y = corrupt_mri(same, name, 3)
        assert torch.equal(y[:, :, 0], y[:, :, 2])


def test_half_precision_and_float64():
    for name in NAMES:
        for dtype in (torch.float16, torch.float64):
            y = corrupt_mri(X2.to(dtype), name, 2, generator=gen(0))
            assert y.dtype == dtype and y.shape == X2.shape


def _brain():
    from pathlib import Path

    import nibabel as nib
    import numpy as np

    v = nib.load(Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii").get_fdata()
    lo, hi = v.min(), np.percentile(v, 99.8)
    return torch.tensor(np.clip((v - lo) / (hi - lo), 0, 1).transpose(2, 0, 1), dtype=torch.float32)[None, None]


def test_real_scan_graded_no_saturation_and_ghosts_below_the_anatomy():
    x = _brain()  # nibabel's anatomical.nii, (1, 1, 25, 33, 41)
    clipped_before = float((x >= 1).float().mean())
    for name in NAMES:
        for s in (4, 5):
            y = corrupt_mri(x, name, s, generator=gen(0))
            # nothing sits exactly at 1 unless it was there: no saturating clamp
            assert float((y == 1).float().mean()) <= clipped_before + 1e-3, (name, s)
    # resolution loss: strictly graded PSNR, at least 1 dB per severity step
    psnr = [float(-10 * torch.log10(((corrupt_mri(x, "resolution_loss", s) - x) ** 2).mean())) for s in range(1, 6)]
    assert all(a - b > 1.0 for a, b in zip(psnr, psnr[1:])), psnr
    # ghosting at severity 5, every period: the object stays brighter than its ghost
    core = mri.MRIMotionGhosting(severity=5)
    for m in (2, 3, 4):
        p = core.sample_params(x, gen(0))
        p.update(axis=torch.tensor([0]), period=torch.tensor([m]), offset=torch.tensor([0]))
        y = core.apply(x, p)
        theta = float(mri.MRIMotionGhosting.phase_error(torch.tensor(0.6), torch.tensor(m)))
        obj = abs(m - 1 + complex(math.cos(theta), math.sin(theta))) / m
        assert 2 * math.sin(theta / 2) / m == pytest.approx(0.6 * obj, rel=1e-5)
        assert float(y.mean()) > 0.5 * float(x.mean())


@pytest.mark.slow  # imports TorchIO and MONAI's transforms (~40 s on a loaded core)
def test_bench_mri_rows_side_by_side():
    from medrobust.bench.mri import bench_mri

    rows = bench_mri(repeats=1, quick=True)
    ours = [r for r in rows if r["input"] != "note"]
    assert {r["method"] for r in ours} == set(NAMES) and {r["input"].split()[0] for r in ours} == {"3d", "4d"}
    assert all(r["seconds"] > 0 and r.get("monai_s", 1) > 0 for r in ours)
    assert sum("speedup_vs_monai" in r for r in ours) == 2 * 7  # every corruption but ghosting has a MONAI peer
