"""MONAI dictionary transforms generated from the registry: real Compose pipelines in a DataLoader with two
workers (reproducible under set_determinism), MetaTensor metadata, channel-first inputs, labels untouched."""

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset, MetaTensor
from monai.transforms import Compose, EnsureTyped, ScaleIntensityd
from monai.utils import set_determinism

from medrobust.augment import REGISTRY
from medrobust.integrations import monai as mm


def _items(n=6):
    rng = np.random.default_rng(0)
    return [{"image": rng.random((1, 24, 24)).astype(np.float32) * 100, "label": rng.integers(0, 4, (1, 24, 24)),
             "id": i} for i in range(n)]


def _pipeline():
    return Compose([EnsureTyped(keys=["image", "label"], track_meta=True), ScaleIntensityd(keys="image"),
                    mm.RandConvd(keys=["image"], prob=1.0, mixing=True), mm.GINd(keys="image", prob=0.8),
                    mm.IPAd(keys="image", prob=0.5)])


def _run(items):
    set_determinism(seed=0)
    loader = DataLoader(Dataset(items, transform=_pipeline()), batch_size=2, num_workers=2, shuffle=False)
    batches = list(loader)
    set_determinism(seed=None)
    return batches


def test_one_class_per_core_named_like_the_core():
    assert set(mm.TRANSFORMS) == set(REGISTRY)
    for name, cls in REGISTRY.items():
        t = getattr(mm, cls.__name__ + "d")
        assert t is mm.TRANSFORMS[name] and t is mm.dict_transform(name) and t.core_name == name
    assert issubclass(mm.RandConvd, mm.RandomizableTransform) and issubclass(mm.RandConvd, mm.MapTransform)
    with pytest.raises(ValueError, match="unknown key"):
        mm.RandConvd(keys="image", not_an_argument=1)


def test_dataloader_two_workers_reproducible_metadata_and_labels_untouched():
    items = _items()
    a, b = _run(items), _run(items)
    for x, y in zip(a, b):
        torch.testing.assert_close(x["image"], y["image"], rtol=0, atol=0)
    images = torch.cat([x["image"] for x in a])
    assert images.dtype == torch.float32 and images.shape == (6, 1, 24, 24)
    assert isinstance(a[0]["image"], MetaTensor) and a[0]["image"].is_batch
    labels = torch.cat([x["label"] for x in a])
    torch.testing.assert_close(labels.as_tensor().long(), torch.as_tensor(np.stack([i["label"] for i in items])))
    # the workers draw different augmentations (no two samples got the same draws)
    clean = torch.stack([torch.as_tensor(i["image"] / i["image"].max()) for i in items])
    assert not torch.allclose(images.as_tensor(), clean, atol=1e-3)
    flat = images.reshape(6, -1)
    assert len({tuple(np.round(f[:8].numpy(), 5)) for f in flat}) == 6


def test_set_random_state_seeds_the_core_and_keeps_meta_numpy_and_3d():
    x = MetaTensor(torch.rand(1, 8, 16, 16), meta={"filename_or_obj": "scan.nii.gz", "spacing": (1.0, 1.0, 3.0)})
    t = mm.MRIRicianNoised(keys="image", severity=3)
    outs = [t.set_random_state(seed=5)({"image": x})["image"] for _ in range(2)]
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    assert outs[0].meta["filename_or_obj"] == "scan.nii.gz" and outs[0].shape == x.shape
    assert not torch.equal(outs[0].as_tensor(), x.as_tensor())
    again = t({"image": x})["image"]  # the next call draws anew
    assert not torch.equal(again.as_tensor(), outs[0].as_tensor())
    arr = np.random.default_rng(0).random((3, 16, 16)).astype(np.float32)
    y = mm.RandConvd(keys="image").set_random_state(1)({"image": arr, "label": "kept"})
    assert isinstance(y["image"], np.ndarray) and y["image"].shape == arr.shape and y["label"] == "kept"
    skipped = mm.RandConvd(keys="image", prob=0.0)({"image": arr})
    assert skipped["image"] is arr
