"""``medrobust bench benchmark``: images/s of ``medrobust benchmark``'s on-the-fly pipeline against
reading the same number of pre-generated corrupted JPEG files (the ImageNet-C way).

Both paths decode JPEG photographs (scikit-image's, written at ImageNet-like sizes), run a ResNet-18
at 224² and count the predictions; the on-the-fly path also resizes (256), centre-crops (224) and
corrupts the crops (per-image seeds, :func:`~medrobust.evaluate.benchmark.corrupt_images`), the
peer reads 224² JPEGs written beforehand (what a published -C folder holds: 15 x 5 x 50 000 files
for ImageNet-C) and only decodes them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .common import timeit

__all__ = ["bench_benchmark"]

CORRUPTIONS = ("gaussian_noise", "glass_blur", "motion_blur", "snow", "jpeg_compression")


def _write_photos(root: Path, n: int) -> Path:
    import skimage.data
    from PIL import Image

    names = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")
    (root / "photo").mkdir(parents=True)
    for i in range(n):
        img = Image.fromarray(np.asarray(getattr(skimage.data, names[i % len(names)])())[..., :3])
        w, h = img.size
        s = 375 / min(w, h)
        img = img.resize((round(w * s) + i % 7, round(h * s)))  # ImageNet val: ~500x375, sizes vary
        img.save(root / "photo" / f"{i:04d}.JPEG", quality=90)
    return root


def bench_benchmark(device: str = "cpu", repeats: int = 3, quick: bool = False) -> list[dict[str, Any]]:
    """Rows per corruption at severity 3: the data part alone (decode, crop, corrupt against decoding
    pre-generated 224² corrupted JPEGs), the whole pipeline with a ResNet-18 against reading the files
    + the same inference; and inference alone. ``vs_files``: the peer's time / this row's time."""
    import torchvision
    from PIL import Image

    from ..data.folders import Record
    from ..data.imagenet import CropDataset
    from ..evaluate.benchmark import BenchModel, cell_counts, corrupt_images
    from ..models.classifiers import NORMALIZATIONS, Classifier

    dev = torch.device(device)
    n, batch = (8, 8) if quick else (64, 32)
    corruptions = CORRUPTIONS[:2] if quick else CORRUPTIONS
    torch.manual_seed(0)
    model = BenchModel("resnet18", Classifier(torchvision.models.resnet18(), *NORMALIZATIONS["imagenet"]).to(dev).eval())
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = _write_photos(Path(tmp) / "val", n)
        recs = [Record(p, 0) for p in sorted((root / "photo").iterdir())]
        clean = CropDataset(recs, root, resize=256, crop=224)
        labels = torch.zeros(batch, dtype=torch.long)

        def load(ds: CropDataset, idx: range) -> tuple[torch.Tensor, list[str]]:
            items = [ds[i] for i in idx]
            return torch.stack([i["image"] for i in items]).to(dev).float().div_(255), [i["key"] for i in items]

        def batches() -> list[range]:
            return [range(i, min(n, i + batch)) for i in range(0, n, batch)]

        # the peer's files: the same corrupted crops, written once as JPEG (quality 85, as ImageNet-C)
        cdir = Path(tmp) / "c"
        for c in corruptions:
            for idx in batches():
                x, keys = load(clean, idx)
                y = corrupt_images(x, keys, c, 3)
                for k, img in zip(keys, y):
                    p = cdir / c / k
                    p.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray((img * 255).round().byte().permute(1, 2, 0).cpu().numpy()).save(p, quality=85)
        for c in corruptions:
            def fly(c: str = c) -> None:
                with torch.inference_mode():
                    for idx in batches():
                        x, keys = load(clean, idx)
                        cell_counts(model(corrupt_images(x, keys, c, 3)), labels[:len(idx)])

            cds = CropDataset([Record(cdir / c / "photo" / r.path.name, 0) for r in recs], cdir / c, resize=None, crop=224)

            def files(cds: CropDataset = cds) -> None:
                with torch.inference_mode():
                    for idx in batches():
                        x, _ = load(cds, idx)
                        cell_counts(model(x), labels[:len(idx)])

            def fly_data(c: str = c) -> None:
                for idx in batches():
                    x, keys = load(clean, idx)
                    corrupt_images(x, keys, c, 3)

            def files_data(cds: CropDataset = cds) -> None:
                for idx in batches():
                    load(cds, idx)

            t_fly = timeit(fly, dev, repeats=repeats)
            t_files = timeit(files, dev, repeats=repeats)
            t_fly_d = timeit(fly_data, dev, repeats=repeats)
            t_files_d = timeit(files_data, dev, repeats=repeats)
            rows.append({"input": f"{n} photos -> {c} 3, data only", "method": "decode, crop, corrupt (on the fly)",
                         "seconds": t_fly_d, "images_per_s": n / t_fly_d, "vs_files": t_files_d / t_fly_d})
            rows.append({"input": f"{n} photos -> {c} 3, data only", "method": "decode pre-generated -C JPEGs",
                         "seconds": t_files_d, "images_per_s": n / t_files_d, "vs_files": 1.0})
            rows.append({"input": f"{n} photos -> {c} 3, ResNet-18 224²", "method": "medrobust on the fly (decode, crop, corrupt, infer)",
                         "seconds": t_fly, "images_per_s": n / t_fly, "vs_files": t_files / t_fly})
            rows.append({"input": f"{n} photos -> {c} 3, ResNet-18 224²", "method": "read pre-generated -C JPEGs + infer",
                         "seconds": t_files, "images_per_s": n / t_files, "vs_files": 1.0})
        x = torch.rand(batch, 3, 224, 224, device=dev)

        def infer() -> None:
            with torch.inference_mode():
                for idx in batches():
                    model(x[:len(idx)])

        t = timeit(infer, dev, repeats=repeats)
        rows.append({"input": f"{n} images, ResNet-18 224²", "method": "inference alone", "seconds": t,
                     "images_per_s": n / t, "vs_files": None})
    return rows
