"""Corrupted copies of NIfTI volumes: the one implementation behind ``corrupt --task nifti`` and ACDC-C.

:func:`corrupt_nifti` writes a corrupted copy of any tree of ``.nii`` / ``.nii.gz`` volumes
(``--images GLOB``, optional ``--labels GLOB`` paired by :func:`medrobust.data.nifti.find_nifti`);
:func:`medrobust.corrupt.acdc.corrupt_acdc` runs the same :func:`write_volumes` loop over the files
the ACDC reader accepts. Output::

    OUT/<corruption>/<severity>/<path relative to the inputs' common folder>   images and labels
    OUT/manifest.json                                                        settings, per-file seeds

**One volume** (:func:`corrupt_volume`). The data are read with ``get_fdata`` (the header's
``scl_slope`` / ``scl_inter`` applied, in float64). A 2D image is one slice, a 3D volume ``(X, Y, Z)``
is one sample ``(1, 1, Z, X, Y)`` (in-plane = the first two NIfTI axes, slices along Z), a 4D volume
``(X, Y, Z, T)`` is corrupted **per frame**: its T frames are one batch ``(T, 1, Z, X, Y)`` drawn with
the file's seed, so every frame gets its own random artifact (an independent ghost, noise field,
spike, bias field, contrast change), as separate acquisitions would; the deterministic ones (Gibbs
ringing, blur, resolution loss) are the same for every frame. The core sees ``x = clip((v - lo) / (hi -
lo), 0, 1)`` with ``lo = min``, ``hi = p99.8`` (so the severity table means the same on every scan
whatever its units), and the output is ``v + (hi - lo) * (core(x) - x)``: the change the core made,
mapped back to the scan's units, added to the **unclipped** original. The normalisation is undone
exactly (a voxel the corruption leaves alone keeps its value), nothing above ``hi`` is clipped, and
``corrupted - clean`` is the corruption only. Blur and resolution loss get the in-plane voxel size
from the header (``pixdim`` of X and Y): their severity table is in voxels of the finer axis and a
coarser axis is blurred / downsampled proportionally less.

**Encoding** (:func:`save_like`): every corrupted image is written as **float32 with scl_slope 1 /
scl_inter 0** (float64 inputs stay float64), the rest of the header unchanged (affine, qform / sform
and their codes, pixdim, units, intent, description; only datatype, bitpix and the scale factors
differ). Why not the input's integer type with fitted scale factors: the corrupted values are float32
results, and any integer encoding re-quantises them (int16 over the corrupted range of a scan with
``scl_slope = 1e-5`` keeps ~15 bits, and the low-amplitude part of noise or ringing is exactly what
would round away); float32 holds every value the core computed and every original int16 value
exactly, at twice the size of int16. Labels (and other copied files) are copied byte for byte.
Files are gzip-compressed (``.nii.gz``) with a zero timestamp and written atomically, so a file's
bytes depend only on its input, corruption, severity and seed (see :mod:`medrobust.corrupt.common`
for seeds, manifest, resume, symlink refusal and stale temporaries).
"""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..augment.corruptions.mri import NAMES, parameter_table
from ..data.nifti import DEFAULT_PAIR_KEY, common_root, find_nifti
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

__all__ = ["ENCODING", "PERCENTILE", "SPACING_AWARE", "corrupt_nifti", "corrupt_volume", "load_volume", "save_like",
           "write_volumes"]

FORMAT_VERSION = 2
PERCENTILE = 99.8
#: the corruptions that take the in-plane voxel size (``spacing=(sx, sy)``)
SPACING_AWARE: tuple[str, ...] = ("gaussian_blur", "resolution_loss")
#: how corrupted images are stored (recorded in the manifest)
ENCODING = "float32 (float64 inputs: float64), scl_slope 1, scl_inter 0; header otherwise unchanged"
NORMALISATION = (f"per volume: x = clip((v - min) / (p{PERCENTILE} - min), 0, 1); "
                 f"out = v + (p{PERCENTILE} - min) * (core(x) - x)")
LAYOUT = "(X, Y[, Z[, T]]) -> (T, 1, Z, X, Y): in-plane = the first two NIfTI axes, 4D: frames as the batch"


