"""The classification reports: ``medrobust evaluate`` (accuracy, (m)CE, domains) and ``medrobust dfm``
(dominant frequency maps), both written by :func:`medrobust.evaluate.report.write_report`."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...evaluate.report import (
    DASH,
    Section,
    describe_source,
    fmt_pct,
    format_table,
    label_grid,
    new_figure,
    non_empty_columns,
    save_figure,
    sources_section,
    write_report,
)
from ..tta.report import plot_blend_weights, tta_sections
from .imagenet_c import ALEXNET_ERRORS

__all__ = ["comparison_table", "classification_sections", "write_classification_report", "plot_map_grid",
           "dfm_sections", "write_dfm_report"]


# ------------------------------------------------------------------------------------------- tables
def comparison_table(results: Mapping[str, Any]) -> str:
    """One row per model: clean accuracy, mean corruption accuracy, (m)CE, relative (m)CE and the
    mean / worst target-domain accuracy (all in %)."""
    models = results.get("models") or {}
    if not models:
        raise ValueError("results['models'] must be a non-empty dict")
    normalised = (results.get("protocol") or {}).get("normalisation") == "alexnet"
    ce_col = "mCE (%)" if normalised else "Mean corr. error (%)"
    rce_col = "Rel. mCE (%)" if normalised else "Rel. mean error (%)"
    cols = ["Model", "Clean acc (%)", "Mean corr. acc (%)", ce_col, rce_col, "Target domains acc (%)", "Worst domain (%)"]
    rows = []
    for name, m in models.items():
        s = m.get("summary") or {}
        rows.append({
            "Model": name,
            "Clean acc (%)": fmt_pct(s.get("clean_accuracy")),
            "Mean corr. acc (%)": fmt_pct(s.get("mean_corruption_accuracy")),
            ce_col: fmt_pct(s.get("mCE") if normalised else s.get("mean_corruption_error")),
            rce_col: fmt_pct(s.get("relative_mCE") if normalised else s.get("relative_mean_corruption_error")),
            "Target domains acc (%)": fmt_pct(s.get("mean_domain_accuracy")),
            "Worst domain (%)": fmt_pct(s.get("worst_domain_accuracy")),
        })
    return format_table(rows, non_empty_columns(rows, cols))


def _acc_table(by: Mapping[str, Mapping[str, Any]], sevs: list[int]) -> str:
    cols = ["Corruption", *[str(s) for s in sevs], "Mean"]
    rows = []
    for c, v in by.items():
        accs = [v[str(s)]["accuracy"] for s in sevs if str(s) in v]
        rows.append({"Corruption": c, **{str(s): fmt_pct(v[str(s)]["accuracy"]) if str(s) in v else DASH for s in sevs},
                     "Mean": fmt_pct(float(np.mean(accs)) if accs else None)})
    means = {str(s): fmt_pct(float(np.mean([v[str(s)]["accuracy"] for v in by.values() if str(s) in v]))) for s in sevs}
    allv = [x["accuracy"] for v in by.values() for x in v.values()]
    rows.append({"Corruption": "**mean**", **means, "Mean": fmt_pct(float(np.mean(allv)) if allv else None)})
    return format_table(rows, cols)


def classification_sections(results: Mapping[str, Any]) -> list[Section]:
    """Lead (task, run, protocol), comparison, per-domain accuracy, accuracy by corruption and
    severity per model and, for ImageNet-C, the AlexNet-normalised CE per corruption."""
    proto = results.get("protocol") or {}
    models = results["models"]
    meta = [f"**task:** {results.get('task')}, dataset {results.get('dataset')}"]
    if results.get("run") is not None:
        meta.append(f"**run:** {results.get('run')}")
    if isinstance(results.get("runs"), Mapping):
        meta.append("**runs:** " + ", ".join(f"{n} = `{p}`" for n, p in results["runs"].items()))
    corr = proto.get("corruptions") or []
    source = describe_source(proto["corrupted_set"]) if isinstance(proto.get("corrupted_set"), Mapping) else \
        f"{proto.get('corruption_source')}, seed {proto.get('seed')}"
    lead = ["  \n".join(meta),
            f"Clean test: {proto.get('clean_test')} ({proto.get('n_clean')} images). "
            + (f"Corruptions: {len(corr)} × severities {proto.get('severities')} ({source}; table `{proto.get('table')}`)."
               if corr else "No corruptions evaluated.")]
    if proto.get("note"):
        lead.append(f"*{proto['note']}*")
    out = [Section(None, lead), Section("Comparison", comparison_table(results))]
    lines = []
    if proto.get("test_root") or proto.get("embedded_default"):
        kind = "the embedded default" if proto.get("embedded_default") else "user data"
        lines.append(f"Test data: `{proto.get('test_root')}` ({kind}), {proto.get('n_clean')} clean test images"
                     + (f"; target domains {', '.join(proto['domains'])}" if proto.get("domains") else "") + ".")
    if corr:
        lines.append(f"Corrupted sets: {len(corr)} corruptions × severities {proto.get('severities')}, {source}.")
    sources = sources_section(models, lines)
    if sources.blocks()[1:]:
        out.append(sources)
    if any(m.get("domains") for m in models.values()):
        doms: list[str] = []
        for m in models.values():
            doms += [d for d in (m.get("domains") or {}) if d not in doms]
        rows = [{"Model": n, "clean (source)": fmt_pct(m["clean"]["accuracy"]),
                 **{d: fmt_pct((m.get("domains") or {}).get(d, {}).get("accuracy")) for d in doms},
                 "Mean": fmt_pct((m.get("summary") or {}).get("mean_domain_accuracy"))} for n, m in models.items()]
        out.append(Section("Accuracy (%) per target domain", format_table(rows, ["Model", "clean (source)", *doms, "Mean"])))
    if any(m.get("corruptions") for m in models.values()):
        sevs = [int(s) for s in proto.get("severities") or [1, 2, 3, 4, 5]]
        out.append(Section("Accuracy (%) by corruption and severity"))
        out += [Section(n, _acc_table(m["corruptions"], sevs), level=3) for n, m in models.items() if m.get("corruptions")]
        if proto.get("normalisation") == "alexnet":
            names = sorted({c for m in models.values() for c in ((m.get("summary") or {}).get("ce") or {})},
                           key=list(ALEXNET_ERRORS).index)
            rows = [{"Model": n, **{c: fmt_pct((m.get("summary") or {}).get("ce", {}).get(c)) for c in names},
                     "mCE": fmt_pct((m.get("summary") or {}).get("mCE"))} for n, m in models.items()]
            out.append(Section("Corruption error CE (%), normalised by AlexNet", format_table(rows, ["Model", *names, "mCE"])))
    out += tta_sections(results)  # medrobust evaluate --tta
    return out


# ------------------------------------------------------------------------------------------ figures
def _plot_accuracy_vs_severity(results: Mapping[str, Any], path: Path) -> Path | None:
    models = results["models"]
    corruptions: list[str] = []
    for m in models.values():
        corruptions += [c for c in (m.get("corruptions") or {}) if c not in corruptions]
    if not corruptions:
        return None
    panels = ["mean over corruptions", *corruptions]
    ncols = min(4, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = new_figure((3.3 * ncols, 2.7 * nrows + 0.5))
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
    import matplotlib as mpl

    colors = mpl.colormaps["tab10"].colors
    handles = {}
    for i, panel in enumerate(panels):
        ax = axes[i // ncols][i % ncols]
        for j, (name, m) in enumerate(models.items()):
            xs, ys = [0], [100 * m["clean"]["accuracy"]]
            if i == 0:
                sev = (m.get("summary") or {}).get("severity_accuracy") or {}
                pairs = sorted((int(k), v) for k, v in sev.items())
            else:
                by = (m.get("corruptions") or {}).get(panel) or {}
                pairs = sorted((int(k), v["accuracy"]) for k, v in by.items())
            if not pairs:
                continue
            xs += [p[0] for p in pairs]
            ys += [100 * p[1] for p in pairs]
            (line,) = ax.plot(xs, ys, marker="os^Dv<>p"[j % 8], ms=4, lw=1.6, color=colors[j % len(colors)], label=name)
            handles[name] = line
        ax.set_title(panel.replace("_", " "), fontsize=10, fontweight="bold" if i == 0 else None)
        ax.grid(True, alpha=0.3)
    label_grid(axes, len(panels), "severity (0 = clean)", "accuracy (%)")
    axes[0][0].set_xticks([0, 1, 2, 3, 4, 5])
    fig.legend(list(handles.values()), list(handles), loc="upper center", ncol=min(5, len(handles)), frameon=False,
               bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / (2.7 * nrows + 0.5)))
    return save_figure(fig, path)


def _plot_bars(results: Mapping[str, Any], key: str, path: Path, ylabel: str, include_clean: bool) -> Path | None:
    models = results["models"]
    groups: list[str] = []
    for m in models.values():
        src = (m.get("summary") or {}).get("corruption_accuracy") if key == "corruptions" else m.get("domains")
        groups += [g for g in (src or {}) if g not in groups]
    if not groups:
        return None
    labels = (["clean"] if include_clean else []) + groups
    fig = new_figure((max(5.0, 0.65 * len(labels) * max(1, len(models)) / 1.6 + 2), 3.6))
    ax = fig.subplots()
    import matplotlib as mpl

    colors = mpl.colormaps["tab10"].colors
    width = 0.8 / max(1, len(models))
    x = np.arange(len(labels))
    for j, (name, m) in enumerate(models.items()):
        if key == "corruptions":
            src = (m.get("summary") or {}).get("corruption_accuracy") or {}
        else:
            src = {d: v["accuracy"] for d, v in (m.get("domains") or {}).items()}
        vals = ([m["clean"]["accuracy"]] if include_clean else []) + [src.get(g, np.nan) for g in groups]
        ax.bar(x + (j - (len(models) - 1) / 2) * width, 100 * np.asarray(vals, dtype=float), width,
               label=name, color=colors[j % len(colors)])
    ax.set_xticks(x)
    ax.set_xticklabels([s.replace("_", " ") for s in labels], rotation=35, ha="right", fontsize=8)
    ax.set_xlabel("corruption" if key == "corruptions" else "test domain")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, frameon=False, ncol=min(5, len(models)), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout()
    return save_figure(fig, path)


# ------------------------------------------------------------------------------------------- report
def write_classification_report(out_dir: str | os.PathLike[str], results: dict[str, Any],
                                title: str = "Classification robustness") -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``figures/*.png`` (atomically) and return their paths;
    ``results["files"]`` (also in ``report.json``) lists them."""
    fig_dir = Path(out_dir) / "figures"
    figures = {
        "accuracy_vs_severity": _plot_accuracy_vs_severity(results, fig_dir / "accuracy_vs_severity.png"),
        "corruption_bars": _plot_bars(results, "corruptions", fig_dir / "corruption_bars.png",
                                      "mean accuracy over severities (%)", True),
        "domain_bars": _plot_bars(results, "domains", fig_dir / "domain_bars.png", "accuracy (%)", True),
        "tta_blend_weights": plot_blend_weights(results, fig_dir / "tta_blend_weights.png"),
    }
    return write_report(out_dir, title=title, sections=classification_sections(results), results=results,
                        figures=figures, references=results.get("references"),
                        references_caveat=results.get("references_note"), files_key="files")


