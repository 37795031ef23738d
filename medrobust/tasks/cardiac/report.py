"""The cardiac report: Dice / HD95 tables, Dice-vs-severity curves and the prediction grid.

Results structure consumed by :func:`write_cardiac_report` / :func:`comparison_table`::

    {
      "task": str,                                  # "cardiac"
      "runs": {model_name: run folder},             # optional (``"run": str``, a run name, also shown)
      "protocol": {                                 # optional: where the test data came from
        "test": {"root", "embedded_default", "patients", "cases"}, "shifted": {...} | None,
        "corruptions": [...], "severities": [...], "hd95": bool,
        "corruption_source": {"kind": "on the fly", "seed", "seeding"} | {"kind": "files", "root", "seed"},
      },
      "models": {
        model_name: {
          "clean": summary,                         # required
          "corruptions": {                          # optional
            corruption_name: {"1": summary, ..., "5": summary},   # severity keys "1".."5" (ints accepted)
          },
          "shifted": summary,                       # optional (distribution-shifted test set)
          "provenance": {"run_dir", "checkpoint", "checkpoint_step", "trained_steps", "configured_steps", ...},
        },
      },
      "references": {...},                          # optional published numbers (with their citations)
      "references_note": str,                       # optional: how the references' protocol differs
    }

``summary`` is the dict from :meth:`medrobust.evaluate.metrics.SegmentationMeter.summary`; the
report reads ``summary["dice"] = {class: v, ..., "mean": v}`` (Dice in ``[0, 1]``, shown as
percentages) and ``summary["hd95"] = {class: v, ..., "mean": v}`` (mm). A missing ``hd95`` (or a
NaN / ``None`` value) is shown as ``–``; extra keys are kept in ``report.json``.

``references`` is shown by :mod:`medrobust.evaluate.report.references` (published numbers as given).
In ``report.json`` non-finite floats (NaN/inf) are written as ``null`` so the file is strict JSON.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...evaluate.report import (
    Section,
    describe_source,
    display_image,
    finite,
    fmt_mm,
    fmt_pct,
    format_table,
    label_colors,
    label_grid,
    nan_mean,
    new_figure,
    non_empty_columns,
    overlay,
    save_figure,
    sources_section,
    to_numpy,
    write_report,
)
from ..tta.report import plot_blend_weights, tta_sections

__all__ = ["CLASS_COLORS", "comparison_table", "cardiac_sections", "write_cardiac_report", "plot_dice_vs_severity",
           "plot_prediction_grid"]

#: Fixed overlay colours (RGB in [0, 1]) for labels 1, 2, 3 = ACDC RV, Myo, LV; later labels use tab10.
CLASS_COLORS: tuple[tuple[float, float, float], ...] = (
    (0.90, 0.16, 0.16),  # 1 RV  - red
    (0.20, 0.75, 0.25),  # 2 Myo - green
    (0.20, 0.45, 0.95),  # 3 LV  - blue
)

TITLE = "Cardiac MRI robustness (ACDC protocol)"


def _tta_corrupted(m: Mapping[str, Any]) -> Any:
    return _mean_corrupted_dice(m)[0]


#: the DynTTA section's gains columns (mean foreground Dice; ``medrobust.tasks.tta.report.tta_sections``)
TTA_METRICS = (("Clean Dice (%)", "Δ clean (pt)", lambda m: _get(m.get("clean"), "dice")),
               ("Corrupted Dice (%)", "Δ corrupted (pt)", _tta_corrupted),
               ("Shifted Dice (%)", "Δ shifted (pt)", lambda m: _get(m.get("shifted"), "dice")))


# ----------------------------------------------------------------------------------------------
# results access
# ----------------------------------------------------------------------------------------------
def _get(summary: Any, metric: str, key: str = "mean") -> Any:
    if not isinstance(summary, Mapping):
        return None
    m = summary.get(metric)
    return m.get(key) if isinstance(m, Mapping) else None


def _severity_items(by_sev: Mapping[Any, Any]) -> list[tuple[int, Any]]:
    items = []
    for k, v in by_sev.items():
        try:
            items.append((int(k), v))
        except (TypeError, ValueError):
            raise ValueError(f"severity keys must be integers or digit strings like '1'..'5', got {k!r}") from None
    return sorted(items)


def _validate(results: Any) -> Mapping[str, Any]:
    if not isinstance(results, Mapping):
        raise ValueError(f"results must be a dict, got {type(results).__name__}")
    models = results.get("models")
    if not isinstance(models, Mapping) or not models:
        raise ValueError("results['models'] must be a non-empty dict {model_name: {'clean': summary, ...}}")
    for name, m in models.items():
        if not isinstance(m, Mapping):
            raise ValueError(f"results['models'][{name!r}] must be a dict, got {type(m).__name__}")
        if not isinstance(m.get("clean"), Mapping) or not isinstance(m["clean"].get("dice"), Mapping):
            raise ValueError(f"results['models'][{name!r}]['clean'] must be a summary with a 'dice' dict")
        corr = m.get("corruptions", {})
        if not isinstance(corr, Mapping):
            raise ValueError(f"results['models'][{name!r}]['corruptions'] must be a dict {{corruption: {{severity: summary}}}}")
        for cname, by_sev in corr.items():
            if not isinstance(by_sev, Mapping):
                raise ValueError(f"results['models'][{name!r}]['corruptions'][{cname!r}] must be a dict {{severity: summary}}")
            _severity_items(by_sev)
    return models


def _corruption_names(models: Mapping[str, Any]) -> list[str]:
    names: list[str] = []
    for m in models.values():
        for c in m.get("corruptions", {}) or {}:
            if c not in names:
                names.append(c)
    return names


def _class_names(summaries: Sequence[Any]) -> list[str]:
    names: list[str] = []
    for s in summaries:
        d = s.get("dice") if isinstance(s, Mapping) else None
        if isinstance(d, Mapping):
            for k in d:
                if k != "mean" and k not in names:
                    names.append(str(k))
    return names


def _mean_corrupted_dice(model: Mapping[str, Any]) -> tuple[float | None, int]:
    vals = [
        _get(s, "dice")
        for by_sev in (model.get("corruptions") or {}).values()
        for _, s in _severity_items(by_sev)
    ]
    return nan_mean(vals), len(vals)


# ----------------------------------------------------------------------------------------------
# tables
# ----------------------------------------------------------------------------------------------
def comparison_table(results: Mapping[str, Any]) -> str:
    """Main table: one row per model with clean Dice, mean corrupted Dice (over every
    corruption × severity present), shifted Dice (all mean foreground Dice, %) and clean HD95 (mm)."""
    models = _validate(results)
    cols = ["Model", "Clean Dice (%)", "Corrupted Dice (%)", "Shifted Dice (%)", "Clean HD95 (mm)"]
    rows = []
    for name, m in models.items():
        corr, _ = _mean_corrupted_dice(m)
        rows.append(
            {
                "Model": name,
                "Clean Dice (%)": fmt_pct(_get(m["clean"], "dice")),
                "Corrupted Dice (%)": fmt_pct(corr),
                "Shifted Dice (%)": fmt_pct(_get(m.get("shifted"), "dice")),
                "Clean HD95 (mm)": fmt_mm(_get(m["clean"], "hd95")),
            }
        )
    return format_table(rows, non_empty_columns(rows, cols))


def _source_lines(results: Mapping[str, Any]) -> list[str]:
    """The test data and the corrupted set of ``results["protocol"]`` (evaluate_cardiac), one line each."""
    proto = results.get("protocol")
    if not isinstance(proto, Mapping):
        return []
    lines = []
    test = proto.get("test") or {}
    if test:
        kind = "the embedded synthetic cohort" if test.get("embedded_default") else "user data"
        lines.append(f"Test set: {test.get('cases')} cases ({test.get('patients')} patients × ED/ES) from "
                     f"`{test.get('root')}` ({kind}).")
    shifted = proto.get("shifted")
    if isinstance(shifted, Mapping):
        lines.append(f"Shifted domain: {shifted.get('cases')} cases ({shifted.get('patients')} patients) from "
                     f"`{shifted.get('root')}`.")
    corr = proto.get("corruptions") or []
    if corr:
        lines.append(f"Corrupted sets: {len(corr)} corruptions × severities {proto.get('severities')}, "
                     f"{describe_source(proto.get('corruption_source'))}.")
    return lines


def _per_structure_table(models: Mapping[str, Any], key: str) -> str | None:
    summaries = {n: m.get(key) for n, m in models.items() if isinstance(m.get(key), Mapping)}
    if not summaries:
        return None
    classes = _class_names(list(summaries.values()))
    cols = ["Model", *classes, "Mean"]
    rows = []
    for n, s in summaries.items():
        row: dict[str, Any] = {"Model": n, "Mean": fmt_pct(_get(s, "dice"))}
        row.update({c: fmt_pct(_get(s, "dice", c)) for c in classes})
        rows.append(row)
    return format_table(rows, cols)


def _corruption_table(model: Mapping[str, Any]) -> str | None:
    corr = model.get("corruptions") or {}
    if not corr:
        return None
    sevs = sorted({s for by_sev in corr.values() for s, _ in _severity_items(by_sev)})
    cols = ["Corruption", *[str(s) for s in sevs], "Mean"]
    rows = []
    for cname, by_sev in corr.items():
        vals = {s: _get(v, "dice") for s, v in _severity_items(by_sev)}
        row: dict[str, Any] = {"Corruption": cname, "Mean": fmt_pct(nan_mean(list(vals.values())))}
        row.update({str(s): fmt_pct(vals.get(s)) for s in sevs})
        rows.append(row)
    all_vals = [_get(v, "dice") for by_sev in corr.values() for _, v in _severity_items(by_sev)]
    sev_means = {str(s): fmt_pct(nan_mean([_get(by_sev.get(str(s), by_sev.get(s)), "dice") for by_sev in corr.values()]))
                 for s in sevs}
    rows.append({"Corruption": "**mean**", **sev_means, "Mean": fmt_pct(nan_mean(all_vals))})
    return format_table(rows, cols)


def cardiac_sections(results: Mapping[str, Any]) -> list[Section]:
    """The report's sections: lead, comparison, per-structure Dice (clean, shifted), Dice by
    corruption and severity per model."""
    models = _validate(results)
    out: list[Section] = []
    meta = [f"**{k}:** {results[k]}" for k in ("task", "run") if results.get(k) is not None]
    if isinstance(results.get("runs"), Mapping):
        meta.append("**runs:** " + ", ".join(f"{n} = `{p}`" for n, p in results["runs"].items()))
    out.append(Section(None, ["  \n".join(meta) if meta else "",
                              "Dice = mean foreground Dice in %, HD95 in mm (ACDC convention: structure absent in both "
                              "= perfect; HD95 undefined when absent in only one, excluded from means). Corrupted = "
                              "mean over all corruptions × severities."]))
    comparison = [comparison_table(results)]
    counts = {n: _mean_corrupted_dice(m)[1] for n, m in models.items()}
    if len(set(counts.values())) > 1:
        comparison.append("*Note: models were evaluated on different numbers of corruption × severity settings: "
                          + ", ".join(f"{n}: {c}" for n, c in counts.items()) + ".*")
    out.append(Section("Comparison", comparison))
    sources = sources_section(models, _source_lines(results))
    if sources.blocks()[1:]:
        out.append(sources)
    for key, heading in (("clean", "Per-structure Dice (%), clean"), ("shifted", "Per-structure Dice (%), shifted")):
        t = _per_structure_table(models, key)
        if t:
            out.append(Section(heading, t))
    corr_tables = [(n, _corruption_table(m)) for n, m in models.items()]
    if any(t for _, t in corr_tables):
        out.append(Section("Dice (%) by corruption and severity"))
        out += [Section(n, t, level=3) for n, t in corr_tables if t]
    out += tta_sections(results, TTA_METRICS)  # medrobust evaluate --tta: enhancers, gains, top ops
    return out


# ----------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------
def plot_dice_vs_severity(results: Mapping[str, Any], path: str | os.PathLike[str]) -> Path | None:
    """One subplot per corruption, one line per model: x = severity (0 = clean .. 5), y = mean
    foreground Dice (%). Returns the PNG path, or None if no model has corruption results."""
    models = _validate(results)
    corruptions = _corruption_names(models)
    if not corruptions:
        return None
    n = len(corruptions)
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    fig = new_figure((3.4 * ncols, 2.9 * nrows + 0.5))
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
    import matplotlib as mpl

    colors = mpl.colormaps["tab10"].colors
    handles = {}
    max_sev = 0
    for i, cname in enumerate(corruptions):
        ax = axes[i // ncols][i % ncols]
        for j, (mname, m) in enumerate(models.items()):
            by_sev = (m.get("corruptions") or {}).get(cname)
            if not by_sev:
                continue
            xs, ys = [0], [finite(_get(m["clean"], "dice"))]
            for s, summ in _severity_items(by_sev):
                xs.append(s)
                ys.append(finite(_get(summ, "dice")))
            max_sev = max(max_sev, max(xs))
            ys_pct = [np.nan if y is None else 100.0 * y for y in ys]
            (line,) = ax.plot(xs, ys_pct, marker="os^Dv<>p"[j % 8], ms=4, lw=1.6, color=colors[j % len(colors)],
                              ls=("-", "--", "-.", ":")[(j // len(colors)) % 4], label=mname, alpha=0.9)
            handles[mname] = line
        ax.set_title(cname.replace("_", " "), fontsize=10)
        ax.grid(True, alpha=0.3)
    label_grid(axes, n, "severity (0 = clean)", "mean fg Dice (%)")
    axes[0][0].set_xticks(list(range(0, max_sev + 1)))
    fig.legend(list(handles.values()), list(handles.keys()), loc="upper center", ncol=min(len(handles), 5),
               bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / (2.9 * nrows + 0.5)))
    return save_figure(fig, path)


def plot_prediction_grid(
    images: Any,
    labels: Any,
    preds_by_model: Mapping[str, Any],
    path: str | os.PathLike[str],
    titles: Sequence[str] | None = None,
    class_names: Sequence[str] = ("RV", "Myo", "LV"),
) -> Path:
    """Save a PNG grid: rows = cases, columns = image | ground truth | one column per model.

    Args:
        images: ``N`` 2D slices, array ``(N, H, W)`` / ``(N, 1, H, W)`` or a list of them (numpy or torch).
        labels: ``N`` integer label maps ``(N, H, W)`` (0 = background, 1..K = ``class_names``).
        preds_by_model: ``{model_name: (N, H, W) integer predictions}``.
        path: output PNG path (written atomically).
        titles: optional ``N`` row titles (e.g. ``"clean"``, ``"gaussian_noise s3"``).
        class_names: names of labels 1..K for the legend; colours are fixed (:data:`CLASS_COLORS`).

    Prediction panels are annotated with the case's mean foreground Dice (ACDC empty convention).
    """
    from ...evaluate.metrics import dice_per_class

    imgs = [to_numpy(x) for x in images]
    labs = [to_numpy(x) for x in labels]
    n = len(imgs)
    if n == 0:
        raise ValueError("images must contain at least one slice")
    if len(labs) != n:
        raise ValueError(f"labels must have one map per image ({n}), got {len(labs)}")
    if not isinstance(preds_by_model, Mapping):
        raise ValueError(f"preds_by_model must be a dict {{model_name: predictions}}, got {type(preds_by_model).__name__}")
    preds = {str(k): [to_numpy(x) for x in v] for k, v in preds_by_model.items()}
    for k, v in preds.items():
        if len(v) != n:
            raise ValueError(f"preds_by_model[{k!r}] must have one map per image ({n}), got {len(v)}")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles must have one entry per image ({n}), got {len(titles)}")

    def squeeze_lab(a: np.ndarray, what: str) -> np.ndarray:
        a = np.squeeze(a)
        if a.ndim != 2:
            raise ValueError(f"{what} must be 2D label maps (H, W), got shape {a.shape}")
        if not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
            raise ValueError(f"{what} must be integer label maps, got dtype {a.dtype}")
        return a.astype(np.int64)

    labs = [squeeze_lab(a, "labels") for a in labs]
    preds = {k: [squeeze_lab(a, f"preds_by_model[{k!r}]") for a in v] for k, v in preds.items()}
    max_label = max([len(class_names)] + [int(a.max()) for a in labs] + [int(a.max()) for v in preds.values() for a in v])
    if min([int(a.min()) for a in labs] + [int(a.min()) for v in preds.values() for a in v]) < 0:
        raise ValueError("labels / predictions must be non-negative")
    colors = label_colors(max_label + 1, CLASS_COLORS)
    num_classes = max_label + 1

    ncols = 2 + len(preds)
    fig = new_figure((2.4 * ncols, 2.4 * n + 0.6))
    axes = fig.subplots(n, ncols, squeeze=False)
    col_titles = ["image", "ground truth", *preds.keys()]
    for i in range(n):
        gray = display_image(imgs[i])
        if gray.shape[:2] != labs[i].shape:
            raise ValueError(f"images[{i}] shape {gray.shape[:2]} does not match labels[{i}] shape {labs[i].shape}")
        panels = [gray, overlay(gray, labs[i], colors)]
        notes = [None, None]
        for name, v in preds.items():
            if v[i].shape != labs[i].shape:
                raise ValueError(f"preds_by_model[{name!r}][{i}] shape {v[i].shape} does not match labels[{i}] shape {labs[i].shape}")
            panels.append(overlay(gray, v[i], colors))
            notes.append(f"Dice {100 * float(dice_per_class(v[i], labs[i], num_classes).mean()):.1f}")
        for j, (panel, note) in enumerate(zip(panels, notes)):
            ax = axes[i][j]
            ax.imshow(panel, cmap="gray" if panel.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(col_titles[j], fontsize=10)
            if j == 0 and titles is not None:
                ax.set_ylabel(str(titles[i]), fontsize=9)
            if note:
                ax.text(0.02, 0.98, note, transform=ax.transAxes, va="top", ha="left", fontsize=8, color="white",
                        bbox={"facecolor": "black", "alpha": 0.55, "pad": 1.5, "edgecolor": "none"})
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=colors[k], label=name) for k, name in enumerate(class_names, start=1)]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0.45 / (2.4 * n + 0.6), 1, 1))
    return save_figure(fig, path)


# ----------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------
def write_cardiac_report(
    out_dir: str | os.PathLike[str],
    results: Mapping[str, Any],
    grid_rows: Sequence[Mapping[str, Any]] = (),
    *,
    title: str = TITLE,
    extra_figures: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``figures/*.png`` under ``out_dir`` (all atomically).

    Args:
        out_dir: output directory (created if needed).
        results: results dict, see the module docstring.
        grid_rows: qualitative rows ``{"image", "label", "preds": {model: labels}, "title"}`` (2D
            slices) drawn as ``figures/predictions.png``.
        title: markdown title.
        extra_figures: more ``{name: figure}`` (a matplotlib ``Figure`` or an image path, see
            :func:`~medrobust.evaluate.report.write_report`), embedded after the built-in ones.

    Returns:
        ``{"json": path, "markdown": path, "dice_vs_severity": path (if any corruption results),
        "predictions": path (if ``grid_rows``), <extra figure names>: path}``.
    """
    models = _validate(results)
    fig_dir = Path(out_dir) / "figures"
    figures: dict[str, Any] = {"dice_vs_severity": plot_dice_vs_severity(results, fig_dir / "dice_vs_severity.png")}
    if grid_rows:
        figures["predictions"] = plot_prediction_grid([r["image"] for r in grid_rows], [r["label"] for r in grid_rows],
                                                      {n: [r["preds"][n] for r in grid_rows] for n in models},
                                                      fig_dir / "predictions.png", titles=[r["title"] for r in grid_rows])
    figures["tta_blend_weights"] = plot_blend_weights(results, fig_dir / "tta_blend_weights.png")  # --tta
    for name, fig in (extra_figures or {}).items():
        if name in figures:
            raise ValueError(f"extra_figures name {name!r} is reserved")
        figures[name] = fig
    return write_report(out_dir, title=title, sections=cardiac_sections(results), results=results, figures=figures,
                        references=results.get("references"), references_caveat=results.get("references_note"))
