"""``fft_correlate`` (the FFT correlation behind defocus, motion blur and snow) against scipy's direct
correlation, for every boundary mode and the padding paths (torch's pad, index pad)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import skimage.data
import torch

from medrobust.augment.functional.fftconv import fft_correlate, kernel_image


def _case(h: int, w: int, r: int, n: int = 2):
    img = skimage.data.astronaut()[:h, :w].astype(np.float32) / 255  # a real photograph
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].repeat(n, 1, 1, 1)
    x[1:] = x[1:].flip(-1)
    g = torch.Generator().manual_seed(r)
    taps = 7
    oy = torch.randint(-r, r + 1, (n, taps), generator=g)
    ox = torch.randint(-r, r + 1, (n, taps), generator=g)
    wts = torch.rand(n, taps, generator=g, dtype=torch.float64).float()
    return x, oy, ox, wts


@pytest.mark.parametrize("mode", ["nearest", "mirror", "reflect"])
@pytest.mark.parametrize("shape", [(64, 80, 5), (40, 36, 15), (16, 30, 20)])
def test_fft_correlate_equals_direct_correlation(mode, shape):
    h, w, r = shape  # the last case pads by more than the image (mirror takes the index path)
    x, oy, ox, wts = _case(h, w, r)

    def spectrum(l1: int, l2: int) -> torch.Tensor:
        return torch.fft.rfft2(kernel_image(oy, ox, wts, l1, l2)).unsqueeze(1)

    y = fft_correlate(x, spectrum, r, mode).numpy()
    for k in range(x.shape[0]):
        kern = np.zeros((2 * r + 1, 2 * r + 1))
        np.add.at(kern, (oy[k].numpy() + r, ox[k].numpy() + r), wts[k].double().numpy())
        for c in range(3):
            ref = ndi.correlate(x[k, c].double().numpy(), kern, mode=mode)
            assert np.abs(y[k, c] - ref).max() < 2e-6, (mode, shape, k, c)
