"""Fourier sensitivity map: a high-pass model is sensitive at high frequencies only; chunks agree
with a direct per-frequency computation; files are written."""

import math

import numpy as np
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
