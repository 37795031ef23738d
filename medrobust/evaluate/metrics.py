"""Segmentation metrics: per-class Dice / HD95 (MONAI's values), a per-case meter, confusion matrix and IoU.

All functions take a **single case** as integer label maps (numpy arrays or torch tensors, any
device) with spatial axes only -- no batch or channel axis: ``(H, W)`` or ``(D, H, W)``. Values
must lie in ``0 .. num_classes - 1`` with ``0`` the background.

Empty-structure convention (the one used for the ACDC challenge), applied per class and case:

============================  ==========  ===============================================
structure present in          Dice        HD95
============================  ==========  ===============================================
prediction and ground truth   MONAI       MONAI (95th percentile surface distance, mm)
neither                       1.0         0.0 (perfect: nothing to find, nothing found)
exactly one of the two        0.0         NaN (undefined; excluded from means, but counted
                                          as ``hd95_missing`` in :meth:`SegmentationMeter.summary`)
============================  ==========  ===============================================

MONAI itself returns NaN (Dice with ``ignore_empty=True``) or NaN/inf (Hausdorff) in the last two
rows; those cases are never computed but set explicitly here. Where the structure is in both maps the
values are those of ``monai.metrics.compute_dice`` / ``compute_hausdorff_distance`` bit for bit (their
steps are run here directly, without one-hot maps or MONAI transforms, several times faster;
``tests/evaluate/test_cardiac_evaluation_speed.py`` compares them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "ACDC_CLASS_NAMES",
    "dice_per_class",
    "hd95_per_class",
    "SegmentationMeter",
    "confusion_matrix",
    "iou_from_confusion",
    "psnr",
    "ssim",
    "batch_psnr",
    "laplacian_variance",
    "nyquist_peak_db",
]

#: ACDC foreground structures for labels 1, 2, 3 (right ventricle, myocardium, left ventricle).
ACDC_CLASS_NAMES: tuple[str, ...] = ("RV", "Myo", "LV")

ArrayLike = np.ndarray | torch.Tensor


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------
def _as_int_array(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as a numpy integer array, or raise ValueError if it is not an integer label map."""
    if isinstance(x, torch.Tensor):
        if x.dtype == torch.bool:
            return x.detach().cpu().numpy().astype(np.int64)
        if torch.is_floating_point(x) or torch.is_complex(x):
            raise ValueError(f"{name} must be an integer label map, got torch dtype {x.dtype}")
        return x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")
    if x.dtype == np.bool_:
        return x.astype(np.int64)
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{name} must be an integer label map, got numpy dtype {x.dtype}")
    return x


def _check_num_classes(num_classes: Any) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2 (background + at least one class), got {num_classes!r}")
    return int(num_classes)


def _check_range(x: np.ndarray, num_classes: int, name: str) -> None:
    if x.size == 0:
        return
    lo, hi = int(x.min()), int(x.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"{name} values must be in 0..{num_classes - 1} (num_classes={num_classes}), found range [{lo}, {hi}]")


