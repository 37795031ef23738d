"""Demo helpers: a picture of what the cores do to a test image."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..io import atomic_path

__all__ = ["test_pattern", "augment_grid"]


def test_pattern(size: int = 128) -> torch.Tensor:
    """A colour test image ``(1, 3, size, size)`` in [0, 1]: gradients, a checkerboard, a disk, bars."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    r = x
    g = y
    b = 0.5 + 0.5 * torch.sin(2 * math.pi * 3 * (x + y))
    img = torch.stack([r, g, b])
    checker = (((x * 8).floor() + (y * 8).floor()) % 2).bool() & (y < 0.35)
    img[:, checker] = 0.95
    disk = (x - 0.68) ** 2 + (y - 0.62) ** 2 < 0.18**2
    img[:, disk] = torch.tensor([0.9, 0.2, 0.15]).view(3, 1)
    bars = (x < 0.4) & (y > 0.55) & (((x * 20).floor() % 2) == 0)
    img[:, bars] = 0.05
    return img.unsqueeze(0)


def augment_grid(path: str | Path, seed: int = 0, columns: int = 6) -> Path:
    """Write a PNG grid: rows = cores (RandConv, RC_mix, GIN, IPA), columns = random draws."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..augment import GIN, IPA, RandConv

    x = test_pattern().repeat(columns, 1, 1, 1)
    gen = torch.Generator().manual_seed(seed)
    rows = {
        "RandConv k∈{1,3,5,7}": RandConv(),
        "RandConv mix": RandConv(mixing=True),
        "GIN": GIN(),
        "IPA": IPA(),
    }
    fig, axes = plt.subplots(len(rows) + 1, columns, figsize=(1.6 * columns, 1.6 * (len(rows) + 1)))
    for j in range(columns):
        axes[0, j].imshow(x[0].permute(1, 2, 0).numpy())
        axes[0, j].set_axis_off()
    axes[0, 0].set_title("input", fontsize=8, loc="left")
    for i, (name, core) in enumerate(rows.items(), start=1):
        y = core(x, gen)
        for j in range(columns):
            img = y[j].permute(1, 2, 0).numpy()
            lo, hi = np.percentile(img, 0.5), np.percentile(img, 99.5)  # GIN/IPA are not in [0, 1]
            axes[i, j].imshow(np.clip((img - lo) / max(hi - lo, 1e-8), 0, 1))
            axes[i, j].set_axis_off()
        axes[i, 0].set_title(name, fontsize=8, loc="left")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


def _reuse_or_restart(cfg) -> bool:
    """Whether the demo continues the run already in ``cfg.run_dir``: only when its saved config equals
    ``cfg`` exactly (the demo owns its output folder; any other earlier run there is started over, with
    a line saying so)."""
    from ..train.loop import CHECKPOINT_FILES, config_changes

    run_dir = cfg.run_dir
    changes = config_changes(cfg)
    if (run_dir / "last.pt").is_file() and changes == []:
        print(f"[demo]   continuing the run in {run_dir} (same config)", flush=True)
        return True
    found = [n for n in CHECKPOINT_FILES if (run_dir / n).is_file()]
    if found:
        why = ("another config: " + ", ".join(k for k, _, _ in changes[:4]) + (", ..." if len(changes) > 4 else "")
               if changes else "no saved config" if changes is None else "no last.pt")
        print(f"[demo]   {run_dir} holds an earlier run ({why}); starting it over", flush=True)
    return False


def run_demo(out: str | Path = "runs/demo", *, steps: int | None = None, seed: int = 0, progress: bool = True) -> dict:
    """The main job on the embedded default: write the synthetic ACDC cohorts, train the baseline and
    RandConv briefly, evaluate both on clean, ACDC-C and shifted data, print the comparison table.

    Every number comes from this run. Returns the results dict; the report is ``OUT/report/report.md``.
    """
    import time

    from ..config import load_config, resolve_config_path
    from ..tasks.cardiac import (
        CardiacConfig,
        comparison_table,
        evaluate_cardiac,
        train_cardiac,
    )

    out = Path(out)
    t0 = time.perf_counter()
    runs = {}
    for name in ("baseline", "randconv"):
        overrides = [f"output_dir={out}", f"seed={seed}", "train.device=auto"]
        if steps is not None:
            overrides.append(f"train.steps={steps}")
        cfg = load_config(resolve_config_path(f"cardiac/{name}"), overrides, model=CardiacConfig)
        print(f"[demo] training {name} ({cfg.train.steps} steps) -> {cfg.run_dir}", flush=True)
        resume = _reuse_or_restart(cfg)
        res = train_cardiac(cfg, resume=resume, overwrite=not resume, progress=progress)
        print(f"[demo]   best val Dice {res.best_metric:.4f} at step {res.best_step}", flush=True)
        runs[name] = cfg.run_dir
    grid = augment_grid(out / "augment_grid.png", seed=seed)
    print("[demo] evaluating on clean, ACDC-C (8 corruptions x 5 severities) and the shifted domain", flush=True)
    results = evaluate_cardiac(runs, out_dir=out / "report", progress=progress, extra_figures={"augment_grid": grid})
    print()
    print(comparison_table(results))
    print(f"\n[demo] done in {time.perf_counter() - t0:.0f} s; report: {results['files']['markdown']}")
    return results
