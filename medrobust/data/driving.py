"""Readers for driving-scene segmentation datasets, mapped to the 19 Cityscapes train IDs.

Every dataset keeps its public on-disk layout and its own label encoding; :func:`to_train_ids`
maps a label array *exactly as read from that dataset's label file* to Cityscapes train IDs
``0..18`` (uint8) with ``255`` = ignore. Label values the encoding does not define raise
:class:`DrivingDataError` (a wrong dataset name or a corrupted file is never silently ignored).

==========  =====================================================  ==============================
dataset     layout (``ROOT/...``)                                  label file holds
==========  =====================================================  ==============================
cityscapes  ``leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png``  Cityscapes label ids 0..33
            ``gtFine/<split>/<city>/<stem>_gtFine_labelIds.png``   (8-bit grey)
gta5        ``images/<name>.png``, ``labels/<name>.png``;          Cityscapes label ids 0..33
            split: ``all``, a list file ``ROOT/<split>.txt`` or    (palette PNG: the index is
            a path to one (one file name per line, with or         the id), or RGB colours of
            without extension), or ``split.mat``                   the Cityscapes palette
            (``trainIds``/``valIds``/``testIds``, needs SciPy)
bdd100k     ``images/10k/<split>/<stem>.jpg``,                     train IDs 0..18, 255 ignore
            ``labels/sem_seg/masks/<split>/<stem>.png``            (8-bit grey)
mapillary   ``<split>/images/<stem>.jpg``,                         Vistas v1.2 class indices
            ``<split>/labels/<stem>.png`` (or                      0..65 (palette PNG)
            ``<split>/v1.2/labels``); split ``training`` /
            ``validation`` (``train``/``val`` accepted)
synthia     ``RGB/<name>.png``, ``GT/LABELS/<name>.png``;          16-bit multi-channel PNG,
            split: ``all`` or a list file as for GTA5              class id in the file's first
                                                                   channel (0..22)
==========  =====================================================  ==============================

SYNTHIA channel order: :func:`read_label` returns the label PNG as ``(H, W, C)`` uint16 **in the
file's channel order** (channel 0 = the file's first channel = the class id, channel 1 = the
instance id). OpenCV, the reader used (no plugin downloads), returns BGR order; the reader undoes
that. :func:`to_train_ids` for ``synthia`` takes that ``(H, W, C)`` array (class in ``[..., 0]``)
or a 2D class map.

GTA5 colour labels: an ``(H, W, 3)`` RGB array is mapped by exact match with the Cityscapes label
colours; colours shared by several label ids map like the lowest id (black → ignore, the pole grey
→ pole, the car blue → car). Any colour outside the palette is an error.

Torch datasets (:class:`DrivingDataset` and one subclass per layout) return
``{"image": float32 (3, H, W) in [0, 1], "label": int64 (1, H, W), "name": str}``, with the
CPU-side albumentations pipeline of :func:`driving_transforms` (random scale, crop and horizontal
flip, mask co-transformed with nearest-neighbour interpolation and padded with 255).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DATASETS",
    "NUM_CLASSES",
    "IGNORE_INDEX",
    "CLASS_NAMES",
    "PALETTE",
    "CITYSCAPES_LABELS",
    "CITYSCAPES_ID_TO_TRAIN",
    "MAPILLARY_TO_TRAIN",
    "SYNTHIA_TO_TRAIN",
    "DrivingDataError",
    "Sample",
    "to_train_ids",
    "colorize",
    "read_image",
    "read_label",
    "load_sample",
    "list_samples",
    "default_split",
    "DrivingTransform",
    "driving_transforms",
    "DrivingDataset",
    "CityscapesDataset",
    "GTA5Dataset",
    "BDD100KDataset",
    "MapillaryDataset",
    "SynthiaDataset",
    "make_dataset",
]

PathLike = str | os.PathLike[str]

# albumentations >= 1.4 queries PyPI for a newer version on import (a network call with a timeout);
# the transforms here never need it
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

DATASETS: tuple[str, ...] = ("cityscapes", "gta5", "bdd100k", "mapillary", "synthia")
NUM_CLASSES = 19
IGNORE_INDEX = 255

#: the 19 Cityscapes evaluation classes, in train-ID order
CLASS_NAMES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)

#: Cityscapes label definitions ``(label id, name, train id, RGB colour)`` for ids 0..33 (cityscapesScripts)
CITYSCAPES_LABELS: tuple[tuple[int, str, int, tuple[int, int, int]], ...] = (
    (0, "unlabeled", 255, (0, 0, 0)),
    (1, "ego vehicle", 255, (0, 0, 0)),
    (2, "rectification border", 255, (0, 0, 0)),
    (3, "out of roi", 255, (0, 0, 0)),
    (4, "static", 255, (0, 0, 0)),
    (5, "dynamic", 255, (111, 74, 0)),
    (6, "ground", 255, (81, 0, 81)),
    (7, "road", 0, (128, 64, 128)),
    (8, "sidewalk", 1, (244, 35, 232)),
    (9, "parking", 255, (250, 170, 160)),
    (10, "rail track", 255, (230, 150, 140)),
    (11, "building", 2, (70, 70, 70)),
    (12, "wall", 3, (102, 102, 156)),
    (13, "fence", 4, (190, 153, 153)),
    (14, "guard rail", 255, (180, 165, 180)),
    (15, "bridge", 255, (150, 100, 100)),
    (16, "tunnel", 255, (150, 120, 90)),
    (17, "pole", 5, (153, 153, 153)),
    (18, "polegroup", 255, (153, 153, 153)),
    (19, "traffic light", 6, (250, 170, 30)),
    (20, "traffic sign", 7, (220, 220, 0)),
    (21, "vegetation", 8, (107, 142, 35)),
    (22, "terrain", 9, (152, 251, 152)),
    (23, "sky", 10, (70, 130, 180)),
    (24, "person", 11, (220, 20, 60)),
    (25, "rider", 12, (255, 0, 0)),
    (26, "car", 13, (0, 0, 142)),
    (27, "truck", 14, (0, 0, 70)),
    (28, "bus", 15, (0, 60, 100)),
    (29, "caravan", 255, (0, 0, 90)),
    (30, "trailer", 255, (0, 0, 110)),
    (31, "train", 16, (0, 80, 100)),
    (32, "motorcycle", 17, (0, 0, 230)),
    (33, "bicycle", 18, (119, 11, 32)),
)

#: Cityscapes label id -> train id (ids 0..33; everything not listed is ignore)
CITYSCAPES_ID_TO_TRAIN: dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13,
    27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}

#: Mapillary Vistas v1.2 class index (0..65) -> train id
MAPILLARY_TO_TRAIN: dict[int, int] = {
    13: 0, 24: 0, 41: 0,  # road, lane marking (general), manhole
    2: 1, 15: 1,  # curb, sidewalk
    17: 2, 6: 3, 3: 4,  # building, wall, fence
    45: 5, 47: 5,  # pole, utility pole
    48: 6, 50: 7, 30: 8, 29: 9, 27: 10, 19: 11,
    20: 12, 21: 12, 22: 12,  # bicyclist, motorcyclist, other rider
    55: 13, 61: 14, 54: 15, 58: 16, 57: 17, 52: 18,
}

#: SYNTHIA class id (0..22) -> train id
SYNTHIA_TO_TRAIN: dict[int, int] = {
    3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 16: 9, 1: 10, 10: 11, 17: 12, 8: 13, 18: 14,
    19: 15, 20: 16, 12: 17, 11: 18,
}

#: RGB colour of each train id (the Cityscapes palette); index 255 (ignore) is black in :func:`colorize`
PALETTE: np.ndarray = np.array(
    [next(c for _, _, t, c in CITYSCAPES_LABELS if t == tid) for tid in range(NUM_CLASSES)], dtype=np.uint8
)

# number of values each raw encoding defines (values >= this, or negative, are unknown)
_N_DEFINED = {"cityscapes": 34, "gta5": 34, "mapillary": 66, "synthia": 23}


class DrivingDataError(ValueError):
    """A driving dataset file is missing, unreadable or inconsistent, or a label value is undefined."""


def _lut(mapping: dict[int, int], n: int) -> np.ndarray:
    lut = np.full(n, IGNORE_INDEX, dtype=np.uint8)
    for k, v in mapping.items():
        lut[k] = v
    return lut


_LUTS: dict[str, np.ndarray] = {
    "cityscapes": _lut(CITYSCAPES_ID_TO_TRAIN, 34),
    "gta5": _lut(CITYSCAPES_ID_TO_TRAIN, 34),
    "mapillary": _lut(MAPILLARY_TO_TRAIN, 66),
    "synthia": _lut(SYNTHIA_TO_TRAIN, 23),
}


def _colour_table() -> tuple[np.ndarray, np.ndarray]:
    """Sorted packed RGB keys of the Cityscapes label colours and the train id of each (lowest id wins)."""
    table: dict[int, int] = {}
    for lid, _, tid, (r, g, b) in CITYSCAPES_LABELS:
        table.setdefault((r << 16) | (g << 8) | b, tid)
    keys = np.array(sorted(table), dtype=np.int64)
    return keys, np.array([table[int(k)] for k in keys], dtype=np.uint8)


_COLOUR_KEYS, _COLOUR_TRAIN = _colour_table()


def _unknown(values: np.ndarray, limit: int = 10) -> list[int]:
    return np.unique(values)[:limit].tolist()


def _check_integer(label: np.ndarray, dataset: str) -> None:
    if label.dtype == np.bool_ or not np.issubdtype(label.dtype, np.integer):
        raise DrivingDataError(f"to_train_ids({dataset!r}): expected an integer label array, got dtype {label.dtype}")
    if label.size == 0:
        raise DrivingDataError(f"to_train_ids({dataset!r}): empty label array of shape {label.shape}")


def _map_ids(ids: np.ndarray, dataset: str) -> np.ndarray:
    n = _N_DEFINED[dataset]
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= n:
        bad = ids[(ids < 0) | (ids >= n)]
        raise DrivingDataError(
            f"to_train_ids({dataset!r}): label values {_unknown(bad)} are not defined by the {dataset} encoding "
            f"(valid: 0..{n - 1}); is this the right dataset / channel?"
        )
    return _LUTS[dataset][ids.astype(np.intp, copy=False)]


def _map_colours(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype != np.uint8:
        raise DrivingDataError(f"to_train_ids('gta5'): colour labels must be uint8 RGB, got dtype {rgb.dtype}")
    rgb = rgb[..., :3].astype(np.int64)
    keys = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    pos = np.searchsorted(_COLOUR_KEYS, keys).clip(0, len(_COLOUR_KEYS) - 1)
    ok = _COLOUR_KEYS[pos] == keys
    if not ok.all():
        bad = [(int(k) >> 16, (int(k) >> 8) & 255, int(k) & 255) for k in np.unique(keys[~ok])[:10]]
        raise DrivingDataError(f"to_train_ids('gta5'): RGB colours {bad} are not in the Cityscapes palette")
    return _COLOUR_TRAIN[pos]


def to_train_ids(label: Any, dataset: str) -> np.ndarray:
    """Map a label array, exactly as read from ``dataset``'s label file, to Cityscapes train IDs.

    Args:
        label: integer array. ``cityscapes``/``gta5``: ``(H, W)`` label ids 0..33 (``gta5`` also
            accepts ``(H, W, 3|4)`` uint8 RGB(A) colours of the Cityscapes palette);
            ``bdd100k``: ``(H, W)`` train ids 0..18 or 255; ``mapillary``: ``(H, W)`` class indices
            0..65; ``synthia``: ``(H, W, C)`` uint16 in the file's channel order (class id in
            channel 0, as :func:`read_label` returns it) or a ``(H, W)`` class map.
        dataset: one of :data:`DATASETS`.
    Returns:
        uint8 ``(H, W)`` train IDs ``0..18``, ``255`` = ignore.
    Raises:
        DrivingDataError: unknown dataset, wrong shape/dtype, or values the encoding does not define.
    """
    if dataset not in DATASETS:
        raise DrivingDataError(f"to_train_ids: unknown dataset {dataset!r}; choose one of {list(DATASETS)}")
    if hasattr(label, "detach"):
        label = label.detach().cpu().numpy()
    label = np.asarray(label)
    _check_integer(label, dataset)
    if dataset == "synthia":
        if label.ndim == 3:
            label = label[..., 0]
        if label.ndim != 2:
            raise DrivingDataError(f"to_train_ids('synthia'): expected (H, W, C) or (H, W), got shape {label.shape}")
        return _map_ids(label, "synthia")
    if dataset == "gta5" and label.ndim == 3:
        if label.shape[-1] not in (3, 4):
            raise DrivingDataError(f"to_train_ids('gta5'): colour labels must be (H, W, 3) RGB, got shape {label.shape}")
        return _map_colours(label)
    if label.ndim != 2:
        raise DrivingDataError(f"to_train_ids({dataset!r}): expected a 2D (H, W) label map, got shape {label.shape}")
    if dataset == "bdd100k":
        bad = (label < 0) | ((label >= NUM_CLASSES) & (label != IGNORE_INDEX))
        if bad.any():
            raise DrivingDataError(
                f"to_train_ids('bdd100k'): label values {_unknown(label[bad])} are not train ids (valid: 0..18 and 255)"
            )
        return label.astype(np.uint8)
    return _map_ids(label, dataset)


def colorize(train_ids: Any) -> np.ndarray:
    """Train IDs ``(H, W)`` -> RGB uint8 ``(H, W, 3)`` with the Cityscapes palette (ignore = black)."""
    ids = np.asarray(train_ids)
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[:NUM_CLASSES] = PALETTE
    return lut[ids.astype(np.intp).clip(0, 255)]


# ------------------------------------------------------------------------------------------- reading
def read_image(path: PathLike) -> np.ndarray:
    """An RGB image as uint8 ``(H, W, 3)`` (OpenCV decode, converted from BGR)."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise DrivingDataError(f"{path}: image file not found")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DrivingDataError(f"{path}: cannot decode the image")
    return np.ascontiguousarray(img[..., ::-1])


