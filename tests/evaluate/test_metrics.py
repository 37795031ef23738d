"""Tests for medrobust.evaluate.metrics (Dice / HD95 / meter / confusion matrix)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medrobust.evaluate.metrics import (
    ACDC_CLASS_NAMES,
    SegmentationMeter,
    confusion_matrix,
    dice_per_class,
    hd95_per_class,
    iou_from_confusion,
)


def _two_squares() -> tuple[np.ndarray, np.ndarray]:
    """Class 1: 10x10 squares overlapping in a 10x6 strip -> Dice = 2*60/200 = 0.6.
    Class 2: 4x4 gt square, prediction covers 2x4 of it -> Dice = 2*8/(16+8) = 2/3."""
    gt = np.zeros((32, 32), dtype=np.int64)
    pr = np.zeros_like(gt)
    gt[5:15, 5:15] = 1
    pr[5:15, 9:19] = 1
    gt[20:24, 20:24] = 2
    pr[20:22, 20:24] = 2
    return pr, gt


def _monai_dice(pr: np.ndarray, gt: np.ndarray, c: int) -> np.ndarray:
    from monai.metrics import DiceMetric

    def oh(x: np.ndarray) -> torch.Tensor:
        return torch.nn.functional.one_hot(torch.from_numpy(x), c).movedim(-1, 0)[None].float()

    m = DiceMetric(include_background=False, reduction="none")
    m(oh(pr), oh(gt))
    return m.aggregate().numpy()[0]


# ---------------------------------------------------------------------------------------- Dice
def test_dice_two_squares_hand_and_monai():
    pr, gt = _two_squares()
    d = dice_per_class(pr, gt, num_classes=3)
    assert d.shape == (2,) and d.dtype == np.float64
    np.testing.assert_allclose(d, [0.6, 2 / 3], atol=1e-7)
    np.testing.assert_allclose(d, _monai_dice(pr, gt, 3), atol=1e-6)
    # background included: bg gt=1024-116=908, bg pred=1024-108=916, overlap = 1024 - |union of fg|
    fg_union = np.count_nonzero((pr > 0) | (gt > 0))
    bg_dice = 2 * (1024 - fg_union) / (908 + 916)
    np.testing.assert_allclose(dice_per_class(pr, gt, 3, include_background=True), [bg_dice, 0.6, 2 / 3], atol=1e-7)


def test_dice_torch_and_3d():
    pr, gt = _two_squares()
    vol_p = np.stack([pr, pr, np.zeros_like(pr)])  # (3, 32, 32)
    vol_g = np.stack([gt, gt, np.zeros_like(gt)])
    d = dice_per_class(torch.from_numpy(vol_p), torch.from_numpy(vol_g).to(torch.uint8), 3)
    np.testing.assert_allclose(d, [0.6, 2 / 3], atol=1e-7)
    # bool maps are binary label maps
    np.testing.assert_allclose(dice_per_class(pr == 1, gt == 1, 2), [0.6], atol=1e-7)


def test_dice_empty_conventions():
    gt = np.zeros((16, 16), dtype=np.int64)
    pr = np.zeros_like(gt)
    gt[2:6, 2:6] = 1  # class 1 present in both
    pr[2:6, 2:6] = 1
    pr[10:12, 10:12] = 2  # class 2 only predicted (false positive structure)
    gt[12:14, 1:3] = 3  # class 3 only in gt (missed structure)
    # class 4: absent in both
    d = dice_per_class(pr, gt, 5)
    np.testing.assert_array_equal(d, [1.0, 0.0, 0.0, 1.0])
    assert not np.isnan(d).any()


# ---------------------------------------------------------------------------------------- HD95
def test_hd95_shifted_square_anisotropic_hand():
    gt = np.zeros((32, 32), dtype=np.int64)
    pr = np.zeros_like(gt)
    gt[10:20, 10:20] = 1
    pr[12:22, 10:20] = 1  # shifted by 2 px along axis 0
    # every surface distance is <= 2 px along axis 0 (= 3.0 mm), and half of the surface voxels
    # (the two edges perpendicular to the shift) are exactly 3.0 mm away -> 95th percentile = 3.0 mm
    h = hd95_per_class(pr, gt, 2, spacing=(1.5, 0.7))
    np.testing.assert_allclose(h, [3.0], atol=1e-6)
    # the same shift along axis 1 uses that axis' spacing
    h1 = hd95_per_class(pr.T.copy(), gt.T.copy(), 2, spacing=(1.5, 0.7))
    np.testing.assert_allclose(h1, [1.4], atol=1e-6)


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")
def test_hd95_matches_monai_nontrivial_3d():
    from monai.metrics import compute_hausdorff_distance

    rng = np.random.default_rng(0)
    zz, yy, xx = np.mgrid[:8, :24, :24]
    gt = np.zeros((8, 24, 24), dtype=np.int64)
    gt[((yy - 12) ** 2 + (xx - 12) ** 2 < 49)] = 1
    gt[((yy - 12) ** 2 + (xx - 12) ** 2 < 9)] = 2
    pr = gt.copy()
    noise = rng.random(gt.shape) < 0.05
    pr[noise] = rng.integers(0, 3, size=int(noise.sum()))
    pr[:, 2:5, 2:5] = 1  # a spurious blob far away
    spacing = (5.0, 1.25, 1.25)
    ours = hd95_per_class(pr, gt, 3, spacing)
    oh = lambda x: torch.nn.functional.one_hot(torch.from_numpy(x), 3).movedim(-1, 0)[None].float()  # noqa: E731
    ref = compute_hausdorff_distance(oh(pr), oh(gt), include_background=False, percentile=95, spacing=spacing)[0].numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-6)
    assert (ours > 0).all()


def test_hd95_empty_conventions():
    gt = np.zeros((16, 16), dtype=np.int64)
    pr = np.zeros_like(gt)
    gt[2:6, 2:6] = 1
    pr[2:6, 2:6] = 1
    pr[10:12, 10:12] = 2
    gt[12:14, 1:3] = 3
    h = hd95_per_class(pr, gt, 5, spacing=(1.0, 1.0))
    assert h[0] == 0.0  # identical
    assert math.isnan(h[1]) and math.isnan(h[2])  # in exactly one map
    assert h[3] == 0.0  # absent in both
    assert not np.isinf(h).any()


def test_hd95_requires_2d_or_3d_and_valid_spacing():
    a = np.zeros((4, 4), dtype=np.int64)
    with pytest.raises(ValueError, match="spacing"):
        hd95_per_class(a, a, 2, spacing=(1.0,))
    with pytest.raises(ValueError, match="spacing"):
        hd95_per_class(a, a, 2, spacing=(1.0, -1.0))
    with pytest.raises(ValueError, match="2D"):
        hd95_per_class(np.zeros(5, dtype=np.int64), np.zeros(5, dtype=np.int64), 2, spacing=(1.0,))


# ---------------------------------------------------------------------------------------- input errors
@pytest.mark.parametrize(
    "pred,label,nc,match",
    [
        (np.zeros((4, 4), np.int64), np.zeros((4, 5), np.int64), 2, "same shape"),
        (np.zeros((4, 4), np.float32), np.zeros((4, 4), np.int64), 2, "pred must be an integer"),
        (np.zeros((4, 4), np.int64), torch.zeros(4, 4), 2, "label must be an integer"),
        (np.full((4, 4), 3, np.int64), np.zeros((4, 4), np.int64), 3, "pred values"),
        (np.zeros((4, 4), np.int64), np.full((4, 4), -1, np.int64), 3, "label values"),
        (np.zeros((4, 4), np.int64), np.zeros((4, 4), np.int64), 1, "num_classes"),
        ([[0, 1]], np.zeros((1, 2), np.int64), 2, "pred must be a numpy array or torch tensor"),
    ],
)
def test_input_errors(pred, label, nc, match):
    with pytest.raises(ValueError, match=match):
        dice_per_class(pred, label, nc)


# ---------------------------------------------------------------------------------------- meter
def test_segmentation_meter_summary():
    meter = SegmentationMeter(4, ACDC_CLASS_NAMES)
    sq = np.zeros((16, 16), dtype=np.int64)
    sq[2:6, 2:6] = 1
    sq[8:12, 8:12] = 2
    sq[2:6, 10:14] = 3
    # case 0: perfect
    meter.update(sq, sq, spacing=(1.0, 1.0), case_id="a")
    # case 1: LV missed (pred 0 there) -> LV Dice 0, LV HD95 NaN; RV shifted by 1 px along axis 0 (2 mm)
    pr = sq.copy()
    pr[pr == 3] = 0
    pr[pr == 1] = 0
    pr[3:7, 2:6] = 1
    rec = meter.update(torch.from_numpy(pr), torch.from_numpy(sq), spacing=(2.0, 1.0))
    assert rec["case_id"] == "case0001"
    assert rec["dice"]["LV"] == 0.0 and math.isnan(rec["hd95"]["LV"])
    s = meter.summary()
    assert s["n_cases"] == 2
    assert set(s["dice"]) == {"RV", "Myo", "LV", "mean"}
    np.testing.assert_allclose(s["dice"]["RV"], (1.0 + 0.75) / 2)
    assert s["dice"]["Myo"] == 1.0 and s["dice"]["LV"] == 0.5
    np.testing.assert_allclose(s["dice"]["mean"], (0.875 + 1.0 + 0.5) / 3)
    np.testing.assert_allclose(s["hd95"]["RV"], (0.0 + 2.0) / 2)
    assert s["hd95"]["LV"] == 0.0  # nan-aware: only the finite case counts
    np.testing.assert_allclose(s["hd95"]["mean"], (1.0 + 0.0 + 0.0) / 3)
    assert s["hd95_missing"] == {"RV": 0, "Myo": 0, "LV": 1, "total": 1}
    assert s["hd95_count"] == {"RV": 2, "Myo": 2, "LV": 1, "total": 5}
    assert len(meter.summary(include_cases=True)["cases"]) == 2


def test_segmentation_meter_errors_and_no_hd():
    with pytest.raises(ValueError, match="class_names"):
        SegmentationMeter(4, ("RV", "LV"))
    m = SegmentationMeter(4, ACDC_CLASS_NAMES)
    with pytest.raises(ValueError, match="spacing"):
        m.update(np.zeros((4, 4), np.int64), np.zeros((4, 4), np.int64))
    m2 = SegmentationMeter(3, hd95=False)
    m2.update(np.zeros((4, 4), np.int64), np.zeros((4, 4), np.int64))
    s = m2.summary()
    assert "hd95" not in s and s["dice"] == {"class1": 1.0, "class2": 1.0, "mean": 1.0}
    assert math.isnan(SegmentationMeter(3, hd95=False).summary()["dice"]["mean"])


# ---------------------------------------------------------------------------------------- confusion / IoU
def test_confusion_matrix_and_iou_hand():
    gt = np.array([[0, 0, 1, 1], [2, 2, 255, 1]], dtype=np.uint8)
    pr = np.array([[0, 1, 1, 1], [2, 0, 7, 1]], dtype=np.int64)  # 7 sits on an ignored pixel
    cm = confusion_matrix(pr, gt, num_classes=4)
    expected = np.array(
        [
            [1, 1, 0, 0],  # gt 0 -> pred 0, 1
            [0, 3, 0, 0],  # gt 1 -> pred 1 x3
            [1, 0, 1, 0],  # gt 2 -> pred 2, 0
            [0, 0, 0, 0],  # class 3 absent
        ]
    )
    np.testing.assert_array_equal(cm, expected)
    assert cm.dtype == np.int64
    iou, miou = iou_from_confusion(cm)
    np.testing.assert_allclose(iou[:3], [1 / 3, 3 / 4, 1 / 2])
    assert math.isnan(iou[3])
    np.testing.assert_allclose(miou, (1 / 3 + 3 / 4 + 1 / 2) / 3)
    # accumulating over images = summing matrices; torch input works
    cm2 = confusion_matrix(torch.from_numpy(pr), torch.from_numpy(gt.astype(np.int64)), 4)
    np.testing.assert_array_equal(cm + cm2, 2 * expected)


def test_confusion_matrix_errors():
    with pytest.raises(ValueError, match="label values"):
        confusion_matrix(np.zeros(3, np.int64), np.array([0, 5, 1]), 4)  # 5 is neither a class nor ignore
    with pytest.raises(ValueError, match="pred values"):
        confusion_matrix(np.array([0, 4, 1]), np.array([0, 1, 1]), 4)
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix(np.zeros(3, np.int64), np.zeros(4, np.int64), 4)
    with pytest.raises(ValueError, match="cm must be a square"):
        iou_from_confusion(np.zeros((2, 3)))
    # ignore_index=None: 255 is an error
    with pytest.raises(ValueError, match="label values"):
        confusion_matrix(np.zeros(2, np.int64), np.array([0, 255]), 4, ignore_index=None)


def test_confusion_matrix_vs_torchmetrics():
    tm = pytest.importorskip("torchmetrics")
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 5, size=(2, 16, 16))
    gt[0, :3] = 255
    pr = rng.integers(0, 5, size=(2, 16, 16))
    cm = confusion_matrix(pr, gt, 5)
    ref = tm.functional.confusion_matrix(
        torch.from_numpy(pr), torch.from_numpy(gt), task="multiclass", num_classes=5, ignore_index=255
    ).numpy()
    np.testing.assert_array_equal(cm, ref)
    iou, _ = iou_from_confusion(cm)
    ref_iou = tm.functional.jaccard_index(
        torch.from_numpy(pr), torch.from_numpy(gt), task="multiclass", num_classes=5, ignore_index=255, average="none"
    ).numpy()
    np.testing.assert_allclose(iou, ref_iou, atol=1e-6)
