"""The downstream experiment of the microscopy task (``experiment: segment``): blur as augmentation.

A small U-Net segments synthetic fluorescence fields into background, cytoplasm and nuclei. The ground
truth is known from how the fields are drawn (:func:`medrobust.data.synthetic.microscopy.make_cell_field`).
Every field goes through the microscope of ``data.synthetic``: the same optics and camera as the
autoencoder's focal stacks (:func:`~medrobust.data.synthetic.microscopy.defocus_stack`: disk defocus PSF,
shot and read noise). The network trains on in-focus fields (plane 0) with the configured ``augment:``
cores (none, ``defocus_psf``, ``latent_blur`` from a trained autoencoder, ...). It is scored on held-out
fields defocused by the physical model at each plane of ``segment.data.test_planes``.

Intensities: the camera's counts mapped to [0, 1] by its known offset, gain, background and photon
count, ``(counts − offset − gain·background) / (gain·photons)``. This is one fixed mapping for every
image, as for a fixed exposure, so defocus lowers contrast the way it does on the microscope.

Files: ``<output_dir>/data/microscopy_nuclei_<settings>/{train,val,test}/field_NNN.tif`` (uint16
focal stacks, every plane) with ``field_NNN.labels.png`` (uint8 label maps) and ``manifest.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ...config import read_yaml, validate
from ..base import build_augment
from .config import BlurConfig

__all__ = ["CLASSES", "NucleiCrops", "NucleiData", "arm_name", "build_segmenter", "camera_range",
           "evaluate_microscopy_runs", "evaluate_segment", "experiment_of", "load_microscopy_run", "load_segment_run",
           "microscopy_table", "nuclei_root", "prepare_nuclei", "segment_table", "train_microscopy", "train_segment"]

#: label values of the ground-truth maps (background is 0)
CLASSES = ("cytoplasm", "nucleus")
NUM_CLASSES = 1 + len(CLASSES)
TITLE = "Blur augmentation for a downstream segmentation (synthetic fluorescence fields)"


def _optics(cfg: BlurConfig) -> Any:
    from ...data.synthetic.microscopy import Optics

    s = cfg.data.synthetic
    return Optics(planes=s.planes, max_radius=s.max_radius, psf=s.psf, diffraction_sigma=s.diffraction_sigma,
                  photons=s.photons)


def camera_range(optics: Any) -> tuple[float, float]:
    """Raw counts ``(lo, hi)`` that map to intensities 0 and 1: the background level and one full-scale
    photon count above it."""
    lo = optics.offset + optics.gain * optics.background
    return float(lo), float(lo + optics.gain * optics.photons)


def nuclei_root(cfg: BlurConfig) -> Path:
    s, d = cfg.data.synthetic, cfg.segment.data
    tag = (f"n{d.n_train}-{d.n_val}-{d.n_test}_s{d.size[0]}x{d.size[1]}_p{s.planes}_r{s.max_radius:g}_{s.psf}"
           f"_d{s.diffraction_sigma:g}_ph{s.photons:g}_seed{d.seed}")
    return Path(cfg.output_dir) / "data" / f"microscopy_nuclei_{tag}"


@dataclass
class NucleiData:
    """The fields of one split: raw stacks ``(N, P, H, W)`` uint16, labels ``(N, H, W)`` uint8, and the
    camera range and true PSF radius of each plane."""

    root: Path
    stacks: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    names: dict[str, list[str]]
    radii: list[float]
    camera: tuple[float, float]

    def images(self, split: str, plane: int) -> torch.Tensor:
        """Plane ``plane`` of every field of ``split`` as ``(N, 1, H, W)`` float32 in [0, 1]."""
        lo, hi = self.camera
        x = (self.stacks[split][:, plane].astype(np.float32) - lo) / (hi - lo)
        return torch.from_numpy(np.clip(x, 0.0, 1.0)).unsqueeze(1)


def _write_nuclei(root: Path, cfg: BlurConfig) -> None:
    from ...data.microscopy import write_image, write_stack
    from ...data.synthetic.microscopy import defocus_stack, make_cell_field
    from ...io import atomic_write_text

    d = cfg.segment.data
    optics = _optics(cfg)
    rng = np.random.default_rng(d.seed)
    for split, n in (("train", d.n_train), ("val", d.n_val), ("test", d.n_test)):
        for i in range(n):
            field = make_cell_field(tuple(d.size), rng)
            write_stack(root / split / f"field_{i:03d}.tif", defocus_stack(field.image, optics, rng))
            write_image(root / split / f"field_{i:03d}.labels.png", field.labels)
    man = {"optics": {k: getattr(optics, k) for k in optics.__dataclass_fields__}, "radii": optics.radii(),
           "camera_range": list(camera_range(optics)), "classes": {"0": "background", "1": "cytoplasm", "2": "nucleus"},
           "splits": {"train": d.n_train, "val": d.n_val, "test": d.n_test}, "seed": d.seed}
    atomic_write_text(root / "manifest.json", json.dumps(man, indent=2) + "\n")
    (root / ".complete").write_text("ok\n")


def prepare_nuclei(cfg: BlurConfig) -> NucleiData:
    """Write the fields once (``nuclei_root``) and read them back with the focal-stack and image readers."""
    from ...data.microscopy import read_image, read_stack

    root = nuclei_root(cfg)
    if not (root / ".complete").is_file():
        _write_nuclei(root, cfg)
    man = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    stacks, labels, names = {}, {}, {}
    for split in ("train", "val", "test"):
        files = sorted((root / split).glob("field_*.tif"))
        if not files:
            raise FileNotFoundError(f"{root / split}: no field_*.tif (delete {root} to rewrite the embedded fields)")
        names[split] = [f.stem for f in files]
        stacks[split] = np.stack([read_stack(f) for f in files])
        labels[split] = np.stack([read_image(f.with_name(f"{f.stem}.labels.png")) for f in files]).astype(np.uint8)
    lo, hi = man["camera_range"]
    return NucleiData(root, stacks, labels, names, [float(r) for r in man["radii"]], (float(lo), float(hi)))


class NucleiCrops(Dataset):
    """Random square crops (and dihedral flips) of in-focus fields with their labels: items
    ``{"image": (1, s, s) float32, "label": (1, s, s) int64}``. Draws come from NumPy's global RNG, which
    the training loop seeds per sample and step."""

    def __init__(self, images: torch.Tensor, labels: np.ndarray, crop: int) -> None:
        self.images, self.labels, self.crop = images, torch.from_numpy(labels.astype(np.int64)), int(crop)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        h, w = self.images.shape[-2:]
        s = self.crop
        y, x, k = int(np.random.randint(0, h - s + 1)), int(np.random.randint(0, w - s + 1)), int(np.random.randint(0, 8))
        img = self.images[index, :, y : y + s, x : x + s]
        lab = self.labels[index, y : y + s, x : x + s].unsqueeze(0)
        if k & 4:
            img, lab = img.flip(-1), lab.flip(-1)
        return {"image": torch.rot90(img, k & 3, dims=(-2, -1)).contiguous(),
                "label": torch.rot90(lab, k & 3, dims=(-2, -1)).contiguous()}


def build_segmenter(cfg: BlurConfig) -> torch.nn.Module:
    """The configured U-Net: one grey channel in, logits for background, cytoplasm and nucleus out."""
    from ...models.factory import create_segmentation_model

    m = cfg.segment.model
    return create_segmentation_model("monai_unet", in_channels=1, num_classes=NUM_CLASSES, channels=tuple(m.channels),
                                     strides=tuple(m.strides), num_res_units=m.num_res_units)


def _dice(model: torch.nn.Module, images: torch.Tensor, labels: np.ndarray, device: torch.device,
          batch: int = 8) -> np.ndarray:
    """Per-image Dice ``(N, 2)`` (cytoplasm, nucleus) of the model's predictions."""
    from ...evaluate.metrics import dice_per_class

    was = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, images.shape[0], batch):
            pred = model(images[start : start + batch].to(device)).argmax(1).cpu().numpy()
            out += [dice_per_class(p, g, NUM_CLASSES) for p, g in zip(pred, labels[start : start + batch])]
    model.train(was)
    return np.stack(out)


