"""The benchmark engine: counts per cell, ECE against torchmetrics, mCE by hand, per-image seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from medrobust.evaluate.benchmark import (
    ALEXNET_CLEAN_ERROR,
    ALEXNET_ERRORS,
    BenchModel,
    cell_counts,
    cell_metrics,
    corrupt_images,
    mce,
    merge_counts,
    relative_mce,
    run_benchmark,
    summarise,
)


def test_alexnet_table_is_shared_and_matches_the_published_means():
    from medrobust.tasks.classification import imagenet_c

    assert imagenet_c.ALEXNET_ERRORS is ALEXNET_ERRORS
    assert imagenet_c.ALEXNET_CLEAN_ERROR == ALEXNET_CLEAN_ERROR
    published = {"gaussian_noise": 0.886428, "shot_noise": 0.894468, "impulse_noise": 0.922640, "defocus_blur": 0.819880,
                 "glass_blur": 0.826268, "motion_blur": 0.785948, "zoom_blur": 0.798360, "snow": 0.866816,
                 "frost": 0.826572, "fog": 0.819324, "brightness": 0.564592, "contrast": 0.853204,
                 "elastic_transform": 0.646056, "pixelate": 0.717840, "jpeg_compression": 0.606500}
    assert list(ALEXNET_ERRORS) == list(published)
    for c, m in published.items():
        assert np.mean(ALEXNET_ERRORS[c]) == pytest.approx(m, abs=1e-6)


def test_mce_against_a_hand_computation():
    errors = {"fog": [0.1, 0.2, 0.3, 0.4, 0.5], "contrast": [0.2, 0.2, 0.2, 0.2, 0.7]}
    hand = (100 * 0.3 / 0.819324 + 100 * 0.3 / 0.853204) / 2
    assert mce(errors) == pytest.approx(hand, rel=1e-6)
    # a baseline of means, and of five rates, give the same
    assert mce(errors, {"fog": 0.3, "contrast": 0.6}) == pytest.approx((100 + 50) / 2)
    assert mce(errors, {"fog": [0.3] * 5, "contrast": [0.5, 0.5, 0.5, 0.7, 0.8]}) == pytest.approx((100 + 50) / 2)
    rel = relative_mce(errors, 0.05)
    assert rel == pytest.approx(np.mean([100 * 0.25 / (0.819324 - 0.43478), 100 * 0.25 / (0.853204 - 0.43478)]), rel=1e-5)
    with pytest.raises(ValueError, match="speckle_noise"):
        mce({"speckle_noise": [0.1] * 5})
    with pytest.raises(ValueError, match="fog"):
        mce({"fog": [0.1, 0.2]}, {"fog": [0.1, 0.2, 0.3]})


def test_ece_and_top5_against_torchmetrics():
    from torchmetrics.classification import (
        MulticlassAccuracy,
        MulticlassCalibrationError,
    )

    g = torch.Generator().manual_seed(0)
    n, k = 1000, 12
    labels = torch.randint(0, k, (n,), generator=g)
    logits = torch.randn(n, k, generator=g) * 3
    logits[torch.arange(n)[:600], labels[:600]] += 3  # some right, some wrong, a spread of confidences
    logits[0] = -1e4
    logits[0, labels[0]] = 1e4  # confidence exactly 1.0 (torchmetrics' extra bin)
    counts = merge_counts(cell_counts(logits[i:i + 97], labels[i:i + 97]) for i in range(0, n, 97))
    m = cell_metrics(counts)
    ref = MulticlassCalibrationError(num_classes=k, n_bins=15, norm="l1")(logits.softmax(1), labels)
    assert m["ece"] == pytest.approx(float(ref), abs=1e-6)
    assert m["n"] == n
    assert m["accuracy"] == pytest.approx(float(MulticlassAccuracy(k, average="micro")(logits, labels)))
    assert m["top5"] == pytest.approx(float(MulticlassAccuracy(k, top_k=5, average="micro")(logits, labels)))


def test_counts_are_exact_in_any_order():
    g = torch.Generator().manual_seed(1)
    logits, labels = torch.randn(300, 7, generator=g), torch.randint(0, 7, (300,), generator=g)
    a = merge_counts(cell_counts(logits[i:i + 50], labels[i:i + 50]) for i in range(0, 300, 50))
    perm = torch.randperm(300, generator=g)
    b = merge_counts(cell_counts(logits[perm][i:i + 33], labels[perm][i:i + 33]) for i in range(0, 300, 33))
    assert a == b


@pytest.mark.parametrize("name", ["gaussian_noise", "glass_blur", "elastic_transform", "fog", "snow", "jpeg_compression"])
def test_on_the_fly_corruption_does_not_depend_on_the_batch(name):
    g = torch.Generator().manual_seed(2)
    x = torch.rand(4, 3, 40, 40, generator=g)
    keys = ["a/1.png", "a/2.png", "b/3.png", "b/4.png"]
    whole = corrupt_images(x, keys, name, 3, seed=5, table="cifar")
    alone = torch.cat([corrupt_images(x[i:i + 1], keys[i:i + 1], name, 3, seed=5, table="cifar") for i in range(4)])
    reordered = corrupt_images(x.flip(0), keys[::-1], name, 3, seed=5, table="cifar").flip(0)
    assert torch.allclose(whole, alone, atol=1e-6) and torch.allclose(whole, reordered, atol=1e-6)
    assert torch.equal(whole * 255, torch.round(whole * 255))  # 8-bit values
    assert not torch.equal(whole, corrupt_images(x, keys, name, 5, seed=5, table="cifar"))  # the severity counts
    other = corrupt_images(x, keys, name, 3, seed=6, table="cifar")
    if name not in ("jpeg_compression",):
        assert not torch.equal(whole, other)


# ------------------------------------------------------------------------------ severity counter
class RedChannelClassifier(torch.nn.Module):
    """Predicts class ``round(mean red · 9)``: an image of known class, drawn in the red channel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = torch.round(x[:, 0].mean(dim=(1, 2)) * 9).long().clamp(0, 9)
        return torch.nn.functional.one_hot(k, 10).float() * 10


