"""Corruption-robustness benchmark of any classifier: counts per cell, CE / mCE, ECE, the report.

A benchmark evaluates models on a grid of **cells** ``(model, corruption, severity)`` (plus the
clean cell ``("clean", 0)``). For each cell the counts are gathered from zero over every image of
the cell: images, top-1 and top-5 hits and the 15-bin calibration histogram (:func:`cell_counts`;
the counts are integers, so they add up exactly across batches and processes). Every metric comes
from the finished counts of one cell:

* top-1 / top-5 accuracy and error ``E_{s,c} = 1 − acc``;
* ECE, expected calibration error of the top-1 confidence, 15 equal-width bins, L1, over all images
  of the cell (torchmetrics' ``MulticlassCalibrationError(n_bins=15, norm="l1")`` binning); the ECE
  of a severity pools the histograms of every corruption at that severity;
* ``CE_c = 100 · Σ_s E_{s,c} / Σ_s E^{AlexNet}_{s,c}`` and mCE, their mean over the corruptions
  with a published AlexNet error (:func:`mce`); relative ``CE_c = 100 · Σ_s (E_{s,c} − E_clean) /
  Σ_s (E^{AlexNet}_{s,c} − E^{AlexNet}_clean)`` and relative mCE (Hendrycks & Dietterich, ICLR 2019);
* mean corruption accuracy (mean over every corruption × severity evaluated) and, against a chosen
  baseline model (the survey's ResNet-18), relative robustness = mean corruption accuracy − the
  baseline's, and the mCE normalised by the baseline's errors instead of AlexNet's.

:data:`ALEXNET_ERRORS` are AlexNet's ImageNet-C top-1 errors per corruption and severity as released
with the benchmark (``hendrycks/robustness``, ``ImageNet-C/test.py``; their means over severities
are the numbers the paper's tables normalise by, e.g. gaussian noise 0.886428). They hold for
ImageNet-C only (224-pixel ImageNet images with the ``imagenet`` parameter table); CE/mCE on other
data are reported as unnormalised errors.

On-the-fly corruption (:func:`corrupt_images`): every image gets its own generator seeded by
``condition_seed(seed, corruption, severity, key)`` (``key``: its path below the set's root), its
random draws are made alone and the batch is corrupted in one call, so the corrupted image does not
depend on the batch size, the order, or the number of processes. The result is rounded to 8 bits
(``quantize``), as the published sets were saved as 8-bit images.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..io import atomic_write_json, atomic_write_text
from .conditions import condition_seed

__all__ = [
    "ALEXNET_ERRORS",
    "ALEXNET_CLEAN_ERROR",
    "ECE_BINS",
    "BenchModel",
    "cell_counts",
    "cell_metrics",
    "merge_counts",
    "corrupt_images",
    "mce",
    "relative_mce",
    "summarise_model",
    "run_benchmark",
    "results_rows",
    "write_results_csv",
    "write_benchmark_report",
    "CELLS_FILE",
]

#: ImageNet-C top-1 error of AlexNet per corruption, severities 1..5 (Hendrycks & Dietterich, 2019;
#: hendrycks/robustness ImageNet-C/test.py); the means over severities are the CE denominators
ALEXNET_ERRORS: dict[str, tuple[float, float, float, float, float]] = {
    "gaussian_noise": (0.69528, 0.82542, 0.93554, 0.98138, 0.99452),
    "shot_noise": (0.71224, 0.85108, 0.93574, 0.98182, 0.99146),
    "impulse_noise": (0.78374, 0.89808, 0.94870, 0.98720, 0.99548),
    "defocus_blur": (0.65624, 0.73202, 0.85036, 0.91364, 0.94714),
    "glass_blur": (0.64308, 0.75054, 0.88806, 0.91622, 0.93344),
    "motion_blur": (0.58430, 0.70048, 0.82108, 0.89750, 0.92638),
    "zoom_blur": (0.70008, 0.76992, 0.80784, 0.84198, 0.87198),
    "snow": (0.71726, 0.88392, 0.86468, 0.91870, 0.94952),
    "frost": (0.61390, 0.79734, 0.88790, 0.89942, 0.93430),
    "fog": (0.67474, 0.76050, 0.84378, 0.87260, 0.94500),
    "brightness": (0.45140, 0.48502, 0.54048, 0.62166, 0.72440),
    "contrast": (0.64548, 0.76150, 0.88874, 0.97760, 0.99270),
    "elastic_transform": (0.52596, 0.70116, 0.55686, 0.64076, 0.80554),
    "pixelate": (0.52218, 0.54620, 0.73728, 0.87092, 0.91262),
    "jpeg_compression": (0.51002, 0.54718, 0.57294, 0.65458, 0.74778),
}
#: AlexNet's clean ImageNet top-1 error (torchvision weights, 56.522 % accuracy)
ALEXNET_CLEAN_ERROR = 0.43478

#: ECE bins (torchmetrics' default; bin ``i`` holds confidences in ``[i/15, (i+1)/15)``, 1.0 its own bin)
ECE_BINS = 15
#: confidences are summed as integers ``round(conf · 2^24)`` so sums are exact in any order
_CONF_SCALE = 1 << 24
#: layout of a counts vector: n, top1, top5, then per bin count, confidence sum, correct count
_NB = ECE_BINS + 1
_LEN = 3 + 3 * _NB
#: the cells file in a benchmark's output folder (rewritten atomically after every cell)
CELLS_FILE = "cells.json"


# -------------------------------------------------------------------------------------------- counts
def cell_counts(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Integer counts of one batch: int64 ``(3 + 3·16,)`` = images, top-1 hits, top-5 hits, then per
    ECE bin (15 + the bin of confidence 1.0) the count, the confidence sum (fixed point 2^-24) and
    the top-1 hits. ``logits``: ``(N, C)``; ``labels``: ``(N,)`` int."""
    logits = logits.detach().float()
    labels = labels.to(logits.device).long()
    probs = logits.softmax(dim=1)
    conf, pred = probs.max(dim=1)
    hit = pred == labels
    k = min(5, logits.shape[1])
    top5 = (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1)
    bounds = torch.linspace(0, 1, ECE_BINS + 1, dtype=conf.dtype, device=conf.device)
    idx = torch.bucketize(conf, bounds, right=True) - 1
    out = torch.zeros(_LEN, dtype=torch.int64, device=logits.device)
    out[0] = labels.numel()
    out[1] = hit.sum()
    out[2] = top5.sum()
    out[3:3 + _NB].scatter_add_(0, idx, torch.ones_like(idx))
    out[3 + _NB:3 + 2 * _NB].scatter_add_(0, idx, torch.round(conf.double() * _CONF_SCALE).long())
    out[3 + 2 * _NB:].scatter_add_(0, idx, hit.long())
    return out.cpu()


