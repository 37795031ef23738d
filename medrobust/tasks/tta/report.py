"""Report parts for test-time enhancement: the enhancers' table and the mean blend weight per op
(bar chart), used by the classification and cardiac reports when ``medrobust evaluate --tta`` ran."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...evaluate.report import Section, fmt_pct, format_table, new_figure, save_figure

__all__ = [
    "AUGMIX_EQUIVALENT",
    "CLASSIFICATION_METRICS",
    "Metric",
    "augmix_followup_ops",
    "plot_blend_weights",
    "top_ops",
    "tta_sections",
]

#: DynTTA ops -> the AugMix op that applies the same transform (the paper's follow-up retrains with AugMix
#: restricted to the top-ranked ops; the FFT filters, gamma, hue, invert, scale and restore have none)
AUGMIX_EQUIVALENT = {"rotate": "rotate", "saturation": "color", "contrast": "contrast", "brightness": "brightness",
                     "sharpness": "sharpness", "autocontrast": "autocontrast", "equalize": "equalize"}


def top_ops(weights: Mapping[str, float], k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` ops with the largest mean blend weight, largest first."""
    return sorted(weights.items(), key=lambda kv: -kv[1])[:k]


def augmix_followup_ops(weights: Mapping[str, float], k: int = 3, *, photometric_only: bool = False) -> list[str]:
    """The AugMix ops of the ``k`` highest-weighted DynTTA ops that have an AugMix equivalent
    (:data:`AUGMIX_EQUIVALENT`), for ``augment: [{name: augmix, ops: [...]}]``; ``photometric_only``
    (segmentation recipes) skips the ones that move pixels (rotate)."""
    from ...augment.augmix import GEOMETRIC_OPS

    ranked = [AUGMIX_EQUIVALENT[o] for o, _ in top_ops(weights, len(weights)) if o in AUGMIX_EQUIVALENT]
    if photometric_only:
        ranked = [o for o in ranked if o not in GEOMETRIC_OPS]
    return ranked[:k]


#: ``(value column, change column, getter of a model's entry in results["models"])`` of the gains table
Metric = tuple[str, str, Callable[[Mapping[str, Any]], Any]]


def _summary(key: str) -> Callable[[Mapping[str, Any]], Any]:
    return lambda m: (m.get("summary") or {}).get(key)


#: the classification report's gains columns (``results["models"][name]["summary"]``, fractions)
CLASSIFICATION_METRICS: tuple[Metric, ...] = (
    ("Clean acc (%)", "Δ clean (pt)", _summary("clean_accuracy")),
    ("Mean corr. acc (%)", "Δ corrupted (pt)", _summary("mean_corruption_accuracy")),
    ("Target domains acc (%)", "Δ target domains (pt)", _summary("mean_domain_accuracy")),
)


def tta_sections(results: Mapping[str, Any], metrics: Sequence[Metric] = CLASSIFICATION_METRICS) -> list[Section]:
    """"Test-time enhancement": one row per enhancer (run, frozen model, mode, top ops on the
    corrupted and clean images, the AugMix follow-up ops) and the change of every ``metrics`` column
    (fractions, shown in %) of every ``model+enhancer`` over its model. Any task whose results have
    ``results["tta"]`` (:func:`medrobust.tasks.tta.evaluate.enhancer_summary`) uses it with its own
    ``metrics``."""
    tta = results.get("tta") or {}
    if not tta:
        return []
    rows = []
    for name, t in tta.items():
        mw = t.get("mean_weights") or {}
        rows.append({
            "Enhancer": name, "Run": f"`{t.get('run_dir')}`", "Trained for": f"`{t.get('frozen_model')}`",
            "Mode": t.get("mode"), "Predictor": t.get("predictor"), "Ops": len(t.get("ops") or []),
            "Top ops (corrupted)": ", ".join(f"{o} {100 * w:.1f}%" for o, w in top_ops(mw.get("corrupt") or {}, 4)),
            "Top ops (clean)": ", ".join(f"{o} {100 * w:.1f}%" for o, w in top_ops(mw.get("clean") or {}, 4)),
            "AugMix follow-up ops": ", ".join(augmix_followup_ops(mw.get("corrupt") or mw.get("clean") or {})) or "--",
        })
    gains = []
    models = results.get("models") or {}
    for name, t in tta.items():
        for combined in t.get("models") or []:
            base = combined[: -len(f"+{name}")]
            if base not in models or combined not in models:
                continue
            row: dict[str, Any] = {"Model": combined}
            for value_col, delta_col, get in metrics:
                a, b = get(models[base]), get(models[combined])
                row[value_col] = fmt_pct(b)
                row[delta_col] = "--" if a is None or b is None else f"{100 * (b - a):+.2f}"
            gains.append(row)
    body = [format_table(rows, list(rows[0])),
            ("Each `MODEL+ENHANCER` row is the model behind the enhancer on exactly the images the model saw. "
            "Blend weights: mean over the images of a condition kind; the chart is "
            "`figures/tta_blend_weights.png`. AugMix follow-up: the AugMix equivalents of the top-ranked ops on "
            "the corrupted images, for retraining with `augment: [{name: augmix, ops: [...]}]` "
            "(`medrobust tta topk REPORT --out RECIPE.yaml` writes that recipe).")]
    if gains:
        body.append(format_table(gains, list(gains[0])))
    return [Section("Test-time enhancement (DynTTA)", body)]


def plot_blend_weights(results: Mapping[str, Any], path: str | Path) -> Path | None:
    """Bar chart of the mean blend weight per op (one panel per enhancer; bars per condition kind)."""
    tta = results.get("tta") or {}
    panels = [(n, t) for n, t in tta.items() if t.get("mean_weights")]
    if not panels:
        return None
    import matplotlib as mpl

    colors = mpl.colormaps["tab10"].colors
    fig = new_figure((max(8.0, 0.22 * max(len(t["ops"]) for _, t in panels) + 2), 3.2 * len(panels)))
    axes = fig.subplots(len(panels), 1, squeeze=False)
    for ax, (name, t) in zip(axes[:, 0], panels):
        ops = list(t["ops"])
        kinds = [k for k in ("clean", "corrupt", "domain", "shifted") if k in t["mean_weights"]]
        width = 0.8 / max(1, len(kinds))
        x = np.arange(len(ops))
        for j, kind in enumerate(kinds):
            vals = [100 * t["mean_weights"][kind].get(o, np.nan) for o in ops]
            ax.bar(x + (j - (len(kinds) - 1) / 2) * width, vals, width, label={"corrupt": "corrupted"}.get(kind, kind),
                   color=colors[j % len(colors)])
        ax.set_xticks(x)
        ax.set_xticklabels(ops, rotation=90, fontsize=7)
        ax.set_ylabel("mean blend weight (%)")
        ax.set_title(f"{name} ({t.get('mode')})", fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return save_figure(fig, path)
