"""Readers of the benchmark's test sets: ImageNet-val layouts, -C folders, CIFAR-C arrays."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medrobust.data.imagenet import (
    open_source,
    read_val_labels,
    resize_center_crop,
    scan_imagenet_val,
)


def _photo(seed: int, size=(90, 70)) -> Image.Image:
    import skimage.data

    img = skimage.data.astronaut()[seed * 40: seed * 40 + 300, seed * 30: seed * 30 + 260]
    return Image.fromarray(img).resize(size)


def test_resize_center_crop_matches_torchvision():
    import torchvision.transforms as T

    for size in [(90, 70), (70, 90), (64, 64), (300, 199)]:
        im = _photo(1, size)
        ref = np.asarray(T.Compose([T.Resize(72), T.CenterCrop(64)])(im))
        assert np.array_equal(resize_center_crop(im, 72, 64), ref), size
        ref = np.asarray(T.CenterCrop(64)(im)) if min(size) >= 64 else None
        if ref is not None:
            assert np.array_equal(resize_center_crop(im, None, 64), ref)


def test_class_folders_and_flat_val_with_labels_agree(tmp_path):
    tree, flat = tmp_path / "tree", tmp_path / "flat" / "val"
    flat.mkdir(parents=True)
    lines, rows = [], ["ImageId,PredictionString"]
    for k, cls in enumerate(["n01", "n02"]):
        (tree / cls).mkdir(parents=True)
        for j in range(2):
            name = f"ILSVRC2012_val_{k}{j}.JPEG"
            _photo(k * 2 + j).save(tree / cls / name)
            _photo(k * 2 + j).save(flat / name)
            lines.append(f"{name} {cls}")
            rows.append(f"ILSVRC2012_val_{k}{j},{cls} 1 2 3 4")
    (tmp_path / "val.txt").write_text("\n".join(lines))
    (tmp_path / "LOC_val_solution.csv").write_text("\n".join(rows))
    a, ca = scan_imagenet_val(tree)
    b, cb = scan_imagenet_val(tmp_path / "flat", tmp_path / "val.txt")
    c, cc = scan_imagenet_val(tmp_path / "flat", tmp_path / "LOC_val_solution.csv")
    assert ca == cb == cc == ["n01", "n02"]
    assert [r.label for r in a] == [r.label for r in b] == [r.label for r in c] == [0, 0, 1, 1]
    with pytest.raises(FileNotFoundError, match="labels"):
        scan_imagenet_val(tmp_path / "flat")
    assert read_val_labels(tmp_path / "val.txt")["ILSVRC2012_val_00"] == "n01"
    src = open_source(tree, resize=72, crop=64)
    assert src.kind == "folder" and len(src.clean) == 4
    item = src.clean[1]
    assert item["image"].shape == (3, 64, 64) and item["key"] == "n01/ILSVRC2012_val_01.JPEG" and int(item["label"]) == 0
    flat_src = open_source(tmp_path / "flat", labels=tmp_path / "val.txt", resize=72, crop=64)
    assert flat_src.clean[1]["key"] == "ILSVRC2012_val_01.JPEG"
    assert np.array_equal(flat_src.clean[1]["image"].numpy(), item["image"].numpy())


def _c_tree(root, sevs=(1, 2, 3), classes=("a", "b")):
    for s in sevs:
        for c in classes:
            (root / "fog" / str(s) / c).mkdir(parents=True)
            _photo(0, (64, 64)).save(root / "fog" / str(s) / c / "x.png")


def test_c_folders_errors_name_the_path(tmp_path):
    _c_tree(tmp_path / "c")
    src = open_source(tmp_path / "c", severities=[1, 2, 3], crop=64)
    assert src.kind == "c_folders" and src.corruptions() == ["fog"] and src.clean is None
    assert src.dataset("fog", 2)[0]["key"] == "a/x.png"
    with pytest.raises(FileNotFoundError, match=r"fog/4"):
        open_source(tmp_path / "c", severities=[1, 4], crop=64)
    (tmp_path / "c" / "fog" / "2" / "zebra").mkdir()
    _photo(0, (64, 64)).save(tmp_path / "c" / "fog" / "2" / "zebra" / "y.png")
    with pytest.raises(ValueError, match=r"fog/2: class folders differ.*zebra"):
        open_source(tmp_path / "c", severities=[1, 2], crop=64)
    clean = tmp_path / "clean"
    for c in ("a", "c"):
        (clean / c).mkdir(parents=True)
        _photo(0, (64, 64)).save(clean / c / "x.png")
    with pytest.raises(ValueError, match=r"fog/1: class folders differ"):
        open_source(tmp_path / "c", severities=[1], clean=clean, crop=64)


def test_cifar_c_arrays(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "fog.npy", rng.integers(0, 256, (5 * 6, 32, 32, 3), dtype=np.uint8))
    np.save(tmp_path / "labels.npy", np.tile(np.arange(6) % 3, 5))
    src = open_source(tmp_path, severities=[2, 5])
    assert src.kind == "cifar_c" and src.size == 32 and src.classes == ["0", "1", "2"]
    item = src.dataset("fog", 5)[1]
    assert item["image"].shape == (3, 32, 32) and int(item["label"]) == 1
    with pytest.raises(FileNotFoundError, match="snow.npy"):
        open_source(tmp_path, corruptions=["snow"])
