"""Evaluate trained blur models: synthesis and deblurring of held-out planes against classical baselines."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...config import validate
from ...data.microscopy import Intensity, load_stack
from ...evaluate.metrics import laplacian_variance, nyquist_peak_db, psnr, ssim
from ...models.blur_autoencoder import (
    BlurAutoencoder,
    BlurModel,
    deblur,
    load_blur_model,
    synthesize_blur,
)
from .config import BlurConfig
from .data import (
    _center_crop,
    _stack_tensor,
    known_radii,
    noise_free_planes,
    prepare_data,
)
from .report import (
    _plot_levels,
    _plot_planes,
    plot_psnr_curves,
    plot_strip,
    write_blur_report,
)

# --------------------------------------------------------------------------------------- evaluation
SYNTHESIS_METHODS = ("latent (sharp + blurred planes)", "latent + detail (sharp + blurred planes)",
                     "latent (sharp + PSF reference)", "pixel interpolation", "Gaussian blur (best σ per plane)",
                     "disk blur (best radius per plane)", "disk PSF, true radius (oracle)")
DEBLUR_METHODS = ("latent extrapolation", "latent + detail extrapolation", "pixel extrapolation",
                  "no deblurring (input plane)", "Richardson–Lucy, true PSF", "Wiener, true PSF",
                  "Richardson–Lucy, estimated PSF", "Wiener, estimated PSF")
#: deconvolution settings (fixed, not tuned on the test data)
RL_ITERATIONS = 30
WIENER_BALANCE = 0.01
HELD_OUT = "held-out real images"
SYNTHETIC_TEST = "synthetic test fields"


def deconvolve(img: torch.Tensor, psf: np.ndarray, method: str, *, num_iter: int = RL_ITERATIONS,
               balance: float = WIENER_BALANCE) -> torch.Tensor:
    """Richardson–Lucy (``"rl"``) or Wiener (``"wiener"``) deconvolution of grey images ``(N, 1, H, W)``
    in [0, 1] with scikit-image's ``restoration`` functions; each image is mirror-padded by twice the
    PSF's side first (RL's zero-padded convolutions would otherwise darken a band at the borders) and
    cropped back. Returns ``(N, 1, H, W)`` float32 in [0, 1]."""
    from skimage import restoration

    if method not in ("rl", "wiener"):
        raise ValueError(f"method: expected 'rl' or 'wiener', got {method!r}")
    psf = np.asarray(psf, dtype=np.float64)
    psf = psf / psf.sum()
    pad = 2 * max(psf.shape) + 2
    out = []
    for im in img.detach().cpu().double().reshape(-1, *img.shape[-2:]).numpy():
        x = np.pad(im, pad, mode="symmetric")
        if method == "rl":
            y = restoration.richardson_lucy(x, psf, num_iter=num_iter, clip=True)
        else:
            y = restoration.wiener(x, psf, balance, clip=True)
        out.append(np.clip(y[pad:-pad, pad:-pad], 0, 1))
    return torch.from_numpy(np.stack(out)).float().view(img.shape).to(img.device)


def psf_array(radius: float, kind: str) -> np.ndarray:
    """The PSF of :func:`medrobust.augment.blur.psf_kernels` as a 2D numpy array."""
    from ...augment.blur import kernel_size, psf_kernels

    size = kernel_size(float(radius), kind)
    return psf_kernels(torch.tensor([float(radius)], dtype=torch.float64), kind, size)[0].numpy()
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


def _mean(values: Sequence[float]) -> float | None:
    """Mean of the finite values (None when there are none: a measure that needs noise-free planes)."""
    v = [x for x in values if x is not None and np.isfinite(x)]
    return float(np.mean(v)) if v else None


class _Acc:
    """Per-method, per-plane, per-group metric lists: PSNR, SSIM, the Laplacian-variance ratio (detail
    kept, 1 = as sharp as the target) against the real (noisy) target and against its noise-free plane
    (``detail_noise_free``; embedded stacks only: the noise of a real target adds Laplacian variance that
    no denoised output can match) and the residual's spectral peak at Nyquist (dB, the checkerboard)."""

    KEYS = ("psnr", "ssim", "detail", "detail_noise_free", "nyquist_db")

    def __init__(self) -> None:
        self.values: dict[str, dict[int, dict[str, list[Any]]]] = {}

    def add(self, method: str, plane: int, pred: torch.Tensor, target: torch.Tensor, groups: Sequence[str],
            clean: torch.Tensor | None = None) -> None:
        """Score ``pred`` against ``target`` (and the detail ratio against ``clean``, the noise-free
        target of the same shape, when given)."""
        d = self.values.setdefault(method, {}).setdefault(plane, {**{k: [] for k in self.KEYS}, "group": []})
        preds, targets = pred.reshape(-1, *pred.shape[-2:]), target.reshape(-1, *target.shape[-2:])
        if len(groups) != preds.shape[0]:
            raise ValueError(f"{len(groups)} group labels for {preds.shape[0]} images")
        if clean is not None and clean.numel() != target.numel():
            raise ValueError(f"clean: expected the target's shape {tuple(target.shape)}, got {tuple(clean.shape)}")
        cleans = clean.reshape(-1, *clean.shape[-2:]) if clean is not None else [None] * len(groups)
        for p, t, c, g in zip(preds, targets, cleans, groups):
            lv = laplacian_variance(p)
            d["psnr"].append(psnr(p, t))
            d["ssim"].append(ssim(p, t))
            d["detail"].append(lv / max(laplacian_variance(t), 1e-12))
            d["detail_noise_free"].append(lv / max(laplacian_variance(c), 1e-12) if c is not None else None)
            d["nyquist_db"].append(nyquist_peak_db(p - t))
            d["group"].append(g)

    def summary(self, positions: Sequence[float], group: str | None = None) -> dict[str, Any]:
        keys = self.KEYS
        out: dict[str, Any] = {}
        for method, by_plane in self.values.items():
            per_plane, pooled = {}, {k: [] for k in keys}
            for k, v in sorted(by_plane.items()):
                sel = [i for i, g in enumerate(v["group"]) if group is None or g == group]
                if not sel:
                    continue
                per_plane[str(k)] = {"t": positions[k], "n": len(sel), **{m: _mean([v[m][i] for i in sel]) for m in keys}}
                for m in keys:
                    pooled[m] += [v[m][i] for i in sel]
            if per_plane:
                out[method] = {**{m: _mean(pooled[m]) for m in keys}, "n": len(pooled["psnr"]), "per_plane": per_plane}
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

    from ...augment.blur import defocus_blur, fit_gaussian_sigma, fit_psf_radius
    from ...evaluate.checks import check_dir, check_out_dir, missing_message
    from ...evaluate.provenance import run_provenance
    from ...models.blur_autoencoder import pad_to_multiple
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
    clean: dict[str, torch.Tensor] = {}  # noise-free planes (embedded stacks), in the noisy stack's intensity range
    for src in sources:
        arr = load_stack(src, data.planes)
        if arr.shape[0] != n_planes:
            raise ValueError(f"{src.path}: {arr.shape[0]} planes, the model was trained on {n_planes} (set data.planes)")
        x = _center_crop(_stack_tensor(arr, intensity, first.model.in_channels), cfg.evaluate.crop)
        stacks.append((src.name, x.to(dev)))
        nf = noise_free_planes(src, data.planes)
        if nf is not None and nf.shape == arr.shape:
            clean[src.name] = _center_crop(_stack_tensor(nf, intensity, first.model.in_channels, like=arr),
                                           cfg.evaluate.crop).to(dev)
    held_names = {src.name for src in sources
                  if data_root is None and any(fnmatch.fnmatchcase(src.name, pat) for pat in cfg.data.holdout)}
    group_of = {n: (HELD_OUT if n in held_names else (SYNTHETIC_TEST if data.synthetic else "test stacks"))
                for n, _ in stacks}
    # classical synthesis baselines: one Gaussian sigma / disk radius per plane, fitted on these test
    # stacks (optimistic); deconvolution with the true PSF (known radii of the embedded stacks) and with
    # an estimated one (a Gaussian per plane fitted on the validation stacks, never the test stacks)
    fit_max = max(4.0, min(min(x.shape[-2:]) for _, x in stacks) / 4)
    sigmas = {k: fit_gaussian_sigma([x[:, 0] for _, x in stacks], [x[:, k] for _, x in stacks], max_sigma=fit_max)
              for k in range(1, n_planes)}
    disk_radii = {k: fit_psf_radius([x[:, 0] for _, x in stacks], [x[:, k] for _, x in stacks], "disk", max_radius=fit_max)
                  for k in range(1, n_planes)}
    truth = known_radii(data.root, data.planes)  # None unless the folder has the embedded stacks' manifest.json
    if truth is not None and len(truth["radii"]) != n_planes:
        truth = None
    val_stacks = [_center_crop(_stack_tensor(load_stack(src, data.planes), intensity, first.model.in_channels),
                               cfg.evaluate.crop) for src in (data.val if data_root is None else [])]
    val_stacks = [v for v in val_stacks if v.shape[1] == n_planes]
    est_sigmas = ({k: fit_gaussian_sigma([v[:, 0] for v in val_stacks], [v[:, k] for v in val_stacks], max_sigma=fit_max)
                   for k in range(1, n_planes)} if val_stacks else {})
    synth, debl, recon = _Acc(), _Acc(), _Acc()
    lin: dict[str, list[tuple[float, float]]] = {name: [] for name in bundles}
    inner = list(range(1, n_planes - 1))
    with torch.no_grad():
        for sname, x in tqdm(stacks, desc="evaluate blur", disable=not progress, leave=False):
            b = x.shape[0]
            g = [group_of[sname]] * (b * x.shape[2])
            sharp, blurred = x[:, 0], x[:, -1]
            xc = clean.get(sname)  # noise-free planes, or None
            c0 = xc[:, 0] if xc is not None else None
            for k in inner:
                t = positions[k]
                target = x[:, k]
                ck = xc[:, k] if xc is not None else None
                synth.add("pixel interpolation", k, torch.lerp(sharp, blurred, t), target, g, ck)
                synth.add("Gaussian blur (best σ per plane)", k, defocus_blur(sharp, sigmas[k], "gaussian"), target, g, ck)
                synth.add("disk blur (best radius per plane)", k, defocus_blur(sharp, disk_radii[k], "disk"), target, g, ck)
                if truth is not None:
                    synth.add("disk PSF, true radius (oracle)", k, defocus_blur(sharp, truth["radii"][k], truth["psf"]),
                              target, g, ck)
                debl.add("pixel extrapolation", k, ((target - t * blurred) / (1 - t)).clamp(0, 1), sharp, g, c0)
                debl.add("no deblurring (input plane)", k, target, sharp, g, c0)
                grey = target.reshape(-1, 1, *target.shape[-2:])
                if truth is not None and truth["radii"][k] > 0:
                    psf = psf_array(truth["radii"][k], truth["psf"])
                    debl.add("Richardson–Lucy, true PSF", k, deconvolve(grey, psf, "rl").view_as(target), sharp, g, c0)
                    debl.add("Wiener, true PSF", k, deconvolve(grey, psf, "wiener").view_as(target), sharp, g, c0)
                if est_sigmas and est_sigmas[k] > 0:
                    psf = psf_array(est_sigmas[k], "gaussian")
                    debl.add("Richardson–Lucy, estimated PSF", k, deconvolve(grey, psf, "rl").view_as(target), sharp, g, c0)
                    debl.add("Wiener, estimated PSF", k, deconvolve(grey, psf, "wiener").view_as(target), sharp, g, c0)
            for name, bundle in bundles.items():
                model = bundle.model.eval()
                prefix = "" if len(bundles) == 1 else f"{name}: "
                ref = defocus_blur(sharp, bundle.reference_sigma, "gaussian")
                tk = torch.tensor([positions[k] for k in inner], dtype=torch.float32, device=dev).repeat_interleave(b)
                rep = len(inner)
                sh, bl = sharp.repeat(rep, 1, 1, 1), blurred.repeat(rep, 1, 1, 1)
                two = synthesize_blur(model, sh, bl, tk)
                two_d = synthesize_blur(model, sh, bl, tk, detail=True)
                one = synthesize_blur(model, sh, ref.repeat(rep, 1, 1, 1), tk)
                inputs = torch.cat([x[:, k] for k in inner])
                sharp_hat = deblur(model, inputs, bl, tk.double())
                sharp_hat_d = deblur(model, inputs, bl, tk.double(), detail=True).clamp(0, 1)
                for j, k in enumerate(inner):
                    sl = slice(j * b, (j + 1) * b)
                    ck = xc[:, k] if xc is not None else None
                    synth.add(prefix + SYNTHESIS_METHODS[0], k, two[sl], x[:, k], g, ck)
                    synth.add(prefix + SYNTHESIS_METHODS[1], k, two_d[sl].clamp(0, 1), x[:, k], g, ck)
                    synth.add(prefix + SYNTHESIS_METHODS[2], k, one[sl], x[:, k], g, ck)
                    debl.add(prefix + DEBLUR_METHODS[0], k, sharp_hat[sl], sharp, g, c0)
                    debl.add(prefix + DEBLUR_METHODS[1], k, sharp_hat_d[sl], sharp, g, c0)
                xp, (h, w) = pad_to_multiple(sharp, model.factor)
                recon.add(name, 0, model.decode(model.encode(xp))[..., :h, :w], sharp, g, c0)
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
                 "synthetic": data.synthetic, "intensity": intensity.to_dict(),
                 "noise_free_stacks": [n for n, _ in stacks if n in clean]},
        "positions": positions,
        "gaussian_sigmas": {str(k): v for k, v in sigmas.items()},
        "disk_radii": {str(k): v for k, v in disk_radii.items()},
        "estimated_psf_sigmas": {str(k): v for k, v in est_sigmas.items()},
        "true_psf": truth,
        "deconvolution": {"richardson_lucy_iterations": RL_ITERATIONS, "wiener_balance": WIENER_BALANCE},
        "synthesis": ordered(synth.summary(positions), SYNTHESIS_METHODS[:3]),
        "deblur": ordered(debl.summary(positions), DEBLUR_METHODS[:2]),
        "reconstruction": recon.summary(positions),
        "groups": {grp: {"stacks": [n for n, _ in stacks if group_of[n] == grp],
                         "synthesis": ordered(synth.summary(positions, grp), SYNTHESIS_METHODS[:3]),
                         "deblur": ordered(debl.summary(positions, grp), DEBLUR_METHODS[:2]),
                         "reconstruction": recon.summary(positions, grp)}
                   for grp in dict.fromkeys(group_of.values())},
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
        held = [(n, x) for n, x in stacks if group_of[n] == HELD_OUT]
        fname, fx = (held or stacks)[0]
        figures += _strips(bundles, fname, fx[:1], positions, sigmas, disk_radii, truth, est_sigmas, fig_dir)
        for grp in dict.fromkeys(group_of.values()):
            tag = "held_out" if grp == HELD_OUT else "synthetic" if grp == SYNTHETIC_TEST else "test"
            figures.append(plot_psnr_curves(results, fig_dir / f"psnr_vs_t_{tag}.png", grp))
    write_blur_report(out_dir, results, figures)
    return results