def merge_counts(parts: Iterable[Sequence[int] | torch.Tensor]) -> list[int]:
    """Sum of counts vectors (e.g. the cells of one severity, for the pooled ECE)."""
    total = np.zeros(_LEN, dtype=np.int64)
    for p in parts:
        total += np.asarray(p.tolist() if isinstance(p, torch.Tensor) else p, dtype=np.int64)
    return total.tolist()


def cell_metrics(counts: Sequence[int] | torch.Tensor) -> dict[str, float | int]:
    """``{"n", "accuracy", "top5", "error", "ece"}`` of a counts vector (fractions; NaN when empty)."""
    c = np.asarray(counts.tolist() if isinstance(counts, torch.Tensor) else counts, dtype=np.int64)
    n = int(c[0])
    if n == 0:
        return {"n": 0, "accuracy": math.nan, "top5": math.nan, "error": math.nan, "ece": math.nan}
    cnt, conf, hit = c[3:3 + _NB], c[3 + _NB:3 + 2 * _NB] / _CONF_SCALE, c[3 + 2 * _NB:]
    nz = cnt > 0
    ece = float(np.sum(np.abs(hit[nz] / cnt[nz] - conf[nz] / cnt[nz]) * cnt[nz]) / n)
    acc = float(c[1]) / n
    return {"n": n, "accuracy": acc, "top5": float(c[2]) / n, "error": 1.0 - acc, "ece": ece}


