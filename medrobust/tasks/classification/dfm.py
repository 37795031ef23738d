"""``medrobust dfm``: dominant frequency maps of a trained classifier, saved as ``.npy`` and PNG, with
the shortcut test and ADCS scores in ``report.{md,json}``.

Outputs in ``OUT``: ``loss_maps.npy`` (float32 ``(K, H/patch, W/patch)``), ``dfms.npy`` (bool ``(K, H, W)``,
centred layout — the input of the ``dfmx`` core), ``dfms_top{p}.npy`` for each extra fraction,
``figures/loss_maps.png``, ``figures/dfms.png``, ``report.json``, ``report.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...analysis.dfm import adcs, dominant_frequency_maps, loss_maps, shortcut_test
from ...io import atomic_path
from .report import write_dfm_report

__all__ = ["run_dfm"]


def _stratified(labels: torch.Tensor, cap: int | None, seed: int) -> torch.Tensor:
    """Indices keeping at most ``cap`` images in total, the same share of every class."""
    n = len(labels)
    if cap is None or n <= cap:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed)
    classes = labels.unique()
    per = max(1, cap // len(classes))
    idx = [torch.nonzero(labels == c).flatten()[torch.randperm(int((labels == c).sum()), generator=g)[:per]] for c in classes]
    return torch.cat(idx).sort().values


def run_dfm(
    checkpoint: str | Path,
    out: str | Path,
    *,
    data_root: str | None = None,
    overrides: list[str] | None = None,
    split: str = "test",
    patch: int = 2,
    top: float = 0.1,
    extra_tops: tuple[float, ...] = (0.01, 0.05, 0.2),
    max_images: int | None = 1000,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Compute and save the DFMs of the classifier trained in run directory ``checkpoint``."""
    from ...config import load_config, read_yaml
    from ...train.loop import resolve_device
    from .config import ClassificationConfig
    from .evaluate import _stack, load_run
    from .train import prepare_data

    run_dir = Path(checkpoint)
    if run_dir.is_file():  # a checkpoint file inside a run directory
        run_dir = run_dir.parent
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"--checkpoint {checkpoint}: no config.yaml next to it (a run directory of `medrobust train`)")
    sets = list(overrides or [])
    if data_root is not None:
        sets.append(f"data.root={data_root}")
    task = read_yaml(cfg_path).get("task")
    if task != "classification" and task not in ClassificationConfig.legacy_names:
        raise ValueError(f"--checkpoint {checkpoint}: DFMs need a classification run, this one is task {task!r}")
    cfg = load_config(cfg_path, sets, model=ClassificationConfig)
    if split not in ("test", "val"):
        raise ValueError(f"--split: expected 'test' or 'val', got {split!r}")
    dev = resolve_device(device, what="--device")
    data = prepare_data(cfg)
    dataset = getattr(data, split)
    _, model = load_run(run_dir, device=dev, num_classes=data.num_classes)
    images, labels = _stack(dataset, np.arange(len(dataset)))
    keep = _stratified(labels, max_images, cfg.seed)
    images, labels = images[keep].to(dev), labels[keep]
    h, w = images.shape[-2:]
    if h % patch or w % patch:
        raise ValueError(f"--patch {patch} must divide the image size {h}x{w}")

    maps = loss_maps(model, images, labels, data.num_classes, patch=patch, progress=progress)
    dfms = dominant_frequency_maps(maps, top=top, patch=patch)
    shortcut = shortcut_test(model, images, labels.to(dev), dfms)
    scores = adcs(images, labels.to(dev), data.num_classes)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "loss_maps.npy") as tmp:
        np.save(tmp, maps.numpy().astype(np.float32), allow_pickle=False)
    with atomic_path(out / "dfms.npy") as tmp:
        np.save(tmp, dfms.numpy(), allow_pickle=False)
    for t in extra_tops:
        with atomic_path(out / f"dfms_top{t:g}.npy") as tmp:
            np.save(tmp, dominant_frequency_maps(maps, top=t, patch=patch).numpy(), allow_pickle=False)
    names = [str(c) for c in data.classes]
    rows = []
    for row, adcs_score, name in zip(shortcut["classes"], scores["scores"], names):
        rows.append({"class": name, **{k: v for k, v in row.items() if k != "class"}, "adcs": adcs_score})
    return write_dfm_report(out, run_dir=run_dir, split=split, patch=patch, top=top, rows=rows, n_images=len(labels),
                            loss_maps=maps.numpy(), dfms=dfms.numpy(), class_names=names,
                            files={"dfms": out / "dfms.npy", "loss_maps": out / "loss_maps.npy"})
