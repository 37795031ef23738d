"""Reader for the ACDC cardiac cine-MRI challenge data (Bernard et al., IEEE TMI 2018).

Layout (the public release, kept exactly)::

    ROOT/training/patient001 .. patient100/
    ROOT/testing/patient101 .. patient150/
        Info.cfg                        ED: 1 / ES: 12 / Group: DCM / Height: 184.0 / NbFrame: 30 / Weight: 95.0
        patientXXX_4d.nii.gz            (ignored)
        patientXXX_frameYY.nii.gz       YY = two-digit ED and ES frame numbers from Info.cfg
        patientXXX_frameYY_gt.nii.gz    labels 0 background, 1 RV cavity, 2 LV myocardium, 3 LV cavity

Arrays keep the file's axis order ``(X, Y, Z)`` (Z = short-axis slices); the voxel spacing in mm
comes from the NIfTI header (``header.get_zooms()[:3]``). Every problem with a file raises
:class:`ACDCError` (one line) naming that file and what was expected; an Info.cfg that reads but
looks wrong (ED = ES, a frame number beyond NbFrame) gives an :class:`ACDCWarning` naming it.

Also here: :func:`split_patients` (deterministic, patient-level, stratified by pathology group).
The torch datasets :class:`~medrobust.data.acdc_datasets.ACDCSliceDataset` (2D, one item per slice of
the ED and ES frames) and :class:`~medrobust.data.acdc_datasets.ACDCVolumeDataset` (3D, one item per
frame) and the CPU-side MONAI pipeline :func:`~medrobust.data.acdc_datasets.acdc_transforms` are in
:mod:`medrobust.data.acdc_datasets`.
"""

from __future__ import annotations

import math
import os
import random
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ACDCError",
    "ACDCWarning",
    "GROUPS",
    "LABELS",
    "FRAME_KEYS",
    "Frame",
    "Patient",
    "read_info",
    "read_patient",
    "list_patients",
    "load_cohort",
    "split_patients",
]

GROUPS: tuple[str, ...] = ("NOR", "MINF", "DCM", "HCM", "RV")
"""Pathology groups: normal, previous myocardial infarction, dilated / hypertrophic cardiomyopathy,
abnormal right ventricle."""
LABELS: dict[int, str] = {0: "background", 1: "RV", 2: "MYO", 3: "LV"}
FRAME_KEYS: tuple[str, ...] = ("ED", "ES")
SUBSETS: tuple[str, ...] = ("training", "testing")

_INT_KEYS = ("ED", "ES", "NbFrame")
_FLOAT_KEYS = ("Height", "Weight")
_REQUIRED_KEYS = ("ED", "ES", "Group", "Height", "NbFrame", "Weight")
_PATIENT_RE = re.compile(r"^patient\d{3}$")
_AFFINE_RTOL, _AFFINE_ATOL = 1e-4, 1e-3  # mm; real ACDC _gt headers match to float32 precision

PathLike = str | os.PathLike[str]


class ACDCError(ValueError):
    """A file of an ACDC cohort is missing, unreadable or inconsistent (the message names it)."""


class ACDCWarning(UserWarning):
    """A file of an ACDC cohort reads but looks wrong (the message names it)."""


def _one_line(err: BaseException) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())


# --------------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Frame:
    """One annotated cardiac phase (ED or ES) of a patient.

    ``image``: float32 ``(X, Y, Z)``, scanner units (ACDC: roughly 0..1000+); ``label``: uint8
    ``(X, Y, Z)`` in 0..3. ``spacing`` is ``(sx, sy, sz)`` in mm, ``affine`` the 4x4 voxel-to-world
    matrix of the image, ``frame_index`` the 1-based frame number from Info.cfg (the ``YY`` in the
    file name), ``path``/``label_path`` the two NIfTI files. In lazy mode the arrays are read (and
    checked) on first access and then kept; :meth:`unload` frees them.
    """

    name: str
    frame_index: int
    path: Path
    label_path: Path
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    affine: np.ndarray = field(repr=False)
    _image: np.ndarray | None = field(default=None, repr=False)
    _label: np.ndarray | None = field(default=None, repr=False)

    @property
    def image(self) -> np.ndarray:
        if self._image is None:
            self.load()
        assert self._image is not None
        return self._image

    @property
    def label(self) -> np.ndarray:
        if self._label is None:
            self.load()
        assert self._label is not None
        return self._label

    @property
    def loaded(self) -> bool:
        return self._image is not None and self._label is not None

    @property
    def n_slices(self) -> int:
        return self.shape[2]

    def load(self) -> Frame:
        """Read and check both arrays now (no-op when already loaded); returns ``self``."""
        if not self.loaded:
            self._image, self._label = _read_frame_arrays(self.path, self.label_path, self.shape)
        return self

    def unload(self) -> None:
        """Drop the arrays (a lazy frame reads them again on the next access)."""
        self._image = None
        self._label = None


