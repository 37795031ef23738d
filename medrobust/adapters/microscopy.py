"""Microscopy defocus task: train the linear-latent autoencoder, evaluate synthesis and deblurring, bench.

* :class:`BlurConfig` (``task: microscopy_blur``) — data (focal stacks or the embedded default),
  model widths, loss weights, training and evaluation settings;
* :func:`train_blur` — the shared step-based loop (:func:`medrobust.train.loop.fit`) with aligned
  random patches of all planes; validation PSNR of the synthesised intermediate planes picks
  ``best.pt``; a self-contained ``model.pt`` is exported at the end;
* :func:`evaluate_blur` — PSNR/SSIM of synthesised planes against the held-out real planes of test
  stacks, next to two baselines computed in the same run (pixel-space interpolation of the sharp and
  blurred images; the best-fitting Gaussian blur of the sharp image, one sigma per plane fitted on the
  test stacks themselves — an optimistic classical baseline), plus deblurring by latent extrapolation
  against pixel extrapolation and the unchanged input; ``report.md``/``report.json`` and figures;
* :func:`bench_blur` — synthesis throughput at 512×512 and training step times.

Metrics are computed per channel on images normalised to [0, 1] with the model's intensity mapping
(min–max of each stack by default), so PSNR uses a data range of 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator

from ..config import Strict, TrainBase, register_task_config, save_config, validate
from ..data.microscopy import FocalStackPatches, Intensity, StackSource, discover_stacks, fold_channels, load_stack, split_stacks
from ..io import atomic_write_json, atomic_write_text
from ..models.blur_autoencoder import (
    PAPER_WIDTHS,
    BlurAutoencoder,
    BlurModel,
    blur_losses,
    deblur,
    load_blur_model,
    plane_triplets,
    save_blur_model,
    synthesize_blur,
    triplet_alphas,
)

__all__ = [
    "BlurConfig",
    "BlurData",
    "prepare_blur_data",
    "train_blur",
    "evaluate_blur",
    "evaluate_blur_runs",
    "blur_table",
    "bench_blur",
    "psnr",
    "ssim",
    "DEFAULT_WIDTHS",
]

#: widths of ``configs/microscopy/linear_latent.yaml`` (the CPU default; the paper's are PAPER_WIDTHS)
DEFAULT_WIDTHS: tuple[int, ...] = (32, 64)


# ------------------------------------------------------------------------------------------- config
class BlurSyntheticConfig(Strict):
    """The embedded default: synthetic fluorescence fields plus tiles of bundled scikit-image images."""

    n_stacks: int = Field(16, ge=1)
    size: tuple[int, int] = (128, 128)
    planes: int = Field(7, ge=3)
    max_radius: float = Field(6.0, gt=0)
    psf: Literal["disk", "gaussian"] = "disk"
    diffraction_sigma: float = Field(0.7, ge=0)
    photons: float = Field(1500.0, gt=0)
    skimage_tiles: int = Field(2, ge=0)
    seed: int = 0


class BlurDataConfig(Strict):
    root: str | None = None  # null: the embedded synthetic stacks (written under <output_dir>/data/)
    layout: Literal["auto", "tiff", "sample_folders", "plane_folders"] = "auto"
    planes: list[int] | None = None  # plane indices to use, in-focus first (BBBC006: [16, 14, ..., 0])
    positions: list[float] | None = None  # blur position t of each used plane (null: evenly spaced 0..1)
    patch_size: int = Field(64, ge=8)
    patches_per_stack: int = Field(32, ge=1)
    val_patches: int = Field(4, ge=1)  # fixed validation patches per validation stack
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    split_seed: int = 0
    intensity: Literal["stack", "dataset", "dtype"] = "stack"
    flips: bool = True
    num_workers: int = Field(0, ge=0)
    cache: bool = True
    synthetic: BlurSyntheticConfig = BlurSyntheticConfig()

    @field_validator("split")
    @classmethod
    def _split(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(f < 0 for f in v) or abs(sum(v) - 1.0) > 1e-6 or v[0] <= 0:
            raise ValueError(f"train/val/test fractions must be >= 0 (train > 0) and sum to 1, got {list(v)}")
        return v

    @field_validator("planes")
    @classmethod
    def _planes(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (len(v) < 3 or len(set(v)) != len(v) or min(v) < 0):
            raise ValueError(f"expected at least 3 distinct plane indices >= 0 (in-focus first), got {v}")
        return v

    @field_validator("positions")
    @classmethod
    def _positions(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return v
        if len(v) < 3 or abs(v[0]) > 1e-9 or abs(v[-1] - 1) > 1e-9 or any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError(f"expected >= 3 increasing positions from 0 (in focus) to 1 (most blurred), got {v}")
        return v


class BlurModelConfig(Strict):
    in_channels: int = Field(1, ge=1)  # 1: RGB stacks are processed channel by channel
    widths: list[int] = list(PAPER_WIDTHS)
    norm: Literal["batch", "group", "none"] = "batch"

    @field_validator("widths")
    @classmethod
    def _widths(cls, v: list[int]) -> list[int]:
        if not v or any(w < 1 for w in v):
            raise ValueError(f"expected one or more positive channel counts, got {v}")
        return v


class BlurLossConfig(Strict):
    reconstruction: float = Field(1.0, ge=0)
    explicit: float = Field(1.0, ge=0)  # latent-space linearity
    implicit: float = Field(1.0, ge=0)  # decoded interpolations match the real planes
    triplets: Literal["endpoints", "midpoints", "all"] = "endpoints"


class BlurTrainConfig(TrainBase):
    steps: int = Field(300, ge=1)
    batch_size: int = Field(8, ge=1)  # stacks per step (each with all its planes)
    weight_decay: float = Field(0.0, ge=0)
    val_every: int = Field(50, ge=1)
    ckpt_every: int = Field(50, ge=1)


class BlurEvaluateConfig(Strict):
    split: Literal["train", "val", "test"] = "test"
    max_stacks: int | None = Field(None, ge=1)
    crop: int | None = Field(None, ge=16)  # centre crop of each test image (null: whole image, padded)
    levels: list[float] = [-0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5]  # the figure of synthesis across t
    figure_stacks: int = Field(2, ge=0)


class BlurConfig(Strict):
    name: str = "microscopy_blur"
    task: Literal["microscopy_blur"] = "microscopy_blur"
    seed: int = 0
    output_dir: str = "runs"
    data: BlurDataConfig = BlurDataConfig()
    model: BlurModelConfig = BlurModelConfig()
    loss: BlurLossConfig = BlurLossConfig()
    train: BlurTrainConfig = BlurTrainConfig()
    evaluate: BlurEvaluateConfig = BlurEvaluateConfig()

    @model_validator(mode="after")
    def _consistent(self) -> BlurConfig:
        factor = 2 ** len(self.model.widths)
        if self.data.patch_size % factor:
            raise ValueError(f"data.patch_size {self.data.patch_size} must be divisible by 2**len(model.widths) = {factor}")
        n = len(self.data.planes) if self.data.planes is not None else (
            self.data.synthetic.planes if self.data.root is None else None)
        if self.data.positions is not None and n is not None and len(self.data.positions) != n:
            raise ValueError(f"data.positions has {len(self.data.positions)} entries for {n} planes")
        if self.data.root is None and self.data.planes is not None and max(self.data.planes) >= self.data.synthetic.planes:
            raise ValueError(f"data.planes {self.data.planes}: the embedded stacks have {self.data.synthetic.planes} planes")
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name


register_task_config("microscopy_blur", BlurConfig)


# --------------------------------------------------------------------------------------------- data
@dataclass
class BlurData:
    root: Path
    train: list[StackSource]
    val: list[StackSource]
    test: list[StackSource]
    planes: list[int] | None
    positions: list[float]
    synthetic: bool


def synthetic_root(cfg: BlurConfig) -> Path:
    s = cfg.data.synthetic
    tag = (f"n{s.n_stacks}_s{s.size[0]}x{s.size[1]}_p{s.planes}_r{s.max_radius:g}_{s.psf}_d{s.diffraction_sigma:g}"
           f"_ph{s.photons:g}_sk{s.skimage_tiles}_seed{s.seed}")
    return Path(cfg.output_dir) / "data" / f"microscopy_synthetic_{tag}"


def _ensure_synthetic(cfg: BlurConfig) -> Path:
    from ..data.synthetic.microscopy import Optics, write_synthetic_stacks

    root = synthetic_root(cfg)
    marker = root / ".complete"
    if not marker.exists():
        s = cfg.data.synthetic
        write_synthetic_stacks(root, n_stacks=s.n_stacks, size=tuple(s.size), skimage_tiles=s.skimage_tiles, seed=s.seed,
                               optics=Optics(planes=s.planes, max_radius=s.max_radius, psf=s.psf,
                                             diffraction_sigma=s.diffraction_sigma, photons=s.photons))
        marker.write_text("ok\n")
    return root


def linear_positions(n: int) -> list[float]:
    return [k / (n - 1) for k in range(n)]


def prepare_blur_data(cfg: BlurConfig, root: str | Path | None = None) -> BlurData:
    """Resolve the stacks (writing the embedded default if needed), the split and the plane positions.

    ``root`` overrides ``cfg.data.root`` (evaluation on another folder: every stack is a test stack).
    """
    synthetic = root is None and cfg.data.root is None
    data_root = _ensure_synthetic(cfg) if synthetic else Path(root if root is not None else cfg.data.root)  # type: ignore[arg-type]
    sources = discover_stacks(data_root, cfg.data.layout)
    if root is not None:
        split = {"train": sources, "val": sources, "test": sources}
    else:
        split = split_stacks(sources, cfg.data.split, cfg.data.split_seed)
    n = len(cfg.data.planes) if cfg.data.planes is not None else load_stack(split["train"][0]).shape[0]
    if n < 3:
        raise ValueError(f"{split['train'][0].path}: {n} planes; the linearity losses need at least 3")
    positions = list(cfg.data.positions) if cfg.data.positions is not None else linear_positions(n)
    if len(positions) != n:
        raise ValueError(f"data.positions has {len(positions)} entries, but the stacks have {n} planes")
    return BlurData(data_root, split["train"], split["val"], split["test"], cfg.data.planes, positions, synthetic)


def build_blur_model(cfg: BlurConfig) -> BlurAutoencoder:
    m = cfg.model
    return BlurAutoencoder(in_channels=m.in_channels, widths=tuple(m.widths), norm=m.norm)


def _center_crop(x: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None:
        return x
    h, w = x.shape[-2:]
    s_h, s_w = min(size, h), min(size, w)
    y0, x0 = (h - s_h) // 2, (w - s_w) // 2
    return x[..., y0 : y0 + s_h, x0 : x0 + s_w]


def _stack_tensor(arr: np.ndarray, intensity: Intensity, in_channels: int) -> torch.Tensor:
    """Raw stack ``(P, H, W[, C])`` -> normalised ``(B, P, C', H, W)`` (channels folded for a grey model)."""
    from ..data.microscopy import to_planes_tensor

    lo, hi = intensity.range_of(arr)
    t = to_planes_tensor(Intensity.normalize(arr, lo, hi))  # (P, C, H, W)
    if in_channels == 1:
        return t.permute(1, 0, 2, 3).unsqueeze(2)  # (C, P, 1, H, W)
    if t.shape[1] != in_channels:
        raise ValueError(f"stack has {t.shape[1]} channels, the model takes {in_channels}")
    return t.unsqueeze(0)


def fit_reference_sigma(stacks: Sequence[torch.Tensor], *, crop: int = 256) -> float:
    """Gaussian sigma mapping the sharp to the most-blurred plane, over normalised stacks ``(B, P, C, H, W)``."""
    from ..augment.blur import fit_gaussian_sigma

    sharp = [_center_crop(s[:, 0], crop) for s in stacks]
    blurred = [_center_crop(s[:, -1], crop) for s in stacks]
    max_sigma = max(4.0, min(min(s.shape[-2:]) for s in sharp) / 4)
    return fit_gaussian_sigma(sharp, blurred, max_sigma=max_sigma)


# ------------------------------------------------------------------------------------------ metrics
def psnr(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio (dB) of one image pair."""
    p = torch.as_tensor(pred, dtype=torch.float64)
    t = torch.as_tensor(target, dtype=torch.float64)
    mse = float((p - t).square().mean())
    return math.inf if mse == 0 else 10 * math.log10(data_range**2 / mse)


def ssim(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray, data_range: float = 1.0) -> float:
    """SSIM of one 2D grey image pair (``skimage.metrics``, Gaussian window σ = 1.5, as Wang et al. 2004
    and torchmetrics' default); inputs ``(H, W)`` (or ``(1, H, W)``)."""
    from skimage.metrics import structural_similarity

    p = np.asarray(torch.as_tensor(pred, dtype=torch.float64).squeeze().cpu())
    t = np.asarray(torch.as_tensor(target, dtype=torch.float64).squeeze().cpu())
    if p.ndim != 2:
        raise ValueError(f"ssim: expected a 2D image, got shape {p.shape}")
    return float(structural_similarity(p, t, data_range=data_range, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def _batch_psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    mse = (pred.float() - target.float()).square().flatten(1).mean(1).clamp_min(1e-12)
    return 10 * torch.log10(1.0 / mse)


# ----------------------------------------------------------------------------------------- training
def _val_fn(val_set: FocalStackPatches, collate: Any, positions: Sequence[float], device: torch.device, batch: int = 16):
    """Mean PSNR of the intermediate planes synthesised from the real sharp and most-blurred planes."""
    items = [val_set[i] for i in range(len(val_set))]
    p = len(positions)
    t_inner = torch.tensor(positions[1:-1], dtype=torch.float32)

    def validate(model: torch.nn.Module) -> dict[str, float]:
        ours, pixel = [], []
        for start in range(0, len(items), batch):
            planes = collate(items[start : start + batch])["planes"].to(device)  # (B, P, C, H, W)
            b = planes.shape[0]
            t = t_inner.to(device).repeat(b)
            sharp = planes[:, :1].expand(-1, p - 2, -1, -1, -1).flatten(0, 1)
            blurred = planes[:, -1:].expand(-1, p - 2, -1, -1, -1).flatten(0, 1)
            target = planes[:, 1:-1].flatten(0, 1)
            pred = synthesize_blur(model, sharp, blurred, t)
            ours.append(_batch_psnr(pred, target))
            lerp = torch.lerp(sharp, blurred, t.view(-1, 1, 1, 1))
            pixel.append(_batch_psnr(lerp, target))
        return {"val_psnr": float(torch.cat(ours).mean()), "val_psnr_pixel_interp": float(torch.cat(pixel).mean())}

    return validate


def _collate_for(model_cfg: BlurModelConfig):
    if model_cfg.in_channels == 1:
        return fold_channels

    def collate(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return {"planes": torch.stack([it["planes"] for it in items])}

    return collate


def train_blur(cfg: BlurConfig, *, resume: bool = False, progress: bool = True, stop_after: int | None = None):
    """Train the autoencoder as configured (``medrobust blur train``).

    Writes ``runs/<name>/{config.yaml, blur_meta.json, metrics.jsonl, last.pt, best.pt, model.pt}``;
    ``model.pt`` (the best validation weights with hyperparameters, plane positions, reference blur
    and intensity mapping) is what ``synthesize``/``deblur``/``evaluate`` and :class:`LatentBlur` load.
    Returns the :class:`~medrobust.train.loop.FitResult`.
    """
    import json

    from ..train.loop import dist_env, fit_config, resolve_device

    env = dist_env()
    device = resolve_device(cfg.train.device, env)
    data = prepare_blur_data(cfg)
    run_dir = cfg.run_dir
    arrays = [load_stack(s, data.planes) for s in data.train]
    shapes = {a.shape[0] for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"{data.root}: training stacks have different plane counts {sorted(shapes)}; select planes with data.planes")
    if cfg.model.in_channels != 1:
        for name, a in zip((s.name for s in data.train), arrays):
            c = a.shape[3] if a.ndim == 4 else 1
            if c != cfg.model.in_channels:
                raise ValueError(f"stack {name!r} has {c} channel(s), model.in_channels is {cfg.model.in_channels} "
                                 "(use model.in_channels: 1 to process channels one by one)")
    intensity = Intensity.fit(cfg.data.intensity, arrays)
    names = [s.name for s in data.train]
    train_set = FocalStackPatches(arrays, patch_size=cfg.data.patch_size, patches_per_stack=cfg.data.patches_per_stack,
                                  intensity=intensity, flips=cfg.data.flips, seed=None)
    for i, a in enumerate(arrays):
        if min(a.shape[1:3]) < cfg.data.patch_size:
            raise ValueError(f"stack {names[i]!r}: {a.shape[1]}x{a.shape[2]} is smaller than data.patch_size {cfg.data.patch_size}")
    val_set = FocalStackPatches(data.val, patch_size=cfg.data.patch_size, patches_per_stack=cfg.data.val_patches,
                                planes=data.planes, intensity=intensity, flips=False, seed=cfg.seed + 1)
    meta_path = run_dir / "blur_meta.json"
    if resume and meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    else:
        ref_sigma = fit_reference_sigma([_stack_tensor(a, intensity, 1) for a in arrays])
        meta = {"positions": data.positions, "reference_sigma": ref_sigma, "intensity": intensity.to_dict(),
                "planes": data.planes, "data_root": str(data.root)}
    if env.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
        atomic_write_json(meta_path, meta)
    torch.manual_seed(cfg.seed)
    model = build_blur_model(cfg)
    triplets = plane_triplets(len(data.positions), cfg.loss.triplets)
    alphas = triplet_alphas(data.positions, triplets)
    w = cfg.loss

    def step_fn(net: torch.nn.Module, batch: dict[str, torch.Tensor], generator: torch.Generator):
        return blur_losses(net, batch["planes"], triplets, alphas, reconstruction=w.reconstruction, explicit=w.explicit,
                           implicit=w.implicit)

    collate = _collate_for(cfg.model)
    result = fit_config(cfg, model=model, train_set=train_set, collate=collate, step_fn=step_fn,
                        validate_fn=_val_fn(val_set, collate, data.positions, device), device=device,
                        metric_name="val_psnr", resume=resume, progress=progress, stop_after=stop_after)
    if env.is_main and result.step == cfg.train.steps:
        best = run_dir / "best.pt"
        state = torch.load(best if best.is_file() else run_dir / "last.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        save_blur_model(run_dir / "model.pt", model, positions=meta["positions"], reference_sigma=meta["reference_sigma"],
                        intensity=meta["intensity"], config=cfg.model_dump(mode="json"))
    return result


# --------------------------------------------------------------------------------------- evaluation
SYNTHESIS_METHODS = ("latent (sharp + blurred planes)", "latent (sharp + PSF reference)", "pixel interpolation",
                     "Gaussian blur (best σ per plane)")
DEBLUR_METHODS = ("latent extrapolation", "pixel extrapolation", "no deblurring (input plane)")


def _config_from(bundle: BlurModel, overrides: Sequence[str] = ()) -> BlurConfig:
    from ..config import apply_overrides

    data = dict(bundle.config) if isinstance(bundle.config, Mapping) else {}
    data = apply_overrides(data, overrides)
    data["task"] = "microscopy_blur"
    return validate(data, source=f"{bundle.source} (stored config)", model=BlurConfig)


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
    from ..models.blur_autoencoder import pad_to_multiple

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

    from ..augment.blur import defocus_blur, fit_gaussian_sigma
    from ..train.loop import resolve_device

    models = dict(checkpoint_or_run_dir) if isinstance(checkpoint_or_run_dir, Mapping) else {
        "latent": checkpoint_or_run_dir}
    dev = resolve_device(device)
    bundles = {name: load_blur_model(path, device=dev) for name, path in models.items()}
    first = next(iter(bundles.values()))
    cfg = _config_from(first, overrides)
    data = prepare_blur_data(cfg, data_root)
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
    results: dict[str, Any] = {
        "task": "microscopy_blur",
        "run": out_dir.name,
        "models": {name: {"checkpoint": b.source, "reference_sigma": b.reference_sigma} for name, b in bundles.items()},
        "data": {"root": str(data.root), "split": cfg.evaluate.split if data_root is None else "all",
                 "stacks": [n for n, _ in stacks], "planes": data.planes, "crop": cfg.evaluate.crop,
                 "synthetic": data.synthetic, "intensity": intensity.to_dict()},
        "positions": positions,
        "gaussian_sigmas": {str(k): v for k, v in sigmas.items()},
        "synthesis": ordered(synth.summary(positions), SYNTHESIS_METHODS[:2]),
        "deblur": ordered(debl.summary(positions), DEBLUR_METHODS[:1]),
        "linearity": {name: {"relative_deviation": float(np.mean([a for a, _ in v])),
                             "step_cosine": float(np.mean([c for _, c in v]))} for name, v in lin.items()},
        "references": _published_references(),
    }
    figures = []
    if cfg.evaluate.figure_stacks > 0 and stacks:
        figures.append(_plot_planes(bundles, stacks[: cfg.evaluate.figure_stacks], positions, fig_dir / "planes.png"))
        figures.append(_plot_levels(bundles, stacks[: cfg.evaluate.figure_stacks], cfg.evaluate.levels, fig_dir / "levels.png"))
    results["files"] = {"markdown": str(out_dir / "report.md"), "json": str(out_dir / "report.json"),
                        "figures": [str(f) for f in figures]}
    out_dir.mkdir(parents=True, exist_ok=True)
    from ..evaluate.report import _sanitize

    atomic_write_json(out_dir / "report.json", _sanitize(results))
    atomic_write_text(out_dir / "report.md", _markdown(results))
    return results


def evaluate_blur_runs(runs: Mapping[str, str], *, out_dir: str | Path, overrides: Sequence[str] = (),
                       corrupted_root: str | None = None, device: str = "auto", progress: bool = True) -> dict[str, Any]:
    """``medrobust evaluate --run NAME=DIR ...`` entry point (``corrupted_root``: another data folder)."""
    return evaluate_blur(dict(runs), out_dir, data_root=corrupted_root, overrides=overrides, device=device, progress=progress)


def _published_references() -> dict[str, Any]:
    return {"note": "no published PSNR/SSIM numbers for linear-latent-blur were found in the paper's repository "
                    "(nis-research/linear-latent-blur README); see tasks/microscopy_blur.yaml"}


def blur_table(results: Mapping[str, Any]) -> str:
    """The synthesis and deblurring tables (markdown) of :func:`evaluate_blur` results."""
    from ..evaluate.report import format_table

    parts = []
    for key, title, target in (("synthesis", "Blur synthesis (intermediate planes)", "real plane k"),
                               ("deblur", "Deblurring (plane k -> in-focus plane)", "real plane 0")):
        rows = [{"Method": m, "PSNR (dB)": f"{v['psnr']:.2f}", "SSIM": f"{v['ssim']:.4f}", "images": v["n"]}
                for m, v in results[key].items()]
        parts.append(f"**{title}**, vs {target}\n\n" + format_table(rows, ["Method", "PSNR (dB)", "SSIM", "images"]))
    return "\n".join(parts)


def _per_plane_table(section: Mapping[str, Any], positions: Sequence[float]) -> str:
    from ..evaluate.report import format_table

    planes = sorted({int(k) for v in section.values() for k in v["per_plane"]})
    cols = ["Method", *[f"z{k} (t={positions[k]:.2f})" for k in planes]]
    rows = []
    for m, v in section.items():
        row = {"Method": m}
        for k, c in zip(planes, cols[1:]):
            pp = v["per_plane"].get(str(k))
            row[c] = f"{pp['psnr']:.2f} / {pp['ssim']:.3f}" if pp else None
        rows.append(row)
    return format_table(rows, cols)


def _markdown(results: Mapping[str, Any]) -> str:
    d = results["data"]
    lines = [
        "# Defocus blur synthesis and deblurring (linear-latent autoencoder)",
        "",
        f"Data: `{d['root']}` ({'embedded synthetic default' if d['synthetic'] else 'user data'}), split "
        f"`{d['split']}`: {len(d['stacks'])} stack(s); plane positions t = "
        f"{', '.join(f'{p:.3g}' for p in results['positions'])}; intensities mapped to [0, 1] by "
        f"`{d['intensity']['mode']}`; metrics per channel, PSNR with data range 1, SSIM with a Gaussian window (σ = 1.5).",
        "",
        "Synthesis rows render plane k from the in-focus plane (and, for the two-plane rows, the most-blurred plane) at "
        "its position t_k; the Gaussian baseline uses one sigma per plane fitted on these same test stacks "
        "(optimistic). Deblurring rows estimate the in-focus plane from plane k and the most-blurred plane with "
        "α = t_k: latent `(E(z_k) − α·E(blurred)) / (1 − α)` vs the same formula in pixel space.",
        "",
        blur_table(results),
        "## Per plane (PSNR dB / SSIM)",
        "",
        "**Synthesis**",
        "",
        _per_plane_table(results["synthesis"], results["positions"]),
        "**Deblurring**",
        "",
        _per_plane_table(results["deblur"], results["positions"]),
        "## Latent linearity",
        "",
        "Relative deviation: ‖E(x_k) − lerp(E(x_0), E(x_last), t_k)‖ / ‖E(x_last) − E(x_0)‖ averaged over intermediate "
        "planes (0 = exactly linear); step cosine: cosine similarity of consecutive latent steps (1 = straight path).",
        "",
    ]
    from ..evaluate.report import format_table

    lines.append(format_table([{"Model": n, "relative deviation": f"{v['relative_deviation']:.4f}",
                                "step cosine": f"{v['step_cosine']:.4f}"} for n, v in results["linearity"].items()],
                              ["Model", "relative deviation", "step cosine"]))
    sig = ", ".join(f"z{k}: {v:.2f}" for k, v in results["gaussian_sigmas"].items())
    refs = ", ".join(f"{n}: {m['reference_sigma']:.2f}" for n, m in results["models"].items())
    lines += [f"Fitted Gaussian sigmas (pixels) per plane: {sig}. Single-image reference blur σ (from training): {refs}.", ""]
    if results["files"]["figures"]:
        lines += ["## Figures", ""] + [f"![{Path(f).stem}](figures/{Path(f).name})" for f in results["files"]["figures"]] + [""]
    lines += ["## Published reference", "", results["references"]["note"], ""]
    return "\n".join(lines)


def _figure(nrows: int, ncols: int, scale: float = 1.6):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(scale * ncols + 1.2, scale * nrows + 0.4), dpi=100)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _show(ax: Any, img: torch.Tensor, title: str | None = None) -> None:
    ax.imshow(img.detach().float().cpu().squeeze().clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def _save(fig: Any, path: Path) -> Path:
    from ..io import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    return path


def _plot_planes(bundles: Mapping[str, BlurModel], stacks: Sequence[tuple[str, torch.Tensor]], positions: Sequence[float],
                 path: Path) -> Path:
    """Rows per stack: real planes, latent synthesis (two planes) per model, pixel interpolation."""
    p = len(positions)
    rows_per = 2 + len(bundles)
    fig, axes = _figure(rows_per * len(stacks), p)
    t = torch.tensor(positions, dtype=torch.float32)
    with torch.no_grad():
        for s, (sname, x) in enumerate(stacks):
            x1 = x[:1]  # first channel
            r0 = s * rows_per
            for k in range(p):
                _show(axes[r0][k], x1[0, k], f"z{k}  t={positions[k]:.2f}" if s == 0 else None)
            axes[r0][0].set_ylabel(f"{sname}\nreal", fontsize=8)
            for j, (name, b) in enumerate(bundles.items()):
                y = synthesize_blur(b.model.eval(), x1[:, 0].expand(p, -1, -1, -1), x1[:, -1].expand(p, -1, -1, -1),
                                    t.to(x.device))
                for k in range(p):
                    _show(axes[r0 + 1 + j][k], y[k])
                axes[r0 + 1 + j][0].set_ylabel(f"{name}" if len(bundles) > 1 else "latent", fontsize=8)
            lerp = torch.lerp(x1[:, 0].expand(p, -1, -1, -1), x1[:, -1].expand(p, -1, -1, -1), t.to(x.device).view(-1, 1, 1, 1))
            for k in range(p):
                _show(axes[r0 + rows_per - 1][k], lerp[k])
            axes[r0 + rows_per - 1][0].set_ylabel("pixel interp.", fontsize=8)
    return _save(fig, path)


def _plot_levels(bundles: Mapping[str, BlurModel], stacks: Sequence[tuple[str, torch.Tensor]], levels: Sequence[float],
                 path: Path) -> Path:
    """Synthesis across t from the in-focus plane and its PSF reference (t < 0: towards focus, t > 1: beyond)."""
    from ..augment.blur import defocus_blur

    fig, axes = _figure(len(stacks) * len(bundles), len(levels) + 1)
    lv = torch.tensor(levels, dtype=torch.float32)
    with torch.no_grad():
        r = 0
        for sname, x in stacks:
            sharp = x[:1, 0]
            for name, b in bundles.items():
                ref = defocus_blur(sharp, b.reference_sigma, "gaussian")
                y = synthesize_blur(b.model.eval(), sharp.expand(len(levels), -1, -1, -1), ref.expand(len(levels), -1, -1, -1),
                                    lv.to(x.device))
                _show(axes[r][0], sharp[0], "input (z0)" if r == 0 else None)
                axes[r][0].set_ylabel(sname if len(bundles) == 1 else f"{sname}\n{name}", fontsize=8)
                for j, level in enumerate(levels):
                    _show(axes[r][j + 1], y[j], f"t = {level:g}" if r == 0 else None)
                r += 1
    return _save(fig, path)


# -------------------------------------------------------------------------------------------- bench
def bench_blur(device: str = "cpu", repeats: int = 3, quick: bool = False) -> list[dict[str, Any]]:
    """Synthesis throughput at 512×512 (images/s) and training step time (seconds).

    Rows: latent synthesis ``D((1 − t)E(x) + tE(ref))`` with the default CPU config's widths and the
    paper's (64…1024) on 4×1×512×512; the :class:`LatentBlur` core (includes the reference blur); the
    classical :class:`DefocusBlur` core (small radii → grouped conv, large → FFT) on 8×1×512×512; one
    optimiser step of the default config (8 stacks × 7 planes × 32²) and of the paper model
    (2 stacks × 9 planes × 128²). ``quick``: 128×128 inputs and tiny steps (a smoke test).
    """
    from ..augment.blur import DefocusBlur, LatentBlur
    from ..bench import timeit

    dev = torch.device(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    size, n_img = (128, 2) if quick else (512, 4)
    rows: list[dict[str, Any]] = []
    x = torch.rand(n_img, 1, size, size, device=dev)
    levels = torch.rand(n_img, generator=gen).to(dev) * 1.5
    torch.manual_seed(0)
    for label, widths in (("default config", DEFAULT_WIDTHS), ("paper (64-1024)", PAPER_WIDTHS)):
        model = BlurAutoencoder(widths=widths).to(dev).eval()

        def run(m: BlurAutoencoder = model) -> None:
            with torch.no_grad():
                synthesize_blur(m, x, x, levels)

        t = timeit(run, dev, repeats=repeats)
        rows.append({"input": f"{n_img}x1x{size}x{size}", "method": f"latent synthesis, {label} widths {list(widths)}",
                     "seconds": t, "images_per_s": n_img / t})
        if label == "default config":
            core = LatentBlur(model, reference_sigma=3.0)
            t = timeit(lambda: core(x, gen), dev, repeats=repeats)
            rows.append({"input": f"{n_img}x1x{size}x{size}", "method": f"LatentBlur core, {label} (incl. reference blur)",
                         "seconds": t, "images_per_s": n_img / t})
    xb = torch.rand(2 * n_img, 1, size, size, device=dev)
    for label, core in (("DefocusBlur disk r 0.5-4 (conv)", DefocusBlur(radius=(0.5, 4.0))),
                        ("DefocusBlur disk r 8-16 (FFT)", DefocusBlur(radius=(8.0, 16.0))),
                        ("DefocusBlur gaussian σ 0.5-4", DefocusBlur(radius=(0.5, 4.0), kind="gaussian"))):
        t = timeit(lambda c=core: c(xb, gen), dev, repeats=repeats)
        rows.append({"input": f"{2 * n_img}x1x{size}x{size}", "method": label, "seconds": t, "images_per_s": 2 * n_img / t})
    setups = [("default config", DEFAULT_WIDTHS, 8, 7, 32), ("paper (64-1024)", PAPER_WIDTHS, 2, 9, 128)]
    if quick:
        setups = [("default config", DEFAULT_WIDTHS, 2, 5, 32), ("paper (64-1024)", PAPER_WIDTHS, 1, 3, 32)]
    for label, widths, n, p, s in setups:
        torch.manual_seed(0)
        model = BlurAutoencoder(widths=widths).to(dev).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        planes = torch.rand(n, p, 1, s, s, device=dev)
        tri = plane_triplets(p, "endpoints")
        alphas = triplet_alphas(linear_positions(p), tri)

        def step(m: BlurAutoencoder = model, o: torch.optim.Optimizer = opt, pl: torch.Tensor = planes,
                 tr: list = tri, al: torch.Tensor = alphas) -> None:
            loss, _ = blur_losses(m, pl, tr, al)
            o.zero_grad(set_to_none=True)
            loss.backward()
            o.step()

        t = timeit(step, dev, repeats=max(1, repeats), warmup=1)
        rows.append({"input": f"train {n} stacks x {p} planes x {s}x{s}", "method": f"train step, {label}",
                     "seconds": t, "steps_per_s": 1 / t, "images_per_s": n * p / t})
    return rows

