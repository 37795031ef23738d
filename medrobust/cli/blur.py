"""``medrobust blur train | evaluate | synthesize | deblur``: microscopy defocus with a linear-latent autoencoder.

Wired into the main CLI by ``add_blur_parser(subparsers)``; each action sets ``func``. Errors in inputs
raise ``ValueError``/``FileNotFoundError``/``FileExistsError`` (the main CLI prints them in one line and
exits with status 2).

* ``blur train --config C [--set k=v] [--resume | --overwrite]``: train on the shared loop; writes
  ``<output_dir>/<name>/model.pt`` (a run folder with a checkpoint is refused without one of the two).
* ``blur evaluate --run [NAME=]MODEL --out DIR [--data-root R]``: PSNR/SSIM report against baselines.
* ``blur synthesize --checkpoint C --input IMG_OR_DIR --level t [--blurred REF] [--out O]``:
  ``D((1 − t)·E(x) + t·E(ref))``; ``t`` in [0, 1] interpolates between the input and the reference
  blur, ``t > 1`` extrapolates. Without ``--blurred`` the reference is the Gaussian blur stored with the
  model (the sharp-to-most-blurred blur of the training stacks).
* ``blur deblur --checkpoint C --input IMG_OR_DIR --strength s [--blurred REF] [--out O]``:
  ``D((E(x) − s·E(ref)) / (1 − s))``. With ``--blurred`` = the most-blurred plane of the same field,
  ``s`` is the input's blur position ``t_k`` and the result estimates the in-focus plane.

Outputs keep the input's format (PNG/TIFF), dtype (8/16-bit) and intensity units; existing outputs are
never replaced without ``--overwrite``, and inputs are never overwritten.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from .common import check_in_folder, check_out_folder, parse_runs

__all__ = ["add_blur_parser", "cmd_blur_train", "cmd_blur_evaluate", "cmd_blur_synthesize", "cmd_blur_deblur",
           "process_image", "plan_outputs"]


def _progress_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_blur_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``blur`` with its actions to an ``argparse`` subparsers object; returns the ``blur`` parser."""
    p = subparsers.add_parser(
        "blur", help="microscopy defocus: train the linear-latent autoencoder, synthesise blur, deblur, evaluate",
        description="Defocus blur synthesis and removal with a linear-latent autoencoder (CAIP 2023).")
    sub = p.add_subparsers(dest="blur_command", metavar="ACTION", required=True)

    t = sub.add_parser(
        "train", help="train the autoencoder on focal stacks (embedded default when data.root is null)",
        description="Train the linear-latent autoencoder on focal stacks (data.root: null writes the embedded "
                    "synthetic stacks under <output_dir>/data/). The run goes to <output_dir>/<name>/: config.yaml, "
                    "blur_meta.json, metrics.jsonl, last.pt, best.pt and, at the end, model.pt (the best weights "
                    "with everything synthesize/deblur/evaluate need).")
    t.add_argument("--config", "-c", help="YAML config (see configs/microscopy/linear_latent.yaml); defaults when omitted")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.steps=100 (repeatable)")
    from ..train.loop import RESUME_SAFE_KEYS

    t.add_argument("--resume", action="store_true", help="continue exactly from <run>/last.pt; the config may differ "
                   f"from the run's config.yaml only in {', '.join(RESUME_SAFE_KEYS)} (train.steps: larger, with "
                   "train.schedule constant)")
    t.add_argument("--overwrite", action="store_true", help="start over in a run folder that holds a checkpoint: "
                   "removes its last.pt, best.pt, model.pt, metrics.jsonl, blur_meta.json first")
    _progress_flag(t)
    t.set_defaults(func=cmd_blur_train)

    e = sub.add_parser(
        "evaluate", help="PSNR/SSIM of synthesised planes vs held-out real planes, with baselines",
        description="Synthesise and deblur the held-out planes of test stacks and score them (PSNR, SSIM) against "
                    "the real planes, beside pixel interpolation/extrapolation and a best-sigma Gaussian blur; "
                    "writes OUT/report.md, OUT/report.json and OUT/figures/.")
    e.add_argument("--run", action="append", required=True, metavar="[NAME=]MODEL",
                   help="a model.pt or run directory from `blur train` (repeat to compare models)")
    e.add_argument("--out", required=True, metavar="DIR",
                   help="output folder (created) for report.md, report.json and figures/")
    e.add_argument("--data-root", metavar="DIR",
                   help="evaluate on every stack of this folder (default: the run's test split)")
    e.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override keys of the stored config, e.g. evaluate.crop=256")
    e.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda when available)")
    _progress_flag(e)
    e.set_defaults(func=cmd_blur_evaluate)

    for name, helptext, description, knob, knob_help in (
        ("synthesize", "render an image (or every image of a folder) at another blur level",
         ("Render D((1 - t)·E(x) + t·E(ref)): t in [0, 1] interpolates between the input and the reference blur, "
          "t > 1 extrapolates. Outputs keep the input's format, dtype and intensity units."), "--level",
         "blur level t >= 0: 0 = the input, 1 = the reference blur, > 1 extrapolates"),
        ("deblur", "move an out-of-focus image (or folder) towards focus by latent extrapolation",
         ("Render D((E(x) - s·E(ref)) / (1 - s)); with --blurred the most-blurred plane of the same field and s the "
          "input's blur position, the result estimates the in-focus plane. Outputs keep the input's format, dtype "
          "and intensity units."), "--strength",
         "extrapolation strength s in [0, 1): with --blurred the input's blur position t_k"),
    ):
        s = sub.add_parser(name, help=helptext, description=description)
        s.add_argument("--checkpoint", required=True, help="model.pt (or run directory) from `medrobust blur train`")
        s.add_argument("--input", required=True, help="a PNG/TIFF image or a folder of them")
        s.add_argument(knob, dest="value", type=float, required=True, help=knob_help)
        s.add_argument("--blurred", help="the more-blurred image of the same field (a folder with the same file names "
                                         "for folder input); default: the model's reference Gaussian blur of the input")
        s.add_argument("--reference-sigma", type=float,
                       help="Gaussian sigma (pixels) of the default reference blur (default: stored with the model)")
        s.add_argument("--out", help="output file or folder (default: <input>_<action><value> next to the input)")
        s.add_argument("--overwrite", action="store_true", help="replace existing outputs")
        s.add_argument("--intensity", choices=("checkpoint", "image", "dtype"), default="checkpoint",
                       help="how pixels map to [0, 1]: as in training (default), min-max of each input image, or the "
                            "full scale of its dtype")
        s.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda when available)")
        _progress_flag(s)
        s.set_defaults(func=cmd_blur_synthesize if name == "synthesize" else cmd_blur_deblur, blur_action=name)
    return p


