"""Evaluate image classifiers on clean, corrupted and shifted-domain test data.

For every condition the input batch is built once and every model is run on it, so all models see
identical corrupted images:

* **clean**: the task's clean test set (CIFAR test batch; the in-domain test split of the source
  domains for domain tasks);
* **corruptions**: each corruption × severity of the natural-image suite
  (:func:`medrobust.augment.corrupt` with ``table="cifar"`` for images of 64 pixels or less, else
  ``"imagenet"``; ``evaluate.table`` overrides), applied to the clean test set on the fly with a
  generator seeded by ``(evaluate.seed, corruption, severity, first index of the batch)`` — so results
  are reproducible for a given ``evaluate.batch_size``; or read from ``corrupted_root``: CIFAR-10-C
  style ``<corruption>.npy`` + ``labels.npy`` (written by ``medrobust corrupt --task cifar`` or the
  public release) or ImageNet-C style ``<corruption>/<severity>/<class>/<image>`` folders;
* **domains**: each held-out target domain, whole (per-domain accuracy).

Metrics (Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations", ICLR 2019): with ``E_{s,c}`` the top-1 error at severity ``s`` of corruption ``c``,

* ``CE_c = Σ_s E_{s,c} / Σ_s E^{AlexNet}_{s,c}`` and ``mCE`` = mean of ``CE_c`` over the corruptions;
* relative ``CE_c = Σ_s (E_{s,c} − E_clean) / Σ_s (E^{AlexNet}_{s,c} − E^{AlexNet}_clean)``, relative mCE
  their mean;
* mean corruption accuracy = mean of the accuracies over every corruption × severity evaluated.

The AlexNet errors (:data:`ALEXNET_ERRORS`, per severity, the 15 ImageNet-C corruptions) are the
values published with ImageNet-C; ``E^{AlexNet}_clean`` = 0.4348 (torchvision's AlexNet, 56.52 %
top-1; the paper's table rounds it to 43.5). They exist only for ImageNet-C: for CIFAR-10-C /
CIFAR-100-C and other small-image sets no AlexNet baseline was published, so the normalised
CE/mCE is not reported there; the report gives the **unnormalised** mean corruption error
``mean_{c,s} E_{s,c}`` (what the AugMix paper tabulates for CIFAR) and the relative mean error
``mean_{c,s} (E_{s,c} − E_clean)`` instead. Sums run over the severities evaluated, so a subset of
severities gives a CE over that subset (flagged in the report).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...evaluate.conditions import condition_seed
from .config import ClassificationConfig
from .imagenet_c import ALEXNET_CLEAN_ERROR, ALEXNET_ERRORS
from .report import write_classification_report

__all__ = [
    "ALEXNET_ERRORS",
    "ALEXNET_CLEAN_ERROR",
    "load_run",
    "evaluate_classification",
    "summarise",
]


# ------------------------------------------------------------------------------------------ loading
def load_run(run_dir: str | Path, *, device: torch.device | str = "cpu", checkpoint: str = "best.pt",
             num_classes: int | None = None):
    """``(cfg, model)`` from ``run_dir/config.yaml`` and ``run_dir/<checkpoint>`` (weights_only).

    ``num_classes``: the class count of the run's dataset (read from the data when None)."""
    from ...config import load_config
    from ...models.factory import load_weights
    from ...train.loop import run_paths
    from .train import build_model, prepare_data

    cfg_path, ckpt_path = run_paths(run_dir, checkpoint)
    cfg = load_config(cfg_path, model=ClassificationConfig)
    if num_classes is None:
        num_classes = prepare_data(cfg).num_classes
    model = build_model(cfg.model_copy(update={"model": cfg.model.model_copy(update={"weights": None})}), num_classes)
    load_weights(model, ckpt_path, what="checkpoint", detail=f" of {cfg_path} with {num_classes} classes")
    return cfg, model.to(device).eval()


def _subset(n: int, cap: int | None, seed: int) -> np.ndarray:
    if cap is None or n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 3]).permutation(n)[:cap])