# ------------------------------------------------------------------------------------------- metrics
def _mean_baseline(name: str, value: Any, k: int) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    vals = [float(v) for v in value]
    if len(vals) != k:
        raise ValueError(f"baseline[{name!r}]: {len(vals)} error rates for {k} severities")
    return float(np.mean(vals))


def mce(errors: Mapping[str, Sequence[float]], baseline: Mapping[str, Any] = ALEXNET_ERRORS) -> float:
    """Mean corruption error in percent: ``mean_c 100 · mean_s E_{s,c} / mean_s E^{base}_{s,c}``.

    Args:
        errors: corruption -> the error rates (fractions) of severities 1..5.
        baseline: corruption -> a mean error or the five error rates (default AlexNet's).
    Raises:
        ValueError: a corruption without a baseline, an empty mapping, or lengths that differ.
    """
    if not errors:
        raise ValueError("errors: no corruptions")
    ces = []
    for name, errs in errors.items():
        if name not in baseline:
            raise ValueError(f"errors[{name!r}]: no baseline error for this corruption; baseline has {sorted(baseline)}")
        e = [float(v) for v in errs]
        if not e:
            raise ValueError(f"errors[{name!r}]: no error rates")
        ces.append(100.0 * float(np.mean(e)) / _mean_baseline(name, baseline[name], len(e)))
    return float(np.mean(ces))


def relative_mce(errors: Mapping[str, Sequence[float]], clean_error: float,
                 baseline: Mapping[str, Any] = ALEXNET_ERRORS, baseline_clean: float = ALEXNET_CLEAN_ERROR) -> float:
    """Relative mCE in percent: ``mean_c 100 · Σ_s (E_{s,c} − E_clean) / Σ_s (E^{base}_{s,c} − E^{base}_clean)``."""
    if not errors:
        raise ValueError("errors: no corruptions")
    out = []
    for name, errs in errors.items():
        if name not in baseline:
            raise ValueError(f"errors[{name!r}]: no baseline error for this corruption")
        e = [float(v) for v in errs]
        ref = _mean_baseline(name, baseline[name], len(e))
        out.append(100.0 * (float(np.mean(e)) - clean_error) / (ref - baseline_clean))
    return float(np.mean(out))


