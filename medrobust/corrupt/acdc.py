"""Write a corrupted copy of an ACDC-layout dataset (ACDC-C): every corruption x severity.

Input layout (the public ACDC release)::

    ROOT/<subset>/patientXXX/Info.cfg
    ROOT/<subset>/patientXXX/patientXXX_4d.nii.gz          skipped (not copied: large)
    ROOT/<subset>/patientXXX/patientXXX_frameYY.nii.gz     image: corrupted
    ROOT/<subset>/patientXXX/patientXXX_frameYY_gt.nii.gz  label: copied byte-identical

with ``<subset>`` in ``training`` / ``testing`` (whichever exist; patient folders directly under
``ROOT`` are accepted too). Every patient is read through the training reader
(:func:`medrobust.data.acdc.read_patient`: Info.cfg, the ED and ES frames it names, labels in 0..3,
label shape and affine equal to the image's, finite images) before anything is written, and the
first problem is refused with the reader's :class:`~medrobust.data.acdc.ACDCError` naming the file:
a corrupted copy is only ever written of a dataset training accepts. The files copied are the ones
the reader reads (Info.cfg, the ED/ES images and ``_gt`` labels). Output::

    OUT/<corruption>/<severity>/<subset>/patientXXX/...    same relative layout, Info.cfg copied
    OUT/manifest.json                                      settings, parameter table, per-file seeds

Each image volume ``(X, Y, Z)`` (Z = slices) is normalised to [0, 1] with ``lo = min`` and
``hi = 99.8th percentile`` (values above ``hi`` saturate), transposed to ``(1, 1, Z, X, Y)`` so the
in-plane axes are last, corrupted with the ``mri_<corruption>`` core (as
:func:`~medrobust.augment.corruptions.mri.corrupt_mri` does; one volume per call, the core
vectorises over its slices) on ``device``, mapped back to ``lo + y * (hi - lo)`` and transposed
back. It is saved with the original affine and header: integer inputs keep their dtype (rounded
and clipped to its range), others are saved as float32 (float64 stays float64). Files are
gzip-compressed with a zero timestamp and written atomically.

Seeds and resume (see :mod:`medrobust.corrupt.common`): each image's seed is
``derive_seed(seed, corruption, severity, relative path)``, recorded in the manifest. A rerun into
the same ``OUT`` with the same settings skips every file already there (a file is renamed into
place only when complete) and writes the rest, byte-identical to an uninterrupted run. Volumes are
not batched with each other: the cores' per-sample reductions round differently in a larger
batch, which would make a file's bytes depend on which others were written with it.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..augment.corruptions.mri import NAMES, parameter_table
from ..data.acdc import read_patient
from ..io import atomic_path
from .common import (
    MANIFEST_NAME,
    check_device,
    check_out,
    check_seed,
    check_targets,
    corrupt_batch,
    derive_seed,
    parse_corruptions,
    parse_severities,
    prepare_output,
    start_output,
    write_manifest,
)

__all__ = ["PERCENTILE", "SUBSETS", "corrupt_acdc"]

SUBSETS = ("training", "testing")
FORMAT_VERSION = 1
PERCENTILE = 99.8
_PATIENT = re.compile(r"^patient\d+$")


# -- scanning -------------------------------------------------------------------------------------
def _patients(root: Path) -> list[Path]:
    """The ``patientXXX`` folders under ``root/training``, ``root/testing`` (or ``root`` itself)."""
    subsets = [root / s for s in SUBSETS if (root / s).is_dir()] or [root]
    return [p for sub in subsets for p in sorted(p for p in sub.iterdir() if p.is_dir() and _PATIENT.match(p.name))]


def _scan(root: Path, patients: Sequence[Path], progress: bool) -> list[tuple[str, str]]:
    """Read every patient with :func:`read_patient` (raising its ``ACDCError``); ``[(relpath, kind)]`` sorted.

    ``kind`` is image / label / info: the files the reader read (Info.cfg, ED and ES image and label).
    """
    from tqdm.auto import tqdm

    found: dict[str, str] = {}
    for folder in tqdm(patients, desc="ACDC check", unit="patient", disable=not progress):
        patient = read_patient(folder)  # arrays read and checked, then dropped with ``patient``
        found[(folder / "Info.cfg").relative_to(root).as_posix()] = "info"
        for frame in patient.frames.values():  # ED = ES (a warning) gives one image, copied once
            found[frame.path.relative_to(root).as_posix()] = "image"
            found[frame.label_path.relative_to(root).as_posix()] = "label"
    return sorted(found.items())


# -- one volume -----------------------------------------------------------------------------------
def _load(path: Path) -> tuple[Any, np.ndarray]:
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asarray(img.get_fdata(dtype=np.float64))
    except Exception as err:  # nibabel raises several types for broken files
        raise ValueError(f"cannot read NIfTI image {path}: {err}") from err
    if not np.isfinite(data).all():
        raise ValueError(f"NIfTI image {path} contains NaN or Inf values")
    return img, data


def _corrupt_volume(data: np.ndarray, corruption: str, severity: int, seed: int, path: Path,
                    device: torch.device) -> np.ndarray:
    """Normalise, corrupt on ``device`` (in-plane = first two NIfTI axes) and map back; same shape, float64."""
    shape = data.shape
    vol = data
    if vol.ndim == 4 and vol.shape[3] == 1:
        vol = vol[..., 0]
    elif vol.ndim == 2:
        vol = vol[..., None]
    if vol.ndim != 3:
        raise ValueError(f"{path}: expected a 3D image (X, Y, Z), got shape {shape}")
    lo = float(vol.min())
    hi = float(np.percentile(vol, PERCENTILE))
    if hi <= lo:
        hi = float(vol.max())
    scale = hi - lo if hi > lo else 1.0
    x = np.clip((vol - lo) / scale, 0.0, 1.0).transpose(2, 0, 1)  # (Z, X, Y)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None]
    y = corrupt_batch(f"mri_{corruption}", xt, severity, seed, device)[0, 0].double().numpy()
    out = lo + y.transpose(1, 2, 0) * scale
    return out.reshape(shape)


def _save(out: np.ndarray, ref: Any, dest: Path) -> None:
    """Save ``out`` with ``ref``'s affine/header, deterministically (gzip mtime 0), atomically."""
    dtype = np.dtype(ref.get_data_dtype())
    slope, inter = ref.header.get_slope_inter()
    scaled = (slope is not None and slope != 1.0) or (inter is not None and inter != 0.0)
    if np.issubdtype(dtype, np.integer) and not scaled:
        info = np.iinfo(dtype)
        arr = np.clip(np.rint(out), info.min, info.max).astype(dtype)
    else:
        dtype = np.dtype(np.float64 if dtype == np.float64 else np.float32)
        arr = out.astype(dtype)
    header = ref.header.copy()
    header.set_data_dtype(dtype)
    img = type(ref)(arr, ref.affine, header=header)
    img.header.set_slope_inter(1.0, 0.0)
    raw = img.to_bytes()
    with atomic_path(dest) as tmp, open(tmp, "wb") as f:
        f.write(gzip.compress(raw, compresslevel=1, mtime=0) if dest.name.endswith(".gz") else raw)


