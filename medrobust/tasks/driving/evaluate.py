"""Evaluate driving-scene segmentation models on the source domain, other domains and corruptions.

For every condition — the source validation set, each target domain, and each natural corruption ×
severity applied to the source validation images — every model sees identical inputs:

1. the image is read at full resolution with the dataset's own reader and label encoding;
2. for a corruption, :func:`medrobust.augment.corrupt` (the natural-image suite) is applied to the
   full-resolution image with a generator seeded by ``(evaluate.seed, corruption, severity, image)``;
   alternatively ``corrupted_root`` reads pre-corrupted copies in the source layout from
   ``<corrupted_root>/<corruption>/<severity>/``;
3. the image is resized to the domain's ``resize`` when configured, segmented with sliding-window
   inference (MONAI, window = ``evaluate.window`` or the training crop, so any image size works) and
   the logits are upsampled (bilinear) to the label's full resolution;
4. one confusion matrix per (model, condition) accumulates every pixel whose ground truth is a train
   ID 0..18 (255 is ignored); per-class IoU = TP / (TP + FP + FN) and mIoU = the mean over the
   classes present in ground truth or prediction (:func:`~medrobust.evaluate.metrics.iou_from_confusion`).

Outputs: ``out_dir/report.{md,json}`` (atomic) and ``figures/`` (per-class IoU bars, mIoU vs
severity, qualitative predictions in the Cityscapes palette).
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...evaluate.inference import predict
from ...evaluate.report import _new_figure, _num, _pct, _sanitize, _save_figure
from .config import DrivingConfig

__all__ = ["load_run", "summarize", "evaluate_driving", "comparison_table", "corruption_suite"]


# ----------------------------------------------------------------------------------------- inference
@torch.no_grad()
def load_run(run_dir: str | Path, *, device: torch.device | str = "cpu", checkpoint: str = "best.pt") -> tuple[DrivingConfig, torch.nn.Module]:
    """``run_dir/config.yaml`` and the model with the weights of ``run_dir/<checkpoint>``, in eval mode."""
    from ...config import load_config
    from ...models.factory import load_weights
    from ...train.loop import run_paths
    from .train import build_model

    cfg_path, ckpt_path = run_paths(run_dir, checkpoint)
    cfg = load_config(cfg_path, model=DrivingConfig)
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"weights": None, "encoder_weights": None})})
    model = build_model(cfg)
    load_weights(model, ckpt_path, what="checkpoint")
    return cfg, model.to(device).eval()


def summarize(cm: np.ndarray, class_names: Sequence[str], n_images: int, *, keep_confusion: bool = False) -> dict[str, Any]:
    """``{"miou", "iou": {class: v}, "pixel_acc", "n_images", "n_pixels"[, "confusion"]}`` from ``cm[gt, pred]``."""
    from ...evaluate.metrics import iou_from_confusion

    iou, miou = iou_from_confusion(cm)
    total = int(cm.sum())
    out: dict[str, Any] = {
        "miou": float(miou),
        "iou": {name: float(v) for name, v in zip(class_names, iou)},
        "pixel_acc": float(np.trace(cm) / total) if total else math.nan,
        "n_images": int(n_images),
        "n_pixels": total,
    }
    if keep_confusion:
        out["confusion"] = cm.astype(np.int64).tolist()
    return out


def corruption_suite() -> tuple[Any, Any] | None:
    """``(corrupt, corruption_names)`` from :mod:`medrobust.augment`, or None when not available yet."""
    try:
        from ... import augment

        return augment.corrupt, augment.corruption_names  # type: ignore[attr-defined]
    except (ImportError, AttributeError):
        return None


def _seed(*parts: Any) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode()) & 0x7FFFFFFF


def _resolve_corruptions(spec: str | list[str], suite: tuple[Any, Any] | None, corrupted_root: Path | None,
                         notes: list[str]) -> list[str]:
    if isinstance(spec, list):
        if suite is not None and spec:
            try:
                known = list(suite[1]("all"))
            except Exception:  # noqa: BLE001 - the subset name may differ; corrupt() validates names then
                known = []
            unknown = [c for c in spec if known and c not in known]
            if unknown:
                raise ValueError(f"evaluate.corruptions: unknown {unknown}; choose from {known}")
        names = list(spec)
    elif suite is not None:
        try:
            names = list(suite[1](spec))
        except (KeyError, ValueError) as err:
            raise ValueError(f"evaluate.corruptions: {err}") from None
    elif corrupted_root is not None:
        names = sorted(p.name for p in corrupted_root.iterdir() if p.is_dir())
    else:
        names = []
    if names and suite is None and corrupted_root is None:
        msg = ("natural corruption suite (medrobust.augment.corrupt) is not importable yet: "
               "corruption evaluation skipped")
        warnings.warn(msg, stacklevel=3)
        notes.append(msg)
        return []
    return names


# ---------------------------------------------------------------------------------------- evaluation
def evaluate_driving(
    runs: Mapping[str, str | Path],
    *,
    out_dir: str | Path,
    overrides: Sequence[str] | None = None,
    corrupted_root: str | Path | None = None,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate trained runs (``{model_name: run_dir}``) and write ``out_dir/report.{md,json}`` + figures.

    The data (source validation split, target domains) and evaluation settings come from the first
    run's config, with ``overrides`` (``--set evaluate.* / data.*``) applied on top. Returns the
    results dict (also in ``report.json``)::

        {"task": "driving", "class_names": [...19...], "domains": {...},
         "models": {name: {"source": summary, "targets": {domain: summary},
                           "corruptions": {corruption: {"1": summary, ...}}, "run_dir": str}},
         "notes": [...], "references": {...}, "files": {...}}

    with ``summary = {"miou", "iou": {class: IoU}, "pixel_acc", "n_images", "n_pixels"}`` (IoU in
    [0, 1]; NaN/null for classes absent from both ground truth and prediction).
    """
    from tqdm.auto import tqdm

    from .train import prepare_data
    from ...config import apply_overrides, validate
    from ...data.driving import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, DrivingDataset, list_samples
    from ...evaluate.metrics import confusion_matrix

    if not runs:
        raise ValueError("evaluate: no runs given")
    from ...train.loop import resolve_device

    dev = resolve_device(device, what="--device")
    loaded = {name: load_run(path, device=dev) for name, path in runs.items()}
    cfg0: DrivingConfig = next(iter(loaded.values()))[0]
    if overrides:
        cfg0 = validate(apply_overrides(cfg0.model_dump(mode="json"), list(overrides)), source="--set", model=DrivingConfig)
    ev = cfg0.evaluate
    data = prepare_data(cfg0)
    notes: list[str] = []
    croot = Path(corrupted_root) if corrupted_root is not None else None
    if croot is not None and not croot.is_dir():
        raise FileNotFoundError(f"--corrupted-root {croot}: folder not found")
    suite = corruption_suite() if croot is None else None
    corruptions = _resolve_corruptions(ev.corruptions, suite, croot, notes)

    def cap(samples: list[Any]) -> list[Any]:
        return samples[: ev.max_images] if ev.max_images else samples

    val_split = cfg0.data.val_split
    source_resize = tuple(cfg0.data.eval_resize) if cfg0.data.eval_resize else None
    # (kind, name, severity, dataset, samples, resize)
    conditions: list[tuple[str, str, int | None, Any, tuple[int, int] | None]] = [
        ("source", "source", None, DrivingDataset(data.root, dataset=data.source, samples=cap(data.val)), source_resize)]
    domains: dict[str, Any] = {"source": {"dataset": data.source, "root": str(data.root), "n_images": len(cap(data.val))}}
    if ev.targets:
        for tname, (tcfg, troot) in data.targets.items():
            ds = DrivingDataset(troot, dataset=tcfg.dataset, samples=cap(list_samples(troot, tcfg.dataset, tcfg.split)))
            conditions.append(("target", tname, None, ds, tuple(tcfg.resize) if tcfg.resize else None))
            domains[tname] = {"dataset": tcfg.dataset, "root": str(troot), "split": tcfg.split, "n_images": len(ds)}
    for c in corruptions:
        for s in ev.severities:
            if croot is not None:
                from ...data.driving import default_split

                sub = croot / c / str(s)
                samples = cap(list_samples(sub, data.source, val_split or default_split(data.source, "val")))
                ds = DrivingDataset(sub, dataset=data.source, samples=samples)
            else:
                ds = conditions[0][3]
            conditions.append(("corrupt", c, s, ds, source_resize))

    window = tuple(ev.window or cfg0.data.crop_size)
    cms = {(m, kind, name, sev): np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
           for m in loaded for kind, name, sev, _, _ in conditions}
    grid_rows: list[dict[str, Any]] = []
    grid_sev = ev.severities[len(ev.severities) // 2]
    total = sum(len(c[3]) for c in conditions)
    bar = tqdm(total=total, desc="evaluate", disable=not progress, dynamic_ncols=True, leave=False)
    for kind, name, sev, ds, resize in conditions:
        n_grid = 0
        for i in range(len(ds)):
            image, ids = ds.load(i)
            x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)[None]
            if kind == "corrupt" and croot is None:
                assert suite is not None
                gen = torch.Generator().manual_seed(_seed(ev.seed, name, sev, ds.samples[i].name))
                x = suite[0](x, name, int(sev), generator=gen).clamp(0, 1)
            x_in = x.to(dev)
            if resize is not None:
                x_in = torch.nn.functional.interpolate(x_in, size=resize, mode="bilinear", align_corners=False, antialias=True)
            preds = {}
            for mname, (_, model) in loaded.items():
                pred = predict(model, x_in, window=window, overlap=ev.overlap, sw_batch_size=ev.sw_batch_size,
                               out_size=ids.shape)[0].cpu().numpy()
                cms[(mname, kind, name, sev)] += confusion_matrix(pred, ids, NUM_CLASSES, IGNORE_INDEX)
                preds[mname] = pred.astype(np.uint8)
            want = ev.grid_images if kind != "corrupt" else (1 if sev == grid_sev and name == corruptions[0] else 0)
            if n_grid < want:
                title = name if kind != "corrupt" else f"{name} s{sev}"
                grid_rows.append({"image": x[0].permute(1, 2, 0).numpy(), "label": ids, "preds": preds,
                                  "title": f"{title}: {ds.samples[i].name}"})
                n_grid += 1
            bar.update(1)
    bar.close()

    results: dict[str, Any] = {"task": "driving", "run": str(out_dir), "class_names": list(CLASS_NAMES),
                               "metric": "IoU per Cityscapes train ID from one confusion matrix per condition "
                                         "(ground truth 0..18; 255 ignored); mIoU = mean over classes present",
                               "domains": domains, "models": {}}
    n_by_cond = {(k, n, s): len(ds) for k, n, s, ds, _ in conditions}
    for mname in loaded:
        entry: dict[str, Any] = {
            "source": summarize(cms[(mname, "source", "source", None)], CLASS_NAMES, n_by_cond[("source", "source", None)],
                                keep_confusion=True),
            "targets": {n: summarize(cms[(mname, "target", n, None)], CLASS_NAMES, n_by_cond[("target", n, None)],
                                     keep_confusion=True)
                        for k, n, _, _, _ in conditions if k == "target"},
            "corruptions": {c: {str(s): summarize(cms[(mname, "corrupt", c, s)], CLASS_NAMES, n_by_cond[("corrupt", c, s)])
                                for s in ev.severities} for c in corruptions},
            "run_dir": str(runs[mname]),
        }
        results["models"][mname] = entry
    if notes:
        results["notes"] = notes
    refs = _references()
    if refs:
        results["references"] = refs
    results["files"] = {k: str(v) for k, v in write_driving_report(out_dir, results, grid_rows).items()}
    return results