def read_label(path: PathLike, dataset: str) -> np.ndarray:
    """The label file as stored: ``(H, W)`` indices, ``(H, W, 3)`` RGB colours, or (SYNTHIA) the
    ``(H, W, C)`` 16-bit array in the file's channel order (class id in channel 0)."""
    path = Path(path)
    if dataset not in DATASETS:
        raise DrivingDataError(f"read_label: unknown dataset {dataset!r}; choose one of {list(DATASETS)}")
    if not path.is_file():
        raise DrivingDataError(f"{path}: label file not found")
    if dataset == "synthia":
        import cv2

        arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if arr is None:
            raise DrivingDataError(f"{path}: cannot decode the SYNTHIA label PNG")
        if arr.ndim == 3:  # OpenCV gives BGR(A): back to the file's channel order
            order = [2, 1, 0] + list(range(3, arr.shape[2]))
            arr = arr[..., order]
        return np.ascontiguousarray(arr)
    from PIL import Image

    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode in ("P", "L", "I;16", "I;16B", "I;16L", "I"):
                return np.array(im)
            if mode in ("RGB", "RGBA"):
                return np.array(im.convert("RGB"))
    except OSError as err:
        raise DrivingDataError(f"{path}: cannot decode the label PNG ({err})") from None
    raise DrivingDataError(f"{path}: unsupported label image mode {mode!r} (expected P, L, I;16 or RGB)")


