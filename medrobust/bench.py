"""``medrobust bench ...``: throughput of the cores against references, in one run.

``bench augment`` times RandConv (per-sample and batch-shared), GIN and IPA on a batch of
64×3×224×224 images and 8×1×32×192×192 volumes, against two references on the same batch:

* **naive loop**: a Python loop over samples, each with its own ``conv2d``/``conv3d`` (what a
  per-sample RandConv looks like without grouped convolutions);
* **dense floor**: one dense convolution of the same kernel size over the whole batch with a single
  shared kernel — the cheapest possible random convolution, which cannot be per-sample.

Kernel sizes are fixed per row (3 and 7) so that every row of a block does the same arithmetic.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["timeit", "bench_augment", "print_table"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timeit(fn: Callable[[], Any], device: torch.device, *, repeats: int = 3, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def _naive_loop(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Per-sample random convolution with a Python loop over samples (the slow reference)."""
    conv = F.conv2d if x.ndim == 4 else F.conv3d
    c = x.shape[1]
    dims = x.ndim - 2
    outs = []
    for i in range(x.shape[0]):
        w = torch.randn(c, c, *([k] * dims), generator=generator).to(x.device) / (c * k**dims) ** 0.5
        outs.append(conv(x[i : i + 1], w, padding=k // 2).clamp(0, 1))
    return torch.cat(outs)


def _dense_floor(x: torch.Tensor, k: int) -> torch.Tensor:
    conv = F.conv2d if x.ndim == 4 else F.conv3d
    c = x.shape[1]
    w = torch.randn(c, c, *([k] * (x.ndim - 2)), device=x.device)
    return conv(x, w, padding=k // 2)


def bench_augment(device: str = "cpu", repeats: int = 3, quick: bool = False) -> list[dict[str, Any]]:
    """Run the augmentation benchmark and return one row per (input, method)."""
    from .augment import GIN, IPA, RandConv

    dev = torch.device(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    inputs = {
        "2d 64x3x224x224": (64, 3, 224, 224),
        "3d 8x1x32x192x192": (8, 1, 32, 192, 192),
    }
    if quick:
        inputs = {"2d 8x3x64x64": (8, 3, 64, 64), "3d 2x1x8x48x48": (2, 1, 8, 48, 48)}
    rows: list[dict[str, Any]] = []
    for label, shape in inputs.items():
        x = torch.rand(*shape, device=dev)
        n = shape[0]

        def add(method: str, fn: Callable[[], Any], k: Any = "") -> float:
            t = timeit(fn, dev, repeats=repeats)
            rows.append({"input": label, "method": method, "kernel": k, "seconds": t, "images_per_s": n / t})
            return t

        for k in (3, 7):
            floor = add("dense conv (floor)", lambda: _dense_floor(x, k), k)
            naive = add("naive per-sample loop", lambda: _naive_loop(x, k, gen), k)
            ps = RandConv(kernel_sizes=(k,))
            t_ps = add("RandConv per-sample", lambda: ps(x, gen), k)
            shared = RandConv(kernel_sizes=(k,), per_sample=False)
            add("RandConv batch-shared", lambda: shared(x, gen), k)
            rows[-2]["vs_floor"] = t_ps / floor
            rows[-2]["speedup_vs_naive"] = naive / t_ps
        mixed = RandConv(kernel_sizes=(1, 3, 5, 7), mixing=True)
        add("RandConv per-sample mixed k, RC_mix", lambda: mixed(x, gen), "1,3,5,7")
        gin = GIN()
        add("GIN", lambda: gin(x, gen), "1,3")
        ipa = IPA()
        add("IPA", lambda: ipa(x, gen), "1,3")
    return rows


def bench_cardiac(device: str = "cpu", repeats: int = 3, quick: bool = False) -> list[dict[str, Any]]:
    """Training step time of the default cardiac model with and without augmentation, and MRI
    corruption throughput in volumes/s.

    Training rows: one optimiser step (forward, Dice+CE, backward, AdamW) of the default 2D MONAI
    U-Net on a batch of 16×1×96×96 slices (the demo setting; 8×1×32×32 with ``quick``), with the
    augmentation applied on the device inside the step; ``overhead`` is relative to no augmentation.
    Corruption rows: ``corrupt_mri`` at severity 3 on 8 volumes of 1×10×224×224 (ACDC-like).
    """
    from .adapters.segmentation import SegmentationAdapter
    from .augment import GIN, IPA, RandConv
    from .augment.corruptions.mri import NAMES, corrupt_mri
    from .config import ConsistencyConfig
    from .models.factory import create_segmentation_model

    dev = torch.device(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    n, size = (8, 32) if quick else (16, 96)
    image = torch.rand(n, 1, size, size, device=dev)
    label = torch.randint(0, 4, (n, 1, size, size), device=dev)
    rows: list[dict[str, Any]] = []
    setups: dict[str, Any] = {
        "no augmentation": SegmentationAdapter(None),
        "RandConv (1 view)": SegmentationAdapter(RandConv(mixing=True)),
        "GIN (1 view)": SegmentationAdapter(GIN()),
        "IPA (1 view)": SegmentationAdapter(IPA()),
        "RandConv + KL, 2 views": SegmentationAdapter(RandConv(mixing=True), consistency=ConsistencyConfig(views=2)),
    }
    base = None
    for label_, adapter in setups.items():
        torch.manual_seed(0)
        model = create_segmentation_model("monai_unet", in_channels=1, num_classes=4).to(dev)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        batch = {"image": image, "label": label}

        def step() -> None:
            loss, _ = adapter.step(model, batch, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        t = timeit(step, dev, repeats=max(repeats, 5), warmup=2)
        row = {"input": f"train {n}x1x{size}x{size}", "method": label_, "seconds": t, "steps_per_s": 1 / t,
               "images_per_s": n / t}
        if base is None:
            base = t
        else:
            row["overhead"] = t / base - 1
        rows.append(row)
    vols = torch.rand(2 if quick else 8, 1, 4 if quick else 10, 64 if quick else 224, 64 if quick else 224, device=dev)
    for name in NAMES:
        t = timeit(lambda: corrupt_mri(vols, name, 3, generator=gen), dev, repeats=repeats)
        rows.append({"input": f"corrupt {tuple(vols.shape)}", "method": name, "seconds": t,
                     "volumes_per_s": vols.shape[0] / t})
    return rows


def _afa_reference(x: torch.Tensor, generator: torch.Generator, mean_strength: float = 10.0) -> torch.Tensor:
    """The AFA repository's approach, re-implemented for timing: sample frequencies/orientations per
    (image, channel), build the ``(b, c, f, p, h, w)`` wave tensor with a per-pixel ``sin``, normalise,
    contract with the strengths by einsum, add and clamp."""
    b, c, h, w = x.shape
    grid = torch.linspace(-h / 2, h / 2, h, device=x.device)
    u, v = torch.meshgrid(grid, grid, indexing="ij")
    freqs = (torch.randint(1, h + 1, (b, c, 1, 1), generator=generator) / h).to(x.device)
    phases = (-torch.pi * torch.randint(0, 448, (b, c, 1, 1), generator=generator) / 447).to(x.device)
    strengths = (-mean_strength * torch.rand(b, c, 1, 1, generator=generator).log()).to(x.device)
    f, p = freqs[..., None, None], phases[..., None, None]
    waves = torch.sin(2 * torch.pi * f * (u * torch.cos(p) + v * torch.sin(p)) - torch.pi / 4)
    waves = waves / waves.norm(dim=(-2, -1), keepdim=True) * (h / 32)
    return torch.clamp(x + torch.einsum("bcfp,bcfphw->bchw", strengths, waves), 0, 1)


def bench_fourier(device: str = "cpu", repeats: int = 3, quick: bool = False) -> list[dict[str, Any]]:
    """FourierBasisNoise vs the AFA repository's einsum approach, amplitude mixing, band filter,
    DFM-X, and dominant-frequency-map computation (10 classes × 256 bands × 1000 images of 32×32).

    ``speedup`` = reference time / our time on the same batch.
    """
    from .analysis.dfm import loss_maps
    from .augment import DFMX, AmplitudeMix, BandFilter, FourierBasisNoise
    from .augment.dfm import example_dfms

    dev = torch.device(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    rows: list[dict[str, Any]] = []
    shapes = [(128, 3, 32, 32), (64, 3, 224, 224)] if not quick else [(16, 3, 32, 32)]
    for shape in shapes:
        x = torch.rand(*shape, device=dev)
        n = shape[0]
        label = "x".join(map(str, shape))
        t_ref = timeit(lambda: _afa_reference(x, gen), dev, repeats=repeats)
        rows.append({"input": label, "method": "AFA reference (einsum waves)", "seconds": t_ref, "images_per_s": n / t_ref})
        fbn = FourierBasisNoise()
        t = timeit(lambda: fbn(x, gen), dev, repeats=repeats)
        rows.append({"input": label, "method": "FourierBasisNoise", "seconds": t, "images_per_s": n / t, "speedup": t_ref / t})
        labels = torch.randint(0, 10, (n,), device=dev)
        for name, core, kw in (("AmplitudeMix (beta 0.1)", AmplitudeMix(), {}), ("BandFilter (low)", BandFilter(), {}),
                               ("DFMX (p 0.3)", DFMX(example_dfms(10, shape[-1])), {"labels": labels})):
            t = timeit(lambda: core(x, gen, **kw), dev, repeats=repeats)
            rows.append({"input": label, "method": name, "seconds": t, "images_per_s": n / t})
    # dominant frequency maps: 10 classes × 256 bands (2×2 patches of a 32×32 spectrum) × 1000 images
    n_img = 100 if quick else 1000
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(64, 10)).to(dev).eval()
    images = torch.rand(n_img, 3, 32, 32, device=dev)
    labels = torch.arange(n_img, device=dev) % 10
    t0 = time.perf_counter()
    loss_maps(model, images, labels, 10, patch=2, bands_per_batch=64)
    _sync(dev)
    t = time.perf_counter() - t0
    rows.append({"input": f"{n_img}x3x32x32, 10 classes x 256 bands", "method": "DFM loss maps (3-conv CNN)",
                 "seconds": t, "images_per_s": n_img * 256 / t})
    return rows


def environment() -> dict[str, Any]:
    info = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "thp_alloc": os.environ.get("THP_MEM_ALLOC_ENABLE", "0"),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def print_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of benchmark rows (returned and printed)."""
    cols = ["input", "method", "kernel", "images_per_s", "steps_per_s", "volumes_per_s", "seconds", "overhead",
            "reference_images_per_s", "vs_floor", "speedup_vs_naive", "speedup"]
    cols = [c for c in cols if any(c in r for r in rows)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            if v is None:
                v = "-"
            elif isinstance(v, float):
                if c in ("images_per_s", "volumes_per_s", "steps_per_s", "reference_images_per_s"):
                    v = f"{v:.2f}"
                elif c == "seconds":
                    v = f"{v:.4f}"
                elif c == "overhead":
                    v = f"{v * 100:+.1f}%"
                else:
                    v = f"{v:.2f}x"
            cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    return text


def dump_json(rows: list[dict[str, Any]], path: str) -> None:
    from .io import atomic_write_json

    atomic_write_json(path, {"environment": environment(), "rows": rows})


__all__ += ["environment", "dump_json"]
