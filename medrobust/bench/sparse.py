"""``medrobust bench sparse``: the cost of dynamic sparse training's mask maintenance against a dense
training step, on the digits and cardiac models."""

from __future__ import annotations

from typing import Any

import torch

from .common import timeit

__all__ = ["bench_sparse"]


def _setups(dev: torch.device, quick: bool) -> list[tuple[str, torch.nn.Module, Any]]:
    from ..losses.segmentation import DiceCELoss
    from ..models.classifiers import create_classifier
    from ..models.factory import create_segmentation_model

    gen = torch.Generator().manual_seed(0)
    n, size = (8, 32) if quick else (32, 32)
    x = torch.rand(n, 3, size, size, generator=gen).to(dev)
    y = torch.randint(0, 10, (n,), generator=gen).to(dev)
    torch.manual_seed(0)
    digit = create_classifier("digitnet", 10, 3, image_size=size).to(dev)
    out = [(f"digits DigitNet {n}x3x{size}x{size}", digit,
            lambda m: torch.nn.functional.cross_entropy(m(x), y))]
    n, size = (4, 32) if quick else (16, 96)
    img = torch.rand(n, 1, size, size, generator=gen).to(dev)
    lab = torch.randint(0, 4, (n, 1, size, size), generator=gen).to(dev)
    unet = create_segmentation_model("monai_unet", in_channels=1, num_classes=4).to(dev)
    loss = DiceCELoss()
    out.append((f"cardiac U-Net {n}x1x{size}x{size}", unet, lambda m: loss(m(img), lab)))
    return out


def bench_sparse(device: str = "cpu", repeats: int = 3, quick: bool = False) -> list[dict[str, Any]]:
    """Per model: the dense training step (forward, loss, backward, AdamW); the same step followed
    by the masks' zeroing (what every step of a sparse run pays); one mask update of each method
    (SET, RigL, MEST, GraNet) at sparsity 0.5, ERK; and the amortised maintenance share of a step at
    ``update_every: 100`` (``(99 · zeroing + update) / 100`` over the dense step; target < 2 %).

    Models: DigitNet on 32×3×32×32 digits (8 with ``quick``) and the default cardiac MONAI U-Net on
    16×1×96×96 slices (4×1×32×32 with ``quick``)."""
    from ..train.sparse import SparseMasks, make_updater

    dev = torch.device(device)
    rows: list[dict[str, Any]] = []
    for name, model, loss_fn in _setups(dev, quick):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        masks = SparseMasks(model, 0.5)
        masks.apply_()

        def dense_step() -> None:
            opt.zero_grad(set_to_none=True)
            loss_fn(model).backward()
            opt.step()

        t_dense = timeit(dense_step, dev, repeats=max(repeats, 5), warmup=2)
        t_apply = timeit(masks.apply_, dev, repeats=max(repeats, 20), warmup=2)
        rows.append({"input": name, "method": "dense step", "seconds": t_dense, "steps_per_s": 1 / t_dense})
        rows.append({"input": name, "method": "mask zeroing (every step)", "seconds": t_apply,
                     "overhead": f"{100 * t_apply / t_dense:.2f}%"})
        dense_step()  # a dense gradient for the gradient-based methods
        for method in ("set", "rigl", "mest", "granet"):
            state = {n: m.clone() for n, m in masks.masks.items()}
            targets = dict(masks.targets)
            upd = make_updater(method, masks, update_every=1, drop_fraction=0.3, end=1.0, total_steps=10**6)
            snapshot = {n: p.detach().clone() for n, p in masks.params.items()}

            def update() -> None:
                upd._update(0, opt)

            t_upd = timeit(update, dev, repeats=repeats, warmup=1)
            with torch.no_grad():  # leave model and masks as they were for the next method
                for n, p in masks.params.items():
                    p.copy_(snapshot[n])
            masks.masks, masks.targets = state, targets
            amortised = (99 * t_apply + t_upd) / 100
            rows.append({"input": name, "method": f"{method} update (sparsity 0.5)", "seconds": t_upd,
                         "overhead": f"{100 * t_upd / t_dense:.1f}% of a step",
                         "per_step_at_100": f"{100 * amortised / t_dense:.2f}%"})
    return rows
