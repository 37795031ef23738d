"""Checks every task's ``evaluate`` runs before its first forward pass: the report folder can be
written, every run has its config and checkpoint, the data roots exist and a ``--corrupted-root``
holds every file the evaluation will read.

A failed check raises :class:`FileNotFoundError` (for the report folder: :class:`FileExistsError` when a
file is in the way, :class:`ValueError` when it is not writable) with a one-line message naming the first
few missing paths, how many are missing and what was expected; the CLI prints it and exits with status 2.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["missing_message", "require_paths", "check_out_dir", "check_runs", "check_dir", "corrupted_manifest"]

#: how many missing paths a message shows before "... and N more"
SHOWN = 3


def missing_message(what: str, missing: Sequence[Any], expected: str, *, total: int | None = None,
                    shown: int = SHOWN) -> str:
    """``"<what>: 2 of 8 expected paths missing (expected <expected>): a, b"`` (one line; the first
    ``shown`` paths, then ``... and N more``)."""
    n = len(missing)
    head = ", ".join(str(p) for p in missing[:shown]) + (f" ... and {n - shown} more" if n > shown else "")
    of = f" of {total}" if total is not None else ""
    noun = "path" if (total if total is not None else n) == 1 else "paths"
    msg = f"{what}: {n}{of} expected {noun} missing (expected {expected}): {head}"
    return " ".join(msg.split())  # one line, whatever the parts hold


def require_paths(paths: Iterable[str | os.PathLike[str]], *, what: str, expected: str, kind: str = "file") -> int:
    """Raise :class:`FileNotFoundError` (one line, :func:`missing_message`) unless every path exists
    as a ``kind`` (``"file"``, ``"dir"`` or ``"any"``); returns how many paths were checked."""
    test = {"file": os.path.isfile, "dir": os.path.isdir, "any": os.path.exists}[kind]
    seen: set[str] = set()
    missing: list[str] = []
    for p in paths:
        s = str(p)
        if s in seen:
            continue
        seen.add(s)
        if not test(s):
            missing.append(s)
    if missing:
        raise FileNotFoundError(missing_message(what, missing, expected, total=len(seen)))
    return len(seen)


def check_out_dir(out_dir: str | os.PathLike[str], *, what: str = "--out") -> Path:
    """The report folder ``out_dir`` exists as a folder or can be created (its first existing parent is a
    writable folder); nothing is created here."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{what} {out}: exists and is not a folder (expected a folder for report.md, "
                              "report.json and figures/)")
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise FileExistsError(f"{what} {out}: {probe} is a file, so the report folder cannot be created")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {out}: {probe} is not writable (expected a folder the report can be written to)")
    return out


def check_runs(runs: Mapping[str, str | os.PathLike[str]], *, checkpoint: str = "best.pt",
               config: str | None = "config.yaml") -> None:
    """Every run folder holds ``config`` and ``checkpoint`` (one message listing every missing file)."""
    paths: list[Path] = []
    for path in runs.values():
        run = Path(path)
        if config is not None:
            paths.append(run / config)
        paths.append(run / checkpoint)
    what = "--run" if len(runs) == 1 else f"--run ({len(runs)} runs)"
    require_paths(paths, what=what, expected=(f"{config} and {checkpoint}" if config else checkpoint)
                  + " in every run folder written by `medrobust train`")


def check_dir(path: str | os.PathLike[str] | None, *, what: str, expected: str) -> Path | None:
    """``path`` is an existing folder (None passes)."""
    if path is None:
        return None
    require_paths([path], what=what, expected=expected, kind="dir")
    return Path(path)


def corrupted_manifest(root: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """The ``settings`` of ``<root>/manifest.json`` written by ``medrobust corrupt`` (seed, corruptions,
    severities), or None when there is none (e.g. a public release)."""
    if root is None:
        return None
    path = Path(root) / "manifest.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    settings = data.get("settings") if isinstance(data, dict) else None
    return settings if isinstance(settings, dict) else None