@dataclass(eq=False)
class Patient:
    """One ACDC patient folder: ``id`` ("patient001"), ``info`` (Info.cfg with ED/ES/NbFrame as int,
    Height/Weight as float, Group as str), ``frames`` {"ED": Frame, "ES": Frame}, ``path`` (folder)."""

    id: str
    path: Path
    info: dict[str, Any]
    frames: dict[str, Frame]

    @property
    def group(self) -> str:
        return str(self.info["Group"])

    def load(self) -> Patient:
        for fr in self.frames.values():
            fr.load()
        return self

    def __repr__(self) -> str:
        return f"Patient(id={self.id!r}, group={self.info.get('Group')!r}, path='{self.path}')"


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def read_info(path: PathLike) -> dict[str, Any]:
    """Parse an ``Info.cfg`` (``Key: value`` lines) with numbers converted.

    ED, ES, NbFrame -> int; Height, Weight -> float; Group -> str in :data:`GROUPS`; any other key is
    kept as a string. Raises :class:`ACDCError` naming the file for a missing file, a malformed line,
    a missing required key or a non-numeric value; warns (:class:`ACDCWarning`, naming the file) when
    ED = ES or ED or ES is beyond NbFrame.
    """
    path = Path(path)
    if not path.is_file():
        raise ACDCError(f"{path}: Info.cfg not found (expected 'Key: value' lines with {', '.join(_REQUIRED_KEYS)})")
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as e:
        raise ACDCError(f"{path}: cannot read Info.cfg ({_one_line(e)})") from e
    raw: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            raise ACDCError(f"{path}: line {lineno} {line!r} is not of the form 'Key: value'")
        raw[key.strip()] = value.strip()
    missing = [k for k in _REQUIRED_KEYS if k not in raw]
    if missing:
        raise ACDCError(f"{path}: missing required key(s) {', '.join(missing)} in Info.cfg (found: {', '.join(raw) or 'none'})")
    info: dict[str, Any] = dict(raw)
    for key in _INT_KEYS:
        v = raw[key]
        try:
            f = float(v)
        except ValueError:
            raise ACDCError(f"{path}: {key} must be an integer, got {v!r}") from None
        if not math.isfinite(f) or not f.is_integer():
            raise ACDCError(f"{path}: {key} must be an integer, got {v!r}")
        info[key] = int(f)
    for key in _FLOAT_KEYS:
        v = raw[key]
        try:
            info[key] = float(v)
        except ValueError:
            raise ACDCError(f"{path}: {key} must be a number, got {v!r}") from None
        if not math.isfinite(info[key]):
            raise ACDCError(f"{path}: {key} must be a finite number, got {v!r}")
    if raw["Group"] not in GROUPS:
        raise ACDCError(f"{path}: Group must be one of {', '.join(GROUPS)}, got {raw['Group']!r}")
    for key in ("ED", "ES"):
        if info[key] < 0:
            raise ACDCError(f"{path}: {key} must be a frame number >= 0, got {info[key]}")
    if info["ED"] == info["ES"]:
        warnings.warn(f"{path}: ED and ES are the same frame ({info['ED']}); the two phases will be identical",
                      ACDCWarning, stacklevel=2)
    for key in ("ED", "ES"):
        if info[key] > info["NbFrame"]:
            warnings.warn(f"{path}: {key} frame {info[key]} is beyond NbFrame {info['NbFrame']}", ACDCWarning,
                          stacklevel=2)
    return info


def _frame_files(folder: Path, pid: str, index: int) -> tuple[Path, Path]:
    stem = f"{pid}_frame{index:02d}"
    paths = []
    for suffix in ("", "_gt"):
        gz, plain = folder / f"{stem}{suffix}.nii.gz", folder / f"{stem}{suffix}.nii"
        paths.append(plain if (not gz.exists() and plain.exists()) else gz)
    return paths[0], paths[1]


def _load_nifti(path: Path) -> Any:
    import nibabel as nib

    try:
        return nib.load(str(path))
    except Exception as e:  # ImageFileError, HeaderDataError, gzip.BadGzipFile, EOFError, zlib.error...
        raise ACDCError(f"{path}: cannot read NIfTI ({_one_line(e)})") from e


