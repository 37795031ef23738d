"""Readers of the test sets a corruption-robustness benchmark runs on (``medrobust benchmark``).

Sources (each yields ``{"image": uint8 (3, H, W), "label": int64, "key": str}`` items):

* an **image folder in ImageNet-val layout**, ``ROOT/<class>/<image>`` (``*.JPEG`` and the other
  :data:`~medrobust.data.folders.IMAGE_EXTENSIONS`), or the flat ``ROOT/`` (or ``ROOT/val/``) of the
  official release plus a labels file (:func:`read_val_labels`). Images are resized (shorter side
  ``resize``, bilinear, PIL) and centre-cropped to ``crop`` (256 / 224, as ImageNet-C was made:
  ``Resize(256), CenterCrop(224)`` before corrupting); the benchmark corrupts the crops on the fly;
* **published -C folders**, ``ROOT/<corruption>/<severity>/<class>/<image>`` (ImageNet-C, -C̄,
  3DCC), read through :func:`~medrobust.data.folders.scan_corruption_folders`, centre-cropped to
  ``crop`` (Hendrycks' ``test.py``: ``CenterCrop(224)`` only);
* **CIFAR-10/100-C** ``<corruption>.npy`` + ``labels.npy`` (:func:`~medrobust.data.cifar.read_cifar_c`),
  with the clean CIFAR test batch from the python release when given.

The ``key`` of an item is its path relative to the set's root (``<class>/<file>``; the index for
arrays): the key of a clean image and of its corrupted copies is the same, and it seeds the
image's on-the-fly corruption, so results do not depend on the batch size or the number of processes.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .folders import (
    IMAGE_EXTENSIONS,
    Record,
    list_images,
    scan_class_folders,
    scan_corruption_folders,
)

__all__ = [
    "read_val_labels",
    "scan_imagenet_val",
    "resize_center_crop",
    "CropDataset",
    "ArrayDataset",
    "BenchmarkSource",
    "open_source",
    "LABEL_FILES",
]

#: labels files looked for next to a flat ``val/`` folder, in this order
LABEL_FILES = ("LOC_val_solution.csv", "val.txt", "labels.txt", "val_labels.txt")


def read_val_labels(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{file name: class}`` of a flat validation folder.

    Formats: Kaggle's ``LOC_val_solution.csv`` (``ImageId,PredictionString`` with the synset first,
    e.g. ``ILSVRC2012_val_00000001,n01751748 43 11 ...``), or a text file with one ``<file> <class>``
    per line (Caffe's ``val.txt``: the class an integer index, or a synset / folder name). Keys are
    file names with and without their extension.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: labels file not found")
    out: dict[str, str] = {}
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if lines and lines[0].replace(" ", "").lower().startswith("imageid,predictionstring"):
        for row in csv.reader(lines[1:]):
            if len(row) < 2 or not row[1].split():
                raise ValueError(f"{path}: cannot read row {row!r} (expected ImageId,PredictionString)")
            out[row[0]] = row[1].split()[0]
    else:
        for k, ln in enumerate(lines, start=1):
            parts = ln.replace(",", " ").split()
            if len(parts) != 2:
                raise ValueError(f"{path}: line {k} {ln!r}: expected '<file> <class>'")
            out[parts[0]] = parts[1]
    for name in list(out):
        out.setdefault(Path(name).stem, out[name])
    if not out:
        raise ValueError(f"{path}: no labels")
    return out


def _class_order(names: Sequence[str]) -> list[str]:
    uniq = sorted(set(names))
    return sorted(uniq, key=int) if all(n.isdigit() for n in uniq) else uniq


def scan_imagenet_val(
    root: str | os.PathLike[str], labels: str | os.PathLike[str] | None = None, classes: Sequence[str] | None = None
) -> tuple[list[Record], list[str]]:
    """Records of ``root/<class>/<image>``, or of a flat folder (``root`` or ``root/val``) with a
    labels file (``labels``, else one of :data:`LABEL_FILES` next to the images or in ``root``).

    Returns ``(records, classes)``; classes are sorted (integer labels numerically, so index ``i`` is
    class ``i``)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: folder does not exist (expected {root}/<class>/<image> or a flat val/ folder)")
    flat = root / "val" if (root / "val").is_dir() and not list_images(root) else root
    if labels is None and any(p.is_dir() and not p.name.startswith(".") for p in flat.iterdir()) and not list_images(flat):
        return scan_class_folders(flat, classes)
    images = list_images(flat)
    if not images:
        raise FileNotFoundError(f"{flat}: no class folders and no images (expected {root}/<class>/<image> or a flat "
                                f"val/ folder with a labels file)")
    if labels is None:
        found = [d / n for n in LABEL_FILES for d in (flat, root) if (d / n).is_file()]
        if not found:
            raise FileNotFoundError(f"{flat}: flat image folder without a labels file; pass --labels FILE "
                                    f"(or put one of {list(LABEL_FILES)} next to the images)")
        labels = found[0]
    table = read_val_labels(labels)
    missing = [p.name for p in images if p.name not in table and p.stem not in table]
    if missing:
        raise ValueError(f"{labels}: no label for {len(missing)} image(s) of {flat}, e.g. {missing[:3]}")
    names = [table.get(p.name, table.get(p.stem, "")) for p in images]
    classes = list(classes) if classes is not None else _class_order(names)
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise ValueError(f"{labels}: class(es) {unknown[:5]} are not among the expected classes")
    return [Record(p, index[n]) for p, n in zip(images, names)], classes


