"""Evaluate cardiac segmentation models on clean, ACDC-C corrupted and shifted-domain test data.

For each test case (patient × ED/ES frame) the input is built once per condition and every model is
run on it, so all models see identical corrupted volumes:

1. the raw volume ``(X, Y, Z)`` is scaled to [0, 1] per volume (0.5/99.5 percentiles, clipped);
2. for a corruption, :func:`~medrobust.augment.corruptions.mri.corrupt_mri` is applied to the volume
   arranged as ``(1, 1, Z, X, Y)`` (in-plane axes last) with a generator seeded by
   ``(evaluate.seed, corruption, severity, case)``; alternatively ``corrupted_root`` reads volumes
   written by ``medrobust corrupt`` (``<root>/<corruption>/<severity>/<subset>/<patient>``);
3. each slice (2D models) or the volume (3D models) is normalised as in training and segmented with
   MONAI sliding-window inference (ROI = ``data.spatial_size``), so any image size works;
4. Dice per structure and HD95 in mm (spacing from the NIfTI header) with the ACDC empty-structure
   convention of :mod:`medrobust.evaluate.metrics`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...evaluate.conditions import condition_seed
from ...evaluate.metrics import SegmentationMeter
from .config import CardiacConfig

__all__ = ["load_run", "evaluate_cardiac", "normalise_volume"]


def normalise_volume(vol: np.ndarray | torch.Tensor, axes: tuple[int, ...] | None = None) -> torch.Tensor:
    """Percentile (0.5, 99.5) scaling to [0, 1], clipped; over ``axes`` (all when None)."""
    v = torch.as_tensor(np.asarray(vol, dtype=np.float32)) if not isinstance(vol, torch.Tensor) else vol.float()
    if axes is None:
        flat = v.reshape(1, -1)
        lo, hi = torch.quantile(flat, 0.005, dim=1), torch.quantile(flat, 0.995, dim=1)
        return ((v - lo) / (hi - lo).clamp_min(1e-8)).clamp(0, 1)
    keep = [d for d in range(v.ndim) if d not in axes]
    perm = keep + list(axes)
    vp = v.permute(*perm)
    flat = vp.reshape(int(np.prod([v.shape[d] for d in keep])), -1)
    lo = torch.quantile(flat, 0.005, dim=1, keepdim=True)
    hi = torch.quantile(flat, 0.995, dim=1, keepdim=True)
    out = ((flat - lo) / (hi - lo).clamp_min(1e-8)).clamp(0, 1).reshape(vp.shape)
    inv = np.argsort(perm).tolist()
    return out.permute(*inv)


def load_run(run_dir: str | Path, *, device: torch.device | str = "cpu",
             checkpoint: str = "best.pt") -> tuple[CardiacConfig, torch.nn.Module]:
    """Load ``run_dir/config.yaml`` and the model weights from ``run_dir/<checkpoint>`` (weights_only)."""
    from ...config import load_config
    from ...models.factory import load_weights
    from ...train.loop import run_paths
    from .train import build_model

    cfg_path, ckpt_path = run_paths(run_dir, checkpoint)
    cfg = load_config(cfg_path, model=CardiacConfig)
    model = build_model(cfg.model_copy(update={"model": cfg.model.model_copy(update={"weights": None})}))
    load_weights(model, ckpt_path, what="checkpoint")
    return cfg, model.to(device).eval()


@torch.no_grad()
def _predict(model: torch.nn.Module, vol01: torch.Tensor, cfg: CardiacConfig, device: torch.device) -> np.ndarray:
    """Segment a [0, 1] volume ``(X, Y, Z)``; returns integer labels ``(X, Y, Z)``."""
    from monai.inferers import sliding_window_inference

    roi = tuple(cfg.data.spatial_size)
    sw = cfg.evaluate.sw_batch_size
    if cfg.data.mode == "2d":
        slices = normalise_volume(vol01, axes=(0, 1)).permute(2, 0, 1).unsqueeze(1).to(device)  # (Z, 1, X, Y)
        logits = sliding_window_inference(slices, roi_size=roi, sw_batch_size=sw, predictor=model, overlap=0.25)
        return logits.argmax(1).permute(1, 2, 0).cpu().numpy().astype(np.uint8)
    x = normalise_volume(vol01)[None, None].to(device)
    roi3 = roi if len(roi) == 3 else (*roi, x.shape[-1])
    roi3 = tuple(x.shape[2 + i] if r == -1 else r for i, r in enumerate(roi3))
    logits = sliding_window_inference(x, roi_size=roi3, sw_batch_size=sw, predictor=model, overlap=0.25)
    return logits.argmax(1)[0].cpu().numpy().astype(np.uint8)


def evaluate_cardiac(
    runs: dict[str, str | Path],
    *,
    out_dir: str | Path,
    overrides: list[str] | None = None,
    corrupted_root: str | Path | None = None,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate trained runs (``{model_name: run_dir}``) and write ``out_dir/report.{md,json}`` + figures.

    The test data and evaluation settings come from the first run's config (``overrides`` apply
    ``--set evaluate.*`` / ``data.*`` keys on top). Returns the results dict (schema in
    :mod:`medrobust.tasks.cardiac.report`).
    """
    from tqdm.auto import tqdm

    from ...augment.corruptions.mri import NAMES, corrupt_mri
    from ...config import apply_overrides, validate
    from ...data.acdc import read_patient
    from .report import write_cardiac_report
    from .train import CLASS_NAMES, NUM_CLASSES, prepare_data

    if not runs:
        raise ValueError("evaluate: no runs given")
    from ...train.loop import resolve_device

    dev = resolve_device(device, what="--device")
    loaded = {name: load_run(path, device=dev) for name, path in runs.items()}
    cfg0 = next(iter(loaded.values()))[0]
    if overrides:
        cfg0 = validate(apply_overrides(cfg0.model_dump(mode="json"), overrides), source="--set", model=CardiacConfig)
    ev = cfg0.evaluate
    corruptions = list(NAMES) if ev.corruptions == "all" else list(ev.corruptions)
    unknown = [c for c in corruptions if c not in NAMES]
    if unknown:
        raise ValueError(f"evaluate.corruptions: unknown {unknown}; choose from {NAMES}")
    data = prepare_data(cfg0)
    if not data.test:
        raise ValueError(f"{data.root}: no test patients")

    conditions: list[tuple[str, str | None, int | None]] = [("clean", None, None)]
    conditions += [("corrupt", c, s) for c in corruptions for s in ev.severities]
    if ev.shifted and data.shifted:
        conditions.append(("shifted", None, None))
    meters = {(m, cond[0], cond[1], cond[2]): SegmentationMeter(NUM_CLASSES, CLASS_NAMES, hd95=ev.hd95)
              for m in loaded for cond in conditions}
    grid_rows: list[dict[str, Any]] = []
    grid_conditions = {("clean", None, None), ("corrupt", corruptions[0] if corruptions else None, 3),
                       ("corrupt", corruptions[-1] if corruptions else None, 5), ("shifted", None, None)}

    cases = [(p, key) for p in data.test for key in ("ED", "ES")]
    total = sum(len(data.shifted) * 2 if c[0] == "shifted" else len(cases) for c in conditions)
    bar = tqdm(total=total, desc="evaluate", disable=not progress, dynamic_ncols=True, leave=False)
    for kind, corr, sev in conditions:
        for patient, key in (cases if kind != "shifted" else [(p, k) for p in data.shifted for k in ("ED", "ES")]):
            frame = patient.frames[key]
            label = np.asarray(frame.label)
            if kind == "corrupt" and corrupted_root is not None:
                sub = Path(corrupted_root) / str(corr) / str(sev) / patient.path.parent.name / patient.id
                cframe = read_patient(sub).frames[key]
                vol = normalise_volume(cframe.image)
            else:
                vol = normalise_volume(frame.image)
                if kind == "corrupt":
                    gen = torch.Generator().manual_seed(condition_seed(ev.seed, corr, sev, patient.id, key))
                    x = vol.permute(2, 0, 1)[None, None]  # (1, 1, Z, X, Y): in-plane axes last
                    vol = corrupt_mri(x, corr, sev, generator=gen)[0, 0].permute(1, 2, 0)
            preds = {}
            for name, (cfg, model) in loaded.items():
                pred = _predict(model, vol, cfg, dev)
                meters[(name, kind, corr, sev)].update(pred, label, spacing=tuple(frame.spacing), case_id=f"{patient.id}_{key}")
                preds[name] = pred
            if len(grid_rows) < max(1, ev.grid_cases) * 4 and (kind, corr, sev) in grid_conditions and key == "ED" \
                    and not any(r["cond"] == (kind, corr, sev) for r in grid_rows):
                z = int(np.argmax((label > 0).sum((0, 1))))
                title = "clean" if kind == "clean" else ("shifted domain" if kind == "shifted" else f"{corr} s{sev}")
                grid_rows.append({"cond": (kind, corr, sev), "image": vol[:, :, z].numpy(), "label": label[:, :, z],
                                  "preds": {n: p[:, :, z] for n, p in preds.items()}, "title": f"{patient.id} {title}"})
            bar.update(1)
    bar.close()

    results: dict[str, Any] = {"task": "cardiac", "run": str(out_dir), "models": {}}
    for name in loaded:
        entry: dict[str, Any] = {"clean": meters[(name, "clean", None, None)].summary(), "corruptions": {}}
        for c in corruptions:
            entry["corruptions"][c] = {str(s): meters[(name, "corrupt", c, s)].summary() for s in ev.severities}
        if (name, "shifted", None, None) in meters:
            entry["shifted"] = meters[(name, "shifted", None, None)].summary()
        entry["run_dir"] = str(runs[name])
        results["models"][name] = entry
    refs = _references()
    if refs:
        results["references"] = refs
    results["files"] = {k: str(v) for k, v in write_cardiac_report(out_dir, results, grid_rows).items()}
    return results


def _references() -> dict[str, Any]:
    """Published reference numbers of the ACDC protocol (``protocols/acdc.yaml``, package data)."""
    from ..base import references

    return references(__package__, "acdc")