def _spatial_shape(path: Path, shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        hint = " (is this the _4d cine file?)" if len(shape) == 4 else ""
        raise ACDCError(f"{path}: expected a 3D volume (X, Y, Z), got shape {tuple(shape)}{hint}")
    return (int(shape[0]), int(shape[1]), int(shape[2]))


def _read_array(path: Path, img: Any, shape: tuple[int, int, int], dtype: Any) -> np.ndarray:
    try:
        data = np.asarray(img.dataobj, dtype=dtype)
    except Exception as e:  # truncated/corrupt gzip stream, short file, ...
        raise ACDCError(f"{path}: cannot read NIfTI data ({_one_line(e)})") from e
    return data.reshape(shape)


def _read_image(path: Path, img: Any, shape: tuple[int, int, int]) -> np.ndarray:
    """The image array as float32, checked to be finite."""
    image = _read_array(path, img, shape, np.float32)
    if not np.all(np.isfinite(image)):
        raise ACDCError(f"{path}: image contains NaN or Inf values")
    return image


def _read_frame_arrays(
    path: Path, label_path: Path, shape: tuple[int, int, int], img: Any = None, gt: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read and check the image and label arrays (``img``/``gt``: already opened nibabel images)."""
    image = _read_image(path, img if img is not None else _load_nifti(path), shape)
    lab = _read_array(label_path, gt if gt is not None else _load_nifti(label_path), shape, np.float64)
    bad = ~np.isin(lab, (0, 1, 2, 3))
    if bad.any():
        vals = np.unique(lab[bad])
        shown = ", ".join(f"{v:g}" for v in vals[:8]) + (" ..." if vals.size > 8 else "")
        raise ACDCError(f"{label_path}: label values must be in 0..3 (0 bg, 1 RV, 2 MYO, 3 LV), found {shown}")
    return image, lab.astype(np.uint8)


def _open_frame(folder: Path, pid: str, name: str, index: int, lazy: bool) -> Frame:
    img_path, gt_path = _frame_files(folder, pid, index)
    for p, what in ((img_path, "image"), (gt_path, "ground-truth label")):
        if not p.is_file():
            raise ACDCError(f"{p}: {name} frame {index} {what} file not found (from ED/ES in {folder / 'Info.cfg'})")
    img, gt = _load_nifti(img_path), _load_nifti(gt_path)
    shape = _spatial_shape(img_path, img.shape)
    gt_shape = _spatial_shape(gt_path, gt.shape)
    if gt_shape != shape:
        raise ACDCError(f"{gt_path}: label shape {gt_shape} does not match image shape {shape} of {img_path.name}")
    if not np.allclose(img.affine, gt.affine, rtol=_AFFINE_RTOL, atol=_AFFINE_ATOL):
        def flat(a: np.ndarray) -> str:
            return " ".join(np.array2string(np.asarray(a), precision=4, separator=",").split())

        raise ACDCError(f"{gt_path}: label affine {flat(gt.affine)} does not match the image affine "
                        f"{flat(img.affine)} of {img_path.name}")
    zooms = img.header.get_zooms()
    if len(zooms) < 3:
        raise ACDCError(f"{img_path}: header has {len(zooms)} voxel sizes, expected 3")
    spacing = (float(zooms[0]), float(zooms[1]), float(zooms[2]))
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ACDCError(f"{img_path}: voxel spacing must be positive, header gives {spacing}")
    frame = Frame(name, index, img_path, gt_path, shape, spacing, np.asarray(img.affine, dtype=np.float64))
    if not lazy:
        frame._image, frame._label = _read_frame_arrays(img_path, gt_path, shape, img, gt)
    else:
        _read_image(img_path, img, shape)  # NaN/Inf found now, not when the frame is first used
    return frame


def read_patient(path: PathLike, lazy: bool = False) -> Patient:
    """Read one ``patientXXX`` folder: Info.cfg plus the ED and ES frames with their ``_gt`` labels.

    With ``lazy=True`` the arrays are not kept: Info.cfg and the NIfTI headers are read (shapes,
    spacing and affines are checked) and each image is read once to check it for NaN/Inf, then
    dropped; the arrays are read (and the labels checked) on first access of ``frame.image``/``.label``.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ACDCError(f"{folder}: patient folder not found")
    pid = folder.name
    info = read_info(folder / "Info.cfg")
    frames = {key: _open_frame(folder, pid, key, int(info[key]), lazy) for key in FRAME_KEYS}
    return Patient(id=pid, path=folder, info=info, frames=frames)


def list_patients(root: PathLike, subset: str = "training") -> list[Path]:
    """Sorted ``patientXXX`` folders under ``ROOT/training``, ``ROOT/testing`` or both (``"all"``).

    Raises :class:`ACDCError` when ROOT or the subset folder is missing or holds no patient folder;
    with ``"all"`` a missing subset folder is skipped but at least one patient must be found.
    """
    root = Path(root)
    if subset not in (*SUBSETS, "all"):
        raise ValueError(f"subset must be 'training', 'testing' or 'all', got {subset!r}")
    if not root.is_dir():
        raise ACDCError(f"{root}: ACDC root folder not found (expected {root}/training and {root}/testing)")
    names = SUBSETS if subset == "all" else (subset,)
    found: list[Path] = []
    for name in names:
        sub = root / name
        if not sub.is_dir():
            if subset == "all":
                continue
            raise ACDCError(f"{sub}: ACDC subset folder not found (expected {sub}/patientXXX folders)")
        pats = sorted(p for p in sub.iterdir() if p.is_dir() and _PATIENT_RE.match(p.name))
        if not pats and subset != "all":
            raise ACDCError(f"{sub}: no patientXXX folders found")
        found.extend(pats)
    if not found:
        raise ACDCError(f"{root}: no patientXXX folders found under {' or '.join(f'{root}/{n}' for n in names)}")
    return sorted(found, key=lambda p: (p.name, str(p)))


def load_cohort(root: PathLike, subset: str = "training", lazy: bool = False) -> list[Patient]:
    """:func:`read_patient` for every folder of :func:`list_patients` (sorted by id)."""
    return [read_patient(p, lazy=lazy) for p in list_patients(root, subset)]


# --------------------------------------------------------------------------------------------
# splits
# --------------------------------------------------------------------------------------------

_SPLIT_NAMES = ("train", "val", "test")


def split_patients(
    patients: Sequence[Patient] | Sequence[tuple[str, str]],
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    seed: int = 0,
) -> dict[str, list[str]]:
    """Deterministic patient-level train/val/test split, stratified by pathology group.

    ``patients``: :class:`Patient` objects or ``(id, group)`` pairs. Each group's ids are sorted,
    shuffled with ``seed`` and cut in order train/val/test by ``fractions`` (non-negative, summing to
    1). Per-group counts are the floors of ``n_group * fraction``; the remaining places go one by one
    to the split furthest below its cohort-wide target, so small groups do not all land in train.
    Every split with a positive fraction gets at least one patient when there are enough patients.
    Returns ``{"train": [...], "val": [...], "test": [...]}`` with sorted ids; no id is in two splits.
    """
    fr = [float(f) for f in fractions]
    if len(fr) != 3 or any(not math.isfinite(f) or f < 0 for f in fr) or not math.isclose(sum(fr), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must be 3 non-negative numbers (train, val, test) summing to 1, got {tuple(fractions)}")
    pairs: list[tuple[str, str]] = []
    for p in patients:
        if isinstance(p, Patient):
            pairs.append((p.id, p.group))
        else:
            pid, group = p
            pairs.append((str(pid), str(group)))
    ids = [pid for pid, _ in pairs]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"split_patients: duplicate patient ids {dup}")
    by_group: dict[str, list[str]] = {}
    for pid, group in pairs:
        by_group.setdefault(group, []).append(pid)
    groups = sorted(by_group)
    n_total = len(pairs)
    target = [n_total * f for f in fr]
    counts = {g: [int(math.floor(len(by_group[g]) * f + 1e-9)) for f in fr] for g in groups}
    assigned = [sum(counts[g][k] for g in groups) for k in range(3)]
    for g in groups:
        for _ in range(len(by_group[g]) - sum(counts[g])):
            k = max((k for k in range(3) if fr[k] > 0), key=lambda k: (target[k] - assigned[k], fr[k], -k))
            counts[g][k] += 1
            assigned[k] += 1
    # make every split with a positive fraction non-empty when there are enough patients
    wanted = [k for k in range(3) if fr[k] > 0]
    if n_total >= len(wanted):
        for k in wanted:
            if assigned[k] == 0:
                donor = max((j for j in range(3) if assigned[j] > 1), key=lambda j: (assigned[j], -j))
                g = max(groups, key=lambda g: (counts[g][donor], g))
                counts[g][donor] -= 1
                counts[g][k] += 1
                assigned[donor] -= 1
                assigned[k] += 1
    out: dict[str, list[str]] = {name: [] for name in _SPLIT_NAMES}
    for g in groups:
        members = sorted(by_group[g])
        random.Random(f"acdc-split:{seed}:{g}").shuffle(members)
        start = 0
        for k, name in enumerate(_SPLIT_NAMES):
            out[name].extend(members[start : start + counts[g][k]])
            start += counts[g][k]
    return {name: sorted(v) for name, v in out.items()}


# --------------------------------------------------------------------------------------------
# torch datasets
# --------------------------------------------------------------------------------------------
