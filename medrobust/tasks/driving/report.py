"""The driving-scene report: mIoU per domain and corruption, per-class IoU, figures (Cityscapes palette)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...evaluate.report import (
    DASH,
    Section,
    describe_source,
    finite,
    fmt_pct,
    format_table,
    label_grid,
    nan_mean,
    new_figure,
    save_figure,
    sources_section,
    write_report,
)

__all__ = ["comparison_table", "driving_sections", "write_driving_report", "plot_class_iou", "plot_miou_vs_severity",
           "plot_predictions"]

TITLE = "Driving-scene segmentation across domains"


# -------------------------------------------------------------------------------------------- tables
def _corrupted_mean(m: Mapping[str, Any]) -> float | None:
    return nan_mean([s.get("miou") for by_sev in (m.get("corruptions") or {}).values() for s in by_sev.values()])


def comparison_table(results: Mapping[str, Any]) -> str:
    """Markdown: one row per model — mIoU (%) on the source, each target domain, their mean, and the
    mean over corruptions × severities (when evaluated)."""
    models = results.get("models")
    if not isinstance(models, Mapping) or not models:
        raise ValueError("results['models'] must be a non-empty dict {model_name: {'source': summary, ...}}")
    targets: list[str] = []
    for m in models.values():
        for t in m.get("targets") or {}:
            if t not in targets:
                targets.append(t)
    has_corr = any(m.get("corruptions") for m in models.values())
    header = ["Model", "Source", *targets] + (["Targets mean"] if targets else []) + (["Corrupted mean"] if has_corr else [])
    rows = []
    for name, m in models.items():
        tv = [(m.get("targets") or {}).get(t, {}).get("miou") for t in targets]
        row = [name, fmt_pct(m.get("source", {}).get("miou")), *[fmt_pct(v) for v in tv]]
        if targets:
            row.append(fmt_pct(nan_mean(tv)))
        if has_corr:
            row.append(fmt_pct(_corrupted_mean(m)))
        rows.append(row)
    return format_table(rows, header)


def _class_table(results: Mapping[str, Any], getter: Any) -> str:
    names = results["class_names"]
    models = results["models"]
    rows = []
    for c in [*names, "mIoU"]:
        row = [c]
        for m in models.values():
            s = getter(m)
            row.append(fmt_pct(s.get("miou") if c == "mIoU" else s.get("iou", {}).get(c)) if s else DASH)
        rows.append(row)
    return format_table(rows, ["Class", *models])


def _corruption_table(m: Mapping[str, Any]) -> str:
    corr = m.get("corruptions") or {}
    if not corr:
        return ""
    sevs = sorted({int(s) for by in corr.values() for s in by})
    rows = []
    for c, by in corr.items():
        vals = [by.get(str(s), {}).get("miou") for s in sevs]
        rows.append([c, *[fmt_pct(v) for v in vals], fmt_pct(nan_mean(vals))])
    means = [nan_mean([by.get(str(s), {}).get("miou") for by in corr.values()]) for s in sevs]
    rows.append(["**mean**", *[fmt_pct(v) for v in means], fmt_pct(_corrupted_mean(m))])
    return format_table(rows, ["Corruption", *[str(s) for s in sevs], "Mean"])


def driving_sections(results: Mapping[str, Any]) -> list[Section]:
    """Lead, comparison, domains, per-class IoU per domain, mIoU by corruption and severity, notes."""
    meta = ["**task:** driving"] + ([f"**run:** {results['run']}"] if results.get("run") is not None else [])
    if isinstance(results.get("runs"), Mapping):
        meta.append("**runs:** " + ", ".join(f"{n} = `{p}`" for n, p in results["runs"].items()))
    out = [Section(None, ["  \n".join(meta),
                          "mIoU (%) over the 19 Cityscapes train IDs, from one confusion matrix per domain/condition "
                          "(pixels labelled 255 ignored). Corrupted mean = mean over corruptions × severities of the "
                          "source validation set."]),
           Section("Comparison", comparison_table(results))]
    proto = results.get("protocol") or {}
    lines = []
    if proto.get("corruptions"):
        lines.append(f"Corrupted sets: {len(proto['corruptions'])} corruptions × severities {proto.get('severities')} of "
                     f"the source validation images, {describe_source(proto.get('corruption_source'))}.")
    if "embedded_default" in proto:
        lines.append("Data: the embedded procedural street scenes (data.root: null)." if proto["embedded_default"]
                     else "Data: the dataset roots listed under Domains.")
    sources = sources_section(results["models"], lines)
    if sources.blocks()[1:]:
        out.append(sources)
    doms = results.get("domains") or {}
    if doms:
        out.append(Section("Domains", format_table([[k, v.get("dataset", ""), str(v.get("n_images", "")), v.get("root", "")]
                                                    for k, v in doms.items()], ["Domain", "Layout", "Images", "Root"])))
    out.append(Section("Per-class IoU (%), source", _class_table(results, lambda m: m.get("source"))))
    first = next(iter(results["models"].values()))
    for t in first.get("targets") or {}:
        out.append(Section(f"Per-class IoU (%), {t}", _class_table(results, lambda m, t=t: (m.get("targets") or {}).get(t))))
    ctabs = [(n, _corruption_table(m)) for n, m in results["models"].items()]
    if any(t for _, t in ctabs):
        out.append(Section("mIoU (%) by corruption and severity (source validation set)"))
        out += [Section(n, t, level=3) for n, t in ctabs if t]
    notes = [f"*Note: {note}.*" for note in results.get("notes") or []]
    if notes:
        out.append(Section(None, notes))
    return out


# ------------------------------------------------------------------------------------------- figures
def plot_class_iou(results: Mapping[str, Any], path: str | Path) -> Path:
    """Per-class IoU bars: one panel per domain (source, targets), one bar colour per model."""
    import matplotlib as mpl

    names = results["class_names"]
    models = results["models"]
    first = next(iter(models.values()))
    panels = ["source", *list((first.get("targets") or {}).keys())]
    fig = new_figure((12, 2.6 * len(panels) + 0.6))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    colors = mpl.colormaps["tab10"].colors
    width = 0.8 / max(1, len(models))
    x = np.arange(len(names))
    for ax, panel in zip(axes, panels):
        for j, (mname, m) in enumerate(models.items()):
            s = m["source"] if panel == "source" else (m.get("targets") or {}).get(panel, {})
            vals = [100 * (finite(s.get("iou", {}).get(c)) or 0.0) for c in names]
            ax.bar(x + (j - (len(models) - 1) / 2) * width, vals, width, color=colors[j % 10],
                   label=f"{mname} (mIoU {fmt_pct(s.get('miou'))})")
        ax.set_title(f"{panel}", fontsize=10)
        ax.set_xlabel("class (Cityscapes train ID)")
        ax.set_ylabel("IoU (%)")
        ax.set_ylim(0, 100)
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper right", frameon=False)
    fig.tight_layout()
    return save_figure(fig, Path(path))


def plot_miou_vs_severity(results: Mapping[str, Any], path: str | Path) -> Path | None:
    """One panel per corruption, one line per model: mIoU (%) vs severity (0 = clean source)."""
    import matplotlib as mpl

    models = results["models"]
    corrs: list[str] = []
    for m in models.values():
        corrs += [c for c in (m.get("corruptions") or {}) if c not in corrs]
    if not corrs:
        return None
    ncols = min(5, len(corrs))
    nrows = math.ceil(len(corrs) / ncols)
    fig = new_figure((3.0 * ncols, 2.5 * nrows + 0.4))
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    colors = mpl.colormaps["tab10"].colors
    for i, c in enumerate(corrs):
        ax = axes[i // ncols][i % ncols]
        for j, (mname, m) in enumerate(models.items()):
            by = (m.get("corruptions") or {}).get(c) or {}
            xs = [0] + sorted(int(s) for s in by)
            ys = [finite(m["source"].get("miou"))] + [finite(by[str(s)].get("miou")) for s in xs[1:]]
            ax.plot(xs, [np.nan if y is None else 100 * y for y in ys], marker="o", ms=3, color=colors[j % 10], label=mname)
        ax.set_title(c.replace("_", " "), fontsize=9)
        ax.grid(True, alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7, frameon=False)
    label_grid(axes, len(corrs), "severity (0 = clean source)", "mIoU (%)")
    fig.tight_layout()
    return save_figure(fig, Path(path))


def plot_predictions(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Rows of image | ground truth | one prediction per model, in the Cityscapes palette (ignore black)."""
    from matplotlib.patches import Patch

    from ...data.driving import CLASS_NAMES, PALETTE, colorize

    models = list(rows[0]["preds"])
    ncols = 2 + len(models)
    h, w = rows[0]["label"].shape
    aspect = w / h
    fig = new_figure((2.2 * aspect * ncols, 2.2 * len(rows) + 0.8))
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for i, r in enumerate(rows):
        panels = [np.clip(r["image"], 0, 1), colorize(r["label"]), *[colorize(r["preds"][m]) for m in models]]
        for j, p in enumerate(panels):
            ax = axes[i][j]
            ax.imshow(p, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(["image", "ground truth", *models][j], fontsize=9)
            if j == 0:
                ax.set_ylabel(r["title"], fontsize=7)
    handles = [Patch(facecolor=PALETTE[k] / 255.0, label=n) for k, n in enumerate(CLASS_NAMES)]
    fig.legend(handles=handles, loc="lower center", ncol=10, frameon=False, fontsize=7)
    fig.tight_layout(rect=(0, 0.6 / (2.2 * len(rows) + 0.8), 1, 1))
    return save_figure(fig, Path(path))


# -------------------------------------------------------------------------------------------- report
def write_driving_report(out_dir: str | Path, results: dict[str, Any], grid_rows: Sequence[Mapping[str, Any]] = ()) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``figures/*.png`` under ``out_dir`` (atomically);
    ``results["files"]`` (also in ``report.json``) lists them."""
    fig_dir = Path(out_dir) / "figures"
    figures: dict[str, Any] = {"class_iou": plot_class_iou(results, fig_dir / "class_iou.png"),
                               "miou_vs_severity": plot_miou_vs_severity(results, fig_dir / "miou_vs_severity.png")}
    if grid_rows:
        figures["predictions"] = plot_predictions(grid_rows, fig_dir / "predictions.png")
    # published mIoU values carry two decimals
    return write_report(out_dir, title=TITLE, sections=driving_sections(results), results=results, figures=figures,
                        references=results.get("references"), references_note="not produced by this repository",
                        reference_decimals=2, references_caveat=results.get("references_note"), files_key="files")