# ---------------------------------------------------------------------------------------------- dfm
def plot_map_grid(maps: np.ndarray, names: Sequence[str], path: str | os.PathLike[str], title: str, cmap: str) -> Path:
    """One panel per class map ``maps[k]`` (at most 5 per row), titled with ``names[k]``."""
    k = len(maps)
    cols = min(5, k)
    rows = math.ceil(k / cols)
    fig = new_figure((2.2 * cols, 2.3 * rows + 0.4))
    for i in range(rows * cols):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.set_axis_off()
        if i < k:
            ax.imshow(maps[i], cmap=cmap, interpolation="nearest")
            ax.set_title(names[i], fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, tight=False)


_DFM_COLUMNS = ["class", "TPR kept", "FPR kept", "TPR removed", "FPR removed", "shortcut (TPR·FPR kept)", "ADCS"]


def _dfm_table(rows: Sequence[Mapping[str, Any]]) -> str:
    cells = [[r["class"], f"{r['tpr_kept']:.2f}", f"{r['fpr_kept']:.2f}", f"{r['tpr_removed']:.2f}",
              f"{r['fpr_removed']:.2f}", f"{r['shortcut_score']:.2f}", f"{r['adcs']:+.2f}"] for r in rows]
    return format_table(cells, _DFM_COLUMNS).rstrip("\n")


