"""The OpenCV paths of the CPU corruptions (``medrobust.augment.functional.opencv``) against the
torch kernels they stand in for and against scipy, on scikit-image's photographs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import skimage.data
import torch

from medrobust.augment import corrupt
from medrobust.augment.corruptions.natural import _opencv
from medrobust.augment.corruptions.natural.weather import NaturalSpatter
from medrobust.augment.functional.filters import gaussian_filter, gaussian_weights, separable_filter
from medrobust.augment.functional.opencv import cv2_module, cv2_sep_filter, opencv_disabled

pytestmark = pytest.mark.skipif(cv2_module() is None, reason="needs OpenCV")


def _photos(n: int = 6, size: int = 96) -> torch.Tensor:
    from PIL import Image

    base = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee()]
    ims = [np.asarray(Image.fromarray(b).resize((size, size), Image.BILINEAR)) for b in base]
    out = [np.rot90(ims[i % 3], i // 3) for i in range(n)]
    return torch.from_numpy(np.ascontiguousarray(np.stack(out))).permute(0, 3, 1, 2).contiguous()


def test_opencv_disabled_switches_the_module_off_and_back():
    assert cv2_module() is not None
    with opencv_disabled():
        assert cv2_module() is None
        with opencv_disabled():
            assert cv2_module() is None
        assert cv2_module() is None
    assert cv2_module() is not None


@pytest.mark.parametrize("mode", ["nearest", "mirror", "reflect"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sep_filter_equals_scipy_and_the_torch_path(mode, dtype):
    x = _photos(3, 64).to(dtype) / 255
    wh = (0.1, 0.5, 0.2, 0.15, 0.05)  # asymmetric: correlation, not convolution, on each axis
    ww = (0.3, 0.6, 0.1)
    fast = cv2_sep_filter(x, wh, ww, mode)
    assert fast is not None and fast.dtype == dtype and fast.shape == x.shape
    with opencv_disabled():
        slow = separable_filter(x, wh, ww, mode)
    ref = ndi.correlate1d(x.double().numpy(), np.array(wh), axis=2, mode=mode)
    ref = ndi.correlate1d(ref, np.array(ww), axis=3, mode=mode)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    assert np.abs(fast.double().numpy() - ref).max() < tol
    assert (fast - slow).abs().max() < tol
    assert torch.equal(separable_filter(x, wh, ww, mode), fast)


def test_sep_filter_defers_where_it_does_not_apply():
    x = torch.rand(2, 3, 8, 8)
    assert cv2_sep_filter(x.half(), (0.5, 0.5, 0.0), (1.0,), "nearest") is None
    assert cv2_sep_filter(x, tuple([1 / 9] * 9) + (0.0, 0.0), (1.0,), "mirror") is None  # wider than the image
    g = x.clone().requires_grad_(True)
    assert cv2_sep_filter(g, (0.25, 0.5, 0.25), (0.25, 0.5, 0.25), "nearest") is None
    with torch.no_grad():
        assert cv2_sep_filter(g, (0.25, 0.5, 0.25), (0.25, 0.5, 0.25), "nearest") is not None
    # the torch path keeps the gradient, and the small image with a wide kernel its exact result
    y = gaussian_filter(g, 1.0)
    y.sum().backward()
    assert g.grad is not None and torch.isfinite(g.grad).all()
    wide = gaussian_filter(x, 3.0, mode="reflect")
    ref = ndi.gaussian_filter(x.double().numpy(), (0, 0, 3.0, 3.0), mode="reflect")
    assert np.abs(wide.double().numpy() - ref).max() < 1e-6


def test_gaussian_filter_on_a_real_photograph_matches_skimage():
    import skimage.filters

    img = skimage.data.camera().astype(np.float32) / 255
    for sigma in (0.7, 1.0, 3.0):
        ours = gaussian_filter(torch.from_numpy(img)[None, None], sigma)[0, 0].numpy()
        ref = skimage.filters.gaussian(img.astype(np.float64), sigma=sigma, mode="nearest", truncate=4.0)
        assert np.abs(ours - ref).max() < 1e-6, sigma
    assert len(gaussian_weights(1.0)) == 9


def test_water_distance_cv2_equals_the_batched_torch_chain():
    sp = NaturalSpatter(severity=3)
    g = torch.Generator().manual_seed(3)
    for sev in (1, 2, 3):
        liquid = sp.liquid(torch.randn(4, 1, 80, 96, generator=g), sev)[:, 0]
        l8, edges = sp.water_edges(liquid)
        torch_mask = sp.water_finish(l8, _opencv.distance_to_edges(edges, 20), 1.0)
        cv = cv2_module()
        d = np.empty(l8.shape, np.float32)
        for k in range(l8.shape[0]):
            _opencv.water_distance_cv2(cv, l8[k].numpy().astype(np.uint8), d[k])
        cv_mask = sp.water_scale(l8, torch.from_numpy(d), 1.0)
        assert torch.equal(cv_mask, torch_mask), sev
        assert (d > 0).any()


@pytest.mark.parametrize("severity", [1, 3, 4])
def test_spatter_opencv_path_equals_the_torch_path(severity):
    x = _photos(6, 96)
    a = corrupt(x, "spatter", severity, generator=torch.Generator().manual_seed(7))
    with opencv_disabled():
        b = corrupt(x, "spatter", severity, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert (a != x).any()


@pytest.mark.parametrize("name", ["gaussian_blur", "glass_blur", "elastic_transform", "frost", "spatter"])
def test_corruptions_with_and_without_opencv_agree_within_a_grey_level(name):
    x = _photos(4, 96)
    a = corrupt(x, name, 3, generator=torch.Generator().manual_seed(1))
    with opencv_disabled():
        b = corrupt(x, name, 3, generator=torch.Generator().manual_seed(1))
    diff = (a.int() - b.int()).abs()
    assert int(diff.max()) <= 1
    assert float((diff > 0).float().mean()) < 1e-3


def test_cv2_planes_takes_results_written_in_place_or_returned():
    from medrobust.augment.functional.opencv import cv2_planes

    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)

    def in_place(a, b):
        np.multiply(a, 2, out=b)

    def returned(a, b):
        return a * 3  # a new array, as OpenCV gives when it cannot use dst

    assert torch.equal(cv2_planes(in_place, x), x * 2)
    assert torch.equal(cv2_planes(returned, x), x * 3)
    out = torch.empty(2, 3, 5, 4)
    assert torch.equal(cv2_planes(lambda a, b: a.T.copy(), x, out), x.transpose(-1, -2))
    with pytest.raises(ValueError, match="input planes"):
        cv2_planes(in_place, x, torch.empty(1, 4, 5))
