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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...augment import corrupt
from ...evaluate.conditions import condition_seed
from ...evaluate.inference import predict
from .config import DrivingConfig
from .report import write_driving_report

__all__ = ["load_run", "summarize", "evaluate_driving"]


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


def _resolve_corruptions(spec: str | list[str], corrupted_root: Path | None) -> list[str]:
    """The corruption names to evaluate: ``spec`` checked against the suite (on the fly), or, with a
    corrupted root and a subset name, the corruption folders found there."""
    from ...augment import corruption_names

    if corrupted_root is not None:
        return list(spec) if isinstance(spec, list) else sorted(p.name for p in corrupted_root.iterdir() if p.is_dir())
    if isinstance(spec, list):
        known = list(corruption_names("all"))
        unknown = [c for c in spec if c not in known]
        if unknown:
            raise ValueError(f"evaluate.corruptions: unknown {unknown}; choose from {known}")
        return list(spec)
    try:
        return list(corruption_names(spec))
    except (KeyError, ValueError) as err:
        raise ValueError(f"evaluate.corruptions: {err}") from None


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
         "references": {...}, "files": {...}}

    with ``summary = {"miou", "iou": {class: IoU}, "pixel_acc", "n_images", "n_pixels"}`` (IoU in
    [0, 1]; NaN/null for classes absent from both ground truth and prediction).
    """
    from tqdm.auto import tqdm

    from ...config import apply_overrides, validate
    from ...data.driving import (
        CLASS_NAMES,
        IGNORE_INDEX,
        NUM_CLASSES,
        DrivingDataset,
        list_samples,
    )
    from ...evaluate.checks import check_dir, check_out_dir, check_runs, require_paths
    from ...evaluate.metrics import confusion_matrix
    from ...evaluate.provenance import corruption_source, run_provenance
    from .train import prepare_data

    if not runs:
        raise ValueError("evaluate: no runs given")
    from ...train.loop import resolve_device

    check_out_dir(out_dir)
    check_runs(runs)
    dev = resolve_device(device, what="--device")
    loaded = {name: load_run(path, device=dev) for name, path in runs.items()}
    cfg0: DrivingConfig = next(iter(loaded.values()))[0]
    if overrides:
        cfg0 = validate(apply_overrides(cfg0.model_dump(mode="json"), list(overrides)), source="--set", model=DrivingConfig)
    ev = cfg0.evaluate
    data = prepare_data(cfg0)
    croot = check_dir(corrupted_root, what="--corrupted-root",
                      expected="<corruption>/<severity>/ folders, each a copy of the source validation set in its layout")
    corruptions = _resolve_corruptions(ev.corruptions, croot)

    def cap(samples: list[Any]) -> list[Any]:
        return samples[: ev.max_images] if ev.max_images else samples

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
    if croot is not None and corruptions:
        # the corrupted copy of every source validation image (and its label), at the same relative path
        src = conditions[0][3].samples
        expected = [croot / c / str(s) / p.relative_to(data.root) for c in corruptions for s in ev.severities
                    for smp in src for p in (smp.image, smp.label) if p is not None]
        require_paths(expected, what=f"--corrupted-root {croot}",
                      expected=f"<corruption>/<severity>/<path under {data.root}> of each of the {len(src)} source "
                               f"validation images and labels, for every corruption {corruptions} x severity "
                               f"{list(ev.severities)}")
    for c in corruptions:
        for s in ev.severities:
            if croot is not None:
                from ...data.driving import Sample

                sub = croot / c / str(s)
                samples = [Sample(sub / smp.image.relative_to(data.root),
                                  None if smp.label is None else sub / smp.label.relative_to(data.root), smp.name, smp.dataset)
                           for smp in conditions[0][3].samples]
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
            x8 = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
            if kind == "corrupt" and croot is None:
                # uint8 in, uint8 out: the image a written corrupted set would hold, no value pass
                gen = torch.Generator().manual_seed(condition_seed(ev.seed, name, sev, ds.samples[i].name))
                x8 = corrupt(x8, name, int(sev), generator=gen)
            x = x8.float().div_(255.0)
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

    results: dict[str, Any] = {"task": "driving", "runs": {m: str(p) for m, p in runs.items()}, "class_names": list(CLASS_NAMES),
                               "metric": "IoU per Cityscapes train ID from one confusion matrix per condition "
                                         "(ground truth 0..18; 255 ignored); mIoU = mean over classes present",
                               "domains": domains,
                               "protocol": {"corruptions": corruptions, "severities": list(ev.severities),
                                            "corruption_source": corruption_source(
                                                croot if corruptions else None, seed=ev.seed,
                                                seeding="condition_seed(evaluate.seed, corruption, severity, image name)"),
                                            "embedded_default": cfg0.data.root is None},
                               "models": {}}
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
            "provenance": run_provenance(runs[mname], checkpoint="best.pt", configured_steps=loaded[mname][0].train.steps),
        }
        results["models"][mname] = entry
    refs, ref_note = _references(embedded=cfg0.data.root is None)
    if refs:
        results["references"] = refs
        if ref_note:
            results["references_note"] = ref_note
    results["files"] = {k: str(v) for k, v in write_driving_report(out_dir, results, grid_rows).items()}
    return results


def _references(*, embedded: bool = False) -> tuple[dict[str, Any], str | None]:
    """Published reference numbers of the GTA5 -> real protocol (``protocols/gta5_to_real.yaml``, package
    data) and the note on how their protocol differs from the data evaluated (``embedded``)."""
    from ...evaluate.report.references import protocol_note
    from ..base import read_protocol

    proto = read_protocol(__package__, "gta5_to_real")
    return proto.get("references", {}) or {}, protocol_note(proto, embedded=embedded)
