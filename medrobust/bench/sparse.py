"""``medrobust bench sparse``: the cost of dynamic sparse training's mask maintenance against a dense
training step, on the digits and cardiac models."""

from __future__ import annotations

import time
from typing import Any

import torch

from .common import _sync, timeit

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


def _topk_select(score: torch.Tensor, count: int, largest: bool) -> torch.Tensor:
    """The selection the updates used before: ``torch.topk`` indices scattered into a bool mask."""
    out = torch.zeros(score.numel(), dtype=torch.bool, device=score.device)
    if count > 0:
        out[torch.topk(score, min(count, score.numel()), largest=largest, sorted=False).indices] = True
    return out


def bench_sparse(device: str = "cpu", repeats: int = 3, quick: bool = False) -> list[dict[str, Any]]:
    """Per model: the dense training step (forward, loss, backward, AdamW); the masks' zeroing
    (what every step of a sparse run pays: one ``_foreach_mul_`` by cached masks); one mask update of
    each method (SET, RigL, MEST, GraNet) at sparsity 0.5, ERK, with the selection it uses now
    (sample-bracketed ``kthvalue``) and, as the reference it replaces, with ``torch.topk`` (timed in
    the same rounds, on the same weights and gradients); and the amortised maintenance share of a step
    at ``update_every: 100`` (``(99 · zeroing + update) / 100`` over the dense step; target < 2 %).

    Models: DigitNet on 32×3×32×32 digits (8 with ``quick``) and the default cardiac MONAI U-Net on
    16×1×96×96 slices (4×1×32×32 with ``quick``)."""
    dev = torch.device(device)
    rows: list[dict[str, Any]] = []
    for name, model, loss_fn in _setups(dev, quick):
        rows += _bench_model(name, model, loss_fn, dev, repeats)
    return rows


def _bench_model(name: str, model: torch.nn.Module, loss_fn: Any, dev: torch.device, repeats: int) -> list[dict[str, Any]]:
    """The rows of :func:`bench_sparse` for one model."""
    from ..train import sparse as sparse_mod
    from ..train.sparse import SparseMasks, make_updater

    rows: list[dict[str, Any]] = []
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
        before = dict(masks.masks), dict(masks.targets)
        upd = make_updater(method, masks, update_every=1, drop_fraction=0.3, end=1.0, total_steps=10**6)
        t_upd, t_ref = _time_update(upd, opt, dev, repeats, sparse_mod)
        masks.masks, masks.targets = before[0], before[1]  # the sparsity-0.5 masks for the next method
        for i, (label, t) in enumerate(((f"{method} update (sparsity 0.5)", t_upd),
                                        (f"{method} update, topk selection (before)", t_ref))):
            amortised = (99 * t_apply + t) / 100
            row = {"input": name, "method": label, "seconds": t, "overhead": f"{100 * t / t_dense:.1f}% of a step",
                   "per_step_at_100": f"{100 * amortised / t_dense:.2f}%"}
            if i == 0:
                row["speedup"] = round(t_ref / t_upd, 2)
            rows.append(row)
    return rows


def _time_update(upd: Any, opt: torch.optim.Optimizer, dev: torch.device, repeats: int, sparse_mod: Any) -> tuple[float, float]:
    """Median time of one ``upd`` update with the current selection and with ``torch.topk``, timed in
    interleaved rounds, each from the same weights and masks (restored outside the timing)."""
    masks = upd.masks
    snapshot = {n: p.detach().clone() for n, p in masks.params.items()}
    state, targets = dict(masks.masks), dict(masks.targets)  # GraNet starts denser than the target

    def timed(select: Any) -> float:
        with torch.no_grad():
            for n, p in masks.params.items():
                p.copy_(snapshot[n])
        masks.masks, masks.targets = dict(state), dict(targets)
        fast, sparse_mod._select = sparse_mod._select, select
        try:
            t0 = time.perf_counter()
            upd._update(0, opt)
            _sync(dev)
            return time.perf_counter() - t0
        finally:
            sparse_mod._select = fast

    fast_select = sparse_mod._select
    timed(fast_select), timed(_topk_select)  # warm-up
    rounds = [(timed(fast_select), timed(_topk_select)) for _ in range(repeats)]
    with torch.no_grad():
        for n, p in masks.params.items():
            p.copy_(snapshot[n])
    return sorted(r[0] for r in rounds)[len(rounds) // 2], sorted(r[1] for r in rounds)[len(rounds) // 2]