def _copy(src: Path, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)


# -- main entry -----------------------------------------------------------------------------------
def _settings(corruptions: list[str], severities: list[int], seed: int) -> dict[str, Any]:
    table = parameter_table()
    return {
        "format_version": FORMAT_VERSION,
        "corruptions": corruptions,
        "severities": severities,
        "seed": seed,
        "normalisation": f"per volume: (v - min) / (p{PERCENTILE} - min), clipped to [0, 1]",
        "layout": "(X, Y, Z) -> (1, 1, Z, X, Y): in-plane = last two dims",
        "parameter_table": {c: table[c] for c in corruptions},
    }


def corrupt_acdc(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    corruptions: str | Sequence[str] = "all",
    severities: Sequence[int] | str = (1, 2, 3, 4, 5),
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Write ``OUT/<corruption>/<severity>/<relative path>`` for every ACDC image under ``root``.

    Args:
        root: ACDC root holding ``training/`` and/or ``testing/`` patient folders.
        out: output folder (created). ``out/manifest.json`` records the settings and every file.
        corruptions: ``"all"``, a comma list or a list of names from
            :data:`~medrobust.augment.corruptions.mri.NAMES` (``mri_`` prefix accepted).
        severities: severities in 1..5 (a list or a string like ``"1-5"``).
        seed: base seed; each image's seed is :func:`~medrobust.corrupt.common.derive_seed` of
            ``(seed, corruption, severity, relative path)``.
        overwrite: rewrite every file even if present, and accept an ``out`` written with other
            settings (stale files from those settings are not removed).
        progress: show a tqdm progress bar.
        device: where the corruption cores run (``cpu``, ``cuda``, ``cuda:N``, ``auto``); not part
            of the settings: the random draws are made on the CPU whatever the device.
    Returns:
        ``{"out", "manifest", "written", "skipped", "total"}`` (file counts, labels and Info.cfg
        included).
    Raises:
        FileNotFoundError: ``root`` missing, or no patient folders under it.
        FileExistsError: ``out`` holds a different run (other settings, or no manifest).
        ACDCError: a patient the training reader refuses (naming the file); raised before anything
            is written.
        ValueError: unknown corruption, severity outside 1..5, bad device, a target under ``out``
            that is or goes through a symlink (naming it).
    """
    from tqdm.auto import tqdm

    root_p, out_p = Path(root), Path(out)
    names = parse_corruptions(corruptions, NAMES, prefix="mri_")
    sevs = parse_severities(severities)
    seed = check_seed(seed)
    dev = check_device(device)
    if not root_p.is_dir():
        raise FileNotFoundError(f"ACDC root {root_p} does not exist or is not a folder")
    check_out(out_p, root_p)
    patients = _patients(root_p)
    if not patients:
        raise FileNotFoundError(
            f"no ACDC patients found under {root_p}: expected {root_p}/training/patientXXX/patientXXX_frameYY.nii.gz"
            " (or testing/)"
        )

    settings = _settings(names, sevs, seed)
    prepare_output(out_p, settings, overwrite=overwrite, what="a corrupted dataset")  # resume = skip present files
    files = _scan(root_p, patients, progress)  # every patient checked before anything is written
    check_targets(out_p, [MANIFEST_NAME, *(f"{c}/{s}/{rel}" for c in names for s in sevs for rel, _ in files)])
    start_output(out_p)  # temporaries of a killed earlier run
    manifest: dict[str, Any] = {"settings": settings, "source": str(root_p.resolve()), "complete": False, "files": []}
    manifest_path = write_manifest(out_p, manifest)  # written first, so an interrupted run can resume

    jobs = [(c, s, rel, kind) for c in names for s in sevs for rel, kind in files]
    entries: list[dict[str, Any]] = []
    written = skipped = 0
    cache: tuple[str, Any, np.ndarray] | None = None  # last image read (reused across corruptions)
    # image-major order so one volume is read once per (corruption, severity) sweep
    jobs.sort(key=lambda j: (j[2], j[0], j[1]))
    for corruption, severity, rel, kind in tqdm(jobs, desc="ACDC-C", unit="file", disable=not progress):
        dest_rel = f"{corruption}/{severity}/{rel}"
        dest = out_p / dest_rel
        entry: dict[str, Any] = {
            "path": dest_rel, "source": rel, "kind": kind, "corruption": corruption, "severity": severity
        }
        if kind == "image":
            entry["seed"] = derive_seed(seed, corruption, severity, rel)
        entries.append(entry)
        if dest.exists() and not overwrite:
            skipped += 1
            continue
        src = root_p / rel
        if kind != "image":
            _copy(src, dest)
        else:
            if cache is None or cache[0] != rel:
                cache = (rel, *_load(src))
            _, ref, data = cache
            _save(_corrupt_volume(data, corruption, severity, entry["seed"], src, dev), ref, dest)
        written += 1

    entries.sort(key=lambda e: e["path"])
    manifest.update(complete=True, files=entries)
    write_manifest(out_p, manifest)
    return {
        "out": str(out_p),
        "manifest": str(manifest_path),
        "written": written,
        "skipped": skipped,
        "total": len(entries),
    }
