"""``medrobust bench driving``: the driving task's training step with and without augmentation, and
inference throughput (sliding window and whole image)."""

from __future__ import annotations

from typing import Any

import torch

from .common import timeit

__all__ = ["bench_driving"]


def bench_driving(device: str = "cpu", repeats: int = 3, quick: bool = False) -> list[dict[str, Any]]:
    """Training throughput with and without augmentation, and inference throughput.

    Training rows: one optimiser step (forward, CE with ignore, backward, AdamW) of DeepLabV3+ on a
    batch of 512×512 crops (ResNet-50 and 8 images on CUDA; ResNet-18 and 2 images on CPU; ``quick``:
    ResNet-18, 2×128×128), the augmentation applied on the device inside the step. ``overhead`` is the
    step time relative to no augmentation; ``aug_share`` is the time of the augmentation call alone
    divided by the step time (also printed as a "core alone" row). Inference rows: sliding-window prediction (window 512×512, overlap
    0.25) of a 1024×2048 image on CUDA (512×1024 on CPU, 128×256 with ``quick``), and one whole-image
    forward of the same image.
    """
    from ..augment import GIN, RandConv
    from ..config import ConsistencyConfig
    from ..data.driving import NUM_CLASSES
    from ..evaluate.inference import predict
    from ..models.factory import create_segmentation_model
    from ..tasks.driving.train import CrossEntropyIgnore, DrivingSegmenter
    from ..train.steps import SegmentationAdapter

    dev = torch.device(device)
    cuda = dev.type == "cuda"
    encoder = "resnet50" if cuda and not quick else "resnet18"
    n, size = (2, 128) if quick else ((8, 512) if cuda else (2, 512))
    gen = torch.Generator(device="cpu").manual_seed(0)
    image = torch.rand(n, 3, size, size, device=dev)
    label = torch.randint(0, NUM_CLASSES, (n, 1, size, size), device=dev)
    label[:, :, :8] = 255
    batch = {"image": image, "label": label}
    crit = CrossEntropyIgnore()
    cores: dict[str, Any] = {"no augmentation": None, "RandConv (1 view)": RandConv(kernel_sizes=(1, 3, 5, 7), mixing=True),
                             "GIN (1 view)": GIN()}
    rows: list[dict[str, Any]] = []
    base = None
    setups = [(k, SegmentationAdapter(c, criterion=crit), c) for k, c in cores.items()]
    setups.append(("RandConv + KL, 2 views", SegmentationAdapter(cores["RandConv (1 view)"],
                                                                consistency=ConsistencyConfig(views=2), criterion=crit),
                   cores["RandConv (1 view)"]))
    for label_, adapter, core in setups:
        torch.manual_seed(0)
        model = DrivingSegmenter(create_segmentation_model("smp_deeplabv3plus", in_channels=3, num_classes=NUM_CLASSES,
                                                           encoder_name=encoder)).to(dev).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step() -> None:
            with torch.autocast(device_type=dev.type, enabled=cuda):
                loss, _ = adapter.step(model, batch, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        t = timeit(step, dev, repeats=repeats, warmup=1)
        row: dict[str, Any] = {"input": f"train DLv3+ {encoder} {n}x3x{size}x{size}", "method": label_, "seconds": t,
                               "steps_per_s": 1 / t, "images_per_s": n / t}
        if base is None:
            base = t
        else:
            row["overhead"] = t / base - 1
        rows.append(row)
        if core is not None and "2 views" not in label_:
            # the core alone on the same batch: its share of the augmented step
            t_aug = timeit(lambda: core(image, gen), dev, repeats=max(repeats, 5), warmup=1)
            row["aug_share"] = t_aug / t
            rows.append({"input": row["input"], "method": f"{label_.split(' (')[0]} core alone (overhead = share of step)",
                         "seconds": t_aug, "images_per_s": n / t_aug, "overhead": t_aug / t})
        del model, opt
    h, w = (128, 256) if quick else ((1024, 2048) if cuda else (512, 1024))
    win = (128, 128) if quick else (512, 512)
    torch.manual_seed(0)
    model = DrivingSegmenter(create_segmentation_model("smp_deeplabv3plus", in_channels=3, num_classes=NUM_CLASSES,
                                                       encoder_name=encoder)).to(dev).eval()
    x = torch.rand(1, 3, h, w, device=dev)
    with torch.no_grad():
        for method, fn in (
            (f"sliding window {win[0]}x{win[1]}, overlap 0.25",
             lambda: predict(model, x, window=win, overlap=0.25, sw_batch_size=4)),
            ("whole image", lambda: model(x).argmax(1)),
        ):
            with torch.autocast(device_type=dev.type, enabled=cuda):
                t = timeit(fn, dev, repeats=repeats, warmup=1)
            rows.append({"input": f"infer DLv3+ {encoder} 1x3x{h}x{w}", "method": method, "seconds": t, "images_per_s": 1 / t})
    return rows