def _references() -> dict[str, Any]:
    """Published reference numbers from ``medrobust/tasks/driving/protocols/gta5_to_real.yaml`` when the repository's task file is present."""
    import yaml

    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        path = base / "tasks" / "gta5_to_real.yaml"
        if path.is_file():
            data = yaml.safe_load(path.read_text()) or {}
            return data.get("references", {}) or {}
    return {}


# -------------------------------------------------------------------------------------------- tables
def _mean(values: Sequence[Any]) -> float | None:
    vals = [f for f in (_num(v) for v in values) if f is not None]
    return sum(vals) / len(vals) if vals else None


def _table(rows: list[list[str]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _corrupted_mean(m: Mapping[str, Any]) -> float | None:
    return _mean([s.get("miou") for by_sev in (m.get("corruptions") or {}).values() for s in by_sev.values()])


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
        row = [name, _pct(m.get("source", {}).get("miou")), *[_pct(v) for v in tv]]
        if targets:
            row.append(_pct(_mean(tv)))
        if has_corr:
            row.append(_pct(_corrupted_mean(m)))
        rows.append(row)
    return _table(rows, header)


def _class_table(results: Mapping[str, Any], getter: Any) -> str:
    names = results["class_names"]
    models = results["models"]
    rows = []
    for c in [*names, "mIoU"]:
        row = [c]
        for m in models.values():
            s = getter(m)
            row.append(_pct(s.get("miou") if c == "mIoU" else s.get("iou", {}).get(c)) if s else "–")
        rows.append(row)
    return _table(rows, ["Class", *models])


def _corruption_table(m: Mapping[str, Any]) -> str:
    corr = m.get("corruptions") or {}
    if not corr:
        return ""
    sevs = sorted({int(s) for by in corr.values() for s in by})
    rows = []
    for c, by in corr.items():
        vals = [by.get(str(s), {}).get("miou") for s in sevs]
        rows.append([c, *[_pct(v) for v in vals], _pct(_mean(vals))])
    means = [_mean([by.get(str(s), {}).get("miou") for by in corr.values()]) for s in sevs]
    rows.append(["**mean**", *[_pct(v) for v in means], _pct(_corrupted_mean(m))])
    return _table(rows, ["Corruption", *[str(s) for s in sevs], "Mean"])


def _references_md(refs: Mapping[str, Any]) -> str:
    rows, cols = [], ["Reference"]
    for k, v in refs.items():
        if isinstance(v, Mapping):
            flat = {str(a): b for a, b in v.items() if not isinstance(b, Mapping)}
            cols += [c for c in flat if c not in cols]
            rows.append((k, flat))
    def cell(v: Any) -> str:  # published mIoU values carry two decimals
        return "–" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))

    return _table([[k, *[cell(f.get(c)) for c in cols[1:]]] for k, f in rows], cols) if rows else ""


