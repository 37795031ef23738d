"""Readers for CIFAR-10/100 and CIFAR-10-C/100-C exactly as shipped, and in-memory image datasets.

Layouts (the public releases)::

    cifar-10-batches-py/data_batch_1 .. data_batch_5, test_batch, batches.meta
        each batch: pickle {data: (N, 3072) uint8, labels: list[int] (N)}; a row is the R, G, B
        planes of a 32x32 image, each plane row-major; batches.meta: {label_names: [...]}
    cifar-100-python/train, test, meta
        train/test: pickle {data: (N, 3072) uint8, fine_labels, coarse_labels}; meta:
        {fine_label_names, coarse_label_names}
    CIFAR-10-C/<corruption>.npy   uint8 (5·N, 32, 32, 3): severities 1..5 in blocks of N (N = 10000)
    CIFAR-10-C/labels.npy         (5·N,) the test labels repeated once per severity block

``ROOT`` may be the folder holding ``cifar-10-batches-py`` / ``cifar-100-python`` or that folder
itself. The pickles were written by Python 2 (bytes keys); they are read with a restricted
unpickler that only rebuilds NumPy arrays, lists, numbers and strings, so a tampered file cannot
run code. Every check names the file and what was expected.

Images are returned as ``(N, 32, 32, 3)`` uint8 (HWC, like the ``-C`` files); the datasets below
turn them into ``(3, H, W)`` float tensors in [0, 1].
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "CifarSplit",
    "read_cifar10",
    "read_cifar100",
    "read_cifar",
    "cifar_dir",
    "read_cifar_c",
    "cifar_c_corruptions",
    "ImageArrayDataset",
    "to_chw_float",
    "random_crop_flip",
    "CIFAR10_TRAIN_FILES",
    "CIFAR_C_SEVERITY_BLOCK",
]

CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_DIR = "cifar-10-batches-py"
CIFAR100_DIR = "cifar-100-python"
#: images per severity block in the public CIFAR-10-C / CIFAR-100-C files
CIFAR_C_SEVERITY_BLOCK = 10000


@dataclass
class CifarSplit:
    """One split: ``images`` (N, 32, 32, 3) uint8, ``labels`` (N,) int64, ``classes`` names."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return len(self.labels)


# ------------------------------------------------------------------------------------- safe pickle
class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds NumPy arrays/dtypes (and the codec helper Python 3 uses for bytes)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
        ("codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only NumPy arrays are allowed)")