def _stack(dataset: Any, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 3, H, W)`` float in [0, 1] and labels of ``dataset[indices]`` (no CPU transforms)."""
    from ...data.cifar import to_chw_float

    if hasattr(dataset, "image_uint8"):
        imgs = to_chw_float(np.stack([dataset.image_uint8(int(i)) for i in indices])) if len(indices) else torch.zeros(0, 3, 1, 1)
    elif isinstance(getattr(dataset, "images", None), np.ndarray):
        imgs = to_chw_float(np.ascontiguousarray(dataset.images[indices]))
    else:
        imgs = torch.stack([dataset[int(i)]["image"] for i in indices])
    labels = torch.as_tensor(np.asarray(dataset.labels)[indices], dtype=torch.int64)
    return imgs, labels


def _corruption_list(spec: Any) -> list[str]:
    if not isinstance(spec, str) and not list(spec):
        return []
    from ...augment import corruption_names

    if isinstance(spec, str):
        return list(corruption_names(spec))
    known = list(corruption_names("all"))
    names = [str(s) for s in spec]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"evaluate.corruptions: unknown {unknown}; choose from {known} or all/common/extra")
    return names


# ----------------------------------------------------------------------------------------- metrics
def summarise(entry: Mapping[str, Any], table: str) -> dict[str, Any]:
    """Summary numbers of one model's results (accuracies/errors as fractions, CE as ratios)."""
    clean = float(entry["clean"]["accuracy"])
    e_clean = 1 - clean
    corr = entry.get("corruptions") or {}
    accs = [float(v["accuracy"]) for by in corr.values() for v in by.values()]
    out: dict[str, Any] = {"clean_accuracy": clean, "clean_error": e_clean}
    if accs:
        out["mean_corruption_accuracy"] = float(np.mean(accs))
        out["mean_corruption_error"] = float(np.mean([1 - a for a in accs]))
        out["relative_mean_corruption_error"] = float(np.mean([(1 - a) - e_clean for a in accs]))
        out["corruption_accuracy"] = {c: float(np.mean([v["accuracy"] for v in by.values()])) for c, by in corr.items()}
        out["severity_accuracy"] = {
            str(s): float(np.mean([by[str(s)]["accuracy"] for by in corr.values() if str(s) in by]))
            for s in sorted({int(k) for by in corr.values() for k in by})
        }
        if table == "imagenet":
            ce, rce = {}, {}
            for c, by in corr.items():
                if c not in ALEXNET_ERRORS:
                    continue
                sevs = sorted(int(s) for s in by)
                err = [1 - float(by[str(s)]["accuracy"]) for s in sevs]
                ref = [ALEXNET_ERRORS[c][s - 1] for s in sevs]
                ce[c] = sum(err) / sum(ref)
                rce[c] = sum(e - e_clean for e in err) / sum(r - ALEXNET_CLEAN_ERROR for r in ref)
            if ce:
                out["ce"], out["relative_ce"] = ce, rce
                out["mCE"] = float(np.mean(list(ce.values())))
                out["relative_mCE"] = float(np.mean(list(rce.values())))
                out["mCE_corruptions"] = len(ce)
    doms = entry.get("domains") or {}
    if doms:
        vals = [float(v["accuracy"]) for v in doms.values()]
        out["mean_domain_accuracy"] = float(np.mean(vals))
        out["worst_domain_accuracy"] = float(np.min(vals))
    return out


def _references(dataset: str, *, embedded: bool = False) -> tuple[dict[str, Any], str | None]:
    """Published reference numbers of the dataset's protocol (package data) and the note on how their
    protocol differs from the data evaluated (``embedded``: the embedded default; CIFAR-100 is compared
    with CIFAR-10-C numbers)."""
    from ...evaluate.report.references import protocol_note
    from ..base import read_protocol

    proto = read_protocol(__package__, {"cifar10": "cifar10c", "cifar100": "cifar10c"}.get(dataset, dataset))
    note = protocol_note(proto, embedded=embedded)
    if dataset == "cifar100":
        note = ("Protocol differs: the published numbers are CIFAR-10 / CIFAR-10-C results; this report evaluated "
                "CIFAR-100. The two are not comparable.")
    return proto.get("references", {}) or {}, note