@dataclass(frozen=True)
class Sample:
    """One image/label pair of a layout."""

    image: Path
    label: Path | None
    name: str
    dataset: str


def load_sample(sample: Sample) -> tuple[np.ndarray, np.ndarray | None]:
    """``(RGB uint8 (H, W, 3), train ids uint8 (H, W) or None)``; sizes must agree."""
    image = read_image(sample.image)
    if sample.label is None:
        return image, None
    raw = read_label(sample.label, sample.dataset)
    try:
        ids = to_train_ids(raw, sample.dataset)
    except DrivingDataError as err:
        raise DrivingDataError(f"{sample.label}: {err}") from None
    if ids.shape != image.shape[:2]:
        raise DrivingDataError(
            f"{sample.label}: label size {ids.shape[1]}x{ids.shape[0]} (WxH) does not match image "
            f"{sample.image} size {image.shape[1]}x{image.shape[0]}"
        )
    return image, ids


# ------------------------------------------------------------------------------------------- layouts
_DEFAULT_SPLITS = {
    "cityscapes": ("train", "val"),
    "gta5": ("train", "val"),
    "bdd100k": ("train", "val"),
    "mapillary": ("training", "validation"),
    "synthia": ("train", "val"),
}
_MAPILLARY_ALIASES = {"train": "training", "val": "validation", "test": "testing"}


