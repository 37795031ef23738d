"""Any folder of NIfTI volumes (``.nii`` / ``.nii.gz``): find images by glob, pair labels by name.

Used by ``medrobust corrupt --task nifti`` (:func:`medrobust.corrupt.nifti.corrupt_nifti`) and by the
cardiac evaluation when it reads such a corrupted set back. Public sets each name their labels their
own way (ACDC ``patient001_frame01_gt.nii.gz``, M&Ms ``A0S9V9_sa_gt.nii.gz``, BraTS
``BraTS_001_seg.nii.gz`` beside ``BraTS_001_t1.nii.gz``), so pairing is by a *key* computed from each
file's name with one regular expression (:data:`DEFAULT_PAIR_KEY`): the key is the pattern's first
group, or its ``key`` group. The default strips the extension and, from labels, a trailing ``_gt`` /
``_seg`` / ``_label(s)`` / ``_mask``; pass another pattern for other schemes (BraTS: strip the
modality from images too, e.g. ``r"^(.*)_(?:t1|t1ce|t2|flair|seg)\\.nii\\.gz$"``; several images may
then share one label). Every mismatch is refused in one line naming the file: an image without a
label, a label without an image, two labels with one key, a name the pattern does not match.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["DEFAULT_PAIR_KEY", "NIFTI_SUFFIXES", "NiftiPair", "expand_glob", "find_nifti", "is_nifti", "pair_key"]

NIFTI_SUFFIXES: tuple[str, ...] = (".nii", ".nii.gz")
#: the default pairing key: the file name without ``.nii[.gz]`` and without a trailing label suffix
DEFAULT_PAIR_KEY = r"^(?P<key>.*?)(?:_(?:gt|seg|label|labels|mask))?\.nii(?:\.gz)?$"


def is_nifti(path: str | os.PathLike[str]) -> bool:
    """Whether the name ends in ``.nii`` or ``.nii.gz``."""
    return str(path).endswith(NIFTI_SUFFIXES)


@dataclass(frozen=True)
class NiftiPair:
    """One image (absolute path) and its label (None without ``--labels``), with the pairing key."""

    image: Path
    label: Path | None
    key: str


def expand_glob(pattern: str, *, what: str) -> list[Path]:
    """The NIfTI files matching ``pattern`` (``**`` recursive), resolved and sorted.

    Raises:
        FileNotFoundError: nothing matches (naming ``what`` and the pattern).
        ValueError: a match that is not a ``.nii`` / ``.nii.gz`` file.
    """
    if not isinstance(pattern, str) or not pattern.strip():
        raise ValueError(f"{what}: expected a glob pattern such as 'data/**/*.nii.gz', got {pattern!r}")
    matches = sorted({Path(p).resolve() for p in glob.glob(os.path.expanduser(pattern), recursive=True)})
    files = [p for p in matches if p.is_file()]
    if not files:
        raise FileNotFoundError(f"{what}: no files match {pattern!r} (relative patterns start at {Path.cwd()})")
    bad = [p for p in files if not is_nifti(p)]
    if bad:
        raise ValueError(f"{what}: {bad[0]} matches {pattern!r} but is not a .nii or .nii.gz file; narrow the pattern")
    return files


def pair_key(path: Path, pattern: re.Pattern[str], *, what: str) -> str:
    """The pairing key of ``path``'s name: the ``key`` group of ``pattern``, else its first group."""
    m = pattern.fullmatch(path.name)
    if m is None:
        raise ValueError(f"{what}: file name {path.name!r} ({path}) does not match --pair-key {pattern.pattern!r}")
    key = m.groupdict().get("key") if "key" in pattern.groupindex else (m.group(1) if pattern.groups else None)
    if not key:
        raise ValueError(f"{what}: --pair-key {pattern.pattern!r} gives an empty key for {path.name!r}; "
                         "it needs a (non-empty) first group or a (?P<key>...) group")
    return key


