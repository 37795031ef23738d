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

Each image volume is corrupted and saved by the implementation shared with ``corrupt --task nifti``
(:mod:`medrobust.corrupt.nifti`: :func:`~medrobust.corrupt.nifti.corrupt_volume`,
:func:`~medrobust.corrupt.nifti.save_like`): the core runs on the volume normalised to ``[min,
p99.8]`` and arranged as ``(1, 1, Z, X, Y)`` (in-plane axes last), its change is mapped back and added
to the unclipped original (the normalisation is undone exactly; nothing is clipped), and the result is
saved as float32 with slope 1 / inter 0 and the input's header otherwise unchanged. (Format 1, before
this, wrote the input's integer dtype with the scale factors reset, which rounded away the corruption
of scaled int16 scans, and clipped every voxel above p99.8.) Blur and resolution loss use the in-plane
voxel size from the header.

Seeds and resume (see :mod:`medrobust.corrupt.common`): each image's seed is
``derive_seed(seed, corruption, severity, relative path)``, recorded in the manifest. A rerun into
the same ``OUT`` with the same settings skips every file already there (a file is renamed into
place only when complete) and writes the rest, byte-identical to an uninterrupted run. Volumes are
not batched with each other: the cores' per-sample reductions round differently in a larger
batch, which would make a file's bytes depend on which others were written with it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..augment.corruptions.mri import NAMES
from ..data.acdc import read_patient
from .common import (
    check_device,
    check_out,
    check_seed,
    parse_corruptions,
    parse_severities,
    prepare_output,
)
from .nifti import PERCENTILE, volume_settings, write_volumes

__all__ = ["PERCENTILE", "SUBSETS", "corrupt_acdc"]

SUBSETS = ("training", "testing")
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


# -- main entry -----------------------------------------------------------------------------------
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

    settings = volume_settings("acdc", names, sevs, seed)
    prepare_output(out_p, settings, overwrite=overwrite, what="a corrupted dataset")  # resume = skip present files
    files = _scan(root_p, patients, progress)  # every patient checked before anything is written
    return write_volumes(root_p, files, out_p, names=names, severities=sevs, seed=seed, settings=settings,
                         overwrite=overwrite, progress=progress, device=dev, desc="ACDC-C")