def _check_corrupted_root(root: Path, corruptions: Sequence[str], severities: Sequence[int]) -> None:
    """Every corruption × severity the evaluation reads exists under ``root``: ``<c>.npy`` with
    ``labels.npy`` (CIFAR-10-C layout: all five severities in one file) or ``<c>/<severity>/`` folders
    (ImageNet-C layout); one line naming the missing paths."""
    from ...evaluate.checks import check_dir, require_paths

    check_dir(root, what="--corrupted-root", expected="CIFAR-10-C style <corruption>.npy + labels.npy or ImageNet-C "
                                                      "style <corruption>/<severity>/<class>/ folders")
    paths: list[Path] = []
    for c in corruptions:
        if (root / f"{c}.npy").is_file():
            paths.append(root / "labels.npy")
        else:
            paths += [root / c / str(int(s)) for s in severities]
    require_paths(paths, what=f"--corrupted-root {root}", kind="any",
                  expected=f"for each of the corruptions {list(corruptions)}: <corruption>.npy + labels.npy (CIFAR-10-C "
                           f"layout) or <corruption>/<severity>/<class>/ for the severities {list(severities)} "
                           "(ImageNet-C layout)")


# -------------------------------------------------------------------------------------- evaluation
def evaluate_classification(
    runs: Mapping[str, str | Path],
    *,
    out_dir: str | Path,
    overrides: Sequence[str] | None = None,
    corrupted_root: str | Path | None = None,
    device: str = "auto",
    progress: bool = True,
    tta: Mapping[str, str | Path] | None = None,
) -> dict[str, Any]:
    """Evaluate trained runs (``{model_name: run_dir}``) and write ``out_dir/report.{md,json}`` + figures.

    Test data and evaluation settings come from the first run's config (``overrides`` apply
    ``--set evaluate.*`` / ``data.*`` keys on top). Returns the results dict: ``task``, ``run``,
    ``protocol`` (what was evaluated), ``models`` (per model: ``clean``, ``corruptions``
    ``{name: {"1": {"accuracy", "n"}, ...}}``, ``domains``, ``summary`` — see :func:`summarise`),
    ``references`` and ``files``. ``tta`` (``{name: DynTTA run}``, ``medrobust evaluate --tta``):
    every model is also evaluated behind each enhancer as ``<model>+<name>``, and ``results["tta"]``
    holds the enhancers' mean blend weights (:mod:`medrobust.tasks.tta.evaluate`).
    """
    from tqdm.auto import tqdm

    from ...config import apply_overrides, load_config, validate
    from .train import prepare_data

    from ...evaluate.checks import check_dir, check_out_dir, check_runs
    from ...evaluate.provenance import corruption_source, run_provenance

    if not runs:
        raise ValueError("evaluate: no runs given")
    from ...train.loop import resolve_device

    check_out_dir(out_dir)
    check_runs(runs)
    from ..tta.evaluate import attach_enhancers, enhancer_summary, refuse_tta_runs

    refuse_tta_runs(runs)
    dev = resolve_device(device, what="--device")
    first = Path(next(iter(runs.values())))
    cfg0 = load_config(first / "config.yaml", model=ClassificationConfig)
    if overrides:
        cfg0 = validate(apply_overrides(cfg0.model_dump(mode="json"), list(overrides)), source="--set", model=ClassificationConfig)
    ev = cfg0.evaluate
    check_dir(cfg0.data.root, what="data.root", expected=f"the {cfg0.data.dataset} dataset folder")
    if corrupted_root is not None and _corruption_list(ev.corruptions):
        _check_corrupted_root(Path(corrupted_root), _corruption_list(ev.corruptions), list(ev.severities))
    data = prepare_data(cfg0)
    loaded = {name: load_run(path, device=dev, num_classes=data.num_classes) for name, path in runs.items()}
    enhanced, base_of, tta_info = attach_enhancers(loaded, tta, dev)  # adds <model>+<tta> entries (--tta)
    datasets = {c.data.dataset for c, _ in loaded.values()}
    if len(datasets) > 1:
        raise ValueError(f"--run: runs on different datasets {sorted(datasets)} cannot be compared in one report")
    table = ev.table if ev.table != "auto" else ("cifar" if data.image_size <= 64 else "imagenet")
    corruptions = _corruption_list(ev.corruptions)
    sevs = list(ev.severities)
    bs = ev.batch_size

    # every condition is a source of (images, labels) batches, read lazily (PACS-size sets do not fit
    # in memory as floats); the clean set is kept in memory when small, since every on-the-fly
    # corruption starts from it
    Fetch = Any
    test_idx = _subset(len(data.test), ev.max_images, ev.seed)
    h = w = data.image_size
    if len(test_idx) * 3 * h * w * 4 <= (512 << 20):
        clean_x, clean_y = _stack(data.test, test_idx)

        def fetch_clean(a: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
            return clean_x[a:b], clean_y[a:b]
    else:
        def fetch_clean(a: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
            return _stack(data.test, test_idx[a:b])

    def from_dataset(ds: Any) -> tuple[int, Fetch]:
        idx = _subset(len(ds), ev.max_images, ev.seed)
        return len(idx), lambda a, b: _stack(ds, idx[a:b])

    source = "on the fly"
    cond: list[tuple[str, str | None, int | None]] = [("clean", None, None)]
    cond += [("corrupt", c, s) for c in corruptions for s in sevs]
    if ev.domains:
        cond += [("domain", d, None) for d in data.domains]
    files_kind: dict[str, str] = {}
    if corrupted_root is not None and corruptions:
        root = Path(corrupted_root)
        files_kind = {c: "npy" if (root / f"{c}.npy").is_file() else "folders" for c in corruptions}
        source = f"files under {root}"

    def open_condition(kind: str, name: str | None, sev: int | None) -> tuple[int, Fetch, bool]:
        """(number of images, fetch(start, end) -> (images, labels), corrupt_on_the_fly)."""
        if kind == "clean":
            return len(test_idx), fetch_clean, False
        if kind == "domain":
            return (*from_dataset(data.domains[str(name)]), False)
        if corrupted_root is None:
            return len(test_idx), fetch_clean, True
        from ...data.cifar import read_cifar_c, to_chw_float

        root = Path(corrupted_root)
        if files_kind[str(name)] == "npy":
            imgs, labels = read_cifar_c(root, str(name), sev)
            if imgs.shape[1:3] != (h, w):
                raise ValueError(f"{root / f'{name}.npy'}: images are {imgs.shape[1:3]}, the models expect {h}x{w}")
            idx = _subset(len(labels), ev.max_images, ev.seed)
            return len(idx), lambda a, b: (to_chw_float(np.ascontiguousarray(imgs[idx[a:b]])),
                                           torch.as_tensor(labels[idx[a:b]])), False
        from ...data.folders import FolderDataset, scan_corruption_folders

        recs = scan_corruption_folders(root, data.classes, [str(name)], [int(sev or 1)])[(str(name), int(sev or 1))]
        return (*from_dataset(FolderDataset(recs, h)), False)

    if corruptions and corrupted_root is None:
        from ...augment import corrupt

    correct = {(m, k): 0 for m in loaded for k in cond}
    counts = {k: 0 for k in cond}
    total = sum(len(test_idx) if k[0] != "domain" else min(len(data.domains[str(k[1])]), ev.max_images or 10**12)
                for k in cond)
    bar = tqdm(total=total, desc="evaluate", unit="img", disable=not progress, dynamic_ncols=True, leave=False)
    with torch.no_grad():
        for key in cond:
            kind, name, sev = key
            n_images, fetch, on_the_fly = open_condition(kind, name, sev)
            for start in range(0, n_images, bs):
                xb, yb = fetch(start, start + bs)
                if yb.numel() and (int(yb.min()) < 0 or int(yb.max()) >= data.num_classes):
                    raise ValueError(f"{kind} {name or ''} s{sev or ''}: labels outside 0..{data.num_classes - 1}")
                x, y = xb.to(dev), yb.to(dev)
                if on_the_fly:
                    gen = torch.Generator().manual_seed(condition_seed(ev.seed, name, sev, start))
                    x = corrupt(x, str(name), int(sev or 1), table=table, generator=gen).clamp(0, 1)
                for enh in enhanced.values():
                    enh.condition = kind  # the blend weights are recorded per condition kind
                for mname, (_, model) in loaded.items():
                    correct[(mname, key)] += int((model(x).argmax(1) == y).sum())
                counts[key] += len(y)
                bar.update(len(y))
    bar.close()

    def acc(m: str, key: tuple[str, str | None, int | None]) -> dict[str, Any]:
        n = counts[key]
        return {"accuracy": correct[(m, key)] / n if n else float("nan"), "n": n}

    results: dict[str, Any] = {"task": "classification", "dataset": cfg0.data.dataset,
                               "runs": {m: str(p) for m, p in runs.items()}, "models": {}}
    normalised = table == "imagenet" and any(c in ALEXNET_ERRORS for c in corruptions)
    note = None
    if corruptions and not normalised:
        note = ("No AlexNet reference errors exist for this image scale (they were published for ImageNet-C only), "
                "so CE/mCE are reported unnormalised: mean corruption error = mean over corruptions and severities "
                "of the top-1 error; relative = minus the clean error.")
    elif normalised and (sorted(sevs) != [1, 2, 3, 4, 5] or not set(ALEXNET_ERRORS) <= set(corruptions)):
        note = "CE/mCE over a subset of the 15 ImageNet-C corruptions or of the severities: not comparable to published mCE."
    results["protocol"] = {
        "clean_test": "CIFAR test set" if cfg0.data.dataset in ("cifar10", "cifar100") else "in-domain test split of the source domains",
        "n_clean": int(len(test_idx)), "corruptions": corruptions, "severities": sevs, "table": table,
        "corruption_source": source, "seed": ev.seed, "batch_size": bs,
        "normalisation": "alexnet" if normalised else "none",
        "domains": list(data.domains) if ev.domains else [], "note": note,
        "corrupted_set": corruption_source(corrupted_root if corruptions else None, seed=ev.seed,
                                           seeding=f"condition_seed(evaluate.seed, corruption, severity, first index "
                                                   f"of the batch of {bs})"),
        "test_root": str(getattr(data, "root", cfg0.data.root)) if getattr(data, "root", cfg0.data.root) else None,
        "embedded_default": cfg0.data.root is None,
    }
    for m in loaded:
        entry: dict[str, Any] = {"clean": acc(m, ("clean", None, None))}
        entry["corruptions"] = {c: {str(s): acc(m, ("corrupt", c, s)) for s in sevs} for c in corruptions}
        if ev.domains and data.domains:
            entry["domains"] = {d: acc(m, ("domain", d, None)) for d in data.domains}
        entry["summary"] = summarise(entry, table if normalised else "none")
        entry["run_dir"] = str(runs[base_of.get(m, m)])
        entry["provenance"] = run_provenance(runs[base_of.get(m, m)], checkpoint="best.pt",
                                             configured_steps=loaded[m][0].train.steps)
        if m in base_of:
            entry["tta"] = {"model": base_of[m], "enhancer": tta_info[m[len(base_of[m]) + 1:]]["run_dir"]}
        results["models"][m] = entry
    if enhanced:
        results["tta"] = enhancer_summary(enhanced, base_of, tta_info)
    refs, ref_note = _references(cfg0.data.dataset, embedded=cfg0.data.root is None)
    if refs:
        results["references"] = refs
        if ref_note:
            results["references_note"] = ref_note
    titles = {"cifar10": "CIFAR-10 / CIFAR-10-C", "cifar100": "CIFAR-100 / CIFAR-100-C",
              "digits": "Digits (single-source domain generalisation)", "pacs": "PACS (leave-one-domain-out)"}
    write_classification_report(out_dir, results, title=f"Classification robustness: {titles.get(cfg0.data.dataset, cfg0.data.dataset)}")
    return results
