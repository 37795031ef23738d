"""Write CIFAR-10-C from a CIFAR-10 test batch (``medrobust corrupt --task cifar``).

Input: ``ROOT/test_batch`` or ``ROOT/cifar-10-batches-py/test_batch`` (the python release; a
CIFAR-100 ``test`` file under ``ROOT`` or ``ROOT/cifar-100-python`` works too, giving CIFAR-100-C).
Output, the public CIFAR-10-C layout::

    OUT/<corruption>.npy   uint8 (S·N, 32, 32, 3): one block of N test images per severity, in
                           severity order (S = 5 and N = 10000 for the full release)
    OUT/labels.npy         uint8 (S·N,): the test labels repeated once per severity block
    OUT/manifest.json      settings (corruptions, severities, seed, table, batch size, source
                           checksum) and the corruptions completed so far with their SHA-256

Images are corrupted with :func:`medrobust.augment.corrupt` (``table="cifar"``, the CIFAR-10-C
severity parameters) in batches of ``batch_size``, each batch with a generator seeded by
SHA-256 of ``(seed, corruption, severity, batch index)``, then rounded to uint8. Each corruption file
is filled in a temporary memory-mapped file and renamed onto ``<corruption>.npy`` only when complete,
and recorded in the manifest right after, so an interrupted run resumes at the first corruption not
recorded (an identical rerun gives byte-identical files). An ``OUT`` written with other settings is
refused unless ``overwrite=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_path, atomic_write_json

__all__ = ["corrupt_cifar", "find_test_batch", "MANIFEST_NAME", "batch_seed"]

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


def find_test_batch(root: str | os.PathLike[str]) -> tuple[Path, str]:
    """``(path, dataset)`` of the test batch under ``root`` (CIFAR-10 first, then CIFAR-100)."""
    root = Path(root)
    for path, which in ((root / "test_batch", "cifar10"), (root / "cifar-10-batches-py" / "test_batch", "cifar10"),
                        (root / "cifar-100-python" / "test", "cifar100")):
        if path.is_file():
            return path, which
    if (root / "test").is_file() and (root / "meta").is_file():
        return root / "test", "cifar100"
    if not root.exists():
        raise FileNotFoundError(f"{root}: CIFAR root does not exist")
    raise FileNotFoundError(f"{root}: no test_batch here or in {root}/cifar-10-batches-py/ "
                            "(expected the CIFAR-10 python release)")


def batch_seed(seed: int, corruption: str, severity: int, batch_index: int) -> int:
    """Deterministic 63-bit seed of one batch."""
    key = f"{seed}|{corruption}|{severity}|{batch_index}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") & (2**63 - 1)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _parse_corruptions(spec: str | Sequence[str]) -> list[str]:
    from ..augment import corruption_names

    known = list(corruption_names("all"))
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key in ("all", "common", "extra"):
            return list(corruption_names(key))
        items = [s.strip() for s in spec.split(",") if s.strip()]
    else:
        items = [str(s).strip() for s in spec]
    if not items:
        raise ValueError(f"corruptions: empty selection {spec!r}; use all, common, extra or names from {known}")
    unknown = [s for s in items if s not in known]
    if unknown:
        raise ValueError(f"corruptions: unknown name(s) {unknown}; choose all, common, extra or some of {known}")
    return [c for c in known if c in items]


def corrupt_cifar(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    corruptions: str | Sequence[str] = "all",
    severities: Sequence[int] | str = (1, 2, 3, 4, 5),
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    batch_size: int = 1000,
    device: str = "cpu",
) -> dict[str, Any]:
    """Write ``OUT/<corruption>.npy`` + ``OUT/labels.npy`` (the CIFAR-10-C layout) from ``root``'s test batch.

    Args:
        root: CIFAR-10 root (``test_batch`` here or under ``cifar-10-batches-py/``).
        out: output folder (created); must differ from ``root``.
        corruptions: ``"all"`` (the 19 of CIFAR-10-C), ``"common"`` (15), ``"extra"`` (4), a comma
            list or a list of names.
        severities: subset of 1..5 (a list or ``"1-5"``); blocks are written in ascending order.
            Anything but 1..5 gives files of ``S·N`` images, not the public 5·N.
        seed: base seed (see :func:`batch_seed`).
        overwrite: accept an ``out`` written with other settings and rewrite every file.
        progress: tqdm progress bar.
        batch_size: images per :func:`~medrobust.augment.corrupt` call (part of the settings: the
            per-batch seeds depend on it).
        device: where the corruptions run (``cpu`` / ``cuda``).
    Returns:
        ``{"out", "manifest", "written", "skipped", "n_images", "severities", "shape"}``.
    Raises:
        FileNotFoundError: no test batch under ``root``.
        FileExistsError: ``out`` holds another run's files (other settings, or no manifest).
        ValueError: unknown corruption, severity outside 1..5, malformed test batch (naming the file).
    """
    import torch
    from tqdm.auto import tqdm

    from ..augment import corrupt
    from .cifar import _batch
    from .corrupt_dataset import parse_severities

    root_p, out_p = Path(root), Path(out)
    names = _parse_corruptions(corruptions)
    sevs = parse_severities(severities)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed: expected an int, got {seed!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    test_path, which = find_test_batch(root_p)
    if out_p.resolve() == root_p.resolve() or out_p.resolve() == test_path.parent.resolve():
        raise ValueError(f"out ({out_p}) must differ from the CIFAR folder ({test_path.parent})")
    images, labels = _batch(test_path, "labels" if which == "cifar10" else "fine_labels", 10 if which == "cifar10" else 100)
    n = len(labels)
    if n == 0:
        raise ValueError(f"{test_path}: the test batch is empty")

    settings = {
        "format_version": FORMAT_VERSION, "dataset": which, "corruptions": names, "severities": sevs, "seed": int(seed),
        "table": "cifar", "batch_size": batch_size, "n_images": n, "source_sha256": _sha256(test_path),
        "layout": "<corruption>.npy uint8 (S*N, 32, 32, 3), severity blocks in ascending order; labels.npy uint8 (S*N,)",
    }
    manifest_path = out_p / MANIFEST_NAME
    complete: dict[str, str] = {}
    if manifest_path.exists():
        try:
            old = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        if old.get("settings") == settings and not overwrite:
            complete = dict(old.get("complete") or {})
        elif not overwrite:
            raise FileExistsError(f"{out_p} holds a corrupted CIFAR written with other settings (see {manifest_path}); "
                                  "choose another output folder or pass overwrite=True")
    elif out_p.is_dir() and any(out_p.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_p} is not empty and has no {MANIFEST_NAME}; choose an empty output folder or pass overwrite=True")
    out_p.mkdir(parents=True, exist_ok=True)

    def save_manifest() -> None:
        atomic_write_json(manifest_path, {"settings": settings, "source": str(test_path.resolve()),
                                          "complete": complete, "done": len(complete) == len(names)})

    save_manifest()
    label_file = out_p / "labels.npy"
    tiled = np.tile(labels.astype(np.uint8), len(sevs))
    if overwrite or not label_file.is_file() or not np.array_equal(np.load(label_file, allow_pickle=False), tiled):
        with atomic_path(label_file) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, tiled)

    # a file recorded as complete must still be there with its checksum's size class; re-check cheaply
    skipped = [c for c in names if c in complete and (out_p / f"{c}.npy").is_file()
               and (out_p / f"{c}.npy").stat().st_size >= len(sevs) * n * 3072]
    todo = [c for c in names if c not in skipped]
    dev = torch.device(device)
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2)  # uint8 (N, 3, 32, 32)
    n_batches = (n + batch_size - 1) // batch_size
    bar = tqdm(total=len(todo) * len(sevs) * n_batches, desc="CIFAR-10-C", unit="batch", disable=not progress)
    written: list[str] = []
    for c in todo:
        dest = out_p / f"{c}.npy"
        with atomic_path(dest) as tmp:
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(sevs) * n, *images.shape[1:]))
            for k, s in enumerate(sevs):
                for b in range(n_batches):
                    lo, hi = b * batch_size, min(n, (b + 1) * batch_size)
                    x = x_all[lo:hi].to(dev).float().div_(255)
                    gen = torch.Generator().manual_seed(batch_seed(int(seed), c, s, b))
                    y = corrupt(x, c, s, table="cifar", generator=gen)
                    y8 = torch.round(y.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
                    arr[k * n + lo : k * n + hi] = y8
                    bar.update(1)
            arr.flush()
            del arr
        complete[c] = _sha256(dest)
        save_manifest()
        written.append(c)
    bar.close()
    save_manifest()
    return {"out": str(out_p), "manifest": str(manifest_path), "written": written, "skipped": skipped,
            "n_images": n, "severities": sevs, "shape": [len(sevs) * n, *images.shape[1:]]}
