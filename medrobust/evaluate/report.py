"""Evaluation reports: markdown tables, JSON dump and figures for a robustness run.

Results structure consumed by :func:`write_report` / :func:`comparison_table`::

    {
      "task": str,                                  # e.g. "acdc"
      "run": str,                                   # run name / id
      "models": {
        model_name: {
          "clean": summary,                         # required
          "corruptions": {                          # optional
            corruption_name: {"1": summary, ..., "5": summary},   # severity keys "1".."5" (ints accepted)
          },
          "shifted": summary,                       # optional (distribution-shifted test set)
        },
      },
      "references": {...},                          # optional published numbers, see below
    }

``summary`` is the dict from :meth:`medrobust.evaluate.metrics.SegmentationMeter.summary`; the
report reads ``summary["dice"] = {class: v, ..., "mean": v}`` (Dice in ``[0, 1]``, shown as
percentages) and ``summary["hd95"] = {class: v, ..., "mean": v}`` (mm). A missing ``hd95`` (or a
NaN / ``None`` value) is shown as ``–``; extra keys are kept in ``report.json``.

``references`` is free-form. Entries whose value is a dict are shown as one table row each
(nested dicts flattened to ``dice.RV``-style columns, values printed as given, so keep their units
explicit); anything else is shown as a JSON block.

In ``report.json`` non-finite floats (NaN/inf) are written as ``null`` so the file is strict JSON.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medrobust.io import atomic_path, atomic_write_json, atomic_write_text

__all__ = [
    "CLASS_COLORS",
    "format_table",
    "comparison_table",
    "write_report",
    "plot_dice_vs_severity",
    "plot_prediction_grid",
]

#: Fixed overlay colours (RGB in [0, 1]) for labels 1, 2, 3 = ACDC RV, Myo, LV; later labels use tab10.
CLASS_COLORS: tuple[tuple[float, float, float], ...] = (
    (0.90, 0.16, 0.16),  # 1 RV  - red
    (0.20, 0.75, 0.25),  # 2 Myo - green
    (0.20, 0.45, 0.95),  # 3 LV  - blue
)

_DASH = "–"


# ----------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------
def _num(v: Any) -> float | None:
    """Finite float or None."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _pct(v: Any) -> str:
    f = _num(v)
    return _DASH if f is None else f"{100.0 * f:.2f}"


def _mm(v: Any) -> str:
    f = _num(v)
    return _DASH if f is None else f"{f:.2f}"


def _mean(values: Sequence[Any]) -> float | None:
    vals = [f for f in (_num(v) for v in values) if f is not None]
    return sum(vals) / len(vals) if vals else None


def _get(summary: Any, metric: str, key: str = "mean") -> Any:
    if not isinstance(summary, Mapping):
        return None
    m = summary.get(metric)
    return m.get(key) if isinstance(m, Mapping) else None


