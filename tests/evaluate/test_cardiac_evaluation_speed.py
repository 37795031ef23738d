"""The faster cardiac evaluation path gives the numbers of the MONAI path it replaced, bit for bit:
Dice / HD95 of :mod:`medrobust.evaluate.metrics` vs MONAI's ``compute_dice`` /
``compute_hausdorff_distance``, the direct 2D prediction vs sliding-window inference, the contiguous
argmax vs ``argmax(1)``; and it does less work (no HD95 of the background, one forward per window)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from medrobust.evaluate.inference import argmax_classes
from medrobust.evaluate.metrics import SegmentationMeter, dice_per_class, hd95_per_class


def _one_hot(x: np.ndarray, c: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.from_numpy(x).long(), c).movedim(-1, 0)[None].float()


def _monai_dice(p: np.ndarray, g: np.ndarray, c: int) -> np.ndarray:
    from monai.metrics import compute_dice

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compute_dice(_one_hot(p, c), _one_hot(g, c), include_background=True, ignore_empty=True)[0].double().numpy()


def _monai_hd95(p: np.ndarray, g: np.ndarray, c: int, spacing) -> np.ndarray:
    from monai.metrics import compute_hausdorff_distance

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compute_hausdorff_distance(_one_hot(p, c), _one_hot(g, c), include_background=True, percentile=95,
                                          spacing=spacing)[0].double().numpy()


def _noisy_pair(rng: np.random.Generator, shape: tuple[int, ...], c: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """ACDC-like label maps ``(X, Y[, Z])``: RV / Myo / LV rings in the X-Y plane, and a noisy prediction
    with a blob touching the image border (so the cropped masks need zero padding)."""
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    r = np.sqrt((grids[0] - shape[0] / 2 + rng.uniform(-2, 2)) ** 2 + (grids[1] - shape[1] / 2 + rng.uniform(-2, 2)) ** 2)
    n = min(shape[:2])
    gt = np.select([r < n / 8, r < n / 5, r < n / 3.2], [3, 2, 1], 0).astype(np.uint8)
    pr = gt.copy()
    noise = rng.random(shape) < 0.08
    pr[noise] = rng.integers(0, c, size=int(noise.sum()))
    pr[0:3, 0:4] = 1
    return pr, gt


# ACDC header spacings are float32 values; 1.5 / 10 are the embedded cohort's
SPACINGS_3D = [(1.5, 1.5, 10.0), (float(np.float32(1.3671875)), float(np.float32(1.3671875)), 10.0),
               (float(np.float32(1.5625)), float(np.float32(1.5625)), float(np.float32(6.5))), None]


@pytest.mark.parametrize("spacing", SPACINGS_3D, ids=["synthetic", "acdc-like", "acdc-like-2", "voxels"])
def test_dice_and_hd95_bit_for_bit_as_monai_3d(spacing):
    rng = np.random.default_rng(0)
    for _ in range(3):
        pr, gt = _noisy_pair(rng, (40, 36, 5))
        np.testing.assert_array_equal(dice_per_class(pr, gt, 4, include_background=True), _monai_dice_convention(pr, gt))
        ours = hd95_per_class(pr, gt, 4, spacing, include_background=True)
        ref = _monai_hd95(pr, gt, 4, spacing)
        np.testing.assert_array_equal(ours, ref)  # every class is in both maps here: no convention override
        assert np.isfinite(ours).all()


def test_dice_and_hd95_bit_for_bit_as_monai_2d():
    rng = np.random.default_rng(1)
    for sp in [(0.7, 1.3), (1.0, 1.0), None]:
        pr, gt = _noisy_pair(rng, (50, 44))
        np.testing.assert_array_equal(hd95_per_class(pr, gt, 4, sp), _monai_hd95(pr, gt, 4, sp)[1:])
        np.testing.assert_array_equal(dice_per_class(pr, gt, 4), _monai_dice_convention(pr, gt)[1:])


def _monai_dice_convention(pr: np.ndarray, gt: np.ndarray) -> np.ndarray:
    d = _monai_dice(pr, gt, 4)
    in_p = np.bincount(pr.ravel(), minlength=4) > 0
    in_g = np.bincount(gt.ravel(), minlength=4) > 0
    d[~in_p & ~in_g] = 1.0
    d[in_p ^ in_g] = 0.0
    return d


def test_meter_computes_no_background_hd95(monkeypatch):
    """HD95 costs two KD-tree searches per structure; the background (discarded) is not computed."""
    import scipy.spatial

    built = []
    real = scipy.spatial.KDTree

    class Counting(real):  # type: ignore[misc,valid-type]
        def __init__(self, *a, **k):
            built.append(1)
            super().__init__(*a, **k)

    monkeypatch.setattr(scipy.spatial, "KDTree", Counting)
    import monai.metrics.utils as mu

    monkeypatch.setattr(mu, "KDTree", Counting, raising=False)
    pr, gt = _noisy_pair(np.random.default_rng(2), (32, 32, 3))
    assert (np.bincount(gt.ravel(), minlength=4) > 0).all()
    SegmentationMeter(4, ("RV", "Myo", "LV")).update(pr, gt, spacing=(1.5, 1.5, 10.0))
    assert len(built) == 2 * 3


def test_argmax_classes_equals_argmax_dim1():
    x = torch.randn(5, 4, 17, 9)
    x[0, :, 0, 0] = 1.0  # a tie: the first maximum
    x[1, 2, 3, 3] = float("nan")  # NaN counts as the maximum
    assert torch.equal(argmax_classes(x), x.argmax(1))
    v = torch.randn(1, 4, 6, 7, 3)
    assert torch.equal(argmax_classes(v), v.argmax(1))


@pytest.fixture(scope="module")
def unet():
    from medrobust.tasks.cardiac.config import CardiacConfig
    from medrobust.tasks.cardiac.train import build_model

    cfg = CardiacConfig(data={"spatial_size": (32, 32)}, model={"channels": (4, 8, 16), "strides": (2, 2)})
    torch.manual_seed(0)
    return cfg, build_model(cfg).eval()


def test_predict_volume_equals_sliding_window_inference(unet):
    from monai.inferers import sliding_window_inference

    from medrobust.tasks.cardiac.evaluate import normalise_volume, predict_volume

    cfg, model = unet
    vol = torch.rand(32, 32, 7)
    calls = []
    hook = model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    pred = predict_volume(model, vol, cfg, torch.device("cpu"))
    hook.remove()
    assert calls == [4, 3]  # the chunks of sw_batch_size MONAI forms: one forward per chunk, no extra work
    with torch.no_grad():
        x = normalise_volume(vol, axes=(0, 1)).permute(2, 0, 1).unsqueeze(1)
        ref = sliding_window_inference(x, roi_size=(32, 32), sw_batch_size=cfg.evaluate.sw_batch_size, predictor=model,
                                       overlap=0.25).argmax(1).permute(1, 2, 0).numpy().astype(np.uint8)
    np.testing.assert_array_equal(pred, ref)
    # a slice larger than the window still goes through the sliding window
    big = torch.rand(48, 40, 2)
    out = predict_volume(model, big, cfg, torch.device("cpu"))
    assert out.shape == (48, 40, 2)


def test_bench_cardiac_has_an_evaluation_row():
    from medrobust.bench.cardiac import _evaluation_rows

    rows = _evaluation_rows(torch.device("cpu"), repeats=1, quick=True)
    ours = [r for r in rows if r["method"].startswith("evaluate_cardiac")]
    assert len(ours) == 1 and ours[0]["volumes_per_s"] > 0 and ours[0]["speedup"] > 0
    assert ours[0]["input"].startswith("evaluate ")
