"""``medrobust bench objectives``: the training-step cost of stability training and the FMA loss
against plain training, on the digits classifier and the cardiac U-Net.

Rows per model (one optimiser step each: forward, loss, backward, AdamW):

* ``plain``: cross-entropy / Dice+CE on ``N`` images (the baseline);
* ``two views, no objective``: one forward pass over ``cat([x, x'])`` (``2N``), the task loss on one
  half — the floor both objectives pay for their second view;
* ``ST``: the same plus the stability KL; ``FMA (k hooks)``: the same plus forward hooks on ``k``
  layers and the feature distances (``vs_two_views``: the hooks' and distances' share over the floor);
* ``ST+CA`` / ``FMA+CA``: the full :class:`~medrobust.train.objectives.ObjectiveStep`, the combined
  distortion drawn in the step.

``x'`` is precomputed for the rows above the last two, so they time the objective alone. Methods
are timed in interleaved rounds and each keeps its fastest round (robust to load drift on a shared
machine).
"""

from __future__ import annotations

from typing import Any

import torch

from .common import timeit

__all__ = ["bench_objectives"]


def _setups(quick: bool) -> list[dict[str, Any]]:
    from ..losses.segmentation import DiceCELoss
    from ..models.classifiers import create_classifier
    from ..models.factory import create_segmentation_model

    def ce(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(logits.float(), label)

    n_cls, n_seg, side = (16, 4, 64) if quick else (128, 16, 96)
    return [
        {"input": f"digitnet {n_cls}x3x32x32", "model": lambda: create_classifier("digitnet", 10, 3, image_size=32),
         "image": (n_cls, 3, 32, 32), "label": lambda g: torch.randint(0, 10, (n_cls,), generator=g),
         "criterion": ce, "layers": ["net.features.2", "net.features.5"], "task": "classification",
         "distortion": {"name": "combined", "members": ["natural_gaussian_noise", "natural_defocus_blur",
                                                        "natural_contrast", "natural_jpeg_compression",
                                                        "natural_pixelate", "natural_fog"],
                        "defaults": {"table": "cifar"}}},
        {"input": f"monai_unet {n_seg}x1x{side}x{side}",
         "model": lambda: create_segmentation_model("monai_unet", in_channels=1, num_classes=4,
                                                    channels=(16, 32, 64, 128), strides=(2, 2, 2)),
         "image": (n_seg, 1, side, side), "label": lambda g: torch.randint(0, 4, (n_seg, 1, side, side), generator=g),
         "criterion": DiceCELoss(), "layers": ["model.0", "model.1.submodule.0"], "task": "cardiac",
         "distortion": {"name": "combined", "members": ["mri_bias_field", "mri_gibbs_ringing", "mri_motion_ghosting",
                                                        "mri_rician_noise"]}},
    ]


def bench_objectives(device: str = "cpu", repeats: int = 3, quick: bool = False) -> list[dict[str, Any]]:
    """Step time of plain training, a 2-view floor, ST and FMA (hooks) per model; see the module doc."""
    from ..augment import build
    from ..config import ObjectiveConfig
    from ..losses.fma import FMALoss
    from ..losses.stability import stability_loss
    from ..train.objectives import ObjectiveStep
    from ..train.steps import ClassificationAdapter, SegmentationAdapter

    dev = torch.device(device)
    rows: list[dict[str, Any]] = []
    for s in _setups(quick):
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(0)
        model = s["model"]().to(dev)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        x = torch.rand(*s["image"], generator=g).to(dev)
        label = s["label"](g).to(dev)
        xd = build(s["distortion"])(x, torch.Generator().manual_seed(1))
        crit = s["criterion"]
        fma = FMALoss(model, s["layers"])

        def plain() -> torch.Tensor:
            return crit(model(x), label)

        def two_views() -> torch.Tensor:
            lc, _ = model(torch.cat([x, xd])).chunk(2)
            return crit(lc, label)

        def st() -> torch.Tensor:
            lc, ld = model(torch.cat([x, xd])).chunk(2)
            return crit(lc, label) + stability_loss(lc, ld)

        def fma_step() -> torch.Tensor:
            feat, _, ld = fma(x, xd)
            return crit(ld, label) + feat

        adapter = ClassificationAdapter() if s["task"] == "classification" else SegmentationAdapter()
        batch = {"image": x, "label": label}
        full = {name: ObjectiveStep(adapter, ObjectiveConfig(name=name, distortion=s["distortion"],
                                                             layers=s["layers"] if name == "fma" else []), model)
                for name in ("stability", "fma")}
        gen = torch.Generator().manual_seed(2)
        methods = [("plain", plain), ("two views, no objective", two_views), ("ST", st),
                   (f"FMA ({len(s['layers'])} hooks)", fma_step),
                   ("ST+CA (distortion in the step)", lambda: full["stability"].step(model, batch, gen)[0]),
                   ("FMA+CA (distortion in the step)", lambda: full["fma"].step(model, batch, gen)[0])]
        steps = {}
        for label_, loss_fn in methods:
            def step(fn: Any = loss_fn) -> None:
                loss = fn()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            steps[label_] = step
        model.train()
        # interleaved rounds (every method once per round), the fastest round of each: on a shared,
        # loaded machine a drift in load then hits every method alike
        best = {k: timeit(f, dev, repeats=1, warmup=1) for k, f in steps.items()}
        for _ in range(max(0, repeats - 1)):
            for k, f in steps.items():
                best[k] = min(best[k], timeit(f, dev, repeats=1, warmup=0))
        n = s["image"][0]
        for label_, t in best.items():
            row = {"input": s["input"], "method": label_, "seconds": t, "images_per_s": n / t,
                   "overhead": t / best["plain"] - 1}
            if label_ != "plain":
                row["vs_two_views"] = t / best["two views, no objective"] - 1
            rows.append(row)
    return rows
