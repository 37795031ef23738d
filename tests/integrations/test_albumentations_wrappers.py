"""albumentations 2.x transforms generated from the registry: real Compose pipelines in a DataLoader with two
workers (reproducible with Compose(seed=...)), uint8/float32 HWC in and out, masks untouched, to_dict/from_dict."""

import albumentations as A
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from medrobust.augment import REGISTRY
from medrobust.integrations import albumentations as ma


class Images(Dataset):
    def __init__(self, pipeline, n=6):
        rng = np.random.default_rng(0)
        self.images = (rng.random((n, 20, 20, 3)) * 255).astype(np.uint8)
        self.masks = rng.integers(0, 3, (n, 20, 20)).astype(np.uint8)
        self.pipeline = pipeline

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        out = self.pipeline(image=self.images[i], mask=self.masks[i])
        return torch.from_numpy(out["image"]), torch.from_numpy(out["mask"])


def _pipeline(seed=0):
    return A.Compose([A.HorizontalFlip(p=0.5), ma.RandConv(p=1.0, mixing=True), ma.GIN(p=0.7)], seed=seed)


def _run(seed=0):
    ds = Images(_pipeline(seed))
    return list(DataLoader(ds, batch_size=2, num_workers=2, shuffle=False)), ds


def test_one_image_only_transform_per_core():
    assert set(ma.TRANSFORMS) == set(REGISTRY)
    for name, cls in REGISTRY.items():
        t = getattr(ma, cls.__name__)
        assert t is ma.TRANSFORMS[name] and issubclass(t, A.ImageOnlyTransform) and hasattr(t, "InitSchema")
    with pytest.raises(ValueError):
        ma.RandConv(kernel_sizes="not sizes")  # the core checks its values when the transform is built


def test_dataloader_two_workers_reproducible_dtype_and_masks_untouched():
    (a, ds), (b, _) = _run(), _run()
    for (xa, ma_), (xb, mb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ma_, mb)
    images = torch.cat([x for x, _ in a])
    assert images.dtype == torch.uint8 and images.shape == (6, 20, 20, 3)
    masks = torch.cat([m for _, m in a]).numpy()
    flipped = [m if np.array_equal(m, ds.masks[i]) else m[:, ::-1] for i, m in enumerate(masks)]
    assert all(np.array_equal(f, ds.masks[i]) for i, f in enumerate(flipped))  # only the flip moved the masks
    assert len({x.numpy().tobytes() for x in images}) == 6 and not np.array_equal(images.numpy(), ds.images)
    c, _ = _run(seed=1)
    assert not torch.equal(torch.cat([x for x, _ in c]), images)


def test_float32_grayscale_and_serialisation_round_trip():
    img = np.random.default_rng(1).random((16, 16)).astype(np.float32)
    pipe = A.Compose([ma.MRIRicianNoise(p=1.0, severity=2), ma.RandConv(p=0.5, kernel_sizes=[1, 3])], seed=3)
    out = pipe(image=img)["image"]
    assert out.dtype == np.float32 and out.shape == img.shape and not np.allclose(out, img)
    d = A.to_dict(pipe)
    assert d["transform"]["transforms"][0] == {
        "__class_fullname__": "medrobust.integrations.albumentations.MRIRicianNoise", "p": 1.0, "severity": 2}
    back = A.from_dict(d)
    back.set_random_seed(3)
    assert isinstance(back.transforms[1], ma.RandConv) and back.transforms[1].kernel_sizes == [1, 3]
    np.testing.assert_array_equal(back(image=img)["image"], out)
