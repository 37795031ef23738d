"""``medrobust bench cardiac``: the cardiac training step with and without augmentation, MRI corruptions."""

from __future__ import annotations

from typing import Any

import torch

from .common import timeit

__all__ = ["bench_cardiac"]


def bench_cardiac(device: str = "cpu", repeats: int = 3, quick: bool = False) -> list[dict[str, Any]]:
    """Training step time of the default cardiac model with and without augmentation, and MRI
    corruption throughput in volumes/s.

    Training rows: one optimiser step (forward, Dice+CE, backward, AdamW) of the default 2D MONAI
    U-Net on a batch of 16×1×96×96 slices (the demo setting; 8×1×32×32 with ``quick``), with the
    augmentation applied on the device inside the step; ``overhead`` is relative to no augmentation.
    Corruption rows: ``corrupt_mri`` at severity 3 on 8 volumes of 1×10×224×224 (ACDC-like).
    """
    from ..augment import GIN, IPA, RandConv
    from ..augment.corruptions.mri import NAMES, corrupt_mri
    from ..config import ConsistencyConfig
    from ..models.factory import create_segmentation_model
    from ..train.steps import SegmentationAdapter

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
