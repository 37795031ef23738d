"""Fourier sensitivity map: a high-pass model is sensitive at high frequencies only; chunks agree
with a direct per-frequency computation; files are written."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from medrobust.analysis.fourier_map import (
    band_profile,
    fourier_sensitivity,
    save_fourier_map,
)
from medrobust.augment.fourier import planar_wave


class HighPassDetector(nn.Module):
    """Class 1 when the image has high-frequency energy (x minus its 3x3 mean), else class 0."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        hp = x - nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        e = hp[..., 2:-2, 2:-2].pow(2).mean((1, 2, 3))
        return torch.stack([torch.full_like(e, self.threshold), e], 1)


def test_high_pass_model_is_sensitive_at_high_frequencies_only():
    s = 16
    images = torch.full((6, 1, s, s), 0.5)
    labels = torch.zeros(6, dtype=torch.long)
    res = fourier_sensitivity(HighPassDetector(0.02), images, labels, eps=4.0, chunk=7)
    err, k = res["error"], s // 2
    assert err.shape == (2 * k + 1, 2 * k + 1) and res["clean_error"] == 0.0
    yy, xx = np.mgrid[-k:k + 1, -k:k + 1]
    r = np.hypot(xx, yy)
    assert err[r <= 2].max() == 0.0, "low frequencies pass the high-pass detector unnoticed"
    assert err[r >= 6].min() == 1.0, "high frequencies always flip it"
    bands = band_profile(err)
    assert bands == sorted(bands) and bands[0] < bands[-1]


def test_chunks_and_a_direct_computation_agree():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 144, 3)).eval()
    images = torch.rand(10, 3, 12, 12)
    labels = model(images).argmax(1)
    labels[:3] = (labels[:3] + 1) % 3  # clean error 0.3
    a = fourier_sensitivity(model, images, labels, eps=3.0, chunk=1, seed=5)
    b = fourier_sensitivity(model, images, labels, eps=3.0, chunk=50, batch_size=7, seed=5)
    assert np.array_equal(a["error"], b["error"]) and abs(a["clean_error"] - 0.3) < 1e-6
    assert a["error"].max() > a["error"].min(), "the perturbation changes predictions"
    # one frequency by hand: (kx, ky) = (2, -3) -> row ky + K, column kx + K
    k = 6
    signs = torch.randint(0, 2, (10, 3, 1, 1), generator=torch.Generator().manual_seed(5)) * 2 - 1
    w = planar_wave(12, math.hypot(2, -3), math.atan2(-3, 2))
    with torch.no_grad():
        pred = model((images + 3.0 * signs * w).clamp(0, 1)).argmax(1)
    assert abs(a["error"][-3 + k, 2 + k] - float((pred != labels).float().mean())) < 1e-6


def test_files_are_written(tmp_path):
    res = {"error": np.random.default_rng(0).random((9, 9)), "clean_error": 0.1, "eps": 4.0,
           "frequencies": list(range(-4, 5))}
    files = save_fourier_map({"dense": res, "rigl": res}, tmp_path)
    assert files["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.allclose(np.load(files["dense"]), res["error"], atol=1e-6) and files["rigl"].is_file()
    one = save_fourier_map(res, tmp_path / "one")
    assert one["array"].name == "fourier_map.npy" and one["png"].is_file()


def test_dice_error_equals_monai_compute_dice():
    from monai.metrics import compute_dice

    from medrobust.analysis.fourier_map import dice_error

    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (6, 1, 10, 10), generator=g)
    labels[2] = 0  # no structure in label ...
    logits = torch.randn(6, 4, 10, 10, generator=g)
    logits[2] = 0
    logits[2, 0] = 1  # ... nor in prediction: Dice 1 for every class
    labels[3][labels[3] == 2] = 0  # class 2 absent from label 3 only
    err = dice_error(4)(logits, labels)
    onehot = lambda t: torch.nn.functional.one_hot(t, 4).permute(0, 3, 1, 2).float()  # noqa: E731
    ref = compute_dice(onehot(logits.argmax(1)), onehot(labels[:, 0]), include_background=False, ignore_empty=False)
    assert torch.allclose(err, 1 - ref.mean(1), atol=1e-6) and err[2] == 0
    assert torch.allclose(dice_error(4)(logits, labels[:, 0]), err)  # (B, H, W) labels too


def test_segmentation_map_and_a_coarse_grid():
    """A 'segmenter' that labels bright pixels as class 1: high-frequency waves of a large eps flip
    pixels; the coarse grid (step 2) equals the full grid at its points."""
    from medrobust.analysis.fourier_map import dice_error

    class Threshold(nn.Module):
        def forward(self, x):
            return torch.cat([torch.full_like(x, 0.5), x], 1)  # class 1 where x > 0.5

    g = torch.Generator().manual_seed(1)
    images = (torch.rand(4, 1, 16, 16, generator=g) > 0.5).float() * 0.5 + 0.25  # 0.25 / 0.75
    labels = (images > 0.5).long()
    full = fourier_sensitivity(Threshold(), images, labels, eps=6.0, error_fn=dice_error(2), seed=3)
    coarse = fourier_sensitivity(Threshold(), images, labels, eps=6.0, error_fn=dice_error(2), seed=3,
                                 frequency_step=2, chunk=5)
    assert full["clean_error"] == 0.0 and full["error"].max() > 0
    assert coarse["frequencies"] == list(range(-8, 9, 2)) and coarse["error"].shape == (9, 9)
    assert np.allclose(coarse["error"], full["error"][::2, ::2])
    assert len(band_profile(coarse["error"], frequencies=coarse["frequencies"])) == 4
    with pytest.raises(ValueError, match="frequency_step"):
        fourier_sensitivity(Threshold(), images, labels, error_fn=dice_error(2), frequency_step=3)
