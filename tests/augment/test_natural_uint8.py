"""uint8 in, uint8 out for the natural corruptions, ``validate=False``, and the sync-free CUDA path."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from medrobust.augment import REGISTRY, corrupt, corruption_names
from medrobust.augment.base import select_params
from medrobust.bench.corruptions import photo_batch

NAMES = corruption_names("all")


def photos_u8(n: int, size: int) -> torch.Tensor:
    return torch.from_numpy(photo_batch(n, size)).permute(0, 3, 1, 2).contiguous()


@pytest.mark.parametrize("name", NAMES)
def test_uint8_equals_float_rounded(name):
    # real photographs; a batch large enough that the CPU path runs in several chunks (CIFAR size,
    # 2 MB chunks of float32 hold 170 images: use 40 images and a tiny chunk to force 5 chunks)
    from medrobust.augment.corruptions.natural import _base

    x8 = photos_u8(40, 32)
    old = _base.UINT8_CHUNK_BYTES
    _base.UINT8_CHUNK_BYTES = 8 * 3 * 32 * 32 * 4
    try:
        sev = torch.tensor([1, 2, 3, 4, 5] * 8)
        y8 = corrupt(x8, name, sev, table="cifar", generator=torch.Generator().manual_seed(3))
    finally:
        _base.UINT8_CHUNK_BYTES = old
    yf = corrupt(x8.float() / 255, name, sev, table="cifar", generator=torch.Generator().manual_seed(3))
    assert y8.dtype == torch.uint8 and y8.shape == x8.shape
    diff = (y8.float() - (yf * 255).round()).abs()
    assert float(diff.max()) <= 1.0, name
    # pixelate's uint8 path is PIL's 8-bit arithmetic (bit-exact to the published code, tested
    # below), whose rounding after each pass differs from the float path's by one level in places
    assert float((diff > 0).float().mean()) < (0.25 if name == "pixelate" else 1e-3), name


@pytest.mark.parametrize("use_pil", [False, True])
def test_uint8_pixelate_is_the_published_output(use_pil, monkeypatch):
    from imagecorruptions import corrupt as ic_corrupt

    from medrobust.augment.corruptions.natural.digital import NaturalPixelate

    monkeypatch.setattr(NaturalPixelate, "use_pil", use_pil)
    imgs = photo_batch(5, 224)
    x8 = torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous()
    sev = torch.tensor([1, 2, 3, 4, 5])
    y8 = corrupt(x8, "pixelate", sev)
    for k in range(5):
        ref = ic_corrupt(imgs[k], int(sev[k]), "pixelate")
        assert np.array_equal(y8[k].permute(1, 2, 0).numpy(), ref)


@pytest.mark.parametrize("size", [(32, 32), (64, 48), (224, 224), (97, 130)])
def test_uint8_pixelate_fixed_point_equals_pillow(size):
    from medrobust.augment.corruptions.natural._pil import pixelate_pil_uint8, pixelate_uint8

    h, w = size
    x8 = torch.from_numpy(np.ascontiguousarray(photo_batch(4, max(size))[:, :h, :w])).permute(0, 3, 1, 2).contiguous()
    for c in (0.95, 0.85, 0.6, 0.4, 0.25, 0.05):
        hs, ws = max(1, int(h * c)), max(1, int(w * c * 0.9))
        assert torch.equal(pixelate_uint8(x8, hs, ws), pixelate_pil_uint8(x8, [(hs, ws)] * 4)), (size, c)
    # a batch of mixed severities through the core, on worker chunks, against PIL per image
    sev = torch.tensor([1, 3, 5, 2])
    y8 = corrupt(x8, "pixelate", sev)
    for k in range(4):
        c = (0.6, 0.5, 0.4, 0.3, 0.25)[int(sev[k]) - 1]
        ref = pixelate_pil_uint8(x8[k:k + 1], [(max(1, int(h * c)), max(1, int(w * c)))])
        assert torch.equal(y8[k:k + 1], ref), (size, k)


def test_uint8_core_apply_respects_p_and_params():
    x8 = photos_u8(12, 32)
    core = REGISTRY["natural_gaussian_noise"](severity=(1, 5), table="cifar", p=0.5)
    params = core.sample_params(x8.float() / 255, torch.Generator().manual_seed(0))
    y8 = core.apply_uint8(x8, params)
    keep = ~params["apply"]
    assert keep.any() and (~keep).any()
    assert torch.equal(y8[keep], x8[keep])  # samples the coin leaves alone are byte-identical
    assert not torch.equal(y8[~keep], x8[~keep])
    # a slice of the params applied to a slice of the batch gives that slice of the result
    part = core.apply_uint8(x8[3:9], select_params(params, slice(3, 9), 12))
    assert torch.equal(part, y8[3:9])


@pytest.mark.parametrize("codec", ["opencv", "torchvision"])
def test_jpeg_uint8_is_the_pillow_round_trip(codec, monkeypatch):
    from io import BytesIO

    from PIL import Image

    from medrobust.augment.corruptions.natural import _pil

    from medrobust.augment.functional.opencv import opencv_disabled

    x8 = photos_u8(20, 64)  # several codec jobs of 8 images, on worker threads
    sev = torch.tensor([1, 2, 3, 4, 5] * 4)
    if codec == "torchvision":  # the fallback without OpenCV
        calls = []
        monkeypatch.setattr(_pil, "_codec", lambda imgs, q, _c=_pil._codec: calls.append(q) or _c(imgs, q))
        with opencv_disabled():
            y8 = corrupt(x8, "jpeg_compression", sev)
        assert calls  # the torchvision codec ran
    else:
        y8 = corrupt(x8, "jpeg_compression", sev)
    for k in range(20):
        q = (25, 18, 15, 10, 7)[k % 5]
        buf = BytesIO()
        Image.fromarray(x8[k].permute(1, 2, 0).numpy()).save(buf, "JPEG", quality=q)
        ref = np.asarray(Image.open(BytesIO(buf.getvalue())).convert("RGB"))
        assert np.array_equal(y8[k].permute(1, 2, 0).numpy(), ref), (codec, k)


def test_validate_false_skips_the_value_pass(monkeypatch):
    from medrobust.augment.corruptions.natural import _base

    x = photos_u8(4, 32).float() / 255
    ref = corrupt(x, "contrast", 2, table="cifar")

    def boom(*a, **k):
        raise AssertionError("value check ran")

    monkeypatch.setattr(_base, "_check_rgb01", boom)
    assert torch.equal(corrupt(x, "contrast", 2, table="cifar", validate=False), ref)
    with pytest.raises(AssertionError, match="value check ran"):
        corrupt(x, "contrast", 2, table="cifar")
    # the layout checks still run without the value pass
    with pytest.raises(ValueError, match="3 \\(RGB\\) channels"):
        corrupt(x[:, :1], "contrast", 2, validate=False)


def test_severity_params_stay_on_the_host():
    core = REGISTRY["natural_fog"](severity=(1, 5))
    params = core.sample_params(torch.rand(3, 3, 16, 16), torch.Generator().manual_seed(0))
    assert params["severity"].device.type == "cpu"


def test_importing_medrobust_sets_a_passive_omp_wait_policy():
    import os
    import subprocess
    import sys

    code = "import medrobust, os; from medrobust.threads import omp_wait_policy; print(os.environ['OMP_WAIT_POLICY'], omp_wait_policy())"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "_MEDROBUST_SET_OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["PASSIVE", "passive", "(medrobust)"]
    env["OMP_WAIT_POLICY"] = "ACTIVE"  # a user's choice is kept
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.startswith("ACTIVE OMP_WAIT_POLICY=ACTIVE (environment)")
    late = "import torch, medrobust; from medrobust.threads import omp_wait_policy; print(omp_wait_policy())"
    env.pop("OMP_WAIT_POLICY")
    out = subprocess.run([sys.executable, "-c", late], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "default (torch imported first)"


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
#: cores whose CUDA path has no host sync (data-dependent ones -- shot noise's tail, glass blur's
#: copy chains, spatter's hysteresis, the blurs' kernel tables built on the host -- still have some)
SYNC_FREE = ["gaussian_noise", "impulse_noise", "speckle_noise", "brightness", "contrast", "saturate", "fog"]


@CUDA
@pytest.mark.parametrize("name", SYNC_FREE)
def test_cuda_hot_path_has_no_host_sync(name):
    x = torch.rand(8, 3, 64, 64, device="cuda")
    gen = torch.Generator(device="cuda").manual_seed(0)
    corrupt(x, name, 3, generator=gen, validate=False)  # warm-up: lazy tables, cuFFT plans
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        corrupt(x, name, 3, generator=gen, validate=False)
        corrupt(x, name, torch.tensor([1, 2, 3, 4, 5, 1, 2, 3]), generator=gen, validate=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@CUDA
def test_cuda_jpeg_close_to_pillow():
    x8 = photos_u8(16, 224)
    cpu = corrupt(x8, "jpeg_compression", 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gpu = corrupt(x8.cuda(), "jpeg_compression", 3).cpu()
    mse = (gpu.float() - cpu.float()).pow(2).mean()
    psnr = 10 * torch.log10(255.0**2 / mse.clamp_min(1e-12))
    assert psnr > 35.0, float(psnr)
    # the float CUDA path is the uint8 one
    yf = corrupt(x8.cuda().float() / 255, "jpeg_compression", 3).cpu()
    assert torch.equal((yf * 255).round().to(torch.uint8), gpu)


def test_parallel_chamfer_distance_equals_the_raster_passes():
    # the GPU method (whole-image relaxation) against the CPU one (OpenCV's two raster passes) on
    # the edges spatter really produces, on sparse random edges, and on an image with no edge
    from medrobust.augment.corruptions.natural._opencv import canny, distance_to_edges
    from medrobust.augment.corruptions.natural.weather import NaturalSpatter

    g = torch.Generator().manual_seed(0)
    core = NaturalSpatter(severity=1)
    liquid = core.liquid(torch.randn(6, 1, 80, 72, generator=g), 1)[:, 0]
    edges = canny(torch.remainder(liquid.mul(255.0).floor_(), 256).float(), 50, 150)
    sparse = torch.rand(4, 50, 61, generator=g) < 0.002
    sparse[0] = False
    for e in (edges, sparse):
        rows = distance_to_edges(e, 20, "rows")
        assert torch.equal(distance_to_edges(e, 20, "relax"), rows)
        assert 0 < float((rows < 20).float().mean()) < 1
    assert torch.equal(distance_to_edges(sparse[:1], 20, "relax"), torch.full((1, 50, 61), 20.0))
    with pytest.raises(ValueError, match="method"):
        distance_to_edges(edges, 20, "fast")


def test_trusted_values_skips_every_value_check_but_not_the_layout():
    from medrobust.augment.base import check_input, trusted_values, values_trusted

    bad = torch.full((2, 3, 8, 8), float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        check_input(bad)
    with pytest.raises(ValueError, match="0..255"):
        corrupt(torch.full((2, 3, 8, 8), 200.0), "contrast", 1)
    with trusted_values():
        assert values_trusted()
        assert check_input(bad) is bad  # the caller vouched for the values
        with pytest.raises(ValueError, match="shape"):
            check_input(bad[0, 0])
        x = photos_u8(3, 16).float() / 255
        ref = REGISTRY["randconv"]()(x, torch.Generator().manual_seed(0))
    assert not values_trusted()
    torch.testing.assert_close(REGISTRY["randconv"]()(x, torch.Generator().manual_seed(0)), ref, rtol=0, atol=0)


def test_training_views_check_the_batch_once(monkeypatch):
    from medrobust.augment import base
    from medrobust.train.steps import ClassificationAdapter

    calls = []
    real = base.torch.aminmax

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(base.torch, "aminmax", counting)
    from medrobust.augment import build

    core = build([{"name": "randconv"}, {"name": "gin"}])
    adapter = ClassificationAdapter(core)
    x = torch.rand(4, 3, 16, 16)
    views = adapter.views(x, torch.Generator().manual_seed(0))
    assert len(views) == 1 and views[0].shape == x.shape
    assert len(calls) == 1  # one value pass for the batch, none per core
    with pytest.raises(ValueError, match="NaN"):
        adapter.views(torch.full((2, 3, 16, 16), float("nan")), None)


@CUDA
def test_cuda_randconv_step_has_no_host_sync():
    from medrobust.augment.base import trusted_values

    x = torch.rand(8, 3, 64, 64, device="cuda")
    core = REGISTRY["randconv"]()  # mixed kernel sizes per sample: the padded single conv on CUDA
    gen = torch.Generator().manual_seed(0)  # the training loop's CPU generator
    with trusted_values():
        core(x, gen)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            core(x, gen)
        finally:
            torch.cuda.set_sync_debug_mode("default")