def train_segment(cfg: BlurConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True,
                  stop_after: int | None = None):
    """Train the U-Net on in-focus fields with the ``augment:`` cores (shared loop; Dice + CE).

    Writes ``runs/<name>/{config.yaml, metrics.jsonl, last.pt, best.pt}`` (best: the highest mean Dice
    on the in-focus validation fields). Returns the :class:`~medrobust.train.loop.FitResult`.
    """
    from ...data.collate import collate_image_label
    from ...train.loop import dist_env, fit_config, prepare_run_dir, resolve_device
    from ...train.steps import SegmentationAdapter

    env = dist_env()
    device = resolve_device(cfg.train.device, env)
    augment = build_augment(cfg.augment)  # loads latent_blur's model file: a wrong path fails before anything is written
    prepare_run_dir(cfg, resume=resume, overwrite=overwrite, env=env)
    data = prepare_nuclei(cfg)
    train_set = NucleiCrops(data.images("train", 0), data.labels["train"], cfg.segment.data.crop)
    val_images, val_labels = data.images("val", 0), data.labels["val"]

    def validate(model: torch.nn.Module) -> dict[str, float]:
        d = _dice(model, val_images, val_labels, device)
        return {"val_dice": float(d.mean()), **{f"val_dice_{c}": float(d[:, i].mean()) for i, c in enumerate(CLASSES)}}

    torch.manual_seed(cfg.seed)
    model = build_segmenter(cfg)
    adapter = SegmentationAdapter(augment)
    return fit_config(cfg, model=model, train_set=train_set, collate=collate_image_label, step_fn=adapter.step,
                      validate_fn=validate, device=device, metric_name="val_dice", resume=resume, progress=progress,
                      stop_after=stop_after)


