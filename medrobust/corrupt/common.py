"""What every corrupted-copy writer shares: parsers, seeds, the manifest and resume rules, and one
corruption core run on a device.

The writers (:mod:`.acdc`, :mod:`.cifar`) follow one protocol:

* **Manifest.** ``OUT/manifest.json`` (:data:`MANIFEST_NAME`) holds ``{"settings": ..., "source":
  ..., ...}``. ``settings`` is everything the output bytes depend on (corruptions, severities, base
  seed, parameter table, batch size, ...) and nothing else: not the device, not the progress bar.
  The manifest is written before the first output file and again when the run ends.
* **Resume and refusal** (:func:`prepare_output`). An ``OUT`` whose manifest has the same settings
  is resumed: files already written are kept. An ``OUT`` with other settings, an unreadable
  manifest, or files but no manifest is refused (``FileExistsError``) unless ``overwrite=True``
  (``--overwrite``), which rewrites every output file and leaves files it does not write alone.
* **Inside OUT only** (:func:`check_targets`). Every path a writer will write is resolved before
  anything is written; one that is, or goes through, a symlink (a folder or file under ``OUT``
  pointing elsewhere) is refused, so nothing is ever written outside ``OUT`` and a symlink never
  counts as a finished file.
* **Stale temporaries** (:func:`start_output`). Files are written under a temporary name
  (:func:`medrobust.io.atomic_path`) and renamed when complete; a killed run leaves its temporary
  behind. A run removes those under ``OUT`` when it starts, and they never count as outputs (nor
  make an ``OUT`` "not empty").
* **Seeds** (:func:`derive_seed`). Each output unit (an image file, a batch of images) gets its
  own 63-bit seed, SHA-256 of ``(seed, corruption, severity, key)``, so a unit's bytes do not
  depend on which other units were written in the same run: an interrupted run resumed later, or
  a run of a subset, gives byte-identical files.
* **Device** (:func:`corrupt_batch`). A core draws its random parameters on the CPU from a
  ``torch.Generator`` seeded with the unit's seed and only applies them on the device; the result
  comes back to the CPU before it is written. The draws are the same on every device, so a CPU
  and a CUDA run differ by floating-point rounding only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import atomic_write_json, is_temp_name, remove_stale_temps

__all__ = [
    "MANIFEST_NAME",
    "check_device",
    "check_out",
    "check_seed",
    "check_targets",
    "corrupt_batch",
    "derive_seed",
    "parse_corruptions",
    "parse_severities",
    "prepare_output",
    "sha256_file",
    "start_output",
    "write_manifest",
]

MANIFEST_NAME = "manifest.json"


# -- parsers (also used by the CLI) ------------------------------------------------------------------
def parse_severities(spec: str | int | Iterable[int]) -> list[int]:
    """``"1-5"``, ``"1,3,5"``, ``"2"`` (or ints) -> sorted unique severities in 1..5."""
    if isinstance(spec, bool):
        raise ValueError(f"severities: expected e.g. '1-5', '1,3,5' or '2', got {spec!r}")
    if isinstance(spec, int):
        values = [spec]
    elif isinstance(spec, str):
        values = []
        for part in spec.replace(" ", "").split(","):
            m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
            if m is None:
                raise ValueError(f"severities: cannot parse {part!r} in {spec!r}; expected e.g. '1-5', '1,3,5' or '2'")
            low, high = int(m.group(1)), int(m.group(2) or m.group(1))
            if low > high:
                raise ValueError(f"severities: range {part!r} is reversed; write '{high}-{low}'")
            values.extend(range(low, high + 1))
    else:
        values = list(spec)
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            raise ValueError(f"severities: expected integers, got {spec!r}")
    bad = [int(v) for v in values if not 1 <= int(v) <= 5]
    if bad or not values:
        raise ValueError(f"severities: values must be in 1..5, got {bad or 'nothing'} from {spec!r}")
    return sorted({int(v) for v in values})


def parse_corruptions(
    spec: str | Sequence[str],
    names: Sequence[str],
    *,
    groups: Mapping[str, Sequence[str]] | None = None,
    prefix: str = "",
) -> list[str]:
    """A group name (``"all"``), a comma list or a list of names -> corruption names in ``names`` order.

    Args:
        spec: the selection. A group name counts only as the whole string.
        names: the known corruption names, in their canonical order.
        groups: group name -> its corruptions (default ``{"all": names}``).
        prefix: registry prefix accepted in front of a name (``"mri_"``, ``"natural_"``); names
            are matched case-insensitively.
    Raises:
        ValueError: empty selection or unknown names, naming ``corruptions`` and what is allowed.
    """
    groups = {"all": list(names)} if groups is None else groups
    choices = ", ".join(repr(g) for g in groups)
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key in groups:
            return list(groups[key])
        items = [s.strip() for s in spec.split(",") if s.strip()]
    else:
        items = [str(s).strip() for s in spec]
    if not items:
        raise ValueError(f"corruptions: empty selection {spec!r}; use {choices} or some of {list(names)}")
    wanted = [s.lower().removeprefix(prefix) if prefix else s.lower() for s in items]
    unknown = [s for s, n in zip(items, wanted) if n not in names]
    if unknown:
        raise ValueError(f"corruptions: unknown name(s) {unknown}; choose {choices} or some of {list(names)}")
    return [n for n in names if n in wanted]


# -- seeds and checks ----------------------------------------------------------------------------
def derive_seed(seed: int, corruption: str, severity: int, key: str | int) -> int:
    """Deterministic 63-bit seed of one output unit: SHA-256 of ``"seed|corruption|severity|key"``.

    ``key`` is the unit within a (corruption, severity): the source file's relative path for
    :func:`~medrobust.corrupt.acdc.corrupt_acdc`, the batch index for
    :func:`~medrobust.corrupt.cifar.corrupt_cifar`.
    """
    text = f"{seed}|{corruption}|{severity}|{key}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") & (2**63 - 1)


def check_seed(seed: Any) -> int:
    """``seed`` as an int; ``ValueError`` naming ``seed`` for bools, floats and the rest."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed: expected an int, got {seed!r}")
    return int(seed)