def dfm_sections(n_images: int, split: str, patch: int, top: float, rows: Sequence[Mapping[str, Any]]) -> list[Section]:
    """What was measured and the per-class shortcut / ADCS table."""
    return [Section(None, [f"{n_images} {split} images, {patch}×{patch} frequency patches, DFM = top {top:.0%} of patches.\n"
                           "A class whose DFM alone keeps a high TPR *and* attracts other classes (high FPR) relies on "
                           "a frequency shortcut.", _dfm_table(rows)])]


def write_dfm_report(out: str | os.PathLike[str], *, run_dir: str | os.PathLike[str], split: str, patch: int, top: float,
                     rows: Sequence[Mapping[str, Any]], n_images: int, loss_maps: np.ndarray, dfms: np.ndarray,
                     class_names: Sequence[str], files: Mapping[str, Any] = ()) -> dict[str, Any]:
    """Draw ``figures/{loss_maps,dfms}.png`` and write ``report.json`` / ``report.md`` of ``medrobust dfm``.

    ``rows``: one dict per class (``class``, ``tpr_kept``, ``fpr_kept``, ``tpr_removed``,
    ``fpr_removed``, ``shortcut_score``, ``adcs``); ``files``: the arrays already written (listed in
    ``report.json`` before the PNGs). Returns the report dict plus ``table`` (the markdown table)."""
    out = Path(out)
    names = [str(c) for c in class_names]
    figs = {
        "loss_maps": plot_map_grid(np.asarray(loss_maps), names, out / "figures" / "loss_maps.png",
                                   "loss increase when a frequency patch is removed (DC at centre)", "magma"),
        "dfms": plot_map_grid(np.asarray(dfms).astype(float), names, out / "figures" / "dfms.png",
                              f"dominant frequency maps (top {top:.0%})", "gray"),
    }
    report = {"run": str(run_dir), "split": split, "n_images": int(n_images), "patch": patch, "top": top,
              "classes": list(rows), "files": {**{k: str(v) for k, v in dict(files).items()},
                                               **{f"{k}_png": str(v) for k, v in figs.items()}}}
    write_report(out, title=f"Dominant frequency maps: {run_dir}", sections=dfm_sections(n_images, split, patch, top, rows),
                 results=report, figures={"loss maps": figs["loss_maps"], "DFMs": figs["dfms"]}, figures_heading=None)
    report["table"] = _dfm_table(rows)
    return report
