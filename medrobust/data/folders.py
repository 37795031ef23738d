"""Image-folder readers: class folders, domain folders (PACS) and ImageNet-C-style corruption folders.

Layouts::

    ROOT/<class>/<image>                              a class-folder set (ImageNet val style)
    ROOT/<domain>/<class>/<image>                     domains (PACS: art_painting, cartoon, photo, sketch)
    ROOT/<corruption>/<severity>/<class>/<image>      ImageNet-C style (severity 1..5)

Images are ``.png .jpg .jpeg .bmp .gif .tif .tiff .webp`` (any case); hidden files and folders
(``.DS_Store``, ``.complete``) are ignored. Classes are the sorted folder names and their index is
the position in that list, so every reader of one dataset agrees on the labels. Every error names
the folder or file and what was expected.

:func:`leave_one_domain_out` implements the PACS protocol: train (and validate) on the source
domains, test on the held-out target domain(s). Sources are split per domain and per class with a
seeded permutation, so the split does not depend on the file system's listing order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "IMAGE_EXTENSIONS",
    "Record",
    "DomainSplit",
    "list_images",
    "scan_class_folders",
    "scan_domains",
    "scan_corruption_folders",
    "leave_one_domain_out",
    "split_records",
    "read_image",
    "FolderDataset",
    "load_images",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class Record:
    """One labelled image file (``domain`` is ``""`` outside domain sets)."""

    path: Path
    label: int
    domain: str = ""


@dataclass
class DomainSplit:
    """Records of a leave-one-domain-out split; ``targets`` maps each held-out domain to its records."""

    classes: list[str]
    train: list[Record]
    val: list[Record]
    test: list[Record]
    targets: dict[str, list[Record]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)


def _visible_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (sorted by name)."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)


def scan_class_folders(
    root: str | os.PathLike[str], classes: Sequence[str] | None = None, *, domain: str = "", allow_missing: bool = False
) -> tuple[list[Record], list[str]]:
    """Records of ``root/<class>/<image>``.

    Args:
        classes: the class list to index against (e.g. from the training set); a class folder not in
            it is an error. None: the sorted folder names.
        allow_missing: accept ``classes`` with no folder under ``root`` (otherwise an error).
    Returns:
        ``(records, classes)``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: folder does not exist (expected {root}/<class>/<image>)")
    folders = _visible_dirs(root)
    if not folders:
        raise FileNotFoundError(f"{root}: no class folders (expected {root}/<class>/<image>)")
    names = [f.name for f in folders]
    if classes is None:
        classes = names
    classes = list(classes)
    index = {c: i for i, c in enumerate(classes)}
    unknown = [n for n in names if n not in index]
    if unknown:
        raise ValueError(f"{root}: class folder(s) {unknown} are not among the expected classes {classes}")
    missing = [c for c in classes if c not in names]
    if missing and not allow_missing:
        raise ValueError(f"{root}: missing class folder(s) {missing} (expected {classes})")
    records: list[Record] = []
    for folder in folders:
        images = list_images(folder)
        if not images:
            raise ValueError(f"{folder}: class folder has no images with extensions {IMAGE_EXTENSIONS}")
        records += [Record(p, index[folder.name], domain) for p in images]
    return records, classes


def scan_domains(
    root: str | os.PathLike[str], domains: Sequence[str] | None = None
) -> tuple[dict[str, list[Record]], list[str]]:
    """Records of ``root/<domain>/<class>/<image>`` per domain, with one shared class list.

    Every domain must hold the same class folders (a differing set is reported with its domain).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: folder does not exist (expected {root}/<domain>/<class>/<image>)")
    found = [d.name for d in _visible_dirs(root)]
    if not found:
        raise FileNotFoundError(f"{root}: no domain folders (expected {root}/<domain>/<class>/<image>)")
    wanted = list(domains) if domains is not None else found
    missing = [d for d in wanted if d not in found]
    if missing:
        raise FileNotFoundError(f"{root}: domain folder(s) {missing} not found; available domains: {found}")
    classes: list[str] | None = None
    out: dict[str, list[Record]] = {}
    for d in wanted:
        names = [p.name for p in _visible_dirs(root / d)]
        if classes is None:
            classes = names
        elif names != classes:
            extra, lacking = sorted(set(names) - set(classes)), sorted(set(classes) - set(names))
            raise ValueError(f"{root / d}: class folders differ from domain {wanted[0]!r} "
                             f"(extra {extra}, missing {lacking})")
        out[d], _ = scan_class_folders(root / d, classes, domain=d)
    return out, list(classes or [])


def scan_corruption_folders(
    root: str | os.PathLike[str],
    classes: Sequence[str],
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
) -> dict[tuple[str, int], list[Record]]:
    """Records of ImageNet-C-style ``root/<corruption>/<severity>/<class>/<image>``.

    Returns ``{(corruption, severity): records}`` for every requested pair (missing ones are errors).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: folder does not exist (expected {root}/<corruption>/<severity>/<class>/<image>)")
    names = list(corruptions) if corruptions is not None else [d.name for d in _visible_dirs(root)]
    out: dict[tuple[str, int], list[Record]] = {}
    for c in names:
        for s in severities:
            folder = root / c / str(int(s))
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder}: missing (expected {root}/<corruption>/<severity 1..5>/<class>/<image>)")
            out[(c, int(s))], _ = scan_class_folders(folder, classes, allow_missing=True)
    return out