def experiment_of(run_dir: str | Path) -> str:
    """``experiment`` of a microscopy run folder (``blur`` for runs of earlier releases)."""
    path = Path(run_dir) / "config.yaml"
    return str(read_yaml(path).get("experiment", "blur")) if path.is_file() else "blur"


def _run_config(run_dir: str | Path) -> BlurConfig:
    """The validated ``config.yaml`` of a microscopy run folder."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"--run {run_dir}: no config.yaml (is this a run directory from `medrobust train`?)")
    return validate(read_yaml(path), source=str(path), model=BlurConfig)


def load_segment_run(run_dir: str | Path, *, device: torch.device | str = "cpu",
                     checkpoint: str = "best.pt") -> tuple[BlurConfig, torch.nn.Module]:
    """``(cfg, U-Net)`` of a trained ``experiment: segment`` run (weights-only load, eval mode)."""
    from ...train.loop import run_paths

    cfg = _run_config(run_dir)
    _, ckpt = run_paths(run_dir, checkpoint)
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    model = build_segmenter(cfg)
    try:
        model.load_state_dict(state["model"] if isinstance(state, dict) and "model" in state else state)
    except RuntimeError as err:
        raise ValueError(f"{ckpt}: does not match segment.model of {Path(run_dir) / 'config.yaml'}: {err}") from None
    return cfg, model.to(device).eval()


def arm_name(augment: Sequence[Mapping[str, Any]]) -> str:
    """A short name of an ``augment:`` list (runs with the same list are seeds of one arm)."""
    return " + ".join(str(a.get("name")) for a in augment) or "no blur augmentation"


def _mean_std(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size)}


def evaluate_segment(runs: Mapping[str, str | Path], *, out_dir: str | Path, overrides: Sequence[str] = (),
                     device: str = "auto", progress: bool = True) -> dict[str, Any]:
    """Score ``{name: run_dir}`` (``experiment: segment``) on the test fields at every test plane and
    write ``report.{md,json}``. Runs must share the fields and the microscope; runs with the same
    ``augment:`` list form one arm (mean ± sample std over its runs). Returns the results dict."""
    from tqdm.auto import tqdm

    from ...evaluate.checks import check_out_dir
    from ...evaluate.provenance import run_provenance
    from ...evaluate.report import Section, report_files, write_report
    from ...train.loop import resolve_device, run_paths

    if overrides:
        raise ValueError(f"--set {list(overrides)}: the segmentation evaluation takes no overrides (its settings "
                         "are the runs' own)")
    check_out_dir(out_dir)
    dev = resolve_device(device, what="--device")
    cfgs = {name: _run_config(path) for name, path in runs.items()}
    for path in runs.values():  # every checkpoint is there before any compute
        run_paths(path, "best.pt")
    first_name, first = next(iter(cfgs.items()))
    key = (first.segment.data.model_dump(), first.data.synthetic.model_dump())
    for name, c in cfgs.items():
        if (c.segment.data.model_dump(), c.data.synthetic.model_dump()) != key:
            raise ValueError(f"--run {name}: other fields or microscope (segment.data, data.synthetic) than "
                             f"--run {first_name}; runs compared in one report must share them")
    data = prepare_nuclei(first)
    planes = first.segment.data.test_planes or list(range(len(data.radii)))
    labels = data.labels["test"]
    per_run: dict[str, Any] = {}
    for name, path in tqdm(runs.items(), desc="evaluate segment", disable=not progress, leave=False):
        cfg, model = load_segment_run(path, device=dev)
        rows = {}
        for k in planes:
            d = _dice(model, data.images("test", k), labels, dev)
            rows[str(k)] = {"radius": data.radii[k], "mean": float(d.mean()),
                            **{c: float(d[:, i].mean()) for i, c in enumerate(CLASSES)}}
        per_run[name] = {"arm": arm_name(cfg.augment), "augment": cfg.augment, "seed": cfg.seed,
                         "mean": float(np.mean([r["mean"] for r in rows.values()])), "per_plane": rows,
                         "provenance": run_provenance(path, configured_steps=cfg.train.steps)}
    arms: dict[str, Any] = {}
    for name, r in per_run.items():
        arms.setdefault(r["arm"], []).append(name)
    arm_stats = {arm: {"runs": names, "mean": _mean_std([per_run[n]["mean"] for n in names]),
                       "per_plane": {str(k): {m: _mean_std([per_run[n]["per_plane"][str(k)][m] for n in names])
                                              for m in ("mean", *CLASSES)} for k in planes}}
                 for arm, names in arms.items()}
    results: dict[str, Any] = {
        "task": "microscopy", "experiment": "segment", "runs": {n: str(p) for n, p in runs.items()},
        "data": {"root": str(data.root), "test_fields": len(data.names["test"]), "size": list(first.segment.data.size),
                 "planes": planes, "radii": [data.radii[k] for k in planes], "psf": first.data.synthetic.psf,
                 "camera_range": list(data.camera)},
        "classes": list(CLASSES), "per_run": per_run, "arms": arm_stats,
    }
    paths = report_files(out_dir)
    results["files"] = {"markdown": str(paths["markdown"]), "json": str(paths["json"]), "figures": []}
    lead = Section(None, [
        (f"Test data: {len(data.names['test'])} held-out synthetic fields ({first.segment.data.size[0]}×"
        f"{first.segment.data.size[1]}) of `{data.root}`, each rendered by the physical model at planes "
        f"{', '.join(f'z{k}' for k in planes)} ({first.data.synthetic.psf} defocus PSF of radius "
        f"{', '.join(f'{data.radii[k]:g}' for k in planes)} px, shot and read noise). Training used in-focus fields only. "
        "Dice of cytoplasm and nucleus per image (argmax of the U-Net), averaged over fields; the mean is over both classes."),
        segment_table(results),
    ])
    write_report(out_dir, title=TITLE, sections=[lead], results=results)
    return results


def segment_table(results: Mapping[str, Any]) -> str:
    """The arms (mean ± std over their runs) and then every run: mean Dice per test plane (markdown)."""
    from ...evaluate.report import format_table

    planes = results["data"]["planes"]
    radii = results["data"]["radii"]
    cols = ["Augmentation", "runs", *[f"z{k} (r={r:g})" for k, r in zip(planes, radii)], "mean"]

    def pm(s: Mapping[str, Any]) -> str:
        return f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f}" if s["n"] > 1 else f"{100 * s['mean']:.1f}"

    arm_rows = [{"Augmentation": arm, "runs": len(a["runs"]), "mean": pm(a["mean"]),
                 **{c: pm(a["per_plane"][str(k)]["mean"]) for k, c in zip(planes, cols[2:-1])}}
                for arm, a in results["arms"].items()]
    nuc_rows = [{"Augmentation": arm, "runs": len(a["runs"]),
                 **{c: pm(a["per_plane"][str(k)]["nucleus"]) for k, c in zip(planes, cols[2:-1])}}
                for arm, a in results["arms"].items()]
    run_cols = ["Run", "augmentation", "seed", *cols[2:]]
    run_rows = [{"Run": n, "augmentation": r["arm"], "seed": r["seed"], "mean": f"{100 * r['mean']:.1f}",
                 **{c: f"{100 * r['per_plane'][str(k)]['mean']:.1f}" for k, c in zip(planes, cols[2:-1])}}
                for n, r in results["per_run"].items()]
    return "\n".join([
        "**Mean Dice (%) of cytoplasm and nucleus per test plane** (mean ± sample std over the runs of an arm)\n",
        format_table(arm_rows, cols),
        "**Nucleus Dice (%) per test plane**\n",
        format_table(nuc_rows, cols[:-1]),
        "**Every run**\n",
        format_table(run_rows, run_cols),
    ])


# ----------------------------------------------------------------------------- the task's entry points
def train_microscopy(cfg: BlurConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True,
                     stop_after: int | None = None):
    """``medrobust train`` for ``task: microscopy``: the autoencoder (``experiment: blur``, as
    ``medrobust blur train``) or the downstream segmentation (``experiment: segment``)."""
    from .train import train_blur

    fn = train_segment if cfg.experiment == "segment" else train_blur
    return fn(cfg, resume=resume, overwrite=overwrite, progress=progress, stop_after=stop_after)


def load_microscopy_run(run_dir: str | Path, *, device: torch.device | str = "cpu",
                        checkpoint: str | None = None) -> tuple[BlurConfig, torch.nn.Module]:
    """``(cfg, model)`` of a microscopy run: the U-Net of a segment run (``best.pt``), else the
    autoencoder (``model.pt``)."""
    from .evaluate import load_run

    if experiment_of(run_dir) == "segment":
        return load_segment_run(run_dir, device=device, checkpoint=checkpoint or "best.pt")
    return load_run(run_dir, device=device, checkpoint=checkpoint or "model.pt")


def evaluate_microscopy_runs(runs: Mapping[str, str], *, out_dir: str | Path, overrides: Sequence[str] = (),
                             corrupted_root: str | None = None, device: str = "auto",
                             progress: bool = True) -> dict[str, Any]:
    """``medrobust evaluate --run NAME=DIR ...``: segment runs by :func:`evaluate_segment`, autoencoder
    runs by :func:`~medrobust.tasks.microscopy.evaluate.evaluate_blur` (one kind per report)."""
    from .evaluate import evaluate_blur_runs

    kinds = {name: experiment_of(path) for name, path in runs.items()}
    if len(set(kinds.values())) > 1:
        raise ValueError(f"--run: microscopy runs of different experiments {kinds} cannot be compared in one report")
    if "segment" in kinds.values():
        if corrupted_root is not None:
            raise ValueError("--corrupted-root: the segmentation evaluation renders its own defocused test fields")
        return evaluate_segment(runs, out_dir=out_dir, overrides=overrides, device=device, progress=progress)
    return evaluate_blur_runs(runs, out_dir=out_dir, overrides=overrides, corrupted_root=corrupted_root, device=device,
                              progress=progress)


def microscopy_table(results: Mapping[str, Any]) -> str:
    """The table the CLI prints: :func:`segment_table` or :func:`~medrobust.tasks.microscopy.report.blur_table`."""
    from .report import blur_table

    return segment_table(results) if results.get("experiment") == "segment" else blur_table(results)
