"""``medrobust bench cardiac``: the cardiac training step with and without augmentation, MRI corruptions,
evaluation throughput."""

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
    Evaluation rows: volumes/s of ``evaluate_cardiac``'s per-volume work (8 volumes of 96×96×6, the demo
    setting; 2 of 32×32×2 with ``quick``) against the MONAI path it replaced (:func:`_evaluation_rows`).
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
    rows += _evaluation_rows(dev, repeats, quick)
    return rows


def _evaluation_rows(dev: torch.device, repeats: int, quick: bool) -> list[dict[str, Any]]:
    """Evaluation throughput in volumes/s: what ``evaluate_cardiac`` does per test volume and model
    (per-slice normalisation, 2D prediction, Dice and HD95 of the three structures), against the MONAI
    path it replaced (sliding-window inference, ``argmax(1)``, ``compute_dice`` and
    ``compute_hausdorff_distance`` on one-hot maps). Same model (the default 2D U-Net, seeded random
    weights: noisy predictions, as after a short training), same volumes, same numbers."""
    import warnings

    import numpy as np
    from monai.inferers import sliding_window_inference
    from monai.metrics import compute_dice, compute_hausdorff_distance

    from ..evaluate.metrics import SegmentationMeter
    from ..tasks.cardiac.config import CardiacConfig
    from ..tasks.cardiac.evaluate import normalise_volume, predict_volume
    from ..tasks.cardiac.train import CLASS_NAMES, NUM_CLASSES, build_model

    n_vol, size, z = (2, 32, 2) if quick else (8, 96, 6)
    cfg = CardiacConfig(data={"spatial_size": (size, size)})
    torch.manual_seed(0)
    model = build_model(cfg).to(dev).eval()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    volumes = []
    for i in range(n_vol):
        r = np.hypot(yy - size / 2 - rng.uniform(-3, 3), xx - size / 2 - rng.uniform(-3, 3)) / size
        lab2d = np.select([r < 0.12, r < 0.18, (r < 0.26) & (xx < size / 2)], [3, 2, 1], 0).astype(np.uint8)
        lab = np.repeat(lab2d[:, :, None], z, axis=2)
        img = np.choose(lab, [0.1, 0.45, 0.3, 0.8]) + rng.normal(0, 0.05, lab.shape)
        volumes.append((normalise_volume(img), lab))
    spacing = (1.5, 1.5, 10.0)

    def ours() -> None:
        meter = SegmentationMeter(NUM_CLASSES, CLASS_NAMES, hd95=True)
        for vol, lab in volumes:
            meter.update(predict_volume(model, vol, cfg, dev), lab, spacing=spacing)

    def monai_path() -> None:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for vol, lab in volumes:
                x = normalise_volume(vol, axes=(0, 1)).permute(2, 0, 1).unsqueeze(1).to(dev)
                logits = sliding_window_inference(x, roi_size=(size, size), sw_batch_size=cfg.evaluate.sw_batch_size,
                                                  predictor=model, overlap=0.25)
                pred = logits.argmax(1).permute(1, 2, 0).cpu()
                oh_p = torch.nn.functional.one_hot(pred.long(), NUM_CLASSES).movedim(-1, 0)[None].float()
                oh_g = torch.nn.functional.one_hot(torch.from_numpy(lab).long(), NUM_CLASSES).movedim(-1, 0)[None].float()
                compute_dice(oh_p, oh_g, include_background=True, ignore_empty=True)
                compute_hausdorff_distance(oh_p, oh_g, include_background=True, percentile=95, spacing=spacing)

    label = f"evaluate {n_vol} volumes {size}x{size}x{z}"
    t_ours = timeit(ours, dev, repeats=repeats)
    t_monai = timeit(monai_path, dev, repeats=repeats)
    return [
        {"input": label, "method": "evaluate_cardiac per volume: predict + Dice + HD95", "seconds": t_ours,
         "volumes_per_s": n_vol / t_ours, "speedup": t_monai / t_ours},
        {"input": label, "method": "before: MONAI sliding window + compute_dice + compute_hausdorff_distance",
         "seconds": t_monai, "volumes_per_s": n_vol / t_monai},
    ]