def split_records(records: Sequence[Record], fractions: Sequence[float], *, seed: int = 0) -> list[list[Record]]:
    """Split records into parts of the given fractions, stratified by (domain, label), seeded.

    Each stratum is permuted with ``seed`` and cut at rounded cumulative fractions; a part with a
    positive fraction gets at least one record of a stratum when the stratum has enough records.
    """
    fr = np.asarray(list(fractions), dtype=np.float64)
    if (fr < 0).any() or fr.sum() <= 0:
        raise ValueError(f"fractions: expected non-negative numbers with a positive sum, got {list(fractions)}")
    fr = fr / fr.sum()
    strata: dict[tuple[str, int], list[Record]] = {}
    for r in sorted(records, key=lambda r: (r.domain, r.label, r.path.as_posix())):
        strata.setdefault((r.domain, r.label), []).append(r)
    parts: list[list[Record]] = [[] for _ in fr]
    for k, (key, items) in enumerate(sorted(strata.items())):
        rng = np.random.default_rng([seed, k])
        order = rng.permutation(len(items))
        n = len(items)
        counts = np.floor(fr * n).astype(int)
        # give leftovers to the parts with the largest remainders, earlier parts first on ties
        for i in np.argsort(-(fr * n - counts), kind="stable")[: n - counts.sum()]:
            counts[i] += 1
        # a positive-fraction part gets one record when the stratum can spare it
        for i in range(len(fr)):
            if fr[i] > 0 and counts[i] == 0 and n >= int((fr > 0).sum()):
                j = int(np.argmax(counts))
                counts[j] -= 1
                counts[i] += 1
        start = 0
        for i, c in enumerate(counts):
            parts[i] += [items[j] for j in order[start : start + c]]
            start += c
    return parts


def leave_one_domain_out(
    domains: Mapping[str, list[Record]],
    classes: list[str],
    targets: Sequence[str],
    *,
    sources: Sequence[str] | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.0,
    seed: int = 0,
) -> DomainSplit:
    """PACS protocol: sources (default: every domain not in ``targets``) are split into
    train/val/(in-domain) test; each target domain is tested as a whole."""
    unknown = [d for d in [*targets, *(sources or [])] if d not in domains]
    if unknown:
        raise ValueError(f"domains {unknown} not found; available: {sorted(domains)}")
    src = list(sources) if sources is not None else [d for d in domains if d not in targets]
    overlap = sorted(set(src) & set(targets))
    if overlap:
        raise ValueError(f"domains {overlap} are both source and target")
    if not src:
        raise ValueError(f"no source domains left after holding out {list(targets)}")
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(f"val_fraction {val_fraction} + test_fraction {test_fraction} must be in [0, 1)")
    pool = [r for d in src for r in domains[d]]
    train, val, test = split_records(pool, (1 - val_fraction - test_fraction, val_fraction, test_fraction), seed=seed)
    return DomainSplit(classes, train, val, test, {d: list(domains[d]) for d in targets}, src)


# ------------------------------------------------------------------------------------------ reading
def read_image(path: str | os.PathLike[str], size: int | tuple[int, int] | None = None) -> np.ndarray:
    """Read an image as RGB uint8 ``(H, W, 3)``; resize (bilinear, antialiased) to ``size`` if given."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is not None:
                hw = (size, size) if isinstance(size, int) else tuple(size)
                if im.size != (hw[1], hw[0]):
                    im = im.resize((hw[1], hw[0]), Image.Resampling.BILINEAR)
            return np.asarray(im, dtype=np.uint8).copy()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: image file not found") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read image ({err})") from None


def load_images(records: Sequence[Record], size: int | tuple[int, int]) -> np.ndarray:
    """All images of ``records`` resized to ``size``: ``(N, H, W, 3)`` uint8."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    out = np.empty((len(records), hw[0], hw[1], 3), dtype=np.uint8)
    for i, r in enumerate(records):
        out[i] = read_image(r.path, hw)
    return out


class FolderDataset(Dataset):
    """Records -> ``{"image": (3, S, S) float in [0, 1], "label": int64}``.

    Args:
        size: every image is resized to ``size x size`` (bilinear).
        transform: optional CPU transform of the float tensor.
        preload: keep every image in memory once read (small sets such as the embedded digits): the
            first epoch reads from disk, later ones from memory, and a subset read at evaluation time
            only costs its own images. Otherwise each item is read from disk every time.
    """

    def __init__(self, records: Sequence[Record], size: int,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None, *, preload: bool = False) -> None:
        if not records:
            raise ValueError("FolderDataset: no images")
        self.records = list(records)
        self.size = int(size)
        self.transform = transform
        self.preload = bool(preload)
        self.labels = np.array([r.label for r in self.records], dtype=np.int64)
        self._cache: np.ndarray | None = None
        self._cached: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.records)

    def image_uint8(self, index: int) -> np.ndarray:
        """Image ``index`` as ``(S, S, 3)`` uint8 (from memory when preloaded and already read)."""
        if not self.preload:
            return read_image(self.records[index].path, self.size)
        if self._cache is None:
            self._cache = np.empty((len(self.records), self.size, self.size, 3), dtype=np.uint8)
            self._cached = np.zeros(len(self.records), dtype=bool)
        assert self._cached is not None
        if not self._cached[index]:
            self._cache[index] = read_image(self.records[index].path, self.size)
            self._cached[index] = True
        return self._cache[index]

    def __getitem__(self, index: int) -> dict[str, Any]:
        from .cifar import to_chw_float

        image = to_chw_float(self.image_uint8(index))
        if self.transform is not None:
            image = self.transform(image)
        return {"image": image, "label": torch.tensor(int(self.labels[index]), dtype=torch.int64)}
