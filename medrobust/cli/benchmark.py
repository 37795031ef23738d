"""``medrobust benchmark``: corruption robustness of any classifier, on the fly or from published -C sets.

Wired into the main CLI by :func:`add_parser`. The engine is :mod:`medrobust.evaluate.benchmark`,
the readers :mod:`medrobust.data.imagenet`, the model specs :mod:`medrobust.tasks.benchmark`.
Under ``torchrun`` every rank evaluates its share of the images and the counts are summed.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from .common import check_in_folder, check_out_folder

__all__ = ["add_parser", "cmd_benchmark", "run_benchmark_cli", "write_demo_data"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``benchmark`` to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "benchmark", help="corruption robustness of any classifier (on the fly, -C folders, CIFAR-C), resumable",
        description="Evaluate one or more classifiers on every corruption x severity: an ImageNet-val-layout folder "
                    "(ROOT/<class>/<image>, or a flat val/ + labels file) corrupted on the fly (resize 256, centre "
                    "crop 224, corruption on the crop, a fixed seed per image, corruption and severity), published "
                    "-C folders (ROOT/<corruption>/<severity>/<class>/<image>) or CIFAR-10/100-C .npy files. Writes "
                    "OUT/results.csv, OUT/report.md, OUT/report.json, OUT/figures/ and OUT/cells.json (finished cells: "
                    "a killed run continues where it stopped). Under torchrun the images are sharded across ranks.")
    p.add_argument("--model", action="append", default=[], metavar="[NAME=]SPEC",
                   help="a medrobust run directory, torchvision:ARCH=PATH or timm:ARCH=PATH (local .safetensors/.pt "
                        "weights, never downloaded); NAME=SPEC names it; repeat for several models")
    p.add_argument("--data", metavar="ROOT", help="the test set (layout detected: image folder, -C folders, CIFAR-C)")
    p.add_argument("--out", metavar="DIR", help="output folder (created)")
    p.add_argument("--labels", metavar="FILE", help="labels file of a flat val/ folder (LOC_val_solution.csv or "
                   "'<file> <class>' lines)")
    p.add_argument("--clean", metavar="DIR", help="clean set of a -C source (image folder; CIFAR python release for CIFAR-C)")
    p.add_argument("--corruptions", default="common", help="common (default, the 15 of ImageNet-C), all, extra, or "
                   "a comma-separated list")
    p.add_argument("--severities", default=None, help="e.g. 1-5 (default; --demo: 1,3,5 on the digits, 1-5 on "
                   "the photographs), 1,3,5")
    p.add_argument("--baseline", metavar="NAME", help="model to compare against (relative robustness, mCE vs it); the "
                   "survey uses ResNet-18")
    p.add_argument("--resize", type=int, default=256, help="shorter side before the centre crop (default 256; 0: none)")
    p.add_argument("--crop", type=int, default=224, help="centre crop side (default 224)")
    p.add_argument("--table", default="auto", choices=["auto", "imagenet", "cifar"],
                   help="corruption parameters (auto: cifar for crops of 64 pixels or less)")
    p.add_argument("--max-images", type=int, default=None, help="a seeded subset of this many images per cell "
                   f"(default all; --demo: {DEMO_MAX_IMAGES}, 0: all)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (results do not depend on it)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: min(4, CPUs))")
    p.add_argument("--seed", type=int, default=0, help="base seed of the on-the-fly corruptions (default 0)")
    p.add_argument("--demo", action="store_true", help="no data needed: train small models on the embedded digits, "
                   "benchmark them on their test split and on scikit-image's photographs (about 2 CPU minutes; "
                   "the full demo protocol: --steps 100 --severities 1-5 --max-images 0)")
    p.add_argument("--steps", type=int, default=DEMO_STEPS,
                   help=f"--demo: training steps per model (default {DEMO_STEPS})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_benchmark)
    return p


def _corruption_list(spec: str) -> list[str]:
    from ..augment import corruption_names

    if spec in ("common", "all", "extra"):
        return corruption_names(spec)
    known = corruption_names("all")
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"--corruptions: unknown {unknown or spec!r}; choose common, all, extra or names from {known}")
    return names


def run_benchmark_cli(models: list[str], data: str, out: str, *, corruptions: str = "common", severities: str = "1-5",
                      labels: str | None = None, clean: str | None = None, baseline: str | None = None,
                      resize: int | None = 256, crop: int = 224, table: str = "auto", max_images: int | None = None,
                      device: str = "auto", batch_size: int = 64, workers: int | None = None, seed: int = 0,
                      progress: bool = True, stop_after: int | None = None) -> dict[str, Any]:
    """The whole command: resolve the models, open the data, run the cells, write the outputs (rank 0).
    Returns ``{"summary", "files", "table"}``."""
    import torch

    from ..corrupt import parse_severities
    from ..data.imagenet import open_source
    from ..evaluate.benchmark import (
        run_benchmark,
        summarise,
        summary_table,
        write_benchmark_report,
    )
    from ..tasks.benchmark import resolve_model
    from ..train.loop import dist_env, resolve_device

    if not models:
        raise ValueError("--model: give at least one model (or --demo)")
    if data is None or out is None:
        raise ValueError("--data and --out are required (or --demo)")
    if batch_size < 1:
        raise ValueError(f"--batch-size: expected a positive int, got {batch_size}")
    if crop < 8:
        raise ValueError(f"--crop: expected at least 8 pixels, got {crop}")
    env = dist_env()
    dev = resolve_device(device, env, what="--device")
    check_out_folder(out)
    check_in_folder(data, "--data")
    check_in_folder(clean, "--clean")
    names = _corruption_list(corruptions)
    sevs = parse_severities(severities)
    if env.distributed:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
            if dev.type == "cuda":
                torch.cuda.set_device(dev)
    resize = resize or None
    source = open_source(data, corruptions=names, severities=sevs, labels=labels, clean=clean, resize=resize, crop=crop,
                         max_images=max_images, seed=seed, missing_ok=corruptions == "common")
    if not source.on_the_fly:  # a -C set: the corruptions it has of the requested ones (-C-bar, 3DCC: its own)
        names = source.corruptions()
    tab = table if table != "auto" else ("cifar" if source.size <= 64 else "imagenet")
    bench_models = [resolve_model(m, dev) for m in models]
    seen: set[str] = set()
    for m in bench_models:
        if m.name in seen:
            raise ValueError(f"--model: name {m.name!r} given twice (use NAME=SPEC)")
        seen.add(m.name)
    if baseline is not None and baseline not in seen:
        raise ValueError(f"--baseline {baseline}: not one of the models {sorted(seen)}")
    n_images = len(source.clean) if source.clean is not None else len(next(iter(source.cells.values())))
    settings = {"data": source.describe, "corruptions": names, "severities": sevs, "seed": seed, "table": tab,
                "resize": resize, "crop": crop, "max_images": max_images, "quantize": True,
                "models": {m.name: spec for m, spec in zip(bench_models, models)}}
    workers = min(4, os.cpu_count() or 1) if workers is None else workers
    done = run_benchmark(bench_models, source, corruptions=names, severities=sevs, out_dir=out, settings=settings,
                         batch_size=batch_size, seed=seed, device=dev, table=tab, workers=workers, progress=progress,
                         stop_after=stop_after)
    normalised = tab == "imagenet" and source.kind != "cifar_c"
    summary = summarise(done, [m.name for m in bench_models], names, sevs, baseline_model=baseline, normalised=normalised)
    files: dict[str, Any] = {}
    if env.rank == 0 and stop_after is None:
        meta = {**settings, "images": n_images, "device": str(dev), "world_size": env.world_size,
                "model_info": {m.name: m.info for m in bench_models}}
        files = write_benchmark_report(out, summary, corruptions=names, severities=sevs, meta=meta, baseline_model=baseline)
    return {"summary": summary, "files": files, "table": summary_table(summary, baseline)}


def cmd_benchmark(args: argparse.Namespace) -> int:
    progress = not args.no_progress
    if args.demo:
        out = args.out or "runs/benchmark_demo"
        check_out_folder(out)
        results = run_demo(out, device=args.device, progress=progress, seed=args.seed, steps=args.steps,
                           severities=args.severities,
                           max_images=DEMO_MAX_IMAGES if args.max_images is None else args.max_images or None)
        for name, res in results.items():
            print(f"## {name}\n{res['table']}\nreport: {res['files'].get('markdown')}")
        return 0
    from ..train.loop import dist_env

    res = run_benchmark_cli(args.model, args.data, args.out, corruptions=args.corruptions,
                            severities=args.severities or "1-5",
                            labels=args.labels, clean=args.clean, baseline=args.baseline, resize=args.resize,
                            crop=args.crop, table=args.table, max_images=args.max_images, device=args.device,
                            batch_size=args.batch_size, workers=args.workers, seed=args.seed, progress=progress)
    if dist_env().rank == 0:
        print(res["table"])
        print(f"results: {res['files'].get('csv')}; report: {res['files'].get('markdown')}")
    return 0


# ------------------------------------------------------------------------------------------------ demo
#: scikit-image's bundled colour photographs used by the demo (``skimage.data.<name>()``)
DEMO_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")
#: the demo's defaults, cut for time (about 2 CPU minutes in all): 50 steps, digits on severities
#: 1, 3, 5 and 120 test images, photographs on all five severities (AlexNet's mCE needs them); the full
#: protocol: ``--steps 100 --severities 1-5 --max-images 0``
DEMO_STEPS, DEMO_SEVERITIES, DEMO_MAX_IMAGES = 50, "1,3,5", 120


def write_demo_data(out: str | Path, *, seed: int = 0) -> dict[str, Path]:
    """The demo's photographs: for each of :data:`DEMO_PHOTOS` (one class per photograph), 64-pixel
    (read at the model's 32)
    training crops from its upper 60 % in the domain layout ``OUT/photos_train/photo/<class>/``, and
    256-pixel test crops from its lower 40 % (content no training crop saw) in the ImageNet-val
    layout ``OUT/photos_val/<class>/*.JPEG`` (quality 95). Returns both roots."""
    import numpy as np
    import skimage.data
    from PIL import Image

    out = Path(out)
    train_root, val_root = out / "photos_train" / "photo", out / "photos_val"
    rng = np.random.default_rng(seed)
    for name in DEMO_PHOTOS:
        img = np.asarray(getattr(skimage.data, name)())[..., :3]
        im = Image.fromarray(img)
        w, h = im.size
        scale = 480 / min(w, h)
        im = im.resize((round(w * scale), round(h * scale)), Image.Resampling.BILINEAR)
        w, h = im.size
        split = int(0.6 * h)
        (train_root / name).mkdir(parents=True, exist_ok=True)
        (val_root / name).mkdir(parents=True, exist_ok=True)
        for j in range(60):
            side = int(rng.integers(96, min(split, w) + 1))
            x0, y0 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, split - side + 1))
            im.crop((x0, y0, x0 + side, y0 + side)).resize((64, 64), Image.Resampling.BILINEAR).save(
                train_root / name / f"{name}_{j:03d}.png")
        side = h - split
        for j, x0 in enumerate(np.linspace(0, w - side, 4).astype(int)):
            im.crop((int(x0), split, int(x0) + side, h)).resize((288, 288), Image.Resampling.BILINEAR).save(
                val_root / name / f"{name}_{j}.JPEG", quality=95)
    return {"train": train_root.parent, "val": val_root}


def _demo_digits_test(cfg: Any, out: Path) -> Path:
    """The digits run's in-domain test split as an ImageNet-layout folder ``out/<class>/<file>``."""
    import shutil

    from ..tasks.classification.train import prepare_data

    data = prepare_data(cfg)
    for rec in data.test.records:
        dst = out / data.classes[rec.label] / rec.path.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(rec.path, dst)
    return out


def run_demo(out: str | Path, *, device: str = "auto", progress: bool = True, seed: int = 0,
             steps: int = DEMO_STEPS, severities: str | None = None,
             max_images: int | None = DEMO_MAX_IMAGES) -> dict[str, Any]:
    """``medrobust benchmark --demo``: train the digits baseline and RandConv recipes and a photograph
    classifier briefly (``steps`` each), then benchmark (1) the two digits models on their in-domain
    test split (32 px, CIFAR table, baseline = the ERM model) and (2) the photograph model on held-out
    crops of scikit-image's photographs through the ImageNet protocol (resize 256, crop 224, corrupt,
    resized to the model's 32 px), on ``severities`` (None: :data:`DEMO_SEVERITIES` for the digits,
    1-5 for the photographs) and at most ``max_images`` images per cell (None: all). A model already
    trained in ``out`` is reused only when its saved config is identical; a
    retrained model discards its group's finished cells. Returns ``{name: run_benchmark_cli result}``."""
    import shutil

    from ..tasks import get_task, load_config
    from ..train.loop import config_changes

    if steps < 1:
        raise ValueError(f"--steps: expected a positive int, got {steps}")

    out = Path(out)
    runs = out / "runs"
    common = [f"output_dir={runs}", f"train.steps={steps}", f"seed={seed}", f"train.val_every={steps}",
              f"train.ckpt_every={steps}",
              "train.device=cpu" if device in ("auto", "cpu") else f"train.device={device}"]
    roots = write_demo_data(out / "data", seed=seed)
    cfgs = {
        "erm": load_config("classification/digits/baseline", [*common, "name=digits_erm"]),
        "randconv": load_config("classification/digits/randconv", [*common, "name=digits_randconv"]),
        "photos": load_config("classification/digits/baseline", [
            *common, "name=photos_digitnet", f"data.root={roots['train']}", "data.image_size=32",
            "data.source_domains=[photo]", "data.target_domains=[]", "data.test_fraction=0.1",
            "data.train_transform=flip", "model.mean=imagenet"]),
    }
    groups = {"erm": "digits", "randconv": "digits", "photos": "photos"}
    for key, cfg in cfgs.items():
        run_dir = runs / cfg.name
        if (run_dir / "best.pt").is_file() and config_changes(cfg, run_dir) == []:
            continue  # the same recipe, steps and seed: reuse
        get_task(cfg.task).train(cfg, progress=progress, overwrite=True)
        shutil.rmtree(out / groups[key], ignore_errors=True)  # its cells came from the old model
    digits_val = _demo_digits_test(cfgs["erm"], out / "data" / "digits_val")
    res = {
        "digits": run_benchmark_cli([f"erm={runs / 'digits_erm'}", f"randconv={runs / 'digits_randconv'}"],
                                    str(digits_val), str(out / "digits"), resize=None, crop=32, baseline="erm",
                                    severities=severities or DEMO_SEVERITIES, max_images=max_images, device=device,
                                    workers=0, seed=seed, progress=progress, batch_size=256),
        "photos": run_benchmark_cli([f"photos={runs / 'photos_digitnet'}"], str(roots["val"]), str(out / "photos"),
                                    severities=severities or "1-5", max_images=max_images, device=device,
                                    workers=0, seed=seed, progress=progress, batch_size=32),
    }
    return res
