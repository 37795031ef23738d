"""The one report writer: ``report.md`` (title, sections, references, figures) and ``report.json``.

Every task builds its report as a list of :class:`Section` s (heading + markdown body) and hands it to
:func:`write_report` with its results dict; the writer saves the figures, renders the markdown and
writes both files atomically (a crash never leaves a half-written report).

Markdown layout: ``# title``, then every section (``## heading`` unless ``heading`` is None, then the
body blocks), then the references section, then the figure links; blocks are separated by one
blank line and the file ends with one newline.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medrobust.io import atomic_path, atomic_write_json, atomic_write_text

from .figures import save_figure
from .references import references_heading, references_markdown
from .sparse import SPARSE_HEADING, sparse_blocks, sparse_runs
from .tables import sanitize

__all__ = ["Section", "sanitize", "render_markdown", "figures_section", "report_files", "write_report",
           "sparse_section"]


@dataclass(frozen=True)
class Section:
    """One part of a report.

    ``heading``: the section title (None: the body follows the previous block with no heading, e.g.
    the lead paragraph); ``body``: one markdown block or a sequence of blocks (paragraphs, tables,
    lists; empty blocks are skipped); ``level``: heading level (2 = ``##``, 3 = ``###`` for a
    subsection)."""

    heading: str | None
    body: str | Sequence[str] = ()
    level: int = 2

    def blocks(self) -> list[str]:
        out = [] if self.heading is None else ["#" * self.level + " " + self.heading]
        body = [self.body] if isinstance(self.body, str) else list(self.body)
        return out + [b for b in body if b.strip()]


def render_markdown(title: str, sections: Sequence[Section]) -> str:
    """``# title`` and the sections' blocks, one blank line between blocks, one final newline."""
    blocks = [f"# {title}"] + [b for s in sections for b in s.blocks()]
    return "\n\n".join(b.strip("\n") for b in blocks).rstrip() + "\n"


def figures_section(figures: Mapping[str, str | os.PathLike[str]], *, heading: str | None = "Figures",
                    compact: bool = False) -> Section:
    """Links ``![name](figures/<file name>)`` to figures in the report's ``figures/`` folder, under
    ``heading`` (None: no heading); ``compact``: one line each instead of one paragraph each."""
    links = [f"![{name}](figures/{Path(p).name})" for name, p in figures.items()]
    return Section(heading, "\n".join(links) if compact else links)


def sparse_section(records: Sequence[Mapping[str, Any]]) -> Section | None:
    """The "Sparse training" section for :func:`~medrobust.evaluate.report.sparse.sparse_runs`' records
    (method, target and realised density, per-layer densities, connections moved); None when empty."""
    blocks = sparse_blocks(records)
    return Section(SPARSE_HEADING, blocks) if blocks else None


def report_files(out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """``{"json": out_dir/report.json, "markdown": out_dir/report.md}``."""
    out_dir = Path(out_dir)
    return {"json": out_dir / "report.json", "markdown": out_dir / "report.md"}


def write_report(
    out_dir: str | os.PathLike[str],
    *,
    title: str,
    sections: Sequence[Section],
    results: Any,
    figures: Mapping[str, Any] | None = None,
    references: Any = None,
    references_note: str | None = None,
    reference_decimals: int | None = None,
    references_caveat: str | None = None,
    figures_heading: str | None = "Figures",
    files_key: str | None = None,
) -> dict[str, Path]:
    """Write ``out_dir/report.json``, ``out_dir/report.md`` and the figures, all atomically.

    Args:
        out_dir: the report folder (created).
        title: the markdown title.
        sections: the report's sections, in order.
        results: what ``report.json`` holds, written through :func:`sanitize` (strict JSON: NaN/inf
            as ``null``).
        figures: ``{name: figure}`` in display order; a figure is a matplotlib ``Figure`` (saved as
            ``figures/<name>.png``), the path of an existing image (copied into ``figures/`` unless it
            is there already) or None (skipped). ``figures/`` is created when this is given. Each is
            linked after the sections as ``![name](figures/<file>)`` under ``figures_heading``
            (None: no heading).
        references: published reference numbers (a protocol's ``references:``); when non-empty a
            section ``references_heading(references_note)`` is added after the sections, formatted by
            :func:`~medrobust.evaluate.report.references.references_markdown` with ``reference_decimals``;
            ``references_caveat`` is a note printed under them (e.g. that the published numbers were
            measured on another protocol than the data evaluated here).
        Runs trained with ``train.sparse`` (a ``sparse.json`` in the run folder named by
            ``results["models"][name]["provenance"]["run_dir"]``) get a "Sparse training" section
            after the sections (:func:`sparse_section`) and their records in ``results["sparse"]``.
        files_key: when given, ``results[files_key]`` is set to ``{name: str(path)}`` of every file
            written (``json``, ``markdown``, then the figures) before ``report.json`` is written.

    Returns:
        ``{"json": path, "markdown": path, <figure name>: path, ...}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = report_files(out_dir)
    fig_dir = out_dir / "figures"
    saved: dict[str, Path] = {}
    if figures is not None:
        fig_dir.mkdir(parents=True, exist_ok=True)
        for name, fig in figures.items():
            if name in files:
                raise ValueError(f"figure name {name!r} is reserved")
            if fig is None:
                continue
            if hasattr(fig, "savefig"):
                saved[name] = save_figure(fig, fig_dir / f"{name}.png")
                continue
            src = Path(fig)
            if not src.is_file():
                raise ValueError(f"figures[{name!r}] must be a matplotlib Figure or an existing image path, got {fig!r}")
            dst = fig_dir / src.name
            if src.resolve() != dst.resolve():
                with atomic_path(dst) as tmp:
                    shutil.copyfile(src, tmp)
            saved[name] = dst
    files.update(saved)
    sparse = sparse_runs(results.get("models") or {}) if isinstance(results, dict) else []
    if sparse:  # runs trained with train.sparse: their sparse.json, in every task's report
        results["sparse"] = sparse
    if files_key is not None:
        results[files_key] = {k: str(v) for k, v in files.items()}
    atomic_write_json(files["json"], sanitize(results), allow_nan=False)

    parts = list(sections)
    if (sparse_part := sparse_section(sparse)) is not None:
        parts.append(sparse_part)
    if references:
        parts.append(Section(references_heading(references_note), references_markdown(references, decimals=reference_decimals,
                                                                                   note=references_caveat)))
    if saved:
        parts.append(figures_section(saved, heading=figures_heading))
    atomic_write_text(files["markdown"], render_markdown(title, parts))
    return files