def _load_pickle(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found (expected the CIFAR python release layout)")
    try:
        with open(path, "rb") as f:
            obj = _ArrayUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"{path}: not a readable CIFAR pickle ({err})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def _names(values: Any, path: Path, key: str) -> list[str]:
    if not isinstance(values, (list, tuple)):
        raise ValueError(f"{path}: '{key}' must be a list of class names")
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def _batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``(images (N, 32, 32, 3) uint8, labels (N,) int64)`` from one pickled batch."""
    d = _load_pickle(path)
    for key in ("data", label_key):
        if key not in d:
            raise ValueError(f"{path}: missing key '{key}' (found {sorted(d)})")
    data = d["data"]
    if not isinstance(data, np.ndarray):
        raise ValueError(f"{path}: 'data' must be a NumPy array, got {type(data).__name__}")
    if data.dtype != np.uint8:
        raise ValueError(f"{path}: 'data' must be uint8, got {data.dtype}")
    if data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{path}: 'data' must have shape (N, 3072) (3 planes of 32x32), got {data.shape}")
    labels = np.asarray(d[label_key])
    if labels.ndim != 1 or len(labels) != len(data):
        raise ValueError(f"{path}: '{label_key}' has {labels.size} entries for {len(data)} images")
    if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{path}: '{label_key}' must be integers in [0, {num_classes}), got range "
                         f"[{labels.min()}, {labels.max()}] ({labels.dtype})")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # planes -> HWC
    return np.ascontiguousarray(images), labels.astype(np.int64)


def cifar_dir(root: str | os.PathLike[str], which: str = "cifar10") -> Path:
    """The folder holding the batches: ``ROOT/cifar-10-batches-py`` (``cifar-100-python``) or ROOT."""
    root = Path(root)
    sub = CIFAR10_DIR if which == "cifar10" else CIFAR100_DIR
    marker = "batches.meta" if which == "cifar10" else "meta"
    if (root / sub).is_dir():
        return root / sub
    if (root / marker).is_file() or (root / ("test_batch" if which == "cifar10" else "test")).is_file():
        return root
    if not root.exists():
        raise FileNotFoundError(f"{root}: CIFAR root does not exist")
    raise FileNotFoundError(f"{root}: no {sub}/ folder and no {marker} file here; expected the python release of {which}")


def read_cifar10(root: str | os.PathLike[str], split: str = "train") -> CifarSplit:
    """CIFAR-10 ``train`` (data_batch_1..5, 50000 images) or ``test`` (test_batch, 10000)."""
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    base = cifar_dir(root, "cifar10")
    meta = base / "batches.meta"
    classes = _names(_load_pickle(meta).get("label_names"), meta, "label_names") if meta.is_file() else [str(i) for i in range(10)]
    if len(classes) != 10:
        raise ValueError(f"{meta}: expected 10 label_names, got {len(classes)}")
    files = CIFAR10_TRAIN_FILES if split == "train" else ("test_batch",)
    parts = [_batch(base / f, "labels", 10) for f in files]
    return CifarSplit(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), classes)


def read_cifar100(root: str | os.PathLike[str], split: str = "train", label: str = "fine") -> CifarSplit:
    """CIFAR-100 ``train``/``test`` with ``fine`` (100) or ``coarse`` (20) labels."""
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    if label not in ("fine", "coarse"):
        raise ValueError(f"label: expected 'fine' or 'coarse', got {label!r}")
    base = cifar_dir(root, "cifar100")
    n_classes = 100 if label == "fine" else 20
    meta = base / "meta"
    if meta.is_file():
        classes = _names(_load_pickle(meta).get(f"{label}_label_names"), meta, f"{label}_label_names")
        if len(classes) != n_classes:
            raise ValueError(f"{meta}: expected {n_classes} {label}_label_names, got {len(classes)}")
    else:
        classes = [str(i) for i in range(n_classes)]
    images, labels = _batch(base / split, f"{label}_labels", n_classes)
    return CifarSplit(images, labels, classes)


def read_cifar(root: str | os.PathLike[str], dataset: str, split: str, label: str = "fine") -> CifarSplit:
    """``dataset`` in ``cifar10`` / ``cifar100``."""
    if dataset == "cifar10":
        return read_cifar10(root, split)
    if dataset == "cifar100":
        return read_cifar100(root, split, label)
    raise ValueError(f"dataset: expected 'cifar10' or 'cifar100', got {dataset!r}")


# ------------------------------------------------------------------------------------------ -C sets
def cifar_c_corruptions(root: str | os.PathLike[str]) -> list[str]:
    """Corruption names with a ``<name>.npy`` file under ``root`` (``labels.npy`` excluded), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: CIFAR-C folder does not exist")
    return sorted(p.stem for p in root.glob("*.npy") if p.stem != "labels")


def read_cifar_c(
    root: str | os.PathLike[str],
    corruption: str,
    severity: int | None = None,
    *,
    mmap: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one CIFAR-10-C / CIFAR-100-C corruption.

    Args:
        root: folder with ``<corruption>.npy`` and ``labels.npy``.
        corruption: e.g. ``"gaussian_noise"``.
        severity: 1..5 for one block of ``N = len / 5`` images, or None for all five blocks.
        mmap: memory-map the file (only the requested block is read).
    Returns:
        ``(images (M, 32, 32, 3) uint8, labels (M,) int64)``.
    """
    root = Path(root)
    path, lpath = root / f"{corruption}.npy", root / "labels.npy"
    for p in (path, lpath):
        if not p.is_file():
            avail = cifar_c_corruptions(root) if root.is_dir() else []
            hint = f"; available corruptions: {avail}" if p is path and avail else ""
            raise FileNotFoundError(f"{p}: file not found{hint}")
    try:
        images = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        labels = np.load(lpath, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as err:
        raise ValueError(f"{path}: not a readable .npy array ({err})") from None
    if images.dtype != np.uint8:
        raise ValueError(f"{path}: expected uint8 images, got {images.dtype}")
    if images.ndim != 4 or images.shape[3] != 3 or images.shape[0] % 5:
        raise ValueError(f"{path}: expected shape (5*N, H, W, 3) (5 severity blocks, HWC), got {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"{lpath}: {labels.shape} labels for {len(images)} images in {path.name}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{lpath}: expected integer labels, got {labels.dtype}")
    n = len(images) // 5
    if severity is None:
        return np.asarray(images), np.asarray(labels).astype(np.int64)
    if isinstance(severity, bool) or int(severity) != severity or not 1 <= int(severity) <= 5:
        raise ValueError(f"severity: expected an int in 1..5, got {severity!r}")
    block = slice((int(severity) - 1) * n, int(severity) * n)
    return np.ascontiguousarray(images[block]), np.asarray(labels[block]).astype(np.int64)


# ----------------------------------------------------------------------------------------- datasets
def to_chw_float(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 ``(H, W, C)`` or ``(N, H, W, C)`` -> float32 ``(C, H, W)`` / ``(N, C, H, W)`` in [0, 1]."""
    t = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    if t.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {t.dtype}")
    perm = (2, 0, 1) if t.ndim == 3 else (0, 3, 1, 2)
    return t.permute(*perm).float().div_(255.0).contiguous()


def random_crop_flip(x: torch.Tensor, *, pad: int = 4, flip: bool = True, crop: bool = True) -> torch.Tensor:
    """The standard CIFAR training transform on one ``(C, H, W)`` image: zero-pad ``pad`` pixels,
    random crop back to ``H x W``, random horizontal flip. Uses torch's global RNG (seeded per item
    by :class:`~medrobust.train.loop.SeededDataset`)."""
    if crop and pad > 0:
        h, w = x.shape[-2:]
        xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        i, j = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,)))
        x = xp[..., i : i + h, j : j + w]
    if flip and bool(torch.rand(()) < 0.5):
        x = x.flip(-1)
    return x.contiguous()


class ImageArrayDataset(Dataset):
    """In-memory images ``(N, H, W, C)`` uint8 + labels -> ``{"image": (C, H, W) float, "label": int64}``.

    ``transform`` (optional) maps the float image tensor to another (CPU-side, per item).
    """

    def __init__(self, images: np.ndarray, labels: Sequence[int] | np.ndarray,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        images = np.asarray(images)
        labels = np.asarray(labels, dtype=np.int64)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(f"images: expected uint8 (N, H, W, C), got {images.dtype} {images.shape}")
        if len(labels) != len(images):
            raise ValueError(f"labels: {len(labels)} labels for {len(images)} images")
        self.images = images
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = to_chw_float(self.images[index])
        if self.transform is not None:
            image = self.transform(image)
        return {"image": image, "label": torch.tensor(int(self.labels[index]), dtype=torch.int64)}
