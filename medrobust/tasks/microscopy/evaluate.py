"""Evaluate trained blur models: synthesis and deblurring of held-out planes against classical baselines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...config import validate
from ...data.microscopy import Intensity, load_stack
from ...evaluate.metrics import psnr, ssim
from ...models.blur_autoencoder import (
    BlurAutoencoder,
    BlurModel,
    deblur,
    load_blur_model,
    synthesize_blur,
)
from .config import BlurConfig
from .data import _center_crop, _stack_tensor, prepare_data
from .report import _plot_levels, _plot_planes, write_blur_report

# --------------------------------------------------------------------------------------- evaluation
SYNTHESIS_METHODS = ("latent (sharp + blurred planes)", "latent (sharp + PSF reference)", "pixel interpolation",
                     "Gaussian blur (best σ per plane)")
DEBLUR_METHODS = ("latent extrapolation", "pixel extrapolation", "no deblurring (input plane)")


def _config_from(bundle: BlurModel, overrides: Sequence[str] = ()) -> BlurConfig:
    from ...config import apply_overrides

    data = dict(bundle.config) if isinstance(bundle.config, Mapping) else {}
    data = apply_overrides(data, overrides)
    data["task"] = "microscopy"
    return validate(data, source=f"{bundle.source} (stored config)", model=BlurConfig)


def load_run(run_dir: str | Path, *, device: torch.device | str = "cpu",
             checkpoint: str = "model.pt") -> tuple[BlurConfig, torch.nn.Module]:
    """``(cfg, autoencoder)`` of a trained run: ``run_dir/<checkpoint>`` (``model.pt``, or ``best.pt`` /
    ``last.pt`` of an interrupted run), weights-only, in eval mode."""
    path = Path(run_dir)
    bundle = load_blur_model(path / checkpoint if path.is_dir() and (path / checkpoint).is_file() else path, device=device)
    return _config_from(bundle), bundle.model.eval()


class _Acc:
    """Per-method, per-plane metric lists."""

    def __init__(self) -> None:
        self.values: dict[str, dict[int, dict[str, list[float]]]] = {}

    def add(self, method: str, plane: int, pred: torch.Tensor, target: torch.Tensor) -> None:
        d = self.values.setdefault(method, {}).setdefault(plane, {"psnr": [], "ssim": []})
        for p, t in zip(pred.reshape(-1, *pred.shape[-2:]), target.reshape(-1, *target.shape[-2:])):
            d["psnr"].append(psnr(p, t))
            d["ssim"].append(ssim(p, t))

    def summary(self, positions: Sequence[float]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for method, by_plane in self.values.items():
            per_plane = {str(k): {"t": positions[k], "psnr": float(np.mean(v["psnr"])), "ssim": float(np.mean(v["ssim"])),
                                  "n": len(v["psnr"])} for k, v in sorted(by_plane.items())}
            all_p = [x for v in by_plane.values() for x in v["psnr"]]
            all_s = [x for v in by_plane.values() for x in v["ssim"]]
            out[method] = {"psnr": float(np.mean(all_p)), "ssim": float(np.mean(all_s)), "n": len(all_p), "per_plane": per_plane}
        return out


def _latent_linearity(model: BlurAutoencoder, x: torch.Tensor, positions: Sequence[float]) -> tuple[float, float]:
    """For one stack ``(B, P, C, H, W)``: relative deviation of the intermediate latents from the line
    between the sharp and blurred latents, and the mean cosine similarity of consecutive latent steps."""
    from ...models.blur_autoencoder import pad_to_multiple

    b, p = x.shape[:2]
    xp, _ = pad_to_multiple(x.flatten(0, 1), model.factor)
    z = model.encode(xp).view(b, p, -1).double()
    t = torch.tensor(positions, dtype=torch.float64).view(1, -1, 1)
    line = torch.lerp(z[:, :1], z[:, -1:], t)
    span = (z[:, -1] - z[:, 0]).norm(dim=-1).clamp_min(1e-12)
    dev = ((z[:, 1:-1] - line[:, 1:-1]).norm(dim=-1) / span[:, None]).mean()
    steps = z[:, 1:] - z[:, :-1]
    cos = torch.nn.functional.cosine_similarity(steps[:, 1:], steps[:, :-1], dim=-1).mean()
    return float(dev), float(cos)


def evaluate_blur(checkpoint_or_run_dir: str | Path | Mapping[str, str | Path], out_dir: str | Path, *,
                  data_root: str | Path | None = None, overrides: Sequence[str] = (), device: str = "cpu",
                  progress: bool = True) -> dict[str, Any]:
    """Evaluate one or more trained models on held-out planes; write ``report.md``, ``report.json`` and
    ``figures/{planes,levels}.png`` under ``out_dir``.

    ``checkpoint_or_run_dir``: a ``model.pt``, a run directory, or ``{name: path}`` for several models
    (the data settings come from the first). ``data_root``: evaluate on every stack of another folder
    (default: the test split of the training data). ``overrides``: ``--set``-style keys applied to the
    stored config (e.g. ``evaluate.crop=256``). Returns the results dict (``files`` lists the outputs).
    """
    from tqdm.auto import tqdm

    from ...augment.blur import defocus_blur, fit_gaussian_sigma
    from ...evaluate.checks import check_dir, check_out_dir, missing_message
    from ...evaluate.provenance import run_provenance
    from ...train.loop import resolve_device

    models = dict(checkpoint_or_run_dir) if isinstance(checkpoint_or_run_dir, Mapping) else {
        "latent": checkpoint_or_run_dir}
    check_out_dir(out_dir)
    missing = [str(p) for p in models.values()
               if not (Path(p).is_file() or any((Path(p) / n).is_file() for n in ("model.pt", "best.pt", "last.pt")))]
    if missing:
        raise FileNotFoundError(missing_message("--run" if len(models) == 1 else f"--run ({len(models)} runs)", missing,
                                                "a model.pt from `medrobust blur train`, or a run folder holding "
                                                "model.pt, best.pt or last.pt", total=len(models)))
    check_dir(data_root, what="data root (--data-root, or --corrupted-root of `medrobust evaluate`)",
              expected="a folder of focal stacks")
    dev = resolve_device(device, what="--device")
    bundles = {name: load_blur_model(path, device=dev) for name, path in models.items()}
    first = next(iter(bundles.values()))
    cfg = _config_from(first, overrides)
    data = prepare_data(cfg, data_root)
    sources = {"train": data.train, "val": data.val, "test": data.test}[cfg.evaluate.split]
    if cfg.evaluate.max_stacks is not None:
        sources = sources[: cfg.evaluate.max_stacks]
    positions = first.positions
    n_planes = len(positions)
    for name, b in bundles.items():
        if len(b.positions) != n_planes:
            raise ValueError(f"{b.source}: trained on {len(b.positions)} planes, {first.source} on {n_planes}")
    intensity = Intensity.from_dict(first.intensity)
    stacks: list[tuple[str, torch.Tensor]] = []
    for src in sources:
        arr = load_stack(src, data.planes)
        if arr.shape[0] != n_planes:
            raise ValueError(f"{src.path}: {arr.shape[0]} planes, the model was trained on {n_planes} (set data.planes)")
        x = _center_crop(_stack_tensor(arr, intensity, first.model.in_channels), cfg.evaluate.crop)
        stacks.append((src.name, x.to(dev)))
    # the classical baseline: one Gaussian sigma per plane, fitted on these test stacks
    sigmas = {k: fit_gaussian_sigma([x[:, 0] for _, x in stacks], [x[:, k] for _, x in stacks],
                                    max_sigma=max(4.0, min(min(x.shape[-2:]) for _, x in stacks) / 4))
              for k in range(1, n_planes)}
    synth, debl = _Acc(), _Acc()
    lin: dict[str, list[tuple[float, float]]] = {name: [] for name in bundles}
    inner = list(range(1, n_planes - 1))
    with torch.no_grad():
        for sname, x in tqdm(stacks, desc="evaluate blur", disable=not progress, leave=False):
            b = x.shape[0]
            sharp, blurred = x[:, 0], x[:, -1]
            for k in inner:
                t = positions[k]
                target = x[:, k]
                synth.add("pixel interpolation", k, torch.lerp(sharp, blurred, t), target)
                synth.add("Gaussian blur (best σ per plane)", k, defocus_blur(sharp, sigmas[k], "gaussian"), target)
                debl.add("pixel extrapolation", k, ((target - t * blurred) / (1 - t)).clamp(0, 1), sharp)
                debl.add("no deblurring (input plane)", k, target, sharp)
            for name, bundle in bundles.items():
                model = bundle.model.eval()
                prefix = "" if len(bundles) == 1 else f"{name}: "
                ref = defocus_blur(sharp, bundle.reference_sigma, "gaussian")
                tk = torch.tensor([positions[k] for k in inner], dtype=torch.float32, device=dev).repeat_interleave(b)
                rep = len(inner)
                two = synthesize_blur(model, sharp.repeat(rep, 1, 1, 1), blurred.repeat(rep, 1, 1, 1), tk)
                one = synthesize_blur(model, sharp.repeat(rep, 1, 1, 1), ref.repeat(rep, 1, 1, 1), tk)
                inputs = torch.cat([x[:, k] for k in inner])
                sharp_hat = deblur(model, inputs, blurred.repeat(rep, 1, 1, 1), tk.double())
                for j, k in enumerate(inner):
                    sl = slice(j * b, (j + 1) * b)
                    synth.add(prefix + SYNTHESIS_METHODS[0], k, two[sl], x[:, k])
                    synth.add(prefix + SYNTHESIS_METHODS[1], k, one[sl], x[:, k])
                    debl.add(prefix + DEBLUR_METHODS[0], k, sharp_hat[sl], sharp)
                lin[name].append(_latent_linearity(model, x, positions))
    # row order: models first, then baselines
    def ordered(summary: dict[str, Any], model_methods: Sequence[str]) -> dict[str, Any]:
        keys = [k for k in summary if any(k.endswith(m) for m in model_methods)]
        return {k: summary[k] for k in keys + [k for k in summary if k not in keys]}

    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    def _steps(b: BlurModel) -> int | None:
        steps = ((b.config or {}).get("train") or {}).get("steps") if isinstance(b.config, Mapping) else None
        return int(steps) if isinstance(steps, int) else None

    refs, ref_note = _published_references(embedded=bool(data.synthetic))
    results: dict[str, Any] = {
        "task": "microscopy",
        "runs": {name: str(path) for name, path in models.items()},
        "models": {name: {"checkpoint": b.source, "reference_sigma": b.reference_sigma,
                          "provenance": run_provenance(b.source, configured_steps=_steps(b))}
                   for name, b in bundles.items()},
        "data": {"root": str(data.root), "split": cfg.evaluate.split if data_root is None else "all",
                 "stacks": [n for n, _ in stacks], "planes": data.planes, "crop": cfg.evaluate.crop,
                 "synthetic": data.synthetic, "intensity": intensity.to_dict()},
        "positions": positions,
        "gaussian_sigmas": {str(k): v for k, v in sigmas.items()},
        "synthesis": ordered(synth.summary(positions), SYNTHESIS_METHODS[:2]),
        "deblur": ordered(debl.summary(positions), DEBLUR_METHODS[:1]),
        "linearity": {name: {"relative_deviation": float(np.mean([a for a, _ in v])),
                             "step_cosine": float(np.mean([c for _, c in v]))} for name, v in lin.items()},
        "references": refs,
    }
    if ref_note:
        results["references_note"] = ref_note
    figures = []
    if cfg.evaluate.figure_stacks > 0 and stacks:
        figures.append(_plot_planes(bundles, stacks[: cfg.evaluate.figure_stacks], positions, fig_dir / "planes.png"))
        figures.append(_plot_levels(bundles, stacks[: cfg.evaluate.figure_stacks], cfg.evaluate.levels, fig_dir / "levels.png"))
    write_blur_report(out_dir, results, figures)
    return results


def evaluate_blur_runs(runs: Mapping[str, str], *, out_dir: str | Path, overrides: Sequence[str] = (),
                       corrupted_root: str | None = None, device: str = "auto", progress: bool = True) -> dict[str, Any]:
    """``medrobust evaluate --run NAME=DIR ...`` entry point (``corrupted_root``: another data folder)."""
    return evaluate_blur(dict(runs), out_dir, data_root=corrupted_root, overrides=overrides, device=device, progress=progress)


def _published_references(*, embedded: bool = False) -> tuple[dict[str, Any], str | None]:
    """The published numbers of the focal-stack protocol (package data; today the citation and a note that
    none exist) and the note on how its protocol differs from the data evaluated (``embedded``)."""
    from ...evaluate.report.references import protocol_note
    from ..base import read_protocol

    proto = read_protocol(__package__, "focal_stacks")
    return proto.get("references", {}) or {}, protocol_note(proto, embedded=embedded)