def summarise_model(cells: Mapping[tuple[str, int], Sequence[int]], corruptions: Sequence[str],
                    severities: Sequence[int], *, baseline: Mapping[str, Any] | None = None,
                    normalised: bool = True) -> dict[str, Any]:
    """Per-model summary from its cells ``{(corruption, severity): counts}`` (``("clean", 0)`` optional).

    ``normalised``: report AlexNet CE/mCE (ImageNet-C protocol: the 15 common corruptions at all
    five severities); ``baseline``: another model's ``{corruption: [errors per severity]}`` for the
    baseline-normalised mCE."""
    per: dict[str, dict[str, Any]] = {}
    for c in corruptions:
        per[c] = {str(s): cell_metrics(cells[(c, s)]) for s in severities if (c, s) in cells}
    clean = cell_metrics(cells[("clean", 0)]) if ("clean", 0) in cells else None
    errors = {c: [per[c][str(s)]["error"] for s in severities] for c in corruptions if len(per[c]) == len(severities)}
    accs = [v["accuracy"] for c in per for v in per[c].values()]
    out: dict[str, Any] = {
        "clean": clean,
        "corruptions": per,
        "mean_corruption_accuracy": float(np.mean(accs)) if accs else math.nan,
        "mean_corruption_top5": float(np.mean([v["top5"] for c in per for v in per[c].values()])) if accs else math.nan,
        "ece_per_severity": {str(s): cell_metrics(merge_counts(cells[(c, s)] for c in corruptions if (c, s) in cells))["ece"]
                             for s in severities},
        "mean_corruption_error": float(np.mean([e for v in errors.values() for e in v])) if errors else math.nan,
    }
    alex = {c: e for c, e in errors.items() if c in ALEXNET_ERRORS}
    full = sorted(int(s) for s in severities) == [1, 2, 3, 4, 5]
    if normalised and alex and full:
        out["ce"] = {c: mce({c: e}) for c, e in alex.items()}
        out["mce"] = mce(alex)
        out["mce_corruptions"] = len(alex)
        if clean is not None:
            out["relative_ce"] = {c: relative_mce({c: e}, clean["error"]) for c, e in alex.items()}
            out["relative_mce"] = relative_mce(alex, clean["error"])
    if baseline:
        common = {c: e for c, e in errors.items() if c in baseline}
        if common:
            out["mce_vs_baseline"] = mce(common, baseline)
    return out


# ------------------------------------------------------------------------------------ on-the-fly data
def _cat_params(parts: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, first in parts[0].items():
        if isinstance(first, torch.Tensor) and first.ndim > 0:
            out[key] = torch.cat([p[key] for p in parts], dim=0)
        elif isinstance(first, dict):
            out[key] = _cat_params([p[key] for p in parts])
        else:
            out[key] = first
    return out


def corrupt_images(x: torch.Tensor, keys: Sequence[str], corruption: str, severity: int, *, seed: int = 0,
                   table: str = "imagenet", quantize: bool = True) -> torch.Tensor:
    """Corrupt a batch with per-image seeds (independent of the batch it is in).

    Args:
        x: float ``(N, 3, H, W)`` in [0, 1] on any device.
        keys: ``N`` stable image names; image ``i`` draws from ``condition_seed(seed, corruption,
            severity, keys[i])`` (a CPU generator, so CPU and CUDA runs draw the same values).
        quantize: round the result to 8 bits (``round(255 y) / 255``).
    Returns:
        ``(N, 3, H, W)`` float in [0, 1], on ``x``'s device.
    """
    from ..augment.corruptions.natural import CORRUPTIONS

    if corruption not in CORRUPTIONS:
        raise ValueError(f"corruption: unknown {corruption!r}; choose one of {list(CORRUPTIONS)}")
    if len(keys) != x.shape[0]:
        raise ValueError(f"keys: {len(keys)} names for {x.shape[0]} images")
    core = CORRUPTIONS[corruption](severity=int(severity), table=table)
    x = core.check(x)
    parts = []
    for i, key in enumerate(keys):
        gen = torch.Generator().manual_seed(condition_seed(seed, corruption, int(severity), key))
        parts.append(core._sample_checked(x[i:i + 1], gen))
    y = core._apply_checked(x, _cat_params(parts))
    if quantize:
        y = torch.round(y * 255.0) / 255.0
    return y


# ------------------------------------------------------------------------------------------- models
@dataclass
class BenchModel:
    """A model under test: ``module`` maps float ``(N, 3, H, W)`` images in [0, 1] to logits ``(N, C)``
    (its normalisation inside); ``input_size``: resize the benchmark's crops to this side first
    (bilinear, antialiased; None: as they are); ``info``: provenance for the report."""

    name: str
    module: torch.nn.Module
    input_size: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_size is not None and tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False,
                              antialias=True).clamp_(0, 1)
        return self.module(x)