def _zoom_box(img: torch.Tensor) -> tuple[int, int, int]:
    """``(y, x, side)`` of the window (a quarter of the shorter side) with the most Laplacian energy."""
    from ...evaluate.metrics import laplacian_variance

    h, w = img.shape[-2:]
    s = max(8, min(h, w) // 4)
    best, box = -1.0, (0, 0, s)
    for y in range(0, h - s + 1, max(1, s // 2)):
        for x in range(0, w - s + 1, max(1, s // 2)):
            v = laplacian_variance(img[..., y : y + s, x : x + s])
            if v > best:
                best, box = v, (y, x, s)
    return box


def _strips(bundles: Mapping[str, BlurModel], name: str, x: torch.Tensor, positions: Sequence[float],
            sigmas: Mapping[int, float], disk_radii: Mapping[int, float], truth: Mapping[str, Any] | None,
            est_sigmas: Mapping[int, float], fig_dir: Path) -> list[Path]:
    """``strip_synthesis.png`` (true planes, latent and classical syntheses) and ``strip_deblur.png``
    (the middle plane deblurred by every method) of one field ``x (1, P, 1, H, W)``, zoomed insets."""
    from ...augment.blur import defocus_blur

    p = len(positions)
    planes = [x[0, k] for k in range(p)]  # (1, H, W) each
    sharp, blurred = x[:, 0], x[:, -1]
    t = torch.tensor(positions, dtype=torch.float32, device=x.device)
    rows: list[tuple[str, list[Any]]] = [(f"{name}\ntrue", planes)]
    with torch.no_grad():
        for mname, b in bundles.items():
            m = b.model.eval()
            sh, bl = sharp.expand(p, -1, -1, -1), blurred.expand(p, -1, -1, -1)
            rows.append((f"{mname}\n(2 planes)", list(synthesize_blur(m, sh, bl, t))))
            rows.append((f"{mname} + detail", list(synthesize_blur(m, sh, bl, t, detail=True).clamp(0, 1))))
        rows.append(("pixel interp.", list(torch.lerp(sharp.expand(p, -1, -1, -1), blurred.expand(p, -1, -1, -1),
                                                      t.view(-1, 1, 1, 1)))))
        rows.append(("Gaussian (fit)", [planes[0]] + [defocus_blur(sharp, sigmas[k], "gaussian")[0] for k in range(1, p)]))
        rows.append(("disk (fit)", [planes[0]] + [defocus_blur(sharp, disk_radii[k], "disk")[0] for k in range(1, p)]))
        titles = [f"z{k}  t={positions[k]:.2f}" for k in range(p)]
        box = _zoom_box(planes[0])
        out = [plot_strip(rows, titles, box, fig_dir / "strip_synthesis.png")]
        k = p // 2
        a = torch.tensor([positions[k]], dtype=torch.float64)
        cols: list[tuple[str, Any]] = [(f"input z{k}", planes[k]), ("true z0", planes[0])]
        for mname, b in bundles.items():
            m = b.model.eval()
            cols.append((f"{mname}", deblur(m, x[:, k], blurred, a)[0]))
            cols.append((f"{mname} + detail", deblur(m, x[:, k], blurred, a, detail=True).clamp(0, 1)[0]))
        if truth is not None and truth["radii"][k] > 0:
            psf = psf_array(truth["radii"][k], truth["psf"])
            cols += [("RL, true PSF", deconvolve(x[:, k], psf, "rl")[0]), ("Wiener, true PSF", deconvolve(x[:, k], psf, "wiener")[0])]
        if est_sigmas and est_sigmas.get(k, 0) > 0:
            psf = psf_array(est_sigmas[k], "gaussian")
            cols += [("RL, est. PSF", deconvolve(x[:, k], psf, "rl")[0]), ("Wiener, est. PSF", deconvolve(x[:, k], psf, "wiener")[0])]
        out.append(plot_strip([(f"{name}\ndeblur z{k}", [c for _, c in cols])], [lab for lab, _ in cols], box,
                              fig_dir / "strip_deblur.png"))
    return out


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