def resize_center_crop(img: Any, resize: int | None, crop: int) -> np.ndarray:
    """A PIL image -> RGB uint8 ``(crop, crop, 3)``: shorter side to ``resize`` (bilinear; None: no
    resize unless the image is smaller than ``crop``), then the centre ``crop x crop`` (torchvision's
    ``Resize`` + ``CenterCrop`` arithmetic)."""
    from PIL import Image

    img = img.convert("RGB")
    w, h = img.size
    target = resize if resize is not None else (crop if min(w, h) < crop else None)
    if target is not None and min(w, h) != target:
        if w <= h:
            nw, nh = target, int(target * h / w)
        else:
            nw, nh = int(target * w / h), target
        img = img.resize((nw, nh), Image.Resampling.BILINEAR)
        w, h = nw, nh
    top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
    img = img.crop((left, top, left + crop, top + crop))
    return np.asarray(img, dtype=np.uint8).copy()


class CropDataset(Dataset):
    """Image records -> ``{"image": uint8 (3, crop, crop), "label": int64, "key": str}``.

    ``root``: keys are the paths relative to it (posix); ``resize``: None for sets that are already
    at their size (published -C images: centre crop only)."""

    def __init__(self, records: Sequence[Record], root: str | os.PathLike[str], *, resize: int | None, crop: int) -> None:
        self.records = list(records)
        self.root = Path(root)
        self.resize = resize
        self.crop = int(crop)
        self.labels = np.array([r.label for r in self.records], dtype=np.int64)
        self.keys = [r.path.relative_to(self.root).as_posix() for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from PIL import Image, UnidentifiedImageError

        path = self.records[index].path
        try:
            with Image.open(path) as im:
                arr = resize_center_crop(im, self.resize, self.crop)
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: image file not found") from None
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise ValueError(f"{path}: cannot read image ({err})") from None
        return {"image": torch.from_numpy(arr).permute(2, 0, 1).contiguous(),
                "label": torch.tensor(int(self.labels[index])), "key": self.keys[index]}


class ArrayDataset(Dataset):
    """uint8 ``(N, H, W, 3)`` images and labels -> the same items as :class:`CropDataset` (key: index)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        img = torch.from_numpy(np.ascontiguousarray(self.images[index])).permute(2, 0, 1).contiguous()
        return {"image": img, "label": torch.tensor(int(self.labels[index])), "key": str(index)}


@dataclass
class BenchmarkSource:
    """A benchmark's test data: ``kind`` ``folder`` (clean images, corrupted on the fly), ``c_folders``
    or ``cifar_c`` (corrupted copies read from disk).

    ``clean``: the clean set (None when not given for a -C source); ``cells``: ``{(corruption,
    severity): Dataset}`` for the read-from-disk kinds; ``size``: the image side."""

    kind: str
    root: Path
    classes: list[str]
    size: int
    clean: Dataset | None = None
    cells: dict[tuple[str, int], Any] = field(default_factory=dict)
    describe: dict[str, Any] = field(default_factory=dict)

    @property
    def on_the_fly(self) -> bool:
        return self.kind == "folder"

    def corruptions(self) -> list[str]:
        return list(dict.fromkeys(c for c, _ in self.cells))

    def dataset(self, corruption: str, severity: int) -> Any:
        """The dataset of one cell (``clean`` for corruption ``"clean"``); the clean one for a folder source."""
        if corruption == "clean":
            if self.clean is None:
                raise ValueError(f"{self.root}: no clean test set for this -C source (pass --clean DIR)")
            return self.clean
        if self.on_the_fly:
            return self.clean
        if (corruption, severity) not in self.cells:
            raise FileNotFoundError(f"{self.root}: no {corruption} severity {severity} in this -C set")
        return self.cells[(corruption, severity)]


def _is_c_folder(root: Path) -> bool:
    from ..augment.corruptions.natural import NAMES

    subs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return bool(subs) and any(p.name in NAMES or (p / "1").is_dir() for p in subs) and all(
        any(q.is_dir() and q.name.isdigit() for q in p.iterdir()) for p in subs)


def _check_classes(root: Path, classes: list[str], ref: list[str], ref_root: Path) -> None:
    if classes != ref:
        extra, lacking = sorted(set(classes) - set(ref)), sorted(set(ref) - set(classes))
        raise ValueError(f"{root}: class folders differ from {ref_root} (extra {extra[:5]}, missing {lacking[:5]})")


def open_source(
    data: str | os.PathLike[str],
    *,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    labels: str | os.PathLike[str] | None = None,
    clean: str | os.PathLike[str] | None = None,
    resize: int | None = 256,
    crop: int = 224,
    max_images: int | None = None,
    seed: int = 0,
    missing_ok: bool = False,
) -> BenchmarkSource:
    """Open ``data`` as a benchmark source, the kind detected from the layout.

    Args:
        corruptions: the corruptions wanted (a -C source must have every one; None: all it has).
        severities: the severities wanted (a -C source must have every one of every corruption).
        labels: labels file of a flat ``val/`` folder.
        clean: the clean set of a -C source: an image folder (ImageNet layout) or, for CIFAR-C, the
            CIFAR python release (``test_batch`` / ``test``).
        resize, crop: the clean images' preprocessing (see the module doc); -C images are only cropped.
        max_images: evaluate a seeded random subset of this many images (the same in every cell).
        missing_ok: a -C source keeps the requested corruptions it has (all it has when it has none
            of them: -C-bar, 3DCC) instead of failing on the missing ones.
    """
    root = Path(data)
    if not root.is_dir():
        raise FileNotFoundError(f"--data {root}: folder does not exist")
    sevs = [int(s) for s in severities]

    def subset(n: int) -> np.ndarray:
        if max_images is None or n <= max_images:
            return np.arange(n)
        return np.sort(np.random.default_rng([seed, 5]).permutation(n)[:max_images])

    if list(root.glob("*.npy")):
        from .cifar import cifar_c_corruptions, read_cifar, read_cifar_c

        have = cifar_c_corruptions(root)
        names = list(corruptions) if corruptions is not None else have
        if missing_ok:
            names = [c for c in names if c in have] or have
        cells: dict[tuple[str, int], Any] = {}
        classes: list[str] | None = None
        for c in names:
            for s in sevs:
                x, y = read_cifar_c(root, c, s)
                keep = subset(len(x))
                cells[(c, s)] = ArrayDataset(x[keep], y[keep])
                classes = classes or [str(i) for i in range(int(y.max()) + 1)]
        clean_set = None
        if clean is not None:
            cpath = Path(clean)
            dataset = "cifar100" if (cpath / "test").is_file() or (cpath / "cifar-100-python").is_dir() else "cifar10"
            split = read_cifar(cpath, dataset, "test")
            keep = subset(len(split.images))
            clean_set = ArrayDataset(split.images[keep], split.labels[keep])
            classes = list(split.classes)
        first = next(iter(cells.values()), None)
        size = int(first.images.shape[1]) if first is not None else 32
        return BenchmarkSource("cifar_c", root, classes or [], size, clean_set, cells,
                               {"kind": "cifar_c", "root": str(root), "clean": str(clean) if clean else None})

    clean_set = None
    classes_ref: list[str] | None = None
    clean_root: Path | None = None
    if clean is not None or not _is_c_folder(root):
        clean_root = Path(clean) if clean is not None else root
        records, classes_ref = scan_imagenet_val(clean_root, labels)
        keep = subset(len(records))
        flat = records[0].path.parent in (clean_root, clean_root / "val")
        base = records[0].path.parent if flat else records[0].path.parent.parent
        clean_set = CropDataset([records[i] for i in keep], base, resize=resize, crop=crop)
        if clean is None:
            return BenchmarkSource("folder", root, classes_ref, crop, clean_set, {},
                                   {"kind": "folder", "root": str(root), "images": len(clean_set), "resize": resize,
                                    "crop": crop, "labels": str(labels) if labels else None})
    from ..augment.corruptions.natural import NAMES

    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    ordered = [c for c in NAMES if c in found] + [c for c in found if c not in NAMES]
    names = list(corruptions) if corruptions is not None else ordered
    if missing_ok:
        names = [c for c in names if c in found] or ordered
    missing = [c for c in names if c not in found]
    if missing:
        raise FileNotFoundError(f"{root}: corruption folder(s) {missing} missing (found {found})")
    cells = {}
    ref_root = clean_root
    for c in names:
        first_sev = root / c / str(sevs[0])
        if not first_sev.is_dir():
            raise FileNotFoundError(f"{first_sev}: missing (expected {root}/<corruption>/<severity 1..5>/<class>/<image>)")
        cls = sorted(p.name for p in first_sev.iterdir() if p.is_dir() and not p.name.startswith("."))
        if classes_ref is None:
            classes_ref, ref_root = cls, first_sev
        assert ref_root is not None
        for s in sevs:
            folder = root / c / str(s)
            if folder.is_dir():
                here = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
                _check_classes(folder, here, classes_ref, ref_root)
        recs = scan_corruption_folders(root, classes_ref, [c], sevs)
        for (cc, s), r in recs.items():
            if not r:
                raise ValueError(f"{root / cc / str(s)}: no images")
            keep = subset(len(r))
            cells[(cc, s)] = CropDataset([r[i] for i in keep], root / cc / str(s), resize=None, crop=crop)
    if clean_set is not None and cells:
        first = next(iter(cells.values()))
        if len(first) != len(clean_set):
            raise ValueError(f"{root / names[0] / str(sevs[0])}: {len(first)} images but the clean set {clean_root} has "
                             f"{len(clean_set)}")
    return BenchmarkSource("c_folders", root, classes_ref or [], crop, clean_set, cells,
                           {"kind": "c_folders", "root": str(root), "clean": str(clean) if clean else None, "crop": crop})


__all__ += ["IMAGE_EXTENSIONS"]