def _write_c_folder(root, n_per_class=4, classes=10):
    """ImageNet-C layout where severity s has exactly s images of class 0 drawn as class 1."""
    for s in range(1, 6):
        for c in range(classes):
            d = root / "fog" / str(s) / f"c{c}"
            d.mkdir(parents=True)
            for j in range(n_per_class):
                drawn = 1 if (c == 0 and j < s) else c
                img = np.zeros((16, 16, 3), np.uint8)
                img[..., 0] = round(drawn / 9 * 255)
                Image.fromarray(img).save(d / f"{j}.png")


def test_severity_counter_is_reset_per_cell(tmp_path):
    from medrobust.data.imagenet import open_source

    _write_c_folder(tmp_path / "c", n_per_class=1 + 4)  # 5 images per class, 50 per cell
    source = open_source(tmp_path / "c", crop=16)
    model = BenchModel("red", RedChannelClassifier())
    done = run_benchmark([model], source, corruptions=["fog"], severities=[1, 2, 3, 4, 5], out_dir=tmp_path / "out",
                         settings={"t": 1}, batch_size=7, progress=False)
    summary = summarise(done, ["red"], ["fog"], [1, 2, 3, 4, 5], normalised=False)
    for s in range(1, 6):
        cell = summary["red"]["corruptions"]["fog"][str(s)]
        assert cell["n"] == 50
        assert cell["accuracy"] == pytest.approx((50 - s) / 50)  # the survey's bug would give ~ (50 - s) / 50 / s


def test_resume_refuses_other_settings(tmp_path):
    from medrobust.data.imagenet import open_source

    _write_c_folder(tmp_path / "c", n_per_class=1)
    source = open_source(tmp_path / "c", crop=16)
    model = BenchModel("red", RedChannelClassifier())
    kw = dict(corruptions=["fog"], severities=[1, 2], out_dir=tmp_path / "out", progress=False)
    run_benchmark([model], source, settings={"seed": 0}, **kw)
    with pytest.raises(ValueError, match=r"cells\.json.*seed"):
        run_benchmark([model], source, settings={"seed": 1}, **kw)