def default_split(dataset: str, which: str) -> str:
    """The conventional split name of ``dataset`` for ``which`` in ``("train", "val")``."""
    if dataset not in _DEFAULT_SPLITS:
        raise DrivingDataError(f"unknown dataset {dataset!r}; choose one of {list(DATASETS)}")
    return _DEFAULT_SPLITS[dataset][0 if which == "train" else 1]


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DrivingDataError(f"{path}: {what} folder not found")
    return path


def _pair(image: Path, label: Path, name: str, dataset: str, labels: bool) -> Sample:
    if labels and not label.is_file():
        raise DrivingDataError(f"{image}: no matching label file (expected {label})")
    return Sample(image, label if labels else None, name, dataset)


def _read_list(root: Path, split: str, dataset: str) -> list[str] | None:
    """Names from a split list file, ``split.mat`` (GTA5) or None for ``all``."""
    if split == "all":
        return None
    candidates = [Path(split)] if (os.sep in split or split.endswith(".txt")) else []
    candidates += [root / f"{split}.txt", root / "splits" / f"{split}.txt"]
    for path in candidates:
        if path.is_file():
            names = [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
            return [Path(n).stem for n in names]
    mat = root / "split.mat"
    if dataset == "gta5" and mat.is_file() and split in ("train", "val", "test"):
        try:
            from scipy.io import loadmat
        except ImportError:  # pragma: no cover - scipy ships with the dependencies
            raise DrivingDataError(f"{mat}: reading split.mat needs SciPy (pip install scipy)") from None
        ids = np.asarray(loadmat(mat)[f"{split}Ids"]).ravel()
        return [f"{int(i):05d}" for i in ids]
    raise DrivingDataError(
        f"{root}: split {split!r} not found; expected 'all', a list file {root / (split + '.txt')} "
        f"(one file name per line){' or split.mat' if dataset == 'gta5' else ''}"
    )


def list_samples(root: PathLike, dataset: str, split: str | None = None, *, labels: bool = True) -> list[Sample]:
    """All image/label pairs of ``split`` in ``root`` (sorted by name; see the module table for layouts).

    ``split=None`` takes the dataset's validation split. ``labels=False`` lists images only.
    Raises :class:`DrivingDataError` naming the missing folder/file when the layout is incomplete.
    """
    if dataset not in DATASETS:
        raise DrivingDataError(f"unknown dataset {dataset!r}; choose one of {list(DATASETS)}")
    root = Path(root)
    _require_dir(root, f"{dataset} root")
    split = split or default_split(dataset, "val")
    out: list[Sample] = []
    if dataset == "cityscapes":
        img_dir = _require_dir(root / "leftImg8bit" / split, "Cityscapes leftImg8bit/<split>")
        for img in sorted(img_dir.glob("*/*_leftImg8bit.png")):
            stem = img.name[: -len("_leftImg8bit.png")]
            lab = root / "gtFine" / split / img.parent.name / f"{stem}_gtFine_labelIds.png"
            out.append(_pair(img, lab, stem, dataset, labels))
    elif dataset in ("gta5", "synthia"):
        img_dir = _require_dir(root / ("images" if dataset == "gta5" else "RGB"), f"{dataset} image")
        lab_dir = root / "labels" if dataset == "gta5" else root / "GT" / "LABELS"
        if labels:
            _require_dir(lab_dir, f"{dataset} label")
        names = _read_list(root, split, dataset)
        if names is None:
            images = sorted(img_dir.glob("*.png"))
        else:
            images = []
            for n in names:
                img = img_dir / f"{n}.png"
                if not img.is_file():
                    raise DrivingDataError(f"{img}: listed in split {split!r} but not found")
                images.append(img)
        out = [_pair(img, lab_dir / img.name, img.stem, dataset, labels) for img in images]
    elif dataset == "bdd100k":
        img_dir = _require_dir(root / "images" / "10k" / split, "BDD100K images/10k/<split>")
        lab_dir = root / "labels" / "sem_seg" / "masks" / split
        if labels:
            _require_dir(lab_dir, "BDD100K labels/sem_seg/masks/<split>")
        out = [_pair(img, lab_dir / f"{img.stem}.png", img.stem, dataset, labels) for img in sorted(img_dir.glob("*.jpg"))]
    else:  # mapillary
        split = _MAPILLARY_ALIASES.get(split, split)
        img_dir = _require_dir(root / split / "images", "Mapillary <split>/images")
        lab_dir = root / split / "labels"
        if not lab_dir.is_dir() and (root / split / "v1.2" / "labels").is_dir():
            lab_dir = root / split / "v1.2" / "labels"
        if labels:
            _require_dir(lab_dir, "Mapillary <split>/labels")
        out = [_pair(img, lab_dir / f"{img.stem}.png", img.stem, dataset, labels) for img in sorted(img_dir.glob("*.jpg"))]
    if not out:
        raise DrivingDataError(f"{root}: no {dataset} images found for split {split!r}")
    return out


# ---------------------------------------------------------------------------------------- transforms
class DrivingTransform:
    """An albumentations pipeline on ``(RGB uint8 image, uint8 mask)`` with a seedable random state.

    ``set_random_state(seed=...)`` re-seeds the pipeline (albumentations 2 keeps its own RNG, not the
    global ones), so :class:`~medrobust.train.loop.SeededDataset` makes each item reproducible.
    """

    def __init__(self, transforms: Sequence[Any]) -> None:
        import albumentations as A

        self.compose = A.Compose(list(transforms), seed=0)

    def set_random_state(self, seed: int | None = None, state: Any = None) -> DrivingTransform:
        self.compose.set_random_seed(int(seed) if seed is not None else None)
        return self

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self.compose(image=image, mask=mask)
        return out["image"], out["mask"]

    def __repr__(self) -> str:
        return f"DrivingTransform({[type(t).__name__ for t in self.compose.transforms]})"


def driving_transforms(
    *,
    train: bool,
    crop_size: tuple[int, int] = (512, 512),
    scale: tuple[float, float] = (0.5, 2.0),
    hflip: bool = True,
    resize: tuple[int, int] | None = None,
) -> DrivingTransform | None:
    """The CPU-side pipeline: optional resize to ``resize = (H, W)``; for training also random scale in
    ``scale``, pad to ``crop_size`` (image 0, mask 255), random crop ``crop_size = (H, W)`` and a
    horizontal flip with p = 0.5. Evaluation: the resize only (None when there is nothing to do)."""
    import albumentations as A
    import cv2

    ops: list[Any] = []
    if resize is not None:
        ops.append(A.Resize(int(resize[0]), int(resize[1]), interpolation=cv2.INTER_LINEAR,
                            mask_interpolation=cv2.INTER_NEAREST))
    if train:
        lo, hi = float(scale[0]), float(scale[1])
        if not 0 < lo <= hi:
            raise ValueError(f"scale: expected 0 < low <= high, got {scale}")
        ch, cw = int(crop_size[0]), int(crop_size[1])
        if (lo, hi) != (1.0, 1.0):
            ops.append(A.RandomScale(scale_limit=(lo - 1.0, hi - 1.0), interpolation=cv2.INTER_LINEAR,
                                     mask_interpolation=cv2.INTER_NEAREST, p=1.0))
        ops.append(A.PadIfNeeded(min_height=ch, min_width=cw, border_mode=cv2.BORDER_CONSTANT, fill=0,
                                 fill_mask=IGNORE_INDEX))
        ops.append(A.RandomCrop(ch, cw))
        if hflip:
            ops.append(A.HorizontalFlip(p=0.5))
    return DrivingTransform(ops) if ops else None


# ------------------------------------------------------------------------------------------ datasets
class DrivingDataset:
    """Torch dataset over one layout: ``{"image": float32 (3, H, W) in [0, 1], "label": int64 (1, H, W),
    "name": str}`` (labels in train IDs, 255 = ignore).

    Args:
        root: dataset root in its public layout.
        split: split name (None: the validation split), see :func:`list_samples`.
        transform: a :class:`DrivingTransform` (or any ``(image, mask) -> (image, mask)`` callable).
        dataset: one of :data:`DATASETS` (the subclasses fix it: ``CityscapesDataset(root, "val")``).
        samples: use these pairs instead of listing ``root``.
    """

    dataset_name: str | None = None

    def __init__(
        self,
        root: PathLike | None,
        split: str | None = None,
        transform: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
        *,
        dataset: str | None = None,
        samples: Sequence[Sample] | None = None,
    ) -> None:
        if dataset is not None and self.dataset_name is not None and dataset != self.dataset_name:
            raise DrivingDataError(f"{type(self).__name__} reads {self.dataset_name!r}, not {dataset!r}")
        dataset = dataset or self.dataset_name
        if dataset not in DATASETS:
            raise DrivingDataError(f"unknown dataset {dataset!r}; choose one of {list(DATASETS)}")
        self.dataset = dataset
        self.root = Path(root) if root is not None else None
        if samples is None:
            if root is None:
                raise DrivingDataError("DrivingDataset: give a root or samples")
            samples = list_samples(root, dataset, split)
        self.samples = list(samples)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The untransformed ``(RGB uint8, train ids uint8)`` pair of item ``index``."""
        image, ids = load_sample(self.samples[index])
        if ids is None:
            ids = np.full(image.shape[:2], IGNORE_INDEX, dtype=np.uint8)
        return image, ids

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        image, ids = self.load(index)
        if self.transform is not None:
            image, ids = self.transform(image, ids)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0),
            "label": torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))[None],
            "name": self.samples[index].name,
        }


class CityscapesDataset(DrivingDataset):
    dataset_name = "cityscapes"


class GTA5Dataset(DrivingDataset):
    dataset_name = "gta5"


class BDD100KDataset(DrivingDataset):
    dataset_name = "bdd100k"


class MapillaryDataset(DrivingDataset):
    dataset_name = "mapillary"


class SynthiaDataset(DrivingDataset):
    dataset_name = "synthia"


_DATASET_CLASSES = {
    "cityscapes": CityscapesDataset, "gta5": GTA5Dataset, "bdd100k": BDD100KDataset,
    "mapillary": MapillaryDataset, "synthia": SynthiaDataset,
}


def make_dataset(dataset: str, root: PathLike, split: str | None = None, transform: Any = None) -> DrivingDataset:
    """The torch dataset for ``dataset``'s layout under ``root``."""
    if dataset not in _DATASET_CLASSES:
        raise DrivingDataError(f"unknown dataset {dataset!r}; choose one of {list(DATASETS)}")
    return _DATASET_CLASSES[dataset](root, split=split, transform=transform)