# -------------------------------------------------------------------------------------------- engine
def _dist() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _shard(n: int, batch_size: int, rank: int, world: int) -> list[int]:
    """The indices of rank ``rank``: the batches ``rank, rank + world, ...`` of the one-process batch
    sequence, so every batch holds the same images as in one process (bit-identical logits)."""
    return [i for b in range(rank, -(-n // batch_size), world) for i in range(b * batch_size, min(n, (b + 1) * batch_size))]


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"image": torch.stack([i["image"] for i in items]), "label": torch.stack([i["label"] for i in items]),
            "key": [i["key"] for i in items]}


def _cell_key(model: str, corruption: str, severity: int) -> str:
    return f"{model}|{corruption}|{severity}"


def load_cells(path: Path, settings: Mapping[str, Any]) -> dict[str, list[int]]:
    """The finished cells of an earlier run with the same ``settings`` (``{}`` when there is none);
    a ``ValueError`` naming the file when the settings differ."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read the cells file of an earlier run ({err}); remove it to start over") from None
    old = data.get("settings", {})
    if old != json.loads(json.dumps(dict(settings))):
        diff = sorted(k for k in set(old) | set(settings) if old.get(k) != json.loads(json.dumps(settings.get(k))))
        raise ValueError(f"{path}: written by a benchmark with other settings ({', '.join(diff)}); use another --out "
                         "or remove the file to start over")
    return {k: list(v) for k, v in data.get("cells", {}).items()}


def run_benchmark(
    models: Sequence[BenchModel],
    source: Any,
    *,
    corruptions: Sequence[str],
    severities: Sequence[int],
    out_dir: str | os.PathLike[str],
    settings: Mapping[str, Any],
    batch_size: int = 64,
    seed: int = 0,
    device: torch.device | str = "cpu",
    table: str = "imagenet",
    workers: int = 0,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict[str, list[int]]:
    """Evaluate every ``(model, corruption, severity)`` cell (and the clean cells) and return
    ``{"model|corruption|severity": counts}``.

    ``source``: a :class:`~medrobust.data.imagenet.BenchmarkSource` (on-the-fly sources are
    corrupted here with :func:`corrupt_images`). Each finished cell is written at once to
    ``out_dir/cells.json`` (atomically, with ``settings``), and a run that finds the file continues
    after its last finished cell. Under ``torch.distributed`` rank ``r`` evaluates the batches
    ``r, r + world_size, ...`` of the one-process batch order (the same images in every batch, so the
    same logits) and the counts are summed over the ranks (integers: exact), so the result equals one
    process with the same batch size; rank 0 writes. ``stop_after``: stop after this many new cells (tests of resuming).
    """
    from torch.utils.data import DataLoader, Subset

    device = torch.device(device)
    rank, world = _dist()
    out_dir = Path(out_dir)
    cells_path = out_dir / CELLS_FILE
    done = load_cells(cells_path, settings)
    grid: list[tuple[str, int]] = ([("clean", 0)] if source.clean is not None else []) + [
        (c, int(s)) for c in corruptions for s in severities]
    todo = [(c, s, [m for m in models if _cell_key(m.name, c, s) not in done]) for c, s in grid]
    todo = [t for t in todo if t[2]]
    total = sum(len(_shard(len(source.dataset(c, s)), batch_size, rank, world)) for c, s, _ in todo)
    bar = None
    if progress and rank == 0 and total:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="img", unit_scale=True, desc="benchmark", dynamic_ncols=True)
    for m in models:
        m.module.to(device).eval()
    new = 0
    try:
        for c, s, pending in todo:
            ds = source.dataset(c, s)
            shard = Subset(ds, _shard(len(ds), batch_size, rank, world))
            loader = DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=_collate,
                                pin_memory=device.type == "cuda")
            counts = {m.name: torch.zeros(_LEN, dtype=torch.int64) for m in pending}
            if bar is not None:
                bar.set_postfix_str(f"{c} {s}" if c != "clean" else "clean")
            for batch in loader:
                x = batch["image"].to(device, non_blocking=True).float().div_(255.0)
                y = batch["label"]
                if source.on_the_fly and c != "clean":
                    x = corrupt_images(x, batch["key"], c, s, seed=seed, table=table)
                with torch.inference_mode():
                    for m in pending:
                        counts[m.name] += cell_counts(m(x), y)
                if bar is not None:
                    bar.update(len(y))
            if world > 1:
                import torch.distributed as dist

                stacked = torch.stack([counts[m.name] for m in pending])
                stacked = stacked.to(device) if dist.get_backend() == "nccl" else stacked
                dist.all_reduce(stacked)
                for i, m in enumerate(pending):
                    counts[m.name] = stacked[i].cpu()
            for m in pending:
                done[_cell_key(m.name, c, s)] = counts[m.name].tolist()
            if rank == 0:
                out_dir.mkdir(parents=True, exist_ok=True)
                atomic_write_json(cells_path, {"settings": dict(settings), "cells": done})
            new += 1
            if stop_after is not None and new >= stop_after:
                break
    finally:
        if bar is not None:
            bar.close()
    return done


def model_cells(done: Mapping[str, Sequence[int]], model: str) -> dict[tuple[str, int], list[int]]:
    """``{(corruption, severity): counts}`` of one model from :func:`run_benchmark`'s result."""
    out: dict[tuple[str, int], list[int]] = {}
    for key, v in done.items():
        m, c, s = key.rsplit("|", 2)
        if m == model:
            out[(c, int(s))] = list(v)
    return out


def summarise(done: Mapping[str, Sequence[int]], models: Sequence[str], corruptions: Sequence[str],
              severities: Sequence[int], *, baseline_model: str | None = None, normalised: bool = True) -> dict[str, Any]:
    """``{model: summary}`` (see :func:`summarise_model`), with relative robustness against
    ``baseline_model`` (mean corruption accuracy − the baseline's) when it is given."""
    if baseline_model is not None and baseline_model not in models:
        raise ValueError(f"--baseline {baseline_model}: not one of the models {list(models)}")
    base_err = None
    if baseline_model is not None:
        b = summarise_model(model_cells(done, baseline_model), corruptions, severities, normalised=False)
        base_err = {c: [b["corruptions"][c][str(s)]["error"] for s in severities] for c in corruptions
                    if len(b["corruptions"][c]) == len(severities)}
    out = {}
    for m in models:
        out[m] = summarise_model(model_cells(done, m), corruptions, severities, baseline=base_err, normalised=normalised)
    if baseline_model is not None:
        ref = out[baseline_model]["mean_corruption_accuracy"]
        for m in models:
            out[m]["relative_robustness"] = out[m]["mean_corruption_accuracy"] - ref
    return out


__all__ += ["model_cells", "summarise", "load_cells"]


# ------------------------------------------------------------------------------------------- outputs
def results_rows(summary: Mapping[str, Mapping[str, Any]], severities: Sequence[int]) -> list[dict[str, Any]]:
    """One row per model × corruption (and a ``clean`` row): accuracy, top-5 and ECE per severity,
    their means, CE and relative CE (percent) where defined. Accuracies/ECE are fractions."""
    rows = []
    for m, s in summary.items():
        if s.get("clean"):
            cl = s["clean"]
            rows.append({"model": m, "corruption": "clean", "acc_mean": cl["accuracy"], "top5_mean": cl["top5"],
                         "ece_mean": cl["ece"], "n": cl["n"]})
        for c, by in s["corruptions"].items():
            row: dict[str, Any] = {"model": m, "corruption": c}
            for sev in severities:
                v = by.get(str(sev))
                row[f"acc_s{sev}"] = v["accuracy"] if v else None
            for sev in severities:
                v = by.get(str(sev))
                row[f"top5_s{sev}"] = v["top5"] if v else None
            for sev in severities:
                v = by.get(str(sev))
                row[f"ece_s{sev}"] = v["ece"] if v else None
            vals = list(by.values())
            row["acc_mean"] = float(np.mean([v["accuracy"] for v in vals])) if vals else None
            row["top5_mean"] = float(np.mean([v["top5"] for v in vals])) if vals else None
            row["ece_mean"] = float(np.mean([v["ece"] for v in vals])) if vals else None
            row["n"] = vals[0]["n"] if vals else None
            row["ce"] = (s.get("ce") or {}).get(c)
            row["relative_ce"] = (s.get("relative_ce") or {}).get(c)
            rows.append(row)
    return rows


def write_results_csv(path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]]) -> Path:
    """``results.csv`` (atomic): the union of the rows' columns, empty where a row has none."""
    cols: list[str] = []
    for r in sorted(rows, key=lambda r: r.get("corruption") == "clean"):  # corruption rows set the column order
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None or (isinstance(r.get(k), float) and math.isnan(r[k]))
                        else (f"{r[k]:.6f}" if isinstance(r.get(k), float) else r[k])) for k in cols})
    atomic_write_text(path, buf.getvalue())
    return Path(path)