# -------------------------------------------------------------------------------------------- train
def cmd_blur_train(args: argparse.Namespace) -> int:
    """``medrobust train`` for ``task: microscopy`` configs only; also names the exported ``model.pt``."""
    from ..config import load_config
    from ..tasks.microscopy import TASK, BlurConfig

    cfg = load_config(args.config, args.overrides, model=BlurConfig)
    result = TASK.train(cfg, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress)
    model = result.run_dir / "model.pt"
    print(f"trained {cfg.name}: step {result.step}, best val_psnr {result.best_metric:.2f} dB at step {result.best_step}; "
          f"model {model if model.is_file() else '(not exported: training incomplete)'}")
    return 0


def cmd_blur_evaluate(args: argparse.Namespace) -> int:
    """``medrobust evaluate`` for blur models: also takes ``model.pt`` files and ``--data-root``."""
    from ..tasks.microscopy import TASK

    runs = parse_runs(args.run)
    check_out_folder(args.out)
    check_in_folder(args.data_root, "--data-root")
    if len(runs) == 1:  # a single model is reported as "latent"
        runs = {"latent": next(iter(runs.values()))}
    results = TASK.evaluate(runs, out_dir=args.out, overrides=args.overrides, corrupted_root=args.data_root,
                            device=args.device, progress=not args.no_progress)
    print(TASK.table(results))
    print(f"report: {results['files']['markdown']}")
    return 0