# -- one volume -----------------------------------------------------------------------------------
def load_volume(path: Path) -> tuple[Any, np.ndarray]:
    """``(image, data)``: the nibabel image and its scaled data (``get_fdata``, float64), finite."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asarray(img.get_fdata(dtype=np.float64))
    except Exception as err:  # nibabel raises several types for broken files
        raise ValueError(f"cannot read NIfTI image {path}: {err}") from err
    if not np.isfinite(data).all():
        raise ValueError(f"NIfTI image {path} contains NaN or Inf values")
    return img, data


def inplane_spacing(img: Any) -> tuple[float, float]:
    """The voxel size of the first two axes from the header (1, 1 when absent or not positive)."""
    zooms = tuple(float(z) for z in img.header.get_zooms()[:2])
    if len(zooms) < 2 or not all(np.isfinite(z) and z > 0 for z in zooms):
        return 1.0, 1.0
    return zooms  # type: ignore[return-value]


def corrupt_volume(data: np.ndarray, corruption: str, severity: int, seed: int, device: torch.device, *,
                   spacing: tuple[float, float] | None = None, path: Path | str = "volume") -> np.ndarray:
    """The corrupted copy of ``data`` (2D, 3D or 4D, in the scan's units), same shape, float64.

    See the module docstring: per-volume ``[min, p99.8]`` normalisation for the core, the core's
    change mapped back and added to the unclipped original. ``spacing``: in-plane voxel size for
    :data:`SPACING_AWARE` corruptions.
    """
    shape = data.shape
    if data.ndim == 2:
        vol = data[:, :, None, None]
    elif data.ndim == 3:
        vol = data[..., None]
    elif data.ndim == 4:
        vol = data
    else:
        raise ValueError(f"{path}: expected a 2D, 3D or 4D image (X, Y[, Z[, T]]), got shape {shape}")
    lo = float(vol.min())
    hi = float(np.percentile(vol, PERCENTILE))
    if hi <= lo:
        hi = float(vol.max())
    scale = hi - lo if hi > lo else 1.0
    x = np.clip((vol - lo) / scale, 0.0, 1.0).transpose(3, 2, 0, 1)  # (T, Z, X, Y)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[:, None]  # (T, 1, Z, X, Y)
    kw = {"spacing": list(spacing)} if spacing is not None and corruption in SPACING_AWARE else {}
    y = corrupt_batch(f"mri_{corruption}", xt, severity, seed, device, **kw)
    change = (y.double() - xt.double())[:, 0].numpy().transpose(2, 3, 1, 0)  # (X, Y, Z, T)
    return (vol + scale * change).reshape(shape)


def save_like(out: np.ndarray, ref: Any, dest: Path) -> None:
    """Save ``out`` with ``ref``'s header as float32 (float64 for float64 inputs), slope 1 / inter 0,
    deterministically (gzip mtime 0) and atomically. See the module docstring for why."""
    dtype = np.dtype(np.float64 if np.dtype(ref.get_data_dtype()) == np.float64 else np.float32)
    header = ref.header.copy()
    header.set_data_dtype(dtype)
    img = type(ref)(out.astype(dtype), ref.affine, header=header)
    img.header.set_slope_inter(1.0, 0.0)
    raw = img.to_bytes()
    with atomic_path(dest) as tmp, open(tmp, "wb") as f:
        f.write(gzip.compress(raw, compresslevel=1, mtime=0) if dest.name.endswith(".gz") else raw)


def _copy(src: Path, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)


# -- the shared writer loop -----------------------------------------------------------------------
def write_volumes(
    root: Path,
    files: Sequence[tuple[str, str]],
    out: Path,
    *,
    names: list[str],
    severities: list[int],
    seed: int,
    settings: dict[str, Any],
    overwrite: bool,
    progress: bool,
    device: torch.device,
    desc: str,
) -> dict[str, Any]:
    """Write ``out/<corruption>/<severity>/<rel>`` for every ``(rel, kind)`` of ``files`` under ``root``.

    ``kind`` ``"image"`` is corrupted (:func:`corrupt_volume`, :func:`save_like`), any other kind
    (``label``, ``info``) copied byte for byte. ``settings`` (what the bytes depend on) decide resume
    and refusal (:func:`~medrobust.corrupt.common.prepare_output`). Every target is checked for
    symlinks before anything is written; the manifest is written first and again when done.
    Returns ``{"out", "manifest", "written", "skipped", "total"}``.
    """
    from tqdm.auto import tqdm

    check_targets(out, [MANIFEST_NAME, *(f"{c}/{s}/{rel}" for c in names for s in severities for rel, _ in files)])
    start_output(out)  # temporaries of a killed earlier run
    manifest: dict[str, Any] = {"settings": settings, "source": str(root.resolve()), "complete": False, "files": []}
    manifest_path = write_manifest(out, manifest)  # written first, so an interrupted run can resume

    jobs = [(c, s, rel, kind) for c in names for s in severities for rel, kind in files]
    jobs.sort(key=lambda j: (j[2], j[0], j[1]))  # image-major: one volume is read once for all its copies
    entries: list[dict[str, Any]] = []
    written = skipped = 0
    cache: tuple[str, Any, np.ndarray] | None = None
    for corruption, severity, rel, kind in tqdm(jobs, desc=desc, unit="file", disable=not progress):
        dest_rel = f"{corruption}/{severity}/{rel}"
        dest = out / dest_rel
        entry: dict[str, Any] = {"path": dest_rel, "source": rel, "kind": kind, "corruption": corruption,
                                 "severity": severity}
        if kind == "image":
            entry["seed"] = derive_seed(seed, corruption, severity, rel)
        entries.append(entry)
        if dest.exists() and not overwrite:
            skipped += 1
            continue
        src = root / rel
        if kind != "image":
            _copy(src, dest)
        else:
            if cache is None or cache[0] != rel:
                cache = (rel, *load_volume(src))
            _, ref, data = cache
            result = corrupt_volume(data, corruption, severity, entry["seed"], device, spacing=inplane_spacing(ref),
                                    path=src)
            save_like(result, ref, dest)
        written += 1

    entries.sort(key=lambda e: e["path"])
    manifest.update(complete=True, files=entries)
    write_manifest(out, manifest)
    return {"out": str(out), "manifest": str(manifest_path), "written": written, "skipped": skipped,
            "total": len(entries)}


def volume_settings(writer: str, names: list[str], severities: list[int], seed: int) -> dict[str, Any]:
    """The settings of a NIfTI writer run (``writer``: ``acdc`` or ``nifti``)."""
    table = parameter_table()
    return {
        "format_version": FORMAT_VERSION,
        "writer": writer,
        "corruptions": names,
        "severities": severities,
        "seed": seed,
        "normalisation": NORMALISATION,
        "encoding": ENCODING,
        "layout": LAYOUT,
        "spacing_aware": [c for c in SPACING_AWARE if c in names],
        "parameter_table": {c: table[c] for c in names},
    }


# -- main entry -----------------------------------------------------------------------------------
def corrupt_nifti(
    images: str,
    out: str | os.PathLike[str],
    *,
    labels: str | None = None,
    pair_key: str = DEFAULT_PAIR_KEY,
    corruptions: str | Sequence[str] = "all",
    severities: Sequence[int] | str = (1, 2, 3, 4, 5),
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Write a corrupted copy of the NIfTI volumes matching ``images`` (labels copied untouched).

    Args:
        images: glob of the image volumes (``**`` recursive), e.g. ``"MnM/Testing/*/*_sa.nii.gz"``.
        out: output folder: ``OUT/<corruption>/<severity>/<path below the inputs' common folder>``.
        labels: glob of the label volumes, paired with the images by ``pair_key`` (every image needs
            one, every label an image); copied byte-identical next to each corrupted copy.
        pair_key: regular expression computing the pairing key from a file name
            (:data:`medrobust.data.nifti.DEFAULT_PAIR_KEY`).
        corruptions, severities, seed, overwrite, progress, device: as :func:`~medrobust.corrupt.acdc.corrupt_acdc`;
            an image's seed is ``derive_seed(seed, corruption, severity, relative path)``.
    Returns:
        ``{"out", "manifest", "written", "skipped", "total"}``.
    Raises:
        FileNotFoundError: a glob matches nothing.
        FileExistsError: ``out`` holds a different run.
        ValueError: a pairing mismatch, an unreadable / non-finite / 5D image, an image and its label
            of different shapes, ``out`` inside the inputs, unknown corruption, bad severity or device,
            a symlinked target (each one line naming it); all raised before anything is written.
    """
    from tqdm.auto import tqdm

    out_p = Path(out)
    names = parse_corruptions(corruptions, NAMES, prefix="mri_")
    sevs = parse_severities(severities)
    seed = check_seed(seed)
    dev = check_device(device)
    pairs = find_nifti(images, labels, pair_pattern=pair_key)
    root = common_root(pairs)
    check_out(out_p, root)
    inputs = [p.image for p in pairs] + [p.label for p in pairs if p.label is not None]
    if out_p.resolve().is_relative_to(root) or any(p.is_relative_to(out_p.resolve()) for p in inputs):
        raise ValueError(f"--out {out_p} overlaps the input tree {root} (a later glob would find the copies); "
                         "choose a folder outside it")
    files: dict[str, str] = {}
    for pair in tqdm(pairs, desc="NIfTI check", unit="image", disable=not progress):
        img = _header(pair.image)
        if len(img.shape) not in (2, 3, 4):
            raise ValueError(f"{pair.image}: expected a 2D, 3D or 4D image (X, Y[, Z[, T]]), got shape {img.shape}")
        files[pair.image.relative_to(root).as_posix()] = "image"
        if pair.label is not None:
            lab = _header(pair.label)
            if tuple(lab.shape[:3]) != tuple(img.shape[:3]):
                raise ValueError(f"{pair.label}: label shape {lab.shape} does not match its image {pair.image} "
                                 f"{img.shape} (spatial axes)")
            if not np.allclose(lab.affine, img.affine, rtol=1e-4, atol=1e-3):
                raise ValueError(f"{pair.label}: label affine differs from its image's ({pair.image})")
            files[pair.label.relative_to(root).as_posix()] = "label"
    settings = volume_settings("nifti", names, sevs, seed)
    settings["images"] = images
    settings["labels"] = labels
    settings["pair_key"] = pair_key if labels is not None else None
    prepare_output(out_p, settings, overwrite=overwrite, what="a corrupted dataset")
    return write_volumes(root, sorted(files.items()), out_p, names=names, severities=sevs, seed=seed,
                         settings=settings, overwrite=overwrite, progress=progress, device=dev, desc="NIfTI-C")


def _header(path: Path) -> Any:
    import nibabel as nib

    try:
        return nib.load(str(path))
    except Exception as err:
        raise ValueError(f"cannot read NIfTI file {path}: {err}") from err