def _figures(summary: Mapping[str, Mapping[str, Any]], corruptions: Sequence[str], severities: Sequence[int]) -> dict[str, Any]:
    from .report import new_figure

    figs: dict[str, Any] = {}
    names = list(summary)
    if corruptions:
        cols = min(5, len(corruptions))
        rows = math.ceil(len(corruptions) / cols)
        fig = new_figure((2.6 * cols, 2.2 * rows))
        for k, c in enumerate(corruptions):
            ax = fig.add_subplot(rows, cols, k + 1)
            for m in names:
                by = summary[m]["corruptions"].get(c, {})
                xs = [s for s in severities if str(s) in by]
                ax.plot(xs, [100 * by[str(s)]["accuracy"] for s in xs], marker="o", ms=3, label=m)
            ax.set_title(c, fontsize=8)
            ax.set_ylim(0, 100)
            ax.set_xticks(list(severities))
            ax.tick_params(labelsize=7)
        fig.subplots_adjust(hspace=0.5, wspace=0.3)
        fig.axes[0].legend(fontsize=6)
        fig.supxlabel("severity", fontsize=8)
        fig.supylabel("top-1 accuracy (%)", fontsize=8)
        figs["accuracy_vs_severity"] = fig
    if any("mce" in s for s in summary.values()):
        fig = new_figure((1.2 + 0.7 * len(names), 3))
        ax = fig.add_subplot(1, 1, 1)
        vals = [summary[m].get("mce", math.nan) for m in names]
        ax.bar(range(len(names)), vals, color="tab:red")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("mCE (%)")
        ax.axhline(100, color="k", lw=0.6, ls="--")
        figs["mce"] = fig
    fig = new_figure((1.2 + 0.9 * len(names), 3))
    ax = fig.add_subplot(1, 1, 1)
    xs = np.arange(len(names))
    clean = [100 * (summary[m]["clean"] or {}).get("accuracy", math.nan) for m in names]
    corr = [100 * summary[m]["mean_corruption_accuracy"] for m in names]
    ax.bar(xs - 0.2, clean, 0.4, label="clean")
    ax.bar(xs + 0.2, corr, 0.4, label="corrupted (mean)")
    ax.set_xticks(xs, names, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7)
    figs["clean_vs_corrupted"] = fig
    return figs


