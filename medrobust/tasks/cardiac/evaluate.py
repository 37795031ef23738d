"""Evaluate cardiac segmentation models on clean, ACDC-C corrupted and shifted-domain test data.

Before the first forward pass everything the evaluation reads is checked (one line naming what is
missing): the report folder, every run's ``config.yaml`` and ``best.pt``, the device, the data roots and,
with ``corrupted_root``, every corrupted volume of every corruption × severity × test case.

The test set is walked case by case (patient × ED/ES frame): the volume is read and normalised once,
each condition's input is built once from it and every model is run on it, so all models see identical
corrupted volumes (each meter still receives its cases in test-set order):

1. the raw volume ``(X, Y, Z)`` is scaled to [0, 1] per volume (0.5/99.5 percentiles, clipped);
2. for a corruption, :func:`~medrobust.augment.corruptions.mri.corrupt_mri` is applied to the volume
   arranged as ``(1, 1, Z, X, Y)`` (in-plane axes last) with a generator seeded by
   ``(evaluate.seed, corruption, severity, case)``; alternatively ``corrupted_root`` reads volumes
   written by ``medrobust corrupt --task cardiac`` (``<root>/<corruption>/<severity>/<subset>/<patient>``)
   or ``--task nifti`` (``<root>/<corruption>/<severity>/<image path below the manifest's source>``);
3. each slice (2D models) or the volume (3D models) is normalised as in training (once per input,
   shared by the models) and segmented with MONAI sliding-window inference (ROI = ``data.spatial_size``),
   so any image size works; a slice exactly the window's size is run directly, in the chunks of
   ``evaluate.sw_batch_size`` slices the sliding window forms (the same logits, bit for bit);
4. Dice per structure and HD95 in mm (spacing from the NIfTI header) with the ACDC empty-structure
   convention of :mod:`medrobust.evaluate.metrics` (MONAI's numbers, computed without its one-hot and
   transform machinery and without the discarded background).

``report.json`` records where every number came from: the run folders, each model's checkpoint and
training steps (``provenance``), the test data and the corrupted set (``protocol``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...evaluate.conditions import condition_seed
from ...evaluate.inference import argmax_classes
from ...evaluate.metrics import SegmentationMeter
from .config import CardiacConfig

__all__ = ["load_run", "evaluate_cardiac", "normalise_volume", "predict_volume"]


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


def _slices(vol01: torch.Tensor) -> torch.Tensor:
    """The per-slice normalised input ``(Z, 1, X, Y)`` of 2D models."""
    return normalise_volume(vol01, axes=(0, 1)).permute(2, 0, 1).unsqueeze(1)


@torch.no_grad()
def predict_volume(model: torch.nn.Module, vol01: torch.Tensor, cfg: CardiacConfig, device: torch.device,
                   inputs: dict[str, torch.Tensor] | None = None) -> np.ndarray:
    """Segment a [0, 1] volume ``(X, Y, Z)``; returns integer labels ``(X, Y, Z)``.

    ``inputs``: a cache of the normalised model inputs of this volume (``"2d"``: the slices, ``"3d"``:
    the volume), shared by every model that reads the same volume. A 2D slice exactly the size of the
    window is one window of the sliding-window inference: the model is then run directly on chunks of
    ``sw_batch_size`` slices, the chunks MONAI forms, which gives the same logits bit for bit."""
    from monai.inferers import sliding_window_inference

    roi = tuple(cfg.data.spatial_size)
    sw = cfg.evaluate.sw_batch_size
    inputs = {} if inputs is None else inputs
    if cfg.data.mode == "2d":
        if "2d" not in inputs:
            inputs["2d"] = _slices(vol01).to(device)
        slices = inputs["2d"]  # (Z, 1, X, Y)
        if tuple(slices.shape[-2:]) == roi:
            logits = torch.cat([model(slices[i : i + sw]) for i in range(0, slices.shape[0], sw)])
        else:
            logits = sliding_window_inference(slices, roi_size=roi, sw_batch_size=sw, predictor=model, overlap=0.25)
        return argmax_classes(logits).permute(1, 2, 0).cpu().numpy().astype(np.uint8)
    if "3d" not in inputs:
        inputs["3d"] = normalise_volume(vol01)[None, None].to(device)
    x = inputs["3d"]
    roi3 = roi if len(roi) == 3 else (*roi, x.shape[-1])
    roi3 = tuple(x.shape[2 + i] if r == -1 else r for i, r in enumerate(roi3))
    logits = sliding_window_inference(x, roi_size=roi3, sw_batch_size=sw, predictor=model, overlap=0.25)
    return argmax_classes(logits)[0].cpu().numpy().astype(np.uint8)


#: how the on-the-fly corruptions are seeded (reported with the seed)
SEEDING = "condition_seed(evaluate.seed, corruption, severity, patient, frame)"


def _corrupted_dir(root: Path, corruption: str, severity: int, patient: Any) -> Path:
    """``<root>/<corruption>/<severity>/<subset>/<patient>``, the layout ``medrobust corrupt`` writes."""
    return root / str(corruption) / str(severity) / patient.path.parent.name / patient.id


def _nifti_source(root: Path) -> Path | None:
    """The input folder of a set written by ``medrobust corrupt --task nifti`` (its manifest's ``source``), else
    None (an ACDC-layout set, ``--task cardiac``)."""
    import json

    try:
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or (manifest.get("settings") or {}).get("writer") != "nifti":
        return None
    return Path(manifest["source"])


def _nifti_image(root: Path, source: Path, corruption: str, severity: int, image: Path) -> Path:
    """``<root>/<corruption>/<severity>/<image relative to source>``: where ``--task nifti`` put a test image."""
    image = Path(image).resolve()
    if not image.is_relative_to(source):
        raise ValueError(f"--corrupted-root {root}: test image {image} is not under the folder the set was written "
                         f"from ({source}, see manifest.json); write the set from the test data")
    return root / str(corruption) / str(severity) / image.relative_to(source)


def _check_corrupted_root(root: Path, corruptions: list[str], severities: list[int], patients: list[Any]) -> None:
    """Every file the evaluation will read under ``--corrupted-root`` exists (one line naming the missing)."""
    from ...evaluate.checks import check_dir, require_paths

    check_dir(root, what="--corrupted-root", expected="a folder written by `medrobust corrupt --task cardiac`")
    source = _nifti_source(root)
    if source is not None:  # --task nifti: only the images are read (the labels are the clean ones)
        paths = [_nifti_image(root, source, c, s, p.frames[key].path)
                 for c in corruptions for s in severities for p in patients for key in ("ED", "ES")]
        require_paths(paths, what=f"--corrupted-root {root}",
                      expected=f"<corruption>/<severity>/<image path below {source}> for every corruption "
                               f"{corruptions} x severity {severities} x test image ({2 * len(patients)}), as written "
                               "by `medrobust corrupt --task nifti --images ...`")
        return
    paths = []
    for c in corruptions:
        for s in severities:
            for p in patients:
                sub = _corrupted_dir(root, c, s, p)
                paths.append(sub / "Info.cfg")
                for key in ("ED", "ES"):
                    paths += [sub / p.frames[key].path.name, sub / p.frames[key].label_path.name]
    require_paths(paths, what=f"--corrupted-root {root}",
                  expected="<corruption>/<severity>/<subset>/<patient>/{Info.cfg, image, _gt label} for every "
                           f"corruption {corruptions} x severity {severities} x test patient ({len(patients)}), "
                           "as written by `medrobust corrupt --task cardiac`")


def evaluate_cardiac(
    runs: dict[str, str | Path],
    *,
    out_dir: str | Path,
    overrides: list[str] | None = None,
    corrupted_root: str | Path | None = None,
    device: str = "auto",
    progress: bool = True,
    extra_figures: dict[str, Any] | None = None,
    tta: dict[str, str | Path] | None = None,
) -> dict[str, Any]:
    """Evaluate trained runs (``{model_name: run_dir}``) and write ``out_dir/report.{md,json}`` + figures.

    The test data and evaluation settings come from the first run's config (``overrides`` apply
    ``--set evaluate.*`` / ``data.*`` keys on top). Everything the evaluation reads is checked before
    the first forward pass: the report folder, every run's config and checkpoint, the device, the data
    roots and, with ``corrupted_root``, every corrupted volume. ``extra_figures``: more figures for the
    report (``{name: image path or Figure}``, linked after the built-in ones). Returns the results dict
    (schema in :mod:`medrobust.tasks.cardiac.report`). ``tta``: ``{name: DynTTA run}`` adds
    ``<model>+<name>`` for every model: the enhancer applied to each normalised slice batch before the
    frozen model (:mod:`medrobust.tasks.tta.evaluate`; 2D models only).
    """
    from tqdm.auto import tqdm

    from ...augment.corruptions.mri import NAMES, corrupt_mri
    from ...config import apply_overrides, validate
    from ...data.acdc import read_patient
    from ...data.nifti import read_volume
    from ...evaluate.checks import check_dir, check_out_dir, check_runs
    from ...evaluate.provenance import corruption_source, run_provenance
    from ...train.loop import resolve_device
    from .report import write_cardiac_report
    from .train import CLASS_NAMES, NUM_CLASSES, prepare_data

    if not runs:
        raise ValueError("evaluate: no runs given")
    check_out_dir(out_dir)
    check_runs(runs)
    dev = resolve_device(device, what="--device")
    from ..tta.evaluate import attach_enhancers, enhancer_summary, refuse_tta_runs

    refuse_tta_runs(runs)
    loaded: dict[str, Any] = {name: load_run(path, device=dev) for name, path in runs.items()}
    if tta and any(cfg.data.mode != "2d" for cfg, _ in loaded.values()):
        raise ValueError("--tta: DynTTA enhances 2D slices; every --run must be a data.mode: 2d model")
    enhanced, base_of, tta_info = attach_enhancers(loaded, tta, dev)
    for tname, meta in tta_info.items():
        if (meta["config"].get("tta") or {}).get("num_channels") != 1:
            raise ValueError(f"--tta {tname}={meta['run_dir']}: is not a cardiac DynTTA run (1 channel); train one with "
                             "`medrobust tta train --model RUN --config cardiac/dyntta`")
    cfg0 = next(iter(loaded.values()))[0]
    if overrides:
        cfg0 = validate(apply_overrides(cfg0.model_dump(mode="json"), overrides), source="--set", model=CardiacConfig)
    ev = cfg0.evaluate
    corruptions = list(NAMES) if ev.corruptions == "all" else list(ev.corruptions)
    unknown = [c for c in corruptions if c not in NAMES]
    if unknown:
        raise ValueError(f"evaluate.corruptions: unknown {unknown}; choose from {NAMES}")
    check_dir(cfg0.data.root, what="data.root", expected="an ACDC folder with training/ (and testing/) patientXXX folders")
    check_dir(cfg0.data.shifted_root, what="data.shifted_root", expected="an ACDC-layout folder of the shifted domain")
    data = prepare_data(cfg0)
    if not data.test:
        raise ValueError(f"{data.root}: no test patients")
    croot = Path(corrupted_root) if corrupted_root is not None else None
    if croot is not None and corruptions:
        _check_corrupted_root(croot, corruptions, list(ev.severities), data.test)
    nifti_src = _nifti_source(croot) if croot is not None else None

    conditions: list[tuple[str, str | None, int | None]] = [("clean", None, None)]
    conditions += [("corrupt", c, s) for c in corruptions for s in ev.severities]
    if ev.shifted and data.shifted:
        conditions.append(("shifted", None, None))
    meters = {(m, cond[0], cond[1], cond[2]): SegmentationMeter(NUM_CLASSES, CLASS_NAMES, hd95=ev.hd95)
              for m in loaded for cond in conditions}
    grid_conditions = [("clean", None, None), ("corrupt", corruptions[0] if corruptions else None, 3),
                       ("corrupt", corruptions[-1] if corruptions else None, 5), ("shifted", None, None)]
    grid: dict[tuple[str, str | None, int | None], dict[str, Any]] = {}

    cases = [(p, key) for p in data.test for key in ("ED", "ES")]
    shifted_cases = [(p, k) for p in data.shifted for k in ("ED", "ES")]
    total = sum(len(shifted_cases) if c[0] == "shifted" else len(cases) for c in conditions)
    bar = tqdm(total=total, desc="evaluate", disable=not progress, dynamic_ncols=True, leave=False)
    # case by case: each volume is read and normalised once, its corrupted copies are built once, and
    # every model sees the same inputs; each meter still receives its cases in the test-set order
    by_case = [(cases, [c for c in conditions if c[0] != "shifted"]), (shifted_cases, [c for c in conditions if c[0] == "shifted"])]
    for case_list, conds in by_case:
        if not conds:
            continue
        read: dict[tuple[str, int], Any] = {}  # the corrupted copies of the current patient (ED and ES)
        for i, (patient, key) in enumerate(case_list):
            if i and case_list[i - 1][0] is not patient:
                read.clear()
            frame = patient.frames[key]
            label = np.asarray(frame.label)
            clean = normalise_volume(frame.image)
            for kind, corr, sev in conds:
                if kind == "corrupt" and croot is not None and nifti_src is not None:  # --task nifti set
                    vol = normalise_volume(read_volume(_nifti_image(croot, nifti_src, str(corr), int(sev or 0), frame.path),
                                                       shape=np.shape(frame.image)))
                elif kind == "corrupt" and croot is not None:
                    ck = (str(corr), int(sev or 0))
                    if ck not in read:
                        read[ck] = read_patient(_corrupted_dir(croot, ck[0], ck[1], patient), lazy=True)
                    vol = normalise_volume(read[ck].frames[key].image)
                else:
                    vol = clean
                    if kind == "corrupt":
                        gen = torch.Generator().manual_seed(condition_seed(ev.seed, corr, sev, patient.id, key))
                        x = vol.permute(2, 0, 1)[None, None]  # (1, 1, Z, X, Y): in-plane axes last
                        vol = corrupt_mri(x, corr, sev, generator=gen)[0, 0].permute(1, 2, 0)
                inputs: dict[str, torch.Tensor] = {}
                preds = {}
                for name, (cfg, model) in loaded.items():
                    if name in enhanced:
                        enhanced[name].condition = kind
                    pred = predict_volume(model, vol, cfg, dev, inputs)
                    meters[(name, kind, corr, sev)].update(pred, label, spacing=tuple(frame.spacing), case_id=f"{patient.id}_{key}")
                    preds[name] = pred
                cond = (kind, corr, sev)
                if cond in grid_conditions and key == "ED" and cond not in grid:
                    z = int(np.argmax((label > 0).sum((0, 1))))
                    title = "clean" if kind == "clean" else ("shifted domain" if kind == "shifted" else f"{corr} s{sev}")
                    grid[cond] = {"cond": cond, "image": vol[:, :, z].numpy(), "label": label[:, :, z],
                                  "preds": {n: p[:, :, z] for n, p in preds.items()}, "title": f"{patient.id} {title}"}
                bar.update(1)
            frame.unload()  # read again by a later evaluation if needed; keeps memory to one volume
    bar.close()
    grid_rows = [grid[c] for c in conditions if c in grid]

    models_cfg = {name: cfg for name, (cfg, _) in loaded.items()}
    results: dict[str, Any] = {
        "task": "cardiac",
        "runs": {name: str(path) for name, path in runs.items()},
        "protocol": {
            "test": {"root": str(data.root), "embedded_default": cfg0.data.root is None,
                     "patients": len(data.test), "cases": len(cases)},
            "shifted": ({"root": str(data.shifted_root), "patients": len(data.shifted), "cases": len(shifted_cases)}
                        if ev.shifted and data.shifted else None),
            "corruptions": corruptions, "severities": list(ev.severities),
            "corruption_source": corruption_source(croot if corruptions else None, seed=ev.seed, seeding=SEEDING),
            "hd95": ev.hd95,
        },
        "models": {},
    }
    for name in loaded:
        entry: dict[str, Any] = {"clean": meters[(name, "clean", None, None)].summary(), "corruptions": {}}
        for c in corruptions:
            entry["corruptions"][c] = {str(s): meters[(name, "corrupt", c, s)].summary() for s in ev.severities}
        if (name, "shifted", None, None) in meters:
            entry["shifted"] = meters[(name, "shifted", None, None)].summary()
        run_dir = runs[base_of.get(name, name)]
        entry["run_dir"] = str(run_dir)
        entry["provenance"] = run_provenance(run_dir, checkpoint="best.pt", configured_steps=models_cfg[name].train.steps)
        results["models"][name] = entry
    if tta_info:
        results["tta"] = enhancer_summary(enhanced, base_of, tta_info)
    refs, note = _references(embedded=cfg0.data.root is None)
    if refs:
        results["references"] = refs
        if note:
            results["references_note"] = note
    results["files"] = {k: str(v) for k, v in write_cardiac_report(out_dir, results, grid_rows,
                                                                   extra_figures=extra_figures).items()}
    return results


def _references(*, embedded: bool) -> tuple[dict[str, Any], str | None]:
    """Published reference numbers of the ACDC protocol (``protocols/acdc.yaml``, package data) and the
    note on how their protocol differs from the data evaluated (``embedded``: the embedded default)."""
    from ...evaluate.report.references import protocol_note
    from ..base import read_protocol

    proto = read_protocol(__package__, "acdc")
    return proto.get("references", {}) or {}, protocol_note(proto, embedded=embedded)
