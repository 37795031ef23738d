"""CIFAR-10/100 and CIFAR-10-C readers on fixtures written in the exact released layouts (the
CIFAR-10-C writer is tested in tests/corrupt/test_corrupt_cifar.py)."""

import pickle

import numpy as np
import pytest
import torch

from medrobust.data.cifar import (
    ImageArrayDataset,
    cifar_c_corruptions,
    random_crop_flip,
    read_cifar10,
    read_cifar100,
    read_cifar_c,
    to_chw_float,
)


def _planes(n, offset):
    """(N, 3072) uint8 rows whose R, G, B planes are recognisable: value = (offset + i + 40c + y + x) % 256."""
    i, c, y, x = np.meshgrid(np.arange(n), np.arange(3), np.arange(32), np.arange(32), indexing="ij")
    return ((offset + i + 40 * c + y + x) % 256).astype(np.uint8).reshape(n, 3072)


def _dump(path, obj):
    # the release was written by Python 2's cPickle: bytes keys, protocol 2
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(root, n_train=4, n_test=6):
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    for k in range(1, 6):
        _dump(base / f"data_batch_{k}", {b"batch_label": b"training batch", b"data": _planes(n_train, 10 * k),
                                           b"labels": [(k + i) % 10 for i in range(n_train)],
                                           b"filenames": [b"x.png"] * n_train})
    _dump(base / "test_batch", {b"data": _planes(n_test, 100), b"labels": [i % 10 for i in range(n_test)]})
    _dump(base / "batches.meta", {b"label_names": [n.encode() for n in
                                                   ("airplane automobile bird cat deer dog frog horse ship truck").split()],
                                  b"num_vis": 3072})
    return base


def write_cifar100(root, n=5):
    base = root / "cifar-100-python"
    base.mkdir(parents=True)
    for split, off in (("train", 0), ("test", 50)):
        _dump(base / split, {b"data": _planes(n, off), b"fine_labels": [(7 * i) % 100 for i in range(n)],
                             b"coarse_labels": [i % 20 for i in range(n)]})
    _dump(base / "meta", {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                          b"coarse_label_names": [f"c{i}".encode() for i in range(20)]})
    return base


def test_cifar10_layout_and_pixel_order(tmp_path):
    write_cifar10(tmp_path)
    train = read_cifar10(tmp_path, "train")
    assert train.images.shape == (20, 32, 32, 3) and train.images.dtype == np.uint8
    assert train.labels.dtype == np.int64 and train.labels.tolist()[:4] == [1, 2, 3, 4]
    assert train.classes[0] == "airplane" and len(train.classes) == 10
    # image 1 of batch 2, channel G (c = 1), row 3, column 5
    assert train.images[4 + 1, 3, 5, 1] == (20 + 1 + 40 + 3 + 5) % 256
    test = read_cifar10(tmp_path / "cifar-10-batches-py", "test")  # the batches folder itself works too
    assert len(test) == 6 and test.images[2, 31, 0, 2] == (100 + 2 + 80 + 31) % 256
    x = to_chw_float(test.images)
    assert x.shape == (6, 3, 32, 32) and x.dtype == torch.float32
    assert float(x[2, 2, 31, 0]) == pytest.approx(test.images[2, 31, 0, 2] / 255)


def test_cifar100_fine_and_coarse(tmp_path):
    write_cifar100(tmp_path)
    fine = read_cifar100(tmp_path, "train", "fine")
    coarse = read_cifar100(tmp_path, "test", "coarse")
    assert fine.labels.tolist() == [0, 7, 14, 21, 28] and len(fine.classes) == 100
    assert coarse.labels.tolist() == [0, 1, 2, 3, 4] and coarse.classes[:2] == ["c0", "c1"]
    assert fine.images[1, 0, 0, 0] == 1


@pytest.mark.parametrize(
    "bad, match",
    [
        ({b"data": np.zeros((3, 3071), np.uint8), b"labels": [0, 1, 2]}, r"\(N, 3072\)"),
        ({b"data": np.zeros((3, 3072), np.float32), b"labels": [0, 1, 2]}, "uint8"),
        ({b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1]}, "2 entries for 3 images"),
        ({b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1, 10]}, r"\[0, 10\)"),
        ({b"data": np.zeros((3, 3072), np.uint8)}, "missing key 'labels'"),
    ],
)
def test_cifar_errors_name_the_file(tmp_path, bad, match):
    base = write_cifar10(tmp_path)
    _dump(base / "test_batch", bad)
    with pytest.raises(ValueError, match=match) as err:
        read_cifar10(tmp_path, "test")
    assert "test_batch" in str(err.value)


def test_missing_files_and_unsafe_pickles(tmp_path):
    base = write_cifar10(tmp_path)
    (base / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        read_cifar10(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        read_cifar100(tmp_path, "train")  # a CIFAR-10 root has no CIFAR-100 folder
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_cifar10(tmp_path / "x", "train")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(base / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f, protocol=2)
    with pytest.raises(ValueError, match=r"refusing to load .*print"):
        read_cifar10(tmp_path, "test")


def write_cifar_c(root, n=4, corruptions=("gaussian_noise", "fog")):
    root.mkdir(parents=True, exist_ok=True)
    labels = np.tile(np.arange(n) % 10, 5).astype(np.uint8)
    np.save(root / "labels.npy", labels)
    for k, c in enumerate(corruptions):
        arr = np.zeros((5 * n, 32, 32, 3), np.uint8)
        arr[:] = (np.arange(5 * n) // n * 10 + k)[:, None, None, None]  # value encodes the severity block
        np.save(root / f"{c}.npy", arr)
    return root


def test_cifar_c_blocks_and_errors(tmp_path):
    root = write_cifar_c(tmp_path / "CIFAR-10-C")
    assert cifar_c_corruptions(root) == ["fog", "gaussian_noise"]
    for s in range(1, 6):
        imgs, labels = read_cifar_c(root, "fog", s)
        assert imgs.shape == (4, 32, 32, 3) and (imgs == (s - 1) * 10 + 1).all()
        assert labels.tolist() == [0, 1, 2, 3]
    imgs, labels = read_cifar_c(root, "gaussian_noise")
    assert imgs.shape == (20, 32, 32, 3) and len(labels) == 20
    with pytest.raises(FileNotFoundError, match=r"snow\.npy.*available corruptions: \['fog', 'gaussian_noise'\]"):
        read_cifar_c(root, "snow", 1)
    with pytest.raises(ValueError, match="severity"):
        read_cifar_c(root, "fog", 6)
    np.save(root / "fog.npy", np.zeros((20, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match=r"fog\.npy: expected uint8"):
        read_cifar_c(root, "fog", 1)
    np.save(root / "fog.npy", np.zeros((18, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match=r"fog\.npy: expected shape \(5\*N"):
        read_cifar_c(root, "fog", 1)
    np.save(root / "fog.npy", np.zeros((25, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match=r"labels\.npy.*25 images"):
        read_cifar_c(root, "fog", 1)


def test_array_dataset_and_crop_flip():
    imgs = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    ds = ImageArrayDataset(imgs, [0, 1, 2, 3, 4], transform=lambda x: random_crop_flip(x, pad=4))
    item = ds[2]
    assert item["image"].shape == (3, 32, 32) and item["label"].item() == 2
    torch.manual_seed(0)
    x = to_chw_float(imgs[0])
    outs = {tuple(random_crop_flip(x, pad=4).flatten()[:50].tolist()) for _ in range(10)}
    assert len(outs) > 1  # random
    with pytest.raises(ValueError, match="labels"):
        ImageArrayDataset(imgs, [0, 1])