def _pct(v: Any, d: int = 1) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.{d}f}"


def _num(v: Any, d: int = 1) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{d}f}"


def summary_table(summary: Mapping[str, Mapping[str, Any]], baseline_model: str | None = None) -> str:
    """The per-model comparison (markdown): clean and mean corruption accuracy, mCE, relative mCE,
    ECE, relative robustness."""
    from .report import format_table

    rows = []
    for m, s in summary.items():
        last = max(s["ece_per_severity"], key=int, default="5")
        rows.append({"model": m, "clean acc": _pct((s.get("clean") or {}).get("accuracy")),
                     "mean corr. acc": _pct(s["mean_corruption_accuracy"]),
                     "mean corr. top-5": _pct(s["mean_corruption_top5"]),
                     "mCE": _num(s.get("mce")), "rel. mCE": _num(s.get("relative_mce")),
                     "clean ECE": _pct((s.get("clean") or {}).get("ece")),
                     f"ECE s{last}": _pct(s["ece_per_severity"].get(last)),
                     **({f"mCE vs {baseline_model}": _num(s.get("mce_vs_baseline")),
                         "rel. robustness": _pct(s.get("relative_robustness"))} if baseline_model else {})})
    return format_table(rows, list(rows[0]) if rows else ["model"])


__all__ += ["summary_table"]


