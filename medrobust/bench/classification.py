"""``medrobust bench classification``: training throughput of the classification task's step."""

from __future__ import annotations

from typing import Any

import torch

from .common import timeit

__all__ = ["bench_classification"]


def bench_classification(device: str = "cpu", repeats: int = 3, quick: bool = False) -> list[dict[str, Any]]:
    """Training throughput (images/s: forward, backward, optimiser step) of the classification
    adapter with no augmentation, RandConv, RandConv with 3-view consistency, and AugMix+JSD."""
    from ..augment import AugMix, RandConv
    from ..config import ConsistencyConfig
    from ..models.classifiers import create_classifier
    from ..tasks.classification.train import ClassificationAdapter

    dev = torch.device(device)
    setups = [("digitnet", 32, 128), ("resnet18", 32, 128)]
    if quick:
        setups = [("digitnet", 32, 16)]
    methods = [
        ("no augmentation", None, None),
        ("RandConv", RandConv(kernel_sizes=(1, 3, 5, 7), mixing=True), None),
        ("RandConv + KL, 3 views", RandConv(kernel_sizes=(1, 3, 5, 7), mixing=True), ConsistencyConfig(weight=10.0, views=3)),
        ("AugMix + JSD, clean + 2", AugMix(), ConsistencyConfig(name="jsd", weight=12.0, views=3, clean_first_view=True)),
    ]
    rows: list[dict[str, Any]] = []
    for arch, size, n in setups:
        model = create_classifier(arch, 10, image_size=size).to(dev)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        batch = {"image": torch.rand(n, 3, size, size, device=dev), "label": torch.randint(0, 10, (n,), device=dev)}
        gen = torch.Generator().manual_seed(0)
        base = None
        for label, core, cons in methods:
            adapter = ClassificationAdapter(core, consistency=cons)

            def step() -> None:
                loss, _ = adapter.step(model, batch, gen)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            t = timeit(step, dev, repeats=repeats)
            base = base or t
            rows.append({"input": f"{arch} {n}x3x{size}x{size}", "method": label, "seconds": t,
                         "images_per_s": n / t, "overhead": t / base - 1})
    return rows