def _sanitize(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, numpy/torch scalars and arrays -> python, Paths -> str, keys -> str."""
    if isinstance(obj, Mapping):
        return {str(k): _sanitize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_sanitize(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy / torch arrays and scalars
        return _sanitize(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return obj


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
    return _mean(vals), len(vals)


# ----------------------------------------------------------------------------------------------
# tables
# ----------------------------------------------------------------------------------------------
def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Markdown table with the given column order; missing / None / NaN cells -> ``–``.

    Floats are shown with 2 decimals, everything else with ``str``; ``|`` in cells is escaped.
    """
    if not columns:
        raise ValueError("columns must name at least one column")

    def cell(v: Any) -> str:
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return _DASH
        if isinstance(v, (float, np.floating)):
            return f"{float(v):.2f}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(cell(c) for c in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for r in rows:
        lines.append("| " + " | ".join(cell(r.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


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
                "Clean Dice (%)": _pct(_get(m["clean"], "dice")),
                "Corrupted Dice (%)": _pct(corr),
                "Shifted Dice (%)": _pct(_get(m.get("shifted"), "dice")),
                "Clean HD95 (mm)": _mm(_get(m["clean"], "hd95")),
            }
        )
    return format_table(rows, cols)


def _per_structure_table(models: Mapping[str, Any], key: str) -> str | None:
    summaries = {n: m.get(key) for n, m in models.items() if isinstance(m.get(key), Mapping)}
    if not summaries:
        return None
    classes = _class_names(list(summaries.values()))
    cols = ["Model", *classes, "Mean"]
    rows = []
    for n, s in summaries.items():
        row: dict[str, Any] = {"Model": n, "Mean": _pct(_get(s, "dice"))}
        row.update({c: _pct(_get(s, "dice", c)) for c in classes})
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
        row: dict[str, Any] = {"Corruption": cname, "Mean": _pct(_mean(list(vals.values())))}
        row.update({str(s): _pct(vals.get(s)) for s in sevs})
        rows.append(row)
    all_vals = [_get(v, "dice") for by_sev in corr.values() for _, v in _severity_items(by_sev)]
    sev_means = {str(s): _pct(_mean([_get(by_sev.get(str(s), by_sev.get(s)), "dice") for by_sev in corr.values()])) for s in sevs}
    rows.append({"Corruption": "**mean**", **sev_means, "Mean": _pct(_mean(all_vals))})
    return format_table(rows, cols)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _references_section(refs: Any) -> str:
    if isinstance(refs, Mapping):
        table_rows, other = [], {}
        for k, v in refs.items():
            if isinstance(v, Mapping):
                table_rows.append({"Reference": str(k), **_flatten(v)})
            else:
                other[k] = v
        parts = []
        if table_rows:
            cols = ["Reference"]
            for r in table_rows:
                cols += [c for c in r if c not in cols]
            # values printed as given (published numbers keep their own units / precision)
            rows = [{c: (str(v) if isinstance(v, float) and math.isfinite(v) else v) for c, v in r.items()} for r in table_rows]
            parts.append(format_table(rows, cols))
        if other:
            parts.append("```json\n" + json.dumps(_sanitize(other), indent=2) + "\n```\n")
        return "\n".join(parts)
    return "```json\n" + json.dumps(_sanitize(refs), indent=2) + "\n```\n"


# ----------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------
def _new_figure(figsize: tuple[float, float]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, dpi=100)


def _save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return path


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
    fig = _new_figure((3.4 * ncols, 2.9 * nrows + 0.5))
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
            xs, ys = [0], [_num(_get(m["clean"], "dice"))]
            for s, summ in _severity_items(by_sev):
                xs.append(s)
                ys.append(_num(_get(summ, "dice")))
            max_sev = max(max_sev, max(xs))
            ys_pct = [np.nan if y is None else 100.0 * y for y in ys]
            (line,) = ax.plot(xs, ys_pct, marker="os^Dv<>p"[j % 8], ms=4, lw=1.6, color=colors[j % len(colors)],
                              ls=("-", "--", "-.", ":")[(j // len(colors)) % 4], label=mname, alpha=0.9)
            handles[mname] = line
        ax.set_title(cname.replace("_", " "), fontsize=10)
        ax.grid(True, alpha=0.3)
    for k in range(n, nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("severity (0 = clean)")
    for row in axes:
        row[0].set_ylabel("mean fg Dice (%)")
    axes[0][0].set_xticks(list(range(0, max_sev + 1)))
    fig.legend(list(handles.values()), list(handles.keys()), loc="upper center", ncol=min(len(handles), 5),
               bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / (2.9 * nrows + 0.5)))
    return _save_figure(fig, path)


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _display_image(img: np.ndarray) -> np.ndarray:
    """(H, W) or (1, H, W) or (H, W, 3) -> float image in [0, 1] (1st-99th percentile window)."""
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = np.moveaxis(img, 0, -1)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3):
        raise ValueError(f"images must be 2D slices (H, W), (1, H, W) or (H, W, 3), got shape {img.shape}")
    finite = img[np.isfinite(img)]
    lo, hi = (np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0))
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((np.nan_to_num(img, nan=lo) - lo) / (hi - lo), 0.0, 1.0)


def _label_colors(n_labels: int) -> np.ndarray:
    import matplotlib as mpl

    extra = mpl.colormaps["tab10"].colors
    cols = [(0.0, 0.0, 0.0)] + list(CLASS_COLORS)
    k = 0
    while len(cols) < n_labels:
        cols.append(tuple(extra[k % len(extra)])[:3])
        k += 1
    return np.array(cols[:max(n_labels, 1)], dtype=np.float64)


def _overlay(gray: np.ndarray, lab: np.ndarray, colors: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    rgb = np.repeat(gray[..., None], 3, axis=-1) if gray.ndim == 2 else gray.copy()
    m = lab > 0
    rgb[m] = (1 - alpha) * rgb[m] + alpha * colors[lab[m]]
    return rgb


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
    from medrobust.evaluate.metrics import dice_per_class

    imgs = [_to_numpy(x) for x in images]
    labs = [_to_numpy(x) for x in labels]
    n = len(imgs)
    if n == 0:
        raise ValueError("images must contain at least one slice")
    if len(labs) != n:
        raise ValueError(f"labels must have one map per image ({n}), got {len(labs)}")
    if not isinstance(preds_by_model, Mapping):
        raise ValueError(f"preds_by_model must be a dict {{model_name: predictions}}, got {type(preds_by_model).__name__}")
    preds = {str(k): [_to_numpy(x) for x in v] for k, v in preds_by_model.items()}
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
    colors = _label_colors(max_label + 1)
    num_classes = max_label + 1

    ncols = 2 + len(preds)
    fig = _new_figure((2.4 * ncols, 2.4 * n + 0.6))
    axes = fig.subplots(n, ncols, squeeze=False)
    col_titles = ["image", "ground truth", *preds.keys()]
    for i in range(n):
        gray = _display_image(imgs[i])
        if gray.shape[:2] != labs[i].shape:
            raise ValueError(f"images[{i}] shape {gray.shape[:2]} does not match labels[{i}] shape {labs[i].shape}")
        panels = [gray, _overlay(gray, labs[i], colors)]
        notes = [None, None]
        for name, v in preds.items():
            if v[i].shape != labs[i].shape:
                raise ValueError(f"preds_by_model[{name!r}][{i}] shape {v[i].shape} does not match labels[{i}] shape {labs[i].shape}")
            panels.append(_overlay(gray, v[i], colors))
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
    return _save_figure(fig, path)


# ----------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------
def write_report(
    run_dir: str | os.PathLike[str],
    results: Mapping[str, Any],
    title: str = "Robustness evaluation",
    extra_figures: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``figures/*.png`` under ``run_dir`` (all atomically).

    Args:
        run_dir: output directory (created if needed).
        results: results dict, see the module docstring.
        title: markdown title.
        extra_figures: ``{name: figure}`` where figure is a matplotlib ``Figure`` (saved to
            ``figures/<name>.png``) or the path of an existing image (copied into ``figures/`` unless
            already there); all are embedded in the markdown.

    Returns:
        ``{"json": path, "markdown": path, "dice_vs_severity": path (if any corruption results),
        <extra figure names>: path}``.
    """
    models = _validate(results)
    run_dir = Path(run_dir)
    fig_dir = run_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}

    out["json"] = run_dir / "report.json"
    atomic_write_json(out["json"], _sanitize(results), allow_nan=False)

    figures: dict[str, Path] = {}
    p = plot_dice_vs_severity(results, fig_dir / "dice_vs_severity.png")
    if p is not None:
        figures["dice_vs_severity"] = p
    for name, fig in (extra_figures or {}).items():
        if name in ("json", "markdown", "dice_vs_severity"):
            raise ValueError(f"extra_figures name {name!r} is reserved")
        if hasattr(fig, "savefig"):
            figures[name] = _save_figure(fig, fig_dir / f"{name}.png")
        else:
            src = Path(fig)
            if not src.is_file():
                raise ValueError(f"extra_figures[{name!r}] must be a matplotlib Figure or an existing image path, got {fig!r}")
            dst = fig_dir / src.name
            if src.resolve() != dst.resolve():
                with atomic_path(dst) as tmp:
                    shutil.copyfile(src, tmp)
            figures[name] = dst
    out.update(figures)

    md = [f"# {title}", ""]
    meta = [f"**{k}:** {results[k]}" for k in ("task", "run") if results.get(k) is not None]
    if meta:
        md += ["  \n".join(meta), ""]
    md += [
        "Dice = mean foreground Dice in %, HD95 in mm (ACDC convention: structure absent in both = perfect; "
        "HD95 undefined when absent in only one, excluded from means). Corrupted = mean over all corruptions × severities.",
        "",
        "## Comparison",
        "",
        comparison_table(results),
    ]
    counts = {n: _mean_corrupted_dice(m)[1] for n, m in models.items()}
    if len(set(counts.values())) > 1:
        md += ["*Note: models were evaluated on different numbers of corruption × severity settings: "
               + ", ".join(f"{n}: {c}" for n, c in counts.items()) + ".*", ""]
    for key, heading in (("clean", "Per-structure Dice (%), clean"), ("shifted", "Per-structure Dice (%), shifted")):
        t = _per_structure_table(models, key)
        if t:
            md += [f"## {heading}", "", t]
    corr_tables = [(n, _corruption_table(m)) for n, m in models.items()]
    if any(t for _, t in corr_tables):
        md += ["## Dice (%) by corruption and severity", ""]
        for n, t in corr_tables:
            if t:
                md += [f"### {n}", "", t]
    if results.get("references"):
        md += ["## References (published numbers, as reported)", "", _references_section(results["references"])]
    if figures:
        md += ["## Figures", ""]
        for name, path in figures.items():
            md += [f"![{name}](figures/{path.name})", ""]
    out["markdown"] = run_dir / "report.md"
    atomic_write_text(out["markdown"], "\n".join(md).rstrip() + "\n")
    return out