def _validate_pair(pred: ArrayLike, label: ArrayLike, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    num_classes = _check_num_classes(num_classes)
    p = _as_int_array(pred, "pred")
    g = _as_int_array(label, "label")
    if p.shape != g.shape:
        raise ValueError(f"pred and label must have the same shape, got pred {tuple(p.shape)} vs label {tuple(g.shape)}")
    if p.ndim < 1 or p.size == 0:
        raise ValueError(f"pred/label must be non-empty label maps with spatial axes only, got shape {tuple(p.shape)}")
    _check_range(p, num_classes, "pred")
    _check_range(g, num_classes, "label")
    return p, g


def _check_spacing(spacing: Sequence[float] | None, ndim: int) -> tuple[float, ...] | None:
    if spacing is None:
        return None
    try:
        sp = tuple(float(s) for s in spacing)
    except TypeError:
        raise ValueError(f"spacing must be a sequence of {ndim} floats (mm per voxel along each axis), got {spacing!r}") from None
    if len(sp) != ndim:
        raise ValueError(f"spacing must have one entry per spatial axis ({ndim}), got {len(sp)}: {sp}")
    if not all(math.isfinite(s) and s > 0 for s in sp):
        raise ValueError(f"spacing entries must be finite and > 0, got {sp}")
    return sp


# ----------------------------------------------------------------------------------------------
# Dice / HD95
# ----------------------------------------------------------------------------------------------
def _counts(p: np.ndarray, g: np.ndarray, num_classes: int) -> np.ndarray:
    """``cm[gt, pred]`` voxel counts (int64, ``(C, C)``) of one validated pair."""
    idx = g.ravel().astype(np.int64) * num_classes + p.ravel().astype(np.int64)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _dice_from_counts(cm: np.ndarray) -> np.ndarray:
    """Per-class Dice (float64, ``(C,)``) from ``cm[gt, pred]`` with the ACDC empty convention.

    Bit for bit what :func:`monai.metrics.compute_dice` returns on one-hot inputs: it sums the float32
    one-hot maps (integer counts, exact below 2**24 voxels) and divides ``2 * |P ∩ G|`` by
    ``|G| + |P|`` in float32."""
    inter = np.diag(cm)
    n_pred, n_gt = cm.sum(axis=0), cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (np.float32(2.0) * inter.astype(np.float32)) / (n_gt.astype(np.float32) + n_pred.astype(np.float32))
    d = d.astype(np.float64)
    in_p, in_g = n_pred > 0, n_gt > 0
    d[~in_p & ~in_g] = 1.0
    d[in_p ^ in_g] = 0.0
    return d


def dice_per_class(pred: ArrayLike, label: ArrayLike, num_classes: int, include_background: bool = False) -> np.ndarray:
    """Per-class Dice of one case, equal bit for bit to :func:`monai.metrics.compute_dice` (float32
    ``2 |P ∩ G| / (|P| + |G|)``) where the structure is in both maps.

    Args:
        pred, label: integer label maps of identical shape ``(*spatial)`` (numpy or torch, bool allowed),
            values in ``0 .. num_classes - 1``.
        num_classes: number of classes including background (ACDC: 4).
        include_background: also return class 0.

    Returns:
        float64 array of shape ``(num_classes - 1,)`` for classes ``1..C-1`` (or ``(num_classes,)`` with
        background), values in ``[0, 1]``. Empty-structure convention (see module docstring): absent in
        both -> 1.0, absent in exactly one -> 0.0; never NaN.
    """
    p, g = _validate_pair(pred, label, num_classes)
    d = _dice_from_counts(_counts(p, g, int(num_classes)))
    return d if include_background else d[1:]


def _crop_foreground(pc: np.ndarray, gc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks cropped to the bounding box of their union with a margin of one voxel, zero-padded
    where the box leaves the image (MONAI ``get_mask_edges(crop=True)``)."""
    union = pc | gc
    lo, hi = [], []
    for ax in range(union.ndim):
        nz = np.flatnonzero(union.any(axis=tuple(a for a in range(union.ndim) if a != ax)))
        lo.append(int(nz[0]) - 1)
        hi.append(int(nz[-1]) + 2)
    shape = tuple(h - l for l, h in zip(lo, hi))
    src = tuple(slice(max(l, 0), min(h, n)) for l, h, n in zip(lo, hi, union.shape))
    dst = tuple(slice(s.start - l, s.stop - l) for s, l in zip(src, lo))
    out = []
    for m in (pc, gc):
        c = np.zeros(shape, dtype=bool)
        c[dst] = m[src]
        out.append(c)
    return out[0], out[1]


def _hd95_pair(pc: np.ndarray, gc: np.ndarray, spacing: tuple[float, ...] | None) -> torch.Tensor:
    """Symmetric 95th-percentile surface distance of two non-empty boolean masks (float32 0-d tensor).

    The computation of :func:`monai.metrics.compute_hausdorff_distance` (MONAI's CPU path, step for
    step, so the value is bit for bit the same): edges = mask XOR its binary erosion on the cropped
    masks, edge coordinates scaled by ``spacing`` in float64, nearest-edge distances from a KD-tree
    (leaf size 32) cast to float32, ``torch.quantile(d, 0.95)`` per direction, the larger one."""
    from scipy.ndimage import binary_erosion
    from scipy.spatial import KDTree

    pc, gc = _crop_foreground(pc, gc)
    coords = []
    for m in (pc, gc):
        c = np.argwhere(binary_erosion(m) ^ m).astype(np.float64)
        if spacing is not None:
            c *= np.asarray(spacing, dtype=np.float64)
        coords.append(c)
    a, b = coords
    d_ab = torch.as_tensor(KDTree(b, leafsize=32).query(a, k=1)[0], dtype=torch.float32)
    d_ba = torch.as_tensor(KDTree(a, leafsize=32).query(b, k=1)[0], dtype=torch.float32)
    return torch.max(torch.stack([torch.quantile(d_ab, 95 / 100), torch.quantile(d_ba, 95 / 100)]))


def hd95_per_class(
    pred: ArrayLike,
    label: ArrayLike,
    num_classes: int,
    spacing: Sequence[float] | None,
    include_background: bool = False,
) -> np.ndarray:
    """Per-class 95th-percentile symmetric Hausdorff distance of one case, in mm.

    The value of :func:`monai.metrics.compute_hausdorff_distance` (``percentile=95``, surface voxels,
    Euclidean distance scaled by ``spacing``), bit for bit, on the classes present in both maps; its
    steps are run here directly (no one-hot maps or MONAI transforms), which is several times faster.

    Args:
        pred, label: integer label maps of identical shape ``(H, W)`` or ``(D, H, W)``.
        num_classes: number of classes including background.
        spacing: voxel size in mm per spatial axis, same axis order as the arrays (e.g. ``(z, y, x)``
            for a ``(D, H, W)`` volume). Required; pass ``None`` explicitly to get distances in voxels.
        include_background: also return class 0.

    Returns:
        float64 array of shape ``(num_classes - 1,)`` (or ``(num_classes,)``), values ``>= 0``.
        Absent in both -> 0.0; absent in exactly one -> NaN (see module docstring).
    """
    p, g = _validate_pair(pred, label, num_classes)
    if p.ndim not in (2, 3):
        raise ValueError(f"hd95_per_class needs 2D (H, W) or 3D (D, H, W) label maps, got pred shape {tuple(p.shape)}")
    sp = _check_spacing(spacing, p.ndim)
    num_classes = int(num_classes)
    cm = _counts(p, g, num_classes)
    return _hd95_from_counts(p, g, cm, sp, include_background)


def _hd95_from_counts(p: np.ndarray, g: np.ndarray, cm: np.ndarray, sp: tuple[float, ...] | None,
                      include_background: bool) -> np.ndarray:
    num_classes = cm.shape[0]
    in_p, in_g = cm.sum(axis=0) > 0, cm.sum(axis=1) > 0
    out = np.full(num_classes, np.nan, dtype=np.float64)
    out[~in_p & ~in_g] = 0.0
    first = 0 if include_background else 1
    for c in np.flatnonzero(in_p & in_g):
        if c >= first:
            out[c] = float(_hd95_pair(p == c, g == c, sp).double())
    return out if include_background else out[1:]


class SegmentationMeter:
    """Accumulate per-case Dice (and HD95) over a test set and summarise them.

    Args:
        num_classes: classes including background (ACDC: 4).
        class_names: names of the foreground classes ``1..C-1`` (ACDC: :data:`ACDC_CLASS_NAMES`);
            ``None`` -> ``"class1", "class2", ...``.
        hd95: also compute HD95 (slower; needs ``spacing`` in :meth:`update`).
    """

    def __init__(self, num_classes: int, class_names: Sequence[str] | None = None, hd95: bool = True) -> None:
        self.num_classes = _check_num_classes(num_classes)
        if class_names is None:
            class_names = [f"class{i}" for i in range(1, self.num_classes)]
        names = tuple(str(n) for n in class_names)
        if len(names) != self.num_classes - 1:
            raise ValueError(
                f"class_names must name the {self.num_classes - 1} foreground classes 1..{self.num_classes - 1}, got {len(names)}: {names}"
            )
        if len(set(names)) != len(names) or "mean" in names or "total" in names:
            raise ValueError(f"class_names must be unique and not 'mean'/'total', got {names}")
        self.class_names = names
        self.hd95 = bool(hd95)
        self.cases: list[dict[str, Any]] = []

    def reset(self) -> None:
        self.cases.clear()

    def __len__(self) -> int:
        return len(self.cases)

    def update(
        self,
        pred: ArrayLike,
        label: ArrayLike,
        spacing: Sequence[float] | None = None,
        case_id: str | None = None,
    ) -> dict[str, Any]:
        """Score one case and store it; returns the per-case record.

        ``spacing`` (mm per spatial axis) is required when ``hd95=True``; pass ``(1.0,) * ndim``
        for distances in voxels. The record is ``{"case_id", "dice": {name: v}, "hd95": {name: v}}``
        (``hd95`` only when enabled; NaN where undefined).
        """
        if self.hd95 and spacing is None:
            raise ValueError("spacing is required when hd95=True (use (1.0,) * ndim for voxel units)")
        p, g = _validate_pair(pred, label, self.num_classes)
        cm = _counts(p, g, self.num_classes)  # one pass over the voxels for Dice and HD95
        d = _dice_from_counts(cm)[1:]
        rec: dict[str, Any] = {
            "case_id": case_id if case_id is not None else f"case{len(self.cases):04d}",
            "dice": dict(zip(self.class_names, d.tolist())),
        }
        if self.hd95:
            if p.ndim not in (2, 3):
                raise ValueError(f"hd95_per_class needs 2D (H, W) or 3D (D, H, W) label maps, got pred shape {tuple(p.shape)}")
            h = _hd95_from_counts(p, g, cm, _check_spacing(spacing, p.ndim), False)
            rec["hd95"] = dict(zip(self.class_names, h.tolist()))
        self.cases.append(rec)
        return rec

    def summary(self, include_cases: bool = False) -> dict[str, Any]:
        """Aggregate the cases seen so far.

        Returns a JSON-friendly dict (NaN where undefined, e.g. no cases)::

            {"n_cases": int,
             "dice":     {name: mean Dice in [0, 1], ..., "mean": mean over foreground classes},
             "dice_std": {name: std over cases, ..., "mean": std of per-case foreground mean},
             "hd95":     {name: nan-aware mean in mm, ..., "mean": mean of the per-class means},
             "hd95_count":   {name: cases with a finite HD95, ..., "total": sum},
             "hd95_missing": {name: cases with NaN HD95 (structure in only one map), ..., "total": sum},
             "cases": [per-case records]}          # only with include_cases=True

        The ``hd95*`` keys are present only when the meter was built with ``hd95=True``.
        """
        n = len(self.cases)
        out: dict[str, Any] = {"n_cases": n}
        if n:
            dice = np.array([[c["dice"][k] for k in self.class_names] for c in self.cases], dtype=np.float64)
        else:
            dice = np.full((0, len(self.class_names)), np.nan)
        out["dice"] = self._means(dice)
        out["dice_std"] = {k: _nan_std(dice[:, i]) for i, k in enumerate(self.class_names)}
        out["dice_std"]["mean"] = _nan_std(dice.mean(axis=1)) if n else math.nan
        if self.hd95:
            hd = np.array([[c["hd95"][k] for k in self.class_names] for c in self.cases], dtype=np.float64).reshape(n, -1)
            out["hd95"] = self._means(hd)
            finite = np.isfinite(hd)
            out["hd95_count"] = {k: int(finite[:, i].sum()) for i, k in enumerate(self.class_names)}
            out["hd95_count"]["total"] = int(finite.sum())
            out["hd95_missing"] = {k: int((~finite[:, i]).sum()) for i, k in enumerate(self.class_names)}
            out["hd95_missing"]["total"] = int((~finite).sum())
        if include_cases:
            out["cases"] = [dict(c) for c in self.cases]
        return out

    def _means(self, values: np.ndarray) -> dict[str, float]:
        per = [_nan_mean(values[:, i]) for i in range(values.shape[1])]
        res = dict(zip(self.class_names, per))
        res["mean"] = _nan_mean(np.array(per))
        return res


def _nan_mean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


def _nan_std(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(x.std()) if x.size else math.nan


# ----------------------------------------------------------------------------------------------
# confusion matrix / IoU (driving scenes)
# ----------------------------------------------------------------------------------------------
def confusion_matrix(pred: ArrayLike, label: ArrayLike, num_classes: int, ignore_index: int | None = 255) -> np.ndarray:
    """Confusion matrix ``cm[gt, pred]`` (int64, shape ``(C, C)``) over valid pixels.

    Valid pixels are those with ``label`` in ``0..C-1``; ``label == ignore_index`` pixels are skipped.
    Any other label value, or a ``pred`` value outside ``0..C-1`` on a valid pixel, raises ValueError.
    Works on one image or a batch (any identical shapes). Sum matrices over images to accumulate.
    """
    num_classes = _check_num_classes(num_classes)
    p_arr = _as_int_array(pred, "pred")
    g_arr = _as_int_array(label, "label")
    if p_arr.shape != g_arr.shape:
        raise ValueError(f"pred and label must have the same shape, got pred {tuple(p_arr.shape)} vs label {tuple(g_arr.shape)}")
    p = p_arr.astype(np.int64, copy=False).ravel()
    g = g_arr.astype(np.int64, copy=False).ravel()
    valid = (g >= 0) & (g < num_classes)
    bad = ~valid if ignore_index is None else (~valid & (g != ignore_index))
    if bad.any():
        vals = np.unique(g[bad])[:10].tolist()
        raise ValueError(f"label values must be in 0..{num_classes - 1} or ignore_index={ignore_index}, found {vals}")
    p, g = p[valid], g[valid]
    if p.size and (p.min() < 0 or p.max() >= num_classes):
        raise ValueError(f"pred values must be in 0..{num_classes - 1} on valid pixels, found range [{int(p.min())}, {int(p.max())}]")
    cm = np.bincount(g * num_classes + p, minlength=num_classes * num_classes)
    return cm.reshape(num_classes, num_classes).astype(np.int64)


def iou_from_confusion(cm: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-class IoU ``TP / (TP + FP + FN)`` and mean IoU from a ``cm[gt, pred]`` matrix.

    Classes absent from both ground truth and prediction get NaN and are excluded from the mIoU
    (mIoU is NaN if every class is absent).
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"cm must be a square (C, C) matrix, got shape {cm.shape}")
    if (cm < 0).any():
        raise ValueError("cm must be non-negative counts")
    cm = cm.astype(np.float64)
    tp = np.diag(cm)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    iou = np.full(cm.shape[0], np.nan)
    np.divide(tp, union, out=iou, where=union > 0)
    return iou, _nan_mean(iou)


# --------------------------------------------------------------------------------- image quality
def psnr(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio (dB) of one image pair."""
    p = torch.as_tensor(pred, dtype=torch.float64)
    t = torch.as_tensor(target, dtype=torch.float64)
    mse = float((p - t).square().mean())
    return math.inf if mse == 0 else 10 * math.log10(data_range**2 / mse)


def ssim(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray, data_range: float = 1.0) -> float:
    """SSIM of one 2D grey image pair (``skimage.metrics``, Gaussian window σ = 1.5, as Wang et al. 2004
    and torchmetrics' default); inputs ``(H, W)`` (or ``(1, H, W)``)."""
    from skimage.metrics import structural_similarity

    p = np.asarray(torch.as_tensor(pred, dtype=torch.float64).squeeze().cpu())
    t = np.asarray(torch.as_tensor(target, dtype=torch.float64).squeeze().cpu())
    if p.ndim != 2:
        raise ValueError(f"ssim: expected a 2D image, got shape {p.shape}")
    return float(structural_similarity(p, t, data_range=data_range, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def batch_psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR (dB, data range 1) of each image of a batch ``(N, ...)``; MSE floored at 1e-12."""
    mse = (pred.float() - target.float()).square().flatten(1).mean(1).clamp_min(1e-12)
    return 10 * torch.log10(1.0 / mse)


def laplacian_variance(img: torch.Tensor | np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of a 2D image (``(H, W)`` or ``(1, H, W)``; the "variance
    of Laplacian" focus measure, Pech-Pacheco et al. 2000), interior pixels only. The ratio
    ``laplacian_variance(pred) / laplacian_variance(target)`` is the fraction of fine detail kept."""
    x = torch.as_tensor(img).detach().to(torch.float64).squeeze()
    if x.ndim != 2 or min(x.shape) < 3:
        raise ValueError(f"laplacian_variance: expected a 2D image of at least 3x3, got shape {tuple(x.shape)}")
    lap = x[1:-1, :-2] + x[1:-1, 2:] + x[:-2, 1:-1] + x[2:, 1:-1] - 4 * x[1:-1, 1:-1]
    return float(lap.var(unbiased=False))


def nyquist_peak_db(img: torch.Tensor | np.ndarray) -> float:
    """Spectral peak at the Nyquist frequency of a 2D image (a residual ``pred − target``), in dB.

    ``10·log10(P_nyq / P_hf)``: ``P_nyq`` the mean power at the three period-2 frequencies
    ``(½, 0), (0, ½), (½, ½)`` cycles/px (where a stride-2 checkerboard puts its energy), ``P_hf``
    the median power of the other high-frequency bins (``max(|f_y|, |f_x|) ≥ ¼``; both floored at
    1e-8 of the mean power). White noise gives
    about 0 dB (±5 dB: three bins of an exponential power spectrum), a smooth residual < 0 dB, a
    checkerboard tens of dB. The mean is removed, a Hann window applied (no border leakage) and odd
    sides are cropped by one pixel.
    """
    x = torch.as_tensor(img).detach().to(torch.float64).squeeze()
    if x.ndim != 2 or min(x.shape) < 4:
        raise ValueError(f"nyquist_peak_db: expected a 2D image of at least 4x4, got shape {tuple(x.shape)}")
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    x = x[:h, :w]
    # a Hann window: the image borders (not periodic) would otherwise leak along the frequency axes,
    # where two of the three Nyquist bins lie
    win = torch.outer(torch.hann_window(h, periodic=True, dtype=torch.float64),
                      torch.hann_window(w, periodic=True, dtype=torch.float64))
    power = torch.fft.fft2((x - x.mean()) * win).abs().square()
    fy = torch.fft.fftfreq(h, dtype=torch.float64).abs()[:, None]
    fx = torch.fft.fftfreq(w, dtype=torch.float64).abs()[None, :]
    nyq = torch.zeros(h, w, dtype=torch.bool)
    nyq[h // 2, 0] = nyq[0, w // 2] = nyq[h // 2, w // 2] = True
    near = torch.zeros(h, w, dtype=torch.bool)  # the window's main lobe around each Nyquist bin
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            near |= nyq.roll((dy, dx), (0, 1))
    hf = (torch.maximum(fy.expand(h, w), fx.expand(h, w)) >= 0.25) & ~near
    p_hf = float(power[hf].median()) if bool(hf.any()) else 0.0
    p_nyq = float(power[nyq].mean())
    tiny = 1e-8 * float(power.mean()) + 1e-30  # a floor: the spectrum of a smooth image ends in round-off
    return 10 * math.log10((p_nyq + tiny) / (p_hf + tiny))