# ----------------------------------------------------------------------------------- synthesize/deblur
def _images_in(folder: Path) -> list[Path]:
    from ..data.microscopy import IMAGE_SUFFIXES

    return sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")
                  and f.suffix.lower() in IMAGE_SUFFIXES)


def plan_outputs(input_path: str | Path, out: str | Path | None, tag: str, *, blurred: str | Path | None = None,
                 overwrite: bool = False) -> list[tuple[Path, Path | None, Path]]:
    """``(input, reference or None, output)`` for every image; refuses to overwrite (unless asked) and
    never writes onto an input."""
    from ..data.microscopy import IMAGE_SUFFIXES

    src = Path(input_path)
    ref = Path(blurred) if blurred is not None else None
    if not src.exists():
        raise FileNotFoundError(f"--input {src}: not found")
    if ref is not None and not ref.exists():
        raise FileNotFoundError(f"--blurred {ref}: not found")
    jobs: list[tuple[Path, Path | None, Path]] = []
    if src.is_dir():
        files = _images_in(src)
        if not files:
            raise ValueError(f"--input {src}: no .png/.tif/.tiff images in this folder")
        if ref is not None and not ref.is_dir():
            raise ValueError(f"--blurred {ref}: expected a folder (the input is a folder)")
        out_dir = Path(out) if out is not None else src.with_name(f"{src.name}_{tag}")
        if out_dir.exists() and not out_dir.is_dir():
            raise ValueError(f"--out {out_dir}: expected a folder for folder input")
        check_out_folder(out_dir)
        for f in files:
            r = None
            if ref is not None:
                r = ref / f.name
                if not r.is_file():
                    raise FileNotFoundError(f"{r}: missing reference for {f}")
            jobs.append((f, r, out_dir / f.name))
    else:
        if src.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(f"--input {src}: unsupported format (expected {', '.join(IMAGE_SUFFIXES)})")
        if ref is not None and not ref.is_file():
            raise ValueError(f"--blurred {ref}: expected an image file (the input is a file)")
        if out is None:
            target = src.with_name(f"{src.stem}_{tag}{src.suffix}")
        else:
            target = Path(out)
            if target.is_dir() or str(out).endswith(("/", "\\")):
                target = target / src.name
            elif target.suffix.lower() not in IMAGE_SUFFIXES:
                raise ValueError(f"--out {target}: expected a .png/.tif/.tiff file or an existing folder")
            blocked = next((q for q in target.parents if q.exists() and not q.is_dir()), None)
            if blocked is not None:
                raise ValueError(f"--out {target}: {blocked} is a file, not a folder")
        jobs.append((src, ref, target))
    inputs = {p.resolve() for j in jobs for p in j[:2] if p is not None}
    for _, _, o in jobs:
        if o.resolve() in inputs:
            raise ValueError(f"--out {o}: would overwrite an input image")
    existing = [o for _, _, o in jobs if o.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise FileExistsError(f"{existing[0]}: output exists{more}; pass --overwrite to replace")
    return jobs


def process_image(bundle: Any, input_path: Path, output_path: Path, *, action: str, value: float,
                  reference_path: Path | None = None, reference_sigma: float | None = None,
                  intensity: str = "checkpoint", device: Any = "cpu") -> Path:
    """Synthesise (``action="synthesize"``, ``value`` = level t) or deblur (``value`` = strength) one image
    and write it with the input's format, dtype and intensity units."""
    import numpy as np
    import torch

    from ..augment.blur import defocus_blur
    from ..data.microscopy import Intensity, read_image, write_image
    from ..models.blur_autoencoder import deblur, synthesize_blur

    img = read_image(input_path)
    ref_img = read_image(reference_path) if reference_path is not None else None
    if ref_img is not None and (ref_img.shape != img.shape or ref_img.dtype != img.dtype):
        raise ValueError(f"{reference_path}: shape {ref_img.shape} {ref_img.dtype} differs from the input "
                         f"{input_path} {img.shape} {img.dtype}")
    if intensity == "checkpoint":
        imap = Intensity.from_dict(bundle.intensity)
    elif intensity == "image":
        imap = Intensity("stack")
    elif intensity == "dtype":
        imap = Intensity("dtype")
    else:
        raise ValueError(f"--intensity: expected checkpoint, image or dtype, got {intensity!r}")
    arrays = (img,) if ref_img is None else (img, ref_img)
    lo, hi = imap.range_of(*arrays)
    model = bundle.model

    def tensor(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(Intensity.normalize(a, lo, hi))
        t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)  # (C, H, W)
        return (t[:, None] if model.in_channels == 1 else t[None]).to(device)  # (B, C', H, W)

    x = tensor(img)
    if model.in_channels not in (1, x.shape[1]):
        raise ValueError(f"{input_path}: {x.shape[1]} channel(s), the model takes {model.in_channels}")
    sigma = bundle.reference_sigma if reference_sigma is None else float(reference_sigma)
    ref = tensor(ref_img) if ref_img is not None else defocus_blur(x, sigma, "gaussian")
    with torch.no_grad():
        y = synthesize_blur(model, x, ref, value) if action == "synthesize" else deblur(model, x, ref, value)
    y = y.float().cpu()
    out = y[:, 0].numpy() if model.in_channels == 1 else y[0].numpy()  # (C, H, W)
    out = out[0] if img.ndim == 2 else np.moveaxis(out, 0, -1)
    return write_image(output_path, Intensity.denormalize(out, lo, hi, img.dtype))


def _run_images(args: argparse.Namespace, action: str) -> int:
    from tqdm.auto import tqdm

    from ..models.blur_autoencoder import load_blur_model
    from ..train.loop import resolve_device

    value = float(args.value)
    if not math.isfinite(value):
        raise ValueError(f"--{'level' if action == 'synthesize' else 'strength'}: expected a finite number, got {value}")
    if action == "synthesize" and value < 0:
        raise ValueError(f"--level: expected t >= 0, got {value} (use `medrobust blur deblur` to move towards focus)")
    if action == "deblur" and not 0 <= value < 1:
        raise ValueError(f"--strength: expected s in [0, 1), got {value}")
    if args.reference_sigma is not None and not (args.reference_sigma >= 0 and math.isfinite(args.reference_sigma)):
        raise ValueError(f"--reference-sigma: expected a number >= 0, got {args.reference_sigma}")
    tag = f"{'blur' if action == 'synthesize' else 'deblur'}{value:g}"
    jobs = plan_outputs(args.input, args.out, tag, blurred=args.blurred, overwrite=args.overwrite)
    device = resolve_device(args.device, what="--device")
    bundle = load_blur_model(args.checkpoint, device=device)
    for inp, ref, outp in tqdm(jobs, desc=action, unit="image", disable=args.no_progress or len(jobs) < 2):
        process_image(bundle, inp, outp, action=action, value=value, reference_path=ref,
                      reference_sigma=args.reference_sigma, intensity=args.intensity, device=device)
    where = jobs[0][2] if len(jobs) == 1 else jobs[0][2].parent
    print(f"{action}: wrote {len(jobs)} image(s) to {where}")
    return 0


def cmd_blur_synthesize(args: argparse.Namespace) -> int:
    return _run_images(args, "synthesize")


def cmd_blur_deblur(args: argparse.Namespace) -> int:
    return _run_images(args, "deblur")
