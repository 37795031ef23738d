"""Torch side of the ACDC data: the 2D/3D datasets over :mod:`medrobust.data.acdc` patients and the
CPU-side MONAI dictionary pipeline for them (:func:`acdc_transforms`, with the in-plane resampling
transform :class:`ResampleInPlaned`).

Kept apart from the reader so that reading ACDC files imports neither torch nor MONAI.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.transforms import MapTransform, Resize

from .acdc import FRAME_KEYS, PathLike, Patient, read_patient

__all__ = ["ACDCSliceDataset", "ACDCVolumeDataset", "ResampleInPlaned", "acdc_transforms"]


def _as_patients(patients: Iterable[Patient | PathLike]) -> list[Patient]:
    out = [p if isinstance(p, Patient) else read_patient(p, lazy=True) for p in patients]
    if not out:
        raise ValueError("ACDC dataset: no patients given")
    return out


class _ACDCDatasetBase:
    def __init__(self, patients: Iterable[Patient | PathLike], transform: Callable[[dict], Any] | None, frames: Sequence[str]):
        bad = [f for f in frames if f not in FRAME_KEYS]
        if bad or not frames:
            raise ValueError(f"frames must be a non-empty subset of {FRAME_KEYS}, got {tuple(frames)}")
        self.patients = _as_patients(patients)
        self.transform = transform
        self.frames = tuple(frames)

    def _finish(self, item: dict[str, Any]) -> Any:
        return self.transform(item) if self.transform is not None else item


class ACDCSliceDataset(_ACDCDatasetBase):
    """2D dataset: one item per short-axis slice of the ED and ES frames of every patient.

    Item: ``{"image": float32 (1, H, W), "label": int64 (1, H, W), "patient": id, "frame": "ED"|"ES",
    "slice": z, "spacing": (sx, sy)}`` with ``H, W = X, Y`` of the file (sizes vary between patients
    unless a ``transform`` such as :func:`acdc_transforms` crops/pads them). ``patients``:
    :class:`Patient` objects (lazy ones are fine) or patient folders.
    """

    def __init__(
        self,
        patients: Iterable[Patient | PathLike],
        transform: Callable[[dict], Any] | None = None,
        frames: Sequence[str] = FRAME_KEYS,
    ):
        super().__init__(patients, transform, frames)
        self.index: list[tuple[int, str, int]] = [
            (i, key, z) for i, p in enumerate(self.patients) for key in self.frames for z in range(p.frames[key].n_slices)
        ]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, idx: int) -> Any:
        i, key, z = self.index[idx]
        p = self.patients[i]
        fr = p.frames[key]
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(fr.image[:, :, z], dtype=np.float32))[None],
            "label": torch.from_numpy(np.ascontiguousarray(fr.label[:, :, z], dtype=np.int64))[None],
            "patient": p.id,
            "frame": key,
            "slice": z,
            "spacing": (fr.spacing[0], fr.spacing[1]),
        }
        return self._finish(item)


class ACDCVolumeDataset(_ACDCDatasetBase):
    """3D dataset: one item per (patient, frame).

    Item: ``{"image": float32 (1, X, Y, Z), "label": int64 (1, X, Y, Z), "patient": id,
    "frame": "ED"|"ES", "spacing": (sx, sy, sz)}``.
    """

    def __init__(
        self,
        patients: Iterable[Patient | PathLike],
        transform: Callable[[dict], Any] | None = None,
        frames: Sequence[str] = FRAME_KEYS,
    ):
        super().__init__(patients, transform, frames)
        self.index: list[tuple[int, str]] = [(i, key) for i in range(len(self.patients)) for key in self.frames]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, idx: int) -> Any:
        i, key = self.index[idx]
        p = self.patients[i]
        fr = p.frames[key]
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(fr.image, dtype=np.float32))[None],
            "label": torch.from_numpy(np.ascontiguousarray(fr.label, dtype=np.int64))[None],
            "patient": p.id,
            "frame": key,
            "spacing": tuple(fr.spacing),
        }
        return self._finish(item)


# --------------------------------------------------------------------------------------------
# MONAI transforms
# --------------------------------------------------------------------------------------------


# ------------------------------------------------------------------------------- MONAI transforms
class ResampleInPlaned(MapTransform):
    """Resample the first two spatial axes to ``pixdim`` mm using the item's own spacing.

    The spacing is read from ``data[spacing_key]`` (``(sx, sy)`` or ``(sx, sy, sz)``) and written
    back with the achieved in-plane spacing; further spatial axes (Z) are left as they are.
    ``modes`` pairs with ``keys`` (default: bilinear with anti-aliasing for the image,
    nearest-exact for the label, so label values stay in the label set).
    """

    def __init__(
        self,
        keys: Sequence[Hashable] = ("image", "label"),
        pixdim: float | Sequence[float] = 1.25,
        modes: Sequence[str] = ("bilinear", "nearest-exact"),
        spacing_key: str = "spacing",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        pd = (float(pixdim),) * 2 if isinstance(pixdim, (int, float)) else tuple(float(v) for v in pixdim)
        if len(pd) != 2 or any(not math.isfinite(v) or v <= 0 for v in pd):
            raise ValueError(f"pixdim must be a positive number or a pair of them, got {pixdim!r}")
        self.pixdim = pd
        self.modes = tuple(modes)
        if len(self.modes) != len(self.keys):
            raise ValueError(f"modes {self.modes} must pair with keys {self.keys}")
        self.spacing_key = spacing_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if self.spacing_key not in d:
            raise KeyError(f"ResampleInPlaned: item has no {self.spacing_key!r} entry to resample from")
        sp = tuple(float(v) for v in d[self.spacing_key])
        new_sp: tuple[float, ...] | None = None
        for key, mode in zip(self.keys, self.modes):
            if key not in d:
                if self.allow_missing_keys:
                    continue
                raise KeyError(f"ResampleInPlaned: item has no {key!r}")
            img = d[key]
            spatial = tuple(int(s) for s in img.shape[1:])
            if len(spatial) < 2 or len(sp) < 2:
                raise ValueError(f"ResampleInPlaned: {key!r} needs (C, H, W[, D]) and a 2+ entry spacing, got {tuple(img.shape)}, {sp}")
            size = [max(1, int(round(spatial[a] * sp[a] / self.pixdim[a]))) for a in range(2)]
            out_size = tuple(size) + tuple(-1 for _ in spatial[2:])
            down = any(size[a] < spatial[a] for a in range(2))
            aa = mode in ("bilinear", "bicubic", "area", "linear", "trilinear") and down
            ndim = len(spatial)
            m = mode
            if mode == "bilinear" and ndim == 3:
                m = "trilinear"
            resize = Resize(spatial_size=out_size, mode=m, anti_aliasing=aa, align_corners=False if m in ("bilinear", "trilinear", "bicubic", "linear") else None)
            d[key] = resize(img)
            new_sp = tuple(sp[a] * spatial[a] / size[a] for a in range(2)) + sp[2:]
        if new_sp is not None:
            d[self.spacing_key] = new_sp
        return d


def acdc_transforms(
    mode: str = "2d",
    spatial_size: Sequence[int] = (128, 128),
    pixel_spacing: float | None = None,
    train: bool = True,
    *,
    seed: int | None = None,
) -> Any:
    """MONAI dictionary pipeline (keys ``image``/``label``) for :class:`ACDCSliceDataset` ("2d") or
    :class:`ACDCVolumeDataset` ("3d") items.

    Steps: per-image intensity scaling to [0, 1] (0.5/99.5 percentiles, clipped); optional in-plane
    resampling to ``pixel_spacing`` mm using each item's ``spacing`` (bilinear image, nearest label;
    Z untouched); pad/crop to ``spatial_size`` (2D ``(H, W)``; 3D ``(H, W)`` keeps Z, or ``(H, W, D)``,
    -1 keeps an axis) with a centre crop for ``train=False`` and a random crop for ``train=True``;
    for training random flips on both in-plane axes and, when ``H == W``, random in-plane rot90, the
    same for image and label. Outputs plain ``torch.Tensor``: image float32, label int64.
    ``seed`` seeds the random transforms (``Compose.set_random_state``).
    """
    from monai.transforms import (
        Compose,
        EnsureTyped,
        RandFlipd,
        RandRotate90d,
        RandSpatialCropd,
        ResizeWithPadOrCropd,
        ScaleIntensityRangePercentilesd,
        SpatialPadd,
    )

    if mode not in ("2d", "3d"):
        raise ValueError(f"mode must be '2d' or '3d', got {mode!r}")
    size = tuple(int(s) for s in spatial_size)
    if mode == "2d" and len(size) != 2:
        raise ValueError(f"spatial_size for mode '2d' must be (H, W), got {tuple(spatial_size)}")
    if mode == "3d":
        if len(size) == 2:
            size = (*size, -1)
        if len(size) != 3:
            raise ValueError(f"spatial_size for mode '3d' must be (H, W) or (H, W, D), got {tuple(spatial_size)}")
    if any(s == 0 or s < -1 for s in size):
        raise ValueError(f"spatial_size entries must be positive (or -1 to keep an axis), got {tuple(spatial_size)}")
    keys = ("image", "label")
    xs: list[Any] = [
        ScaleIntensityRangePercentilesd(keys="image", lower=0.5, upper=99.5, b_min=0.0, b_max=1.0, clip=True),
    ]
    if pixel_spacing is not None:
        xs.append(ResampleInPlaned(keys=keys, pixdim=pixel_spacing))
    if train:
        xs += [
            SpatialPadd(keys=keys, spatial_size=size),
            RandSpatialCropd(keys=keys, roi_size=size, random_size=False),
            RandFlipd(keys=keys, prob=0.5, spatial_axis=0),
            RandFlipd(keys=keys, prob=0.5, spatial_axis=1),
        ]
        if size[0] == size[1]:
            xs.append(RandRotate90d(keys=keys, prob=0.5, max_k=3, spatial_axes=(0, 1)))
    else:
        xs.append(ResizeWithPadOrCropd(keys=keys, spatial_size=size))
    xs.append(EnsureTyped(keys=keys, data_type="tensor", dtype=(torch.float32, torch.int64), track_meta=False))
    comp = Compose(xs)
    if seed is not None:
        comp.set_random_state(seed=seed)
    return comp