def write_benchmark_report(out_dir: str | os.PathLike[str], summary: Mapping[str, Mapping[str, Any]], *,
                           corruptions: Sequence[str], severities: Sequence[int], meta: Mapping[str, Any],
                           baseline_model: str | None = None) -> dict[str, Path]:
    """Write ``results.csv``, ``report.json``, ``report.md`` and ``figures/`` (the one writer)."""
    from .report import Section, format_table, write_report

    out_dir = Path(out_dir)
    csv_path = write_results_csv(out_dir / "results.csv", results_rows(summary, severities))
    per_sev_rows = [{"model": m, **{f"s{s}": _pct(np.nanmean([summary[m]["corruptions"][c][str(s)]["accuracy"]
                                                              for c in corruptions if str(s) in summary[m]["corruptions"][c]]
                                                             or [math.nan])) for s in severities},
                     **{f"ECE s{s}": _pct(summary[m]["ece_per_severity"].get(str(s))) for s in severities}}
                    for m in summary]
    corr_rows = [{"model": m, "corruption": c, **{f"s{s}": _pct(by[str(s)]["accuracy"]) if str(s) in by else "–"
                                                   for s in severities},
                  "CE": _num((summary[m].get("ce") or {}).get(c))}
                 for m in summary for c, by in summary[m]["corruptions"].items()]
    normalised = any("mce" in s for s in summary.values())
    note = ("CE/mCE (percent) are normalised by AlexNet's published ImageNet-C errors (Hendrycks & Dietterich, ICLR "
            "2019; hendrycks/robustness); relative mCE uses AlexNet's clean error 43.478 %." if normalised else
            "No AlexNet normalisation: it is published for ImageNet-C (the 15 common corruptions at 224 pixels, all "
            "five severities) only; the mean corruption error is unnormalised.")
    sections = [
        Section(None, f"{len(summary)} model(s), {len(corruptions)} corruption(s) x severities "
                      f"{', '.join(map(str, severities))} on {meta.get('data', {}).get('kind')} data "
                      f"`{meta.get('data', {}).get('root')}` ({meta.get('images', '?')} images per cell). "
                      "Accuracies and ECE in percent; every cell counts its own images from zero; ECE over all images "
                      "of a cell (15 bins)."),
        Section("Summary", [summary_table(summary, baseline_model), note]),
        Section("Mean accuracy and ECE per severity", format_table(per_sev_rows, list(per_sev_rows[0]))),
        Section("Per corruption", [format_table(corr_rows, list(corr_rows[0])) if corr_rows else "",
                                   "Top-1 accuracy per severity and CE (percent); top-5 and ECE per severity are in "
                                   "`results.csv` (one row per model x corruption)."]),
        Section("Settings", "```json\n" + json.dumps(meta, indent=1, default=str) + "\n```"),
    ]
    results = {"summary": summary, "meta": dict(meta), "corruptions": list(corruptions),
               "severities": list(severities), "baseline_model": baseline_model}
    files = write_report(out_dir, title="Corruption robustness benchmark", sections=sections, results=results,
                         figures=_figures(summary, corruptions, severities), files_key="files")
    files["csv"] = csv_path
    return files

