"""Training of the linear-latent autoencoder on the shared loop: aligned random patches of all planes,
the reconstruction and linearity losses, validation PSNR of the synthesised intermediate planes (picks
``best.pt``), and the self-contained ``model.pt`` exported at the end."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ...data.microscopy import FocalStackPatches, Intensity, fold_channels, load_stack
from ...evaluate.metrics import batch_psnr
from ...io import atomic_write_json
from ...models.blur_autoencoder import (
    blur_losses,
    plane_triplets,
    save_blur_model,
    synthesize_blur,
    triplet_alphas,
)
from .config import BlurConfig, BlurModelConfig
from .data import _stack_tensor, build_model, fit_reference_sigma, prepare_data


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
            ours.append(batch_psnr(pred, target))
            lerp = torch.lerp(sharp, blurred, t.view(-1, 1, 1, 1))
            pixel.append(batch_psnr(lerp, target))
        return {"val_psnr": float(torch.cat(ours).mean()), "val_psnr_pixel_interp": float(torch.cat(pixel).mean())}

    return validate


def _collate_for(model_cfg: BlurModelConfig):
    if model_cfg.in_channels == 1:
        return fold_channels

    def collate(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return {"planes": torch.stack([it["planes"] for it in items])}

    return collate


def train_blur(cfg: BlurConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True,
               stop_after: int | None = None):
    """Train the autoencoder as configured (``medrobust blur train``).

    Writes ``runs/<name>/{config.yaml, blur_meta.json, metrics.jsonl, last.pt, best.pt, model.pt}``;
    ``model.pt`` (the best validation weights with hyperparameters, plane positions, reference blur
    and intensity mapping) is what ``synthesize``/``deblur``/``evaluate`` and :class:`LatentBlur` load.
    Returns the :class:`~medrobust.train.loop.FitResult`.
    """
    import json

    from ...train.loop import dist_env, fit_config, prepare_run_dir, resolve_device

    if cfg.experiment != "blur":
        raise ValueError(f"experiment: {cfg.experiment} trains with `medrobust train --config ...`, not `medrobust blur train`")
    env = dist_env()
    device = resolve_device(cfg.train.device, env)
    run_dir = prepare_run_dir(cfg, resume=resume, overwrite=overwrite, outputs=("blur_meta.json",), env=env)
    data = prepare_data(cfg)
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
        atomic_write_json(meta_path, meta)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg)
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