def check_device(device: str | torch.device) -> torch.device:
    """``device`` (``cpu``, ``cuda``, ``cuda:N`` or ``auto``) as a usable ``torch.device``.

    Raises:
        ValueError: unparseable or unsupported device, or CUDA requested but absent (one line,
            naming ``--device``).
    """
    if isinstance(device, str) and device.strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"--device: expected cpu, cuda, cuda:N or auto, got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device: {device!r} requested but CUDA is not available; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"--device: {device!r} does not exist ({torch.cuda.device_count()} CUDA device(s))")
    return dev


def check_out(out: Path, *sources: Path) -> None:
    """``ValueError`` when ``out`` is one of the ``sources`` folders (it would be written into)."""
    for src in sources:
        if out.resolve() == src.resolve():
            raise ValueError(f"out ({out}) must differ from the source folder ({src})")


def check_targets(out: Path, rels: Iterable[str]) -> None:
    """Refuse a run whose target ``out/<rel>`` is, or goes through, a symlink (checked before writing).

    ``out`` itself may be a symlink (it is resolved first); below it every folder and file a writer
    will write must be a plain one, so a write can never land outside ``out`` (a symlinked
    ``OUT/<corruption>`` or patient folder) and a symlinked file never counts as written.

    Raises:
        ValueError: one line naming the path, where its symlink leads and ``--out``.
    """
    base = Path(out).resolve()
    checked: set[Path] = set()
    for rel in rels:
        target = base / rel
        if ".." in Path(rel).parts or not target.is_relative_to(base):
            raise ValueError(f"{rel}: target path leaves --out {out}")
        parts = [target, *target.parents]
        for path in parts[: parts.index(base)]:  # target, then each folder below base
            if path in checked:
                break
            if path.is_symlink():
                real = path.resolve()
                where = "elsewhere under" if real.is_relative_to(base) else "outside"
                raise ValueError(f"{path} is a symlink to {real}, {where} --out {out}; refusing to write through it "
                                 "(remove the link or choose another --out)")
            checked.add(path)


