"""``medrobust analyze``: analyses of trained runs.

``medrobust analyze fourier-map --run [NAME=]RUN [--run ...] [--out DIR]``: the Fourier sensitivity
map (Yin et al., 2019; :mod:`medrobust.analysis.fourier_map`) of classification runs, one ``.npy`` per
run and one heat-map PNG with the runs side by side on one colour scale.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import check_out_folder, parse_runs

__all__ = ["add_parser", "fourier_map_runs"]


def fourier_map_runs(runs: dict[str, str], out: str | Path | None = None, *, eps: float = 4.0,
                     max_images: int = 500, max_frequency: int | None = None, split: str = "test",
                     device: str = "auto", chunk: int = 16, progress: bool = True) -> dict[str, Any]:
    """Fourier maps of classification runs ``{name: run_dir}`` into ``out`` (default: the first
    run's ``analysis/``); returns ``{"results": {name: result}, "files": {...}, "bands": {...}}``."""
    import numpy as np

    from ..analysis.fourier_map import (
        band_profile,
        fourier_sensitivity,
        save_fourier_map,
    )
    from ..io import atomic_write_json
    from ..tasks import run_task
    from ..tasks.classification.evaluate import _stack, load_run
    from ..tasks.classification.train import prepare_data
    from ..train.loop import resolve_device

    dev = resolve_device(device, what="--device")
    if not runs:
        raise ValueError("--run: give at least one run directory")
    results: dict[str, Any] = {}
    for name, run_dir in runs.items():
        task = run_task(run_dir)
        if task.name != "classification":
            raise ValueError(f"--run {run_dir}: a {task.name} run; the Fourier map needs a classification run "
                             "(error rate of a classifier)")
        cfg, model = load_run(run_dir, device=dev)
        data = prepare_data(cfg)
        dataset = data.test if split == "test" else data.val
        n = len(dataset)
        if n == 0:
            raise ValueError(f"--run {run_dir}: the {split} split is empty")
        idx = np.sort(np.random.default_rng([cfg.seed, 11]).permutation(n)[:max_images])
        images, labels = _stack(dataset, idx)
        results[name] = fourier_sensitivity(model, images, labels, eps=eps, max_frequency=max_frequency, chunk=chunk,
                                            seed=cfg.seed, progress=progress)
    out_dir = Path(out) if out is not None else Path(next(iter(runs.values()))) / "analysis"
    files = save_fourier_map(results if len(results) > 1 else next(iter(results.values())), out_dir)
    bands = {name: band_profile(r["error"]) for name, r in results.items()}
    summary = {name: {"clean_error": r["clean_error"], "eps": r["eps"], "mean_error": float(np.mean(r["error"])),
                      "band_error_low_to_high": bands[name], "run": runs[name]} for name, r in results.items()}
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
    rep = fourier_map_runs(runs, args.out, eps=args.eps, max_images=args.max_images, max_frequency=args.max_frequency,
                           split=args.split, device=args.device, chunk=args.chunk, progress=not args.no_progress)
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
                    "channel) to the test images and record the error rate; write fourier_map[_NAME].npy, "
                    "fourier_map.png (runs side by side) and fourier_map.json (clean error, radial band means).")
    q.add_argument("--run", action="append", required=True, metavar="[NAME=]RUN",
                   help="classification run directory (repeatable: maps side by side)")
    q.add_argument("--out", metavar="DIR", help="output folder (default: RUN/analysis of the first run)")
    q.add_argument("--eps", type=float, default=4.0, help="L2 norm of the perturbation (default 4, Yin et al. CIFAR)")
    q.add_argument("--max-images", type=int, default=500, help="at most this many test images (default 500)")
    q.add_argument("--max-frequency", type=int, default=None, help="grid half-width K (default: image size // 2)")
    q.add_argument("--split", default="test", choices=["test", "val"], help="which split (default test)")
    q.add_argument("--chunk", type=int, default=16, help="frequencies per forward pass (default 16)")
    q.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda when available)")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_fourier_map)
