"""Microscopy evaluation: real images held out of training (split by image, checked by hashing tiles),
the deconvolution baselines against scikit-image's own functions, the true PSF of the embedded stacks."""

import hashlib

import numpy as np
import pytest
import torch

from medrobust.config import validate
from medrobust.data.microscopy import FocalStackPatches, load_stack
from medrobust.tasks.microscopy import BlurConfig, prepare_data
from medrobust.tasks.microscopy.data import known_radii
from medrobust.tasks.microscopy.evaluate import deconvolve, psf_array

TINY = {"task": "microscopy", "data": {"holdout": ["skimage_*"], "patch_size": 16,
                                       "synthetic": {"n_stacks": 5, "size": [32, 32], "planes": 4, "max_radius": 3.0,
                                                     "skimage_tiles": 2}},
        "model": {"widths": [4, 8]}}


def _cfg(tmp_path, **data):
    raw = {**TINY, "output_dir": str(tmp_path), "data": {**TINY["data"], **data}}
    return validate(raw, source="test", model=BlurConfig)


def _hashes(arr: np.ndarray, s: int, step: int) -> set[str]:
    """SHA-1 of every ``s``×``s`` tile (all planes) at offsets ``step`` apart."""
    h, w = arr.shape[1:3]
    return {hashlib.sha1(np.ascontiguousarray(arr[:, y : y + s, x : x + s]).tobytes()).hexdigest()
            for y in range(0, h - s + 1, step) for x in range(0, w - s + 1, step)}


def test_real_images_are_held_out_of_training_by_image(tmp_path):
    data = prepare_data(_cfg(tmp_path))
    names = {k: [s.name for s in getattr(data, k)] for k in ("train", "val", "test")}
    held = [n for n in names["test"] if n.startswith("skimage_")]
    assert sorted(held) == ["skimage_cell_0", "skimage_cell_1", "skimage_immunohistochemistry_0",
                            "skimage_immunohistochemistry_1"]
    assert not any(n.startswith("skimage_") for n in names["train"] + names["val"])
    assert not set(names["train"]) & set(names["test"])
    # no 8x8 tile of a held-out stack occurs anywhere (any offset) in a training stack or a training patch
    held_tiles = set().union(*(_hashes(load_stack(s), 8, 8) for s in data.test if s.name in held))
    train_arrays = [load_stack(s) for s in data.train]
    for arr in train_arrays:
        assert not _hashes(arr, 8, 1) & held_tiles
    patches = FocalStackPatches(train_arrays, patch_size=16, patches_per_stack=4, seed=0, flips=False)
    assert len(patches) == 4 * len(train_arrays)
    # the hashing itself catches a leak: a held-out tile pasted into a training stack
    leaked = train_arrays[0].copy()
    src = load_stack(next(s for s in data.test if s.name == "skimage_cell_0"))
    leaked[:, 5:21, 9:25] = src[:, 8:24, 8:24]
    assert _hashes(leaked, 8, 1) & held_tiles
    # without a holdout the same real tiles can land in training (the earlier behaviour)
    every = prepare_data(_cfg(tmp_path, holdout=[]))
    assert any(s.name.startswith("skimage_") for s in every.train + every.val)
    with pytest.raises(ValueError, match="data.holdout"):
        prepare_data(_cfg(tmp_path, holdout=["*"]))


def test_true_psf_of_the_embedded_stacks(tmp_path):
    data = prepare_data(_cfg(tmp_path))
    truth = known_radii(data.root)
    assert truth["psf"] == "disk" and truth["radii"] == [0.0, 1.0, 2.0, 3.0]
    assert known_radii(data.root, [0, 2, 3])["radii"] == [0.0, 2.0, 3.0]
    assert known_radii(tmp_path) is None


def test_deconvolution_matches_scikit_image_and_helps_with_the_true_psf():
    from skimage import data as skdata
    from skimage import restoration

    from medrobust.augment.blur import defocus_blur
    from medrobust.evaluate.metrics import psnr

    img = torch.from_numpy(skdata.immunohistochemistry()[100:164, 100:164, 0].astype(np.float32) / 255)[None, None]
    psf = psf_array(2.0, "disk")
    np.testing.assert_allclose(psf.sum(), 1.0, rtol=1e-6)
    blurred = defocus_blur(img, 2.0, "disk")
    pad = 2 * psf.shape[0] + 2
    padded = np.pad(blurred[0, 0].double().numpy(), pad, mode="symmetric")
    for method, ref in (("rl", restoration.richardson_lucy(padded, psf, num_iter=30, clip=True)),
                        ("wiener", restoration.wiener(padded, psf, 0.01, clip=True))):
        ours = deconvolve(blurred, psf, method)
        np.testing.assert_allclose(ours[0, 0].numpy(), np.clip(ref[pad:-pad, pad:-pad], 0, 1), atol=1e-6)
        assert psnr(ours, img) > psnr(blurred, img) + 1.0, method
    with pytest.raises(ValueError, match="method"):
        deconvolve(blurred, psf, "tv")


def test_detail_against_noise_free_planes():
    from medrobust.tasks.microscopy.evaluate import _Acc

    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(24.0), torch.arange(24.0), indexing="ij")
    clean = (0.5 + 0.3 * torch.sin(yy / 3) * torch.cos(xx / 4)).expand(2, 1, 24, 24)  # smooth structure
    noisy = (clean + 0.05 * torch.randn(2, 1, 24, 24, generator=g)).clamp(0, 1)
    acc = _Acc()
    acc.add("noisy target", 1, clean, noisy, ["a", "a"], clean)
    acc.add("no clean planes", 1, clean, noisy, ["a", "a"])
    out = acc.summary([0.0, 0.5, 1.0])
    m = out["noisy target"]
    assert m["detail_noise_free"] == pytest.approx(1.0)  # the prediction is the noise-free plane itself
    assert m["detail"] < 0.5  # the noisy target's Laplacian variance is inflated by its noise
    assert out["no clean planes"]["detail_noise_free"] is None and out["no clean planes"]["detail"] == m["detail"]
    with pytest.raises(ValueError, match="clean: expected the target's shape"):
        acc.add("x", 1, clean, noisy, ["a", "a"], clean[:1])


def test_embedded_stacks_carry_noise_free_planes_that_readers_skip(tmp_path):
    from medrobust.data.microscopy import discover_stacks, read_stack
    from medrobust.data.synthetic.microscopy import (
        Optics,
        noise_free_path,
        write_synthetic_stacks,
    )
    from medrobust.tasks.microscopy.data import noise_free_planes

    paths = write_synthetic_stacks(tmp_path, n_stacks=2, size=(32, 32), optics=Optics(planes=3), skimage_tiles=0, seed=0)
    sources = discover_stacks(tmp_path)
    assert [s.name for s in sources] == ["synthetic_000", "synthetic_001"]  # the .npy files are not stacks
    for p, src in zip(paths, sources):
        nf = np.load(noise_free_path(p))
        noisy = read_stack(p).astype(np.float64)
        assert nf.dtype == np.float32 and nf.shape == noisy.shape
        assert abs(float((noisy - nf).mean())) < 2.0  # the noisy stack scatters around its noise-free mean
        np.testing.assert_array_equal(noise_free_planes(src, [2, 0]), nf[[2, 0]])
    noise_free_path(paths[0]).unlink()
    assert noise_free_planes(sources[0]) is None
