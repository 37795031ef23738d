"""``medrobust analyze``: analyses of trained runs.

``medrobust analyze fourier-map --run [NAME=]RUN [--run ...] [--out DIR]``: the Fourier sensitivity
map (Yin et al., 2019; :mod:`medrobust.analysis.fourier_map`) of classification runs (error rate) or 2D
cardiac segmentation runs (``1 -`` mean foreground Dice per slice), one ``.npy`` per run and one heat-map
PNG with the runs side by side on one colour scale.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import check_out_folder, parse_runs

__all__ = ["add_parser", "fourier_map_runs"]


def _classification_inputs(run_dir: str, split: str, max_images: int, dev: Any) -> tuple[Any, ...]:
    """``(cfg, model, images, labels, error_fn)`` of a classification run: up to ``max_images`` images
    of its ``split``, the default top-1 error."""
    import numpy as np

    from ..tasks.classification.evaluate import _stack, load_run
    from ..tasks.classification.train import prepare_data

    cfg, model = load_run(run_dir, device=dev)
    data = prepare_data(cfg)
    dataset = data.test if split == "test" else data.val
    if len(dataset) == 0:
        raise ValueError(f"--run {run_dir}: the {split} split is empty")
    idx = np.sort(np.random.default_rng([cfg.seed, 11]).permutation(len(dataset))[:max_images])
    images, labels = _stack(dataset, idx)
    return cfg, model, images, labels, None


def _segmentation_inputs(run_dir: str, split: str, max_images: int, dev: Any) -> tuple[Any, ...]:
    """``(cfg, model, images, labels, error_fn)`` of a 2D cardiac run: up to ``max_images`` slices of
    its ``split`` volumes with a labelled structure, as its validation sees them (``acdc_transforms``:
    the normalised slice cropped/padded to ``data.spatial_size``), and the Dice error."""
    import numpy as np
    import torch

    from ..analysis.fourier_map import dice_error
    from ..config import load_config
    from ..data.acdc_datasets import ACDCSliceDataset, acdc_transforms
    from ..data.collate import collate_image_label
    from ..tasks.cardiac.config import CardiacConfig
    from ..tasks.cardiac.evaluate import load_run
    from ..tasks.cardiac.train import NUM_CLASSES, prepare_data

    cfg = load_config(Path(run_dir) / "config.yaml", model=CardiacConfig)  # its checks before the weights load
    if cfg.data.mode != "2d":
        raise ValueError(f"--run {run_dir}: a {cfg.data.mode} cardiac run; the Fourier map perturbs 2D slices "
                         "(train with data.mode: 2d)")
    size = tuple(cfg.data.spatial_size)
    if size[0] != size[1]:
        raise ValueError(f"--run {run_dir}: data.spatial_size {list(size)} is not square; the Fourier map needs "
                         "square slices")
    cfg, model = load_run(run_dir, device=dev)
    data = prepare_data(cfg)
    volumes = data.test if split == "test" else data.val
    dataset = ACDCSliceDataset(volumes, transform=acdc_transforms("2d", size, cfg.data.pixel_spacing, train=False))
    items = [dataset[i] for i in range(len(dataset))]
    items = [it for it in items if bool((torch.as_tensor(it["label"]) > 0).any())]
    if not items:
        raise ValueError(f"--run {run_dir}: no {split} slice with a labelled structure")
    idx = np.sort(np.random.default_rng([cfg.seed, 11]).permutation(len(items))[:max_images])
    batch = collate_image_label([items[int(i)] for i in idx])
    images = torch.as_tensor(batch["image"], dtype=torch.float32).clamp(0, 1)
    return cfg, model, images, torch.as_tensor(batch["label"]), dice_error(NUM_CLASSES)


def fourier_map_runs(runs: dict[str, str], out: str | Path | None = None, *, eps: float = 4.0,
                     max_images: int = 500, max_frequency: int | None = None, split: str = "test",
                     device: str = "auto", chunk: int = 16, progress: bool = True,
                     frequency_step: int = 1) -> dict[str, Any]:
    """Fourier maps of classification or 2D cardiac runs ``{name: run_dir}`` (all of one kind) into
    ``out`` (default: the first run's ``analysis/``); returns ``{"results": {name: result}, "files":
    {...}, "bands": {...}, "summary": {...}}``. Classification maps hold the error rate, cardiac maps
    ``1 -`` the mean foreground Dice per slice."""
    import numpy as np

    from ..analysis.fourier_map import (
        band_profile,
        fourier_sensitivity,
        save_fourier_map,
    )
    from ..io import atomic_write_json
    from ..tasks import run_task
    from ..train.loop import resolve_device

    dev = resolve_device(device, what="--device")
    if not runs:
        raise ValueError("--run: give at least one run directory")
    inputs = {"classification": _classification_inputs, "cardiac": _segmentation_inputs}
    kinds = {name: run_task(run_dir).name for name, run_dir in runs.items()}
    for name, kind in kinds.items():
        if kind not in inputs:
            raise ValueError(f"--run {runs[name]}: a {kind} run; the Fourier map needs a classification run (error "
                             "rate of a classifier) or a 2D cardiac run (Dice error of a segmenter)")
    if len(set(kinds.values())) > 1:
        raise ValueError(f"--run: classification and cardiac runs mixed ({kinds}); their maps hold different "
                         "errors, map them separately")
    kind = next(iter(kinds.values()))
    metric = "error rate" if kind == "classification" else "1 - mean foreground Dice"
    results: dict[str, Any] = {}
    for name, run_dir in runs.items():
        cfg, model, images, labels, error_fn = inputs[kind](run_dir, split, max_images, dev)
        results[name] = fourier_sensitivity(model, images, labels, eps=eps, max_frequency=max_frequency, chunk=chunk,
                                            seed=cfg.seed, error_fn=error_fn, frequency_step=frequency_step,
                                            progress=progress)
    out_dir = Path(out) if out is not None else Path(next(iter(runs.values()))) / "analysis"
    files = save_fourier_map(results if len(results) > 1 else next(iter(results.values())), out_dir, metric=metric)
    bands = {name: band_profile(r["error"], frequencies=r["frequencies"]) for name, r in results.items()}
    summary = {name: {"metric": metric, "clean_error": r["clean_error"], "eps": r["eps"],
                      "mean_error": float(np.mean(r["error"])), "band_error_low_to_high": bands[name],
                      "frequencies": r["frequencies"], "images": r["images"],
                      "run": runs[name]} for name, r in results.items()}
    atomic_write_json(out_dir / "fourier_map.json", summary)
    files["json"] = out_dir / "fourier_map.json"
    return {"results": results, "files": files, "bands": bands, "summary": summary}


def cmd_fourier_map(args: argparse.Namespace) -> int:
    runs = parse_runs(args.run)
    if args.out is not None:
        check_out_folder(args.out)
    if not args.eps > 0:
        raise ValueError(f"--eps: expected a positive L2 norm, got {args.eps}")
    if args.max_images < 1:
        raise ValueError(f"--max-images: expected >= 1, got {args.max_images}")
    if args.frequency_step < 1:
        raise ValueError(f"--frequency-step: expected >= 1, got {args.frequency_step}")
    rep = fourier_map_runs(runs, args.out, eps=args.eps, max_images=args.max_images, max_frequency=args.max_frequency,
                           split=args.split, device=args.device, chunk=args.chunk, progress=not args.no_progress,
                           frequency_step=args.frequency_step)
    print(f"{'run':<20} {'clean err':>9} {'mean err':>9}  band error, low -> high frequency")
    for name, s in rep["summary"].items():
        print(f"{name:<20} {s['clean_error']:>9.4f} {s['mean_error']:>9.4f}  "
              + " ".join(f"{v:.4f}" for v in s["band_error_low_to_high"]))
    print(f"heat map: {rep['files']['png']}; arrays: fourier_map*.npy and summary: {rep['files']['json']}")
    return 0


def add_parser(subparsers: Any) -> None:
    """Register ``analyze`` and its subcommands."""
    p = subparsers.add_parser("analyze", help="analyses of trained runs (fourier-map)",
                              description="Analyses of trained runs.")
    sub = p.add_subparsers(dest="analysis", metavar="ANALYSIS", required=True)
    q = sub.add_parser(
        "fourier-map", help="error rate under a Fourier-basis perturbation of each frequency (Yin et al., 2019)",
        description="For every frequency (kx, ky), add a planar wave of L2 norm --eps (random sign per image and "
                    "channel) to the test images and record the error rate (cardiac: 1 - mean foreground Dice per slice); write fourier_map[_NAME].npy, "
                    "fourier_map.png (runs side by side) and fourier_map.json (clean error, radial band means).")
    q.add_argument("--run", action="append", required=True, metavar="[NAME=]RUN",
                   help="classification or 2D cardiac run directory (repeatable: maps side by side; one kind)")
    q.add_argument("--out", metavar="DIR", help="output folder (default: RUN/analysis of the first run)")
    q.add_argument("--eps", type=float, default=4.0, help="L2 norm of the perturbation (default 4, Yin et al. CIFAR)")
    q.add_argument("--max-images", type=int, default=500, help="at most this many test images (default 500)")
    q.add_argument("--max-frequency", type=int, default=None, help="grid half-width K (default: image size // 2)")
    q.add_argument("--frequency-step", type=int, default=1,
                   help="evaluate every S-th frequency on both axes (K a multiple of S; default 1: all)")
    q.add_argument("--split", default="test", choices=["test", "val"], help="which split (default test)")
    q.add_argument("--chunk", type=int, default=16, help="frequencies per forward pass (default 16)")
    q.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda when available)")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_fourier_map)
