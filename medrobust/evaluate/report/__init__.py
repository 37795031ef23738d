"""Reports: one writer (:func:`write_report`) for every task's ``report.{md,json}`` and figures.

* :mod:`.tables`: :func:`format_table`, the number formatters (:func:`fmt_pct`, :func:`fmt_mm`,
  :func:`fmt_num`, :func:`nan_mean`, :func:`finite`) and :func:`sanitize` (JSON-safe copy);
* :mod:`.figures`: :func:`new_figure`, :func:`save_figure` (atomic) and image panels;
* :mod:`.references`: the references section (published numbers, as reported);
* :mod:`.sources`: the provenance section (runs, checkpoints, steps, test data, corrupted set);
* :mod:`.writer`: :class:`Section`, :func:`write_report`;
* :mod:`.sparse`: the sparse-training section (each evaluated run's ``sparse.json``), added by the writer.

Each task's own sections, tables and plots live in ``medrobust/tasks/<task>/report.py``.
"""

from .figures import (
    display_image,
    label_colors,
    label_grid,
    new_figure,
    overlay,
    save_figure,
    show_image,
    to_numpy,
)
from .references import CITATION_KEYS, REFERENCES_HEADING, protocol_note, references_heading, references_markdown
from .tables import (
    DASH,
    finite,
    fmt_mm,
    fmt_num,
    fmt_pct,
    format_table,
    nan_mean,
    non_empty_columns,
    sanitize,
)
from .sources import SOURCES_HEADING, describe_source, runs_table, sources_section
from .sparse import SPARSE_HEADING, sparse_blocks, sparse_record, sparse_runs
from .writer import (
    Section,
    figures_section,
    render_markdown,
    report_files,
    sparse_section,
    write_report,
)

__all__ = [
    "DASH", "finite", "fmt_num", "fmt_mm", "fmt_pct", "nan_mean", "format_table", "non_empty_columns", "sanitize",
    "new_figure", "save_figure", "to_numpy", "display_image", "label_colors", "label_grid", "overlay", "show_image",
    "REFERENCES_HEADING", "CITATION_KEYS", "references_heading", "references_markdown", "protocol_note",
    "SOURCES_HEADING", "describe_source", "runs_table", "sources_section",
    "Section", "render_markdown", "figures_section", "report_files", "write_report",
    "SPARSE_HEADING", "sparse_record", "sparse_runs", "sparse_blocks", "sparse_section",
]