def find_nifti(images: str, labels: str | None = None, *, pair_pattern: str = DEFAULT_PAIR_KEY) -> list[NiftiPair]:
    """The images matching ``images`` and, with ``labels``, each one's label paired by key.

    Keys are computed relative to each file's folder *and* name: two images with the same name in
    different folders are paired with the label of the same name in the same relative folder (the
    key is prefixed with the folder below the glob's common root).

    Args:
        images: glob of the image volumes.
        labels: glob of the label volumes (None: no labels).
        pair_pattern: regular expression computing a file's key from its name (:data:`DEFAULT_PAIR_KEY`).
    Returns:
        One :class:`NiftiPair` per image, sorted by image path.
    Raises:
        FileNotFoundError: a glob matches nothing.
        ValueError: a file both an image and a label, a name the pattern does not match, an image
            without a label, a label without an image, two labels or two images sharing a key.
    """
    try:
        pattern = re.compile(pair_pattern)
    except re.error as err:
        raise ValueError(f"--pair-key: not a regular expression ({err}): {pair_pattern!r}") from None
    imgs = expand_glob(images, what="--images")
    if labels is None:
        return [NiftiPair(p, None, p.name) for p in imgs]
    labs = expand_glob(labels, what="--labels")
    both = sorted(set(imgs) & set(labs))
    if both:
        raise ValueError(f"--images and --labels both match {both[0]}; make the image glob exclude the labels "
                         "(e.g. '*_frame??.nii.gz' and '*_gt.nii.gz')")
    img_root, lab_root = _common_root(imgs), _common_root(labs)

    def keyed(files: Sequence[Path], root: Path, what: str) -> list[tuple[str, Path]]:
        return [((p.parent.relative_to(root) / pair_key(p, pattern, what=what)).as_posix(), p) for p in files]

    img_keys, lab_keys = keyed(imgs, img_root, "--images"), keyed(labs, lab_root, "--labels")
    by_label: dict[str, Path] = {}
    for k, p in lab_keys:
        if k in by_label:
            raise ValueError(f"--labels: {by_label[k]} and {p} have the same pairing key {k!r}; "
                             "adjust --pair-key so each label has its own key")
        by_label[k] = p
    used: set[str] = set()
    pairs = []
    for k, p in img_keys:
        if k not in by_label:
            raise ValueError(f"--images: no label for {p} (pairing key {k!r}; labels are keyed like "
                             f"{sorted(by_label)[:3]}); check --labels or --pair-key")
        used.add(k)
        pairs.append(NiftiPair(p, by_label[k], k))
    unused = sorted(set(by_label) - used)
    if unused:
        raise ValueError(f"--labels: no image for {by_label[unused[0]]} (pairing key {unused[0]!r}); "
                         "check --images or --pair-key")
    return pairs


def _common_root(files: Sequence[Path]) -> Path:
    return Path(os.path.commonpath([str(p.parent) for p in files]))


def common_root(pairs: Sequence[NiftiPair]) -> Path:
    """The deepest folder holding every image and label of ``pairs`` (outputs mirror the tree below it)."""
    files = [p.image for p in pairs] + [p.label for p in pairs if p.label is not None]
    return _common_root(files)


__all__ += ["common_root"]


def read_volume(path: str | os.PathLike[str], *, shape: Sequence[int] | None = None) -> np.ndarray:
    """The scaled data of one NIfTI file (``get_fdata``) as float32; ``ValueError`` (one line naming the
    file) when it cannot be read, holds NaN/Inf, or its shape differs from ``shape``."""
    import nibabel as nib

    try:
        data = np.asarray(nib.load(str(path)).get_fdata(dtype=np.float32))
    except Exception as err:  # nibabel raises several types for broken files
        raise ValueError(f"cannot read NIfTI image {path}: {' '.join(str(err).split())}") from err
    if shape is not None and tuple(data.shape) != tuple(shape):
        raise ValueError(f"{path}: shape {tuple(data.shape)} differs from the clean volume's {tuple(shape)}")
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: contains NaN or Inf values")
    return data


__all__ += ["read_volume"]