def start_output(out: Path) -> list[Path]:
    """Remove the temporaries a killed earlier run left under ``out`` (not following symlinks); their paths."""
    return remove_stale_temps(out) if out.is_dir() else []


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


# -- manifest, resume, refusal --------------------------------------------------------------------
def prepare_output(out: Path, settings: Mapping[str, Any], *, overwrite: bool, what: str) -> dict[str, Any] | None:
    """Check that ``out`` may receive a run with ``settings``; the previous manifest if it is resumed.

    Args:
        out: output folder (need not exist).
        settings: the run's settings (compared after a JSON round trip, as stored).
        overwrite: accept an ``out`` holding another run or foreign files.
        what: the dataset in the error message, e.g. ``"a corrupted dataset"``.
    Returns:
        The manifest found in ``out`` when it has the same settings and ``overwrite`` is false (the
        run resumes from it), else ``None``.
    Raises:
        FileExistsError: ``out`` holds ``what`` written with other settings (or an unreadable
            manifest), or is not empty and has no manifest; only without ``overwrite``.
    """
    manifest_path = out / MANIFEST_NAME
    if manifest_path.exists():
        try:
            old = json.loads(manifest_path.read_text(encoding="utf-8"))
            same = isinstance(old, dict) and old.get("settings") == json.loads(json.dumps(settings))
        except (OSError, ValueError):
            old, same = None, False
        if overwrite:
            return None
        if not same:
            raise FileExistsError(
                f"{out} holds {what} written with other settings (see {manifest_path}); "
                "choose another --out or pass --overwrite"
            )
        return old
    if out.is_dir() and any(not is_temp_name(p.name) for p in out.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{out} is not empty and has no {MANIFEST_NAME}; choose an empty --out or pass --overwrite"
        )
    return None


def write_manifest(out: Path, manifest: Mapping[str, Any]) -> Path:
    """Write ``out/manifest.json`` atomically (creating ``out``) and return its path."""
    path = out / MANIFEST_NAME
    atomic_write_json(path, manifest)
    return path


# -- one core on a device -------------------------------------------------------------------------
def _to_device(params: Any, device: torch.device) -> Any:
    if isinstance(params, torch.Tensor):
        return params.to(device)
    if isinstance(params, dict):
        return {k: _to_device(v, device) for k, v in params.items()}
    if isinstance(params, list):
        return [_to_device(v, device) for v in params]
    return params


def corrupt_batch(core: str, x: torch.Tensor, severity: int, seed: int, device: torch.device,
                  **kwargs: Any) -> torch.Tensor:
    """Corrupt the CPU batch ``x`` with registry core ``core`` at ``severity``; the result on the CPU.

    The parameters are drawn on the CPU from ``torch.Generator().manual_seed(seed)`` and applied
    on ``device`` (on CUDA without TF32). On the CPU this equals ``corrupt_mri`` / ``corrupt`` of
    ``x`` with that generator, bit for bit.

    Args:
        core: registry name, e.g. ``"mri_rician_noise"`` or ``"natural_fog"``.
        x: float ``(N, C, ...)`` batch in [0, 1] on the CPU.
        severity: 1..5.
        seed: seed of the unit's generator (:func:`derive_seed`).
        device: where the core is applied (:func:`check_device`).
        kwargs: further core arguments (``table="cifar"``).
    """
    from ..augment import build

    fn = build({"name": core, "severity": severity, **kwargs}, where="corruptions")
    params = fn.sample_params(x, torch.Generator().manual_seed(seed))
    with _full_float32(device):
        return fn.apply(x.to(device), _to_device(params, device)).cpu()


@contextmanager
def _full_float32(device: torch.device) -> Iterator[None]:
    """On CUDA, no TF32 in convolutions and matmuls (a written dataset keeps float32 precision)."""
    if device.type != "cuda":
        yield
        return
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
