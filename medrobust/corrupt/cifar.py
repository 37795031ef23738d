"""Write CIFAR-10-C from a CIFAR-10 test batch (``medrobust corrupt --task cifar``).

Input: ``ROOT/test_batch`` or ``ROOT/cifar-10-batches-py/test_batch`` (the python release; a
CIFAR-100 ``test`` file under ``ROOT`` or ``ROOT/cifar-100-python`` works too, giving CIFAR-100-C).
Output, the public CIFAR-10-C layout::

    OUT/<corruption>.npy   uint8 (S·N, 32, 32, 3): one block of N test images per severity, in
                           severity order (S = 5 and N = 10000 for the full release)
    OUT/labels.npy         uint8 (S·N,): the test labels repeated once per severity block
    OUT/manifest.json      settings (corruptions, severities, seed, table, batch size, source
                           checksum) and the corruptions completed so far with their SHA-256

Images are corrupted with the ``natural_<corruption>`` cores (as :func:`medrobust.augment.corrupt`
with ``table="cifar"``, the CIFAR-10-C severity parameters) in batches of ``batch_size`` on
``device``, each batch drawing on the CPU from ``derive_seed(seed, corruption, severity, batch
index)`` (see :mod:`medrobust.corrupt.common`), then rounded to uint8 on the CPU. Each corruption
file is filled in a temporary memory-mapped file and renamed onto ``<corruption>.npy`` only when
complete, and recorded in the manifest right after, so an interrupted run resumes at the first
corruption not recorded (an identical rerun gives byte-identical files). An ``OUT`` written with
other settings is refused unless ``overwrite=True`` (``--overwrite``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

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
    sha256_file,
    start_output,
    write_manifest,
)

__all__ = ["GROUPS", "corrupt_cifar", "find_test_batch"]

FORMAT_VERSION = 1
#: corruption groups accepted as the whole ``corruptions`` string
GROUPS = ("all", "common", "extra")


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
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Write ``OUT/<corruption>.npy`` + ``OUT/labels.npy`` (the CIFAR-10-C layout) from ``root``'s test batch.

    Args:
        root: CIFAR-10 root (``test_batch`` here or under ``cifar-10-batches-py/``).
        out: output folder (created); must differ from ``root``.
        corruptions: ``"all"`` (the 19 of CIFAR-10-C), ``"common"`` (15), ``"extra"`` (4), a comma
            list or a list of names (``natural_`` prefix accepted).
        severities: subset of 1..5 (a list or ``"1-5"``); blocks are written in ascending order.
            Anything but 1..5 gives files of ``S·N`` images, not the public 5·N.
        seed: base seed; batch ``b`` of a (corruption, severity) draws from
            :func:`~medrobust.corrupt.common.derive_seed` of ``(seed, corruption, severity, b)``.
        overwrite: accept an ``out`` written with other settings and rewrite every file.
        progress: tqdm progress bar.
        batch_size: images per core call (part of the settings: the per-batch seeds depend on it).
        device: where the corruption cores run (``cpu``, ``cuda``, ``cuda:N``, ``auto``); not part
            of the settings: the random draws are made on the CPU whatever the device.
    Returns:
        ``{"out", "manifest", "written", "skipped", "n_images", "severities", "shape"}``.
    Raises:
        FileNotFoundError: no test batch under ``root``.
        FileExistsError: ``out`` holds another run's files (other settings, or no manifest).
        ValueError: unknown corruption, severity outside 1..5, bad device, malformed test batch
            (naming the file), a target under ``out`` that is or goes through a symlink (naming it).
    """
    from tqdm.auto import tqdm

    from ..augment import corruption_names
    from ..data.cifar import _batch

    root_p, out_p = Path(root), Path(out)
    names = parse_corruptions(corruptions, corruption_names("all"), groups={g: corruption_names(g) for g in GROUPS},
                              prefix="natural_")
    sevs = parse_severities(severities)
    seed = check_seed(seed)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    dev = check_device(device)
    test_path, which = find_test_batch(root_p)
    check_out(out_p, root_p, test_path.parent)
    images, labels = _batch(test_path, "labels" if which == "cifar10" else "fine_labels", 10 if which == "cifar10" else 100)
    n = len(labels)
    if n == 0:
        raise ValueError(f"{test_path}: the test batch is empty")

    settings = {
        "format_version": FORMAT_VERSION, "dataset": which, "corruptions": names, "severities": sevs, "seed": seed,
        "table": "cifar", "batch_size": batch_size, "n_images": n, "source_sha256": sha256_file(test_path),
        "layout": "<corruption>.npy uint8 (S*N, 32, 32, 3), severity blocks in ascending order; labels.npy uint8 (S*N,)",
    }
    old = prepare_output(out_p, settings, overwrite=overwrite, what="a corrupted CIFAR")
    check_targets(out_p, [MANIFEST_NAME, "labels.npy", *(f"{c}.npy" for c in names)])
    start_output(out_p)  # temporaries of a killed earlier run
    complete: dict[str, str] = dict((old or {}).get("complete") or {})
    out_p.mkdir(parents=True, exist_ok=True)

    def save_manifest() -> Path:
        return write_manifest(out_p, {"settings": settings, "source": str(test_path.resolve()),
                                      "complete": complete, "done": len(complete) == len(names)})

    manifest_path = save_manifest()
    label_file = out_p / "labels.npy"
    tiled = np.tile(labels.astype(np.uint8), len(sevs))
    if overwrite or not label_file.is_file() or not np.array_equal(np.load(label_file, allow_pickle=False), tiled):
        with atomic_path(label_file) as tmp, open(tmp, "wb") as f:
            np.save(f, tiled)

    # a file recorded as complete must still be there with its checksum's size class; re-check cheaply
    skipped = [c for c in names if c in complete and (out_p / f"{c}.npy").is_file()
               and (out_p / f"{c}.npy").stat().st_size >= len(sevs) * n * 3072]
    todo = [c for c in names if c not in skipped]
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
                    x = x_all[lo:hi].float().div_(255)
                    y = corrupt_batch(f"natural_{c}", x, s, derive_seed(seed, c, s, b), dev, table="cifar")
                    arr[k * n + lo : k * n + hi] = torch.round(y.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
                    bar.update(1)
            arr.flush()
            del arr
        complete[c] = sha256_file(dest)
        save_manifest()
        written.append(c)
    bar.close()
    save_manifest()
    return {"out": str(out_p), "manifest": str(manifest_path), "written": written, "skipped": skipped,
            "n_images": n, "severities": sevs, "shape": [len(sevs) * n, *images.shape[1:]]}