# ------------------------------------------------------------------------------------------- figures
def plot_class_iou(results: Mapping[str, Any], path: str | Path) -> Path:
    """Per-class IoU bars: one panel per domain (source, targets), one bar colour per model."""
    import matplotlib as mpl

    names = results["class_names"]
    models = results["models"]
    first = next(iter(models.values()))
    panels = ["source", *list((first.get("targets") or {}).keys())]
    fig = _new_figure((12, 2.6 * len(panels) + 0.6))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    colors = mpl.colormaps["tab10"].colors
    width = 0.8 / max(1, len(models))
    x = np.arange(len(names))
    for ax, panel in zip(axes, panels):
        for j, (mname, m) in enumerate(models.items()):
            s = m["source"] if panel == "source" else (m.get("targets") or {}).get(panel, {})
            vals = [100 * (_num(s.get("iou", {}).get(c)) or 0.0) for c in names]
            ax.bar(x + (j - (len(models) - 1) / 2) * width, vals, width, color=colors[j % 10],
                   label=f"{mname} (mIoU {_pct(s.get('miou'))})")
        ax.set_title(f"{panel}", fontsize=10)
        ax.set_ylabel("IoU (%)")
        ax.set_ylim(0, 100)
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper right", frameon=False)
    fig.tight_layout()
    return _save_figure(fig, Path(path))


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
    fig = _new_figure((3.0 * ncols, 2.5 * nrows + 0.4))
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    colors = mpl.colormaps["tab10"].colors
    for i, c in enumerate(corrs):
        ax = axes[i // ncols][i % ncols]
        for j, (mname, m) in enumerate(models.items()):
            by = (m.get("corruptions") or {}).get(c) or {}
            xs = [0] + sorted(int(s) for s in by)
            ys = [_num(m["source"].get("miou"))] + [_num(by[str(s)].get("miou")) for s in xs[1:]]
            ax.plot(xs, [np.nan if y is None else 100 * y for y in ys], marker="o", ms=3, color=colors[j % 10], label=mname)
        ax.set_title(c.replace("_", " "), fontsize=9)
        ax.grid(True, alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7, frameon=False)
    for k in range(len(corrs), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    for row in axes:
        row[0].set_ylabel("mIoU (%)")
    fig.tight_layout()
    return _save_figure(fig, Path(path))


def plot_predictions(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Rows of image | ground truth | one prediction per model, in the Cityscapes palette (ignore black)."""
    from matplotlib.patches import Patch

    from ...data.driving import CLASS_NAMES, PALETTE, colorize

    models = list(rows[0]["preds"])
    ncols = 2 + len(models)
    h, w = rows[0]["label"].shape
    aspect = w / h
    fig = _new_figure((2.2 * aspect * ncols, 2.2 * len(rows) + 0.8))
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
    return _save_figure(fig, Path(path))


def write_driving_report(out_dir: str | Path, results: dict[str, Any], grid_rows: Sequence[Mapping[str, Any]] = ()) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``figures/*.png`` under ``out_dir`` (atomically)."""
    from ...io import atomic_write_json, atomic_write_text

    out_dir = Path(out_dir)
    figs: dict[str, Path] = {"class_iou": plot_class_iou(results, out_dir / "figures" / "class_iou.png")}
    p = plot_miou_vs_severity(results, out_dir / "figures" / "miou_vs_severity.png")
    if p is not None:
        figs["miou_vs_severity"] = p
    if grid_rows:
        figs["predictions"] = plot_predictions(grid_rows, out_dir / "figures" / "predictions.png")
    files: dict[str, Path] = {"json": out_dir / "report.json", "markdown": out_dir / "report.md", **figs}
    results["files"] = {k: str(v) for k, v in files.items()}
    atomic_write_json(files["json"], _sanitize(results), allow_nan=False)

    md = ["# Driving-scene segmentation across domains", "",
          f"**task:** driving  \n**run:** {results.get('run')}", "",
          "mIoU (%) over the 19 Cityscapes train IDs, from one confusion matrix per domain/condition "
          "(pixels labelled 255 ignored). Corrupted mean = mean over corruptions × severities of the source "
          "validation set.", "", "## Comparison", "", comparison_table(results)]
    doms = results.get("domains") or {}
    if doms:
        md += ["## Domains", "", _table([[k, v.get("dataset", ""), str(v.get("n_images", "")), v.get("root", "")]
                                         for k, v in doms.items()], ["Domain", "Layout", "Images", "Root"])]
    md += ["## Per-class IoU (%), source", "", _class_table(results, lambda m: m.get("source"))]
    first = next(iter(results["models"].values()))
    for t in first.get("targets") or {}:
        md += [f"## Per-class IoU (%), {t}", "", _class_table(results, lambda m, t=t: (m.get("targets") or {}).get(t))]
    ctabs = [(n, _corruption_table(m)) for n, m in results["models"].items()]
    if any(t for _, t in ctabs):
        md += ["## mIoU (%) by corruption and severity (source validation set)", ""]
        for n, t in ctabs:
            if t:
                md += [f"### {n}", "", t]
    for note in results.get("notes") or []:
        md += [f"*Note: {note}.*", ""]
    if results.get("references"):
        md += ["## References (published numbers, as reported; not produced by this repository)", "",
               _references_md(results["references"])]
    md += ["## Figures", ""] + [f"![{k}](figures/{v.name})\n" for k, v in figs.items()]
    atomic_write_text(files["markdown"], "\n".join(md).rstrip() + "\n")
    return files
