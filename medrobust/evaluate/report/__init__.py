"""Reports: one writer (:func:`write_report`) for every task's ``report.{md,json}`` and figures.

* :mod:`.tables`: :func:`format_table`, the number formatters (:func:`fmt_pct`, :func:`fmt_mm`,
  :func:`fmt_num`, :func:`nan_mean`, :func:`finite`) and :func:`sanitize` (JSON-safe copy);
* :mod:`.figures`: :func:`new_figure`, :func:`save_figure` (atomic) and image panels;
* :mod:`.references`: the references section (published numbers, as reported);
* :mod:`.writer`: :class:`Section`, :func:`write_report`.

Each task's own sections, tables and plots live in ``medrobust/tasks/<task>/report.py``.
"""

from .figures import (
    display_image,
    label_colors,
    new_figure,
    overlay,
    save_figure,
    show_image,
    to_numpy,
)
from .references import REFERENCES_HEADING, references_heading, references_markdown
from .tables import (
    DASH,
    finite,
    fmt_mm,
    fmt_num,
    fmt_pct,
    format_table,
    nan_mean,
    sanitize,
)
from .writer import (
    Section,
    figures_section,
    render_markdown,
    report_files,
    write_report,
)

__all__ = [
    "DASH", "finite", "fmt_num", "fmt_mm", "fmt_pct", "nan_mean", "format_table", "sanitize",
    "new_figure", "save_figure", "to_numpy", "display_image", "label_colors", "overlay", "show_image",
    "REFERENCES_HEADING", "references_heading", "references_markdown",
    "Section", "render_markdown", "figures_section", "report_files", "write_report",
]
