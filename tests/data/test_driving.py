"""Driving-scene readers: label encodings of every dataset, real on-disk layouts, errors, datasets,
transforms, the embedded synthetic default and mIoU against torchmetrics / a hand computation."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from medrobust.data import driving as D
from medrobust.data.driving import (
    CLASS_NAMES,
    DrivingDataError,
    DrivingDataset,
    driving_transforms,
    list_samples,
    load_sample,
    read_label,
    to_train_ids,
)

# ------------------------------------------------------------------------------------ fixture writers


def write_png16(path, arr: np.ndarray) -> None:
    """A 16-bit RGB/RGBA PNG written byte by byte (no OpenCV): arr[..., 0] is the file's first channel."""
    h, w, c = arr.shape
    raw = b"".join(b"\x00" + np.ascontiguousarray(arr[i]).astype(">u2").tobytes() for i in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    colour_type = {3: 2, 4: 6}[c]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def save_grey(path, arr, palette=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(np.asarray(arr, dtype=np.uint8))
    if palette is not None:
        im.putpalette(palette)
    im.save(path)


def save_rgb(path, arr) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(path, quality=95) if path.suffix == ".jpg" else \
        Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(path)


def image(h=4, w=6, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


CS_PALETTE = [v for lid in range(256) for v in (D.CITYSCAPES_LABELS[lid][3] if lid < 34 else (0, 0, 0))]

# ------------------------------------------------------------------------------------ label mappings


def test_cityscapes_ids_table_from_the_brief():
    ids = np.arange(34, dtype=np.uint8).reshape(2, 17)
    out = to_train_ids(ids, "cityscapes")
    expected = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
    for lid in range(34):
        assert out.ravel()[lid] == expected.get(lid, 255), lid
    assert out.dtype == np.uint8 and out.shape == ids.shape


def test_gta5_ids_and_colours_agree():
    ids = np.arange(34, dtype=np.uint8).reshape(2, 17)
    colours = np.array([D.CITYSCAPES_LABELS[i][3] for i in range(34)], dtype=np.uint8).reshape(2, 17, 3)
    by_id = to_train_ids(ids, "gta5")
    by_colour = to_train_ids(colours, "gta5")
    # shared colours: ids 0-4 black (ignore), 18 polegroup has the pole grey (-> pole, not ignore)
    diff = np.flatnonzero(by_id.ravel() != by_colour.ravel()).tolist()
    assert diff == [18] and by_colour.ravel()[18] == 5
    np.testing.assert_array_equal(by_id, to_train_ids(ids, "cityscapes"))
    rgba = np.concatenate([colours, np.full((2, 17, 1), 255, np.uint8)], -1)
    np.testing.assert_array_equal(to_train_ids(rgba, "gta5"), by_colour)


def test_bdd100k_identity_with_ignore():
    lab = np.array([[0, 5, 18], [255, 3, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(to_train_ids(lab, "bdd100k"), lab)


def test_mapillary_table_from_the_brief():
    idx = np.arange(66, dtype=np.uint8)[None]
    out = to_train_ids(idx, "mapillary")[0]
    expected = {13: 0, 24: 0, 41: 0, 2: 1, 15: 1, 17: 2, 6: 3, 3: 4, 45: 5, 47: 5, 48: 6, 50: 7, 30: 8, 29: 9,
                27: 10, 19: 11, 20: 12, 21: 12, 22: 12, 55: 13, 61: 14, 54: 15, 58: 16, 57: 17, 52: 18}
    assert out.tolist() == [expected.get(i, 255) for i in range(66)]


def test_synthia_table_channel_zero_and_2d():
    cls = np.arange(23, dtype=np.uint16)[None]
    full = np.stack([cls, np.full_like(cls, 4000), np.zeros_like(cls)], -1)  # instance ids > 255 in channel 1
    expected = {3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 16: 9, 1: 10, 10: 11, 17: 12, 8: 13,
                18: 14, 19: 15, 20: 16, 12: 17, 11: 18}
    out = to_train_ids(full, "synthia")[0]
    assert out.tolist() == [expected.get(i, 255) for i in range(23)]
    np.testing.assert_array_equal(to_train_ids(cls, "synthia"), to_train_ids(full, "synthia"))


@pytest.mark.parametrize("dataset,bad", [("cityscapes", 34), ("gta5", 200), ("mapillary", 66), ("synthia", 23),
                                         ("bdd100k", 19), ("bdd100k", 254)])
def test_unknown_label_values_raise(dataset, bad):
    lab = np.array([[0, bad]], dtype=np.uint16 if dataset == "synthia" else np.uint8)
    with pytest.raises(DrivingDataError, match=str(bad)):
        to_train_ids(lab, dataset)


def test_other_bad_inputs():
    with pytest.raises(DrivingDataError, match="unknown dataset"):
        to_train_ids(np.zeros((2, 2), np.uint8), "kitti")
    with pytest.raises(DrivingDataError, match="palette"):
        to_train_ids(np.full((2, 2, 3), 7, np.uint8), "gta5")
    with pytest.raises(DrivingDataError, match="integer"):
        to_train_ids(np.zeros((2, 2), np.float32), "cityscapes")
    with pytest.raises(DrivingDataError, match="2D"):
        to_train_ids(np.zeros((2, 2, 3), np.uint8), "cityscapes")
    with pytest.raises(DrivingDataError, match="-1"):
        to_train_ids(np.array([[-1, 7]]), "cityscapes")


# --------------------------------------------------------------------------------- real-layout fixtures


def test_cityscapes_layout(tmp_path):
    ids = np.array([[7, 8, 11, 0], [26, 24, 1, 33]], dtype=np.uint8)
    for city in ("aachen", "bochum"):
        stem = f"{city}_000000_000019"
        save_rgb(tmp_path / "leftImg8bit" / "val" / city / f"{stem}_leftImg8bit.png", image(2, 4))
        save_grey(tmp_path / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png", ids)
    samples = list_samples(tmp_path, "cityscapes", "val")
    assert [s.name for s in samples] == ["aachen_000000_000019", "bochum_000000_000019"]
    img, tids = load_sample(samples[0])
    assert img.shape == (2, 4, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(tids, [[0, 1, 2, 255], [13, 11, 255, 18]])
    item = D.CityscapesDataset(tmp_path, "val")[1]
    assert item["image"].shape == (3, 2, 4) and item["image"].dtype == torch.float32
    assert 0 <= float(item["image"].min()) and float(item["image"].max()) <= 1
    assert item["label"].shape == (1, 2, 4) and item["label"].dtype == torch.int64
    np.testing.assert_allclose(item["image"].permute(1, 2, 0).numpy(), image(2, 4) / 255.0, atol=1e-6)


def test_cityscapes_missing_label_and_size_mismatch(tmp_path):
    save_rgb(tmp_path / "leftImg8bit" / "val" / "x" / "x_0_1_leftImg8bit.png", image(2, 4))
    with pytest.raises(DrivingDataError, match="x_0_1_gtFine_labelIds.png"):
        list_samples(tmp_path, "cityscapes", "val")
    save_grey(tmp_path / "gtFine" / "val" / "x" / "x_0_1_gtFine_labelIds.png", np.zeros((3, 4)))
    with pytest.raises(DrivingDataError, match="does not match"):
        load_sample(list_samples(tmp_path, "cityscapes", "val")[0])
    with pytest.raises(DrivingDataError, match="leftImg8bit"):
        list_samples(tmp_path, "cityscapes", "train")
    with pytest.raises(DrivingDataError, match="not found"):
        list_samples(tmp_path / "nope", "cityscapes", "val")


def test_cityscapes_unknown_id_in_file_names_the_file(tmp_path):
    save_rgb(tmp_path / "leftImg8bit" / "val" / "x" / "x_0_1_leftImg8bit.png", image(2, 2))
    save_grey(tmp_path / "gtFine" / "val" / "x" / "x_0_1_gtFine_labelIds.png", [[7, 40], [7, 7]])
    with pytest.raises(DrivingDataError, match=r"x_0_1_gtFine_labelIds.png.*\[40\]"):
        DrivingDataset(tmp_path, "val", dataset="cityscapes")[0]


def test_gta5_palette_and_colour_labels_with_split_lists(tmp_path):
    ids = np.array([[7, 26, 0], [23, 17, 18]], dtype=np.uint8)
    for n in ("00001", "00002", "00003"):
        save_rgb(tmp_path / "images" / f"{n}.png", image(2, 3))
    save_grey(tmp_path / "labels" / "00001.png", ids, palette=CS_PALETTE)  # paletted, as released
    colours = np.array([[D.CITYSCAPES_LABELS[i][3] for i in row] for row in ids], np.uint8)
    save_rgb(tmp_path / "labels" / "00002.png", colours)  # colour-coded
    save_grey(tmp_path / "labels" / "00003.png", ids)
    (tmp_path / "train.txt").write_text("00001.png\n00002.png\n")
    (tmp_path / "val.txt").write_text("images/00003.png\n")
    assert read_label(tmp_path / "labels" / "00001.png", "gta5").ndim == 2  # palette indices, not colours
    assert read_label(tmp_path / "labels" / "00002.png", "gta5").shape == (2, 3, 3)
    train = list_samples(tmp_path, "gta5", "train")
    assert [s.name for s in train] == ["00001", "00002"]
    a, b = (load_sample(s)[1] for s in train)
    np.testing.assert_array_equal(a, [[0, 13, 255], [10, 5, 255]])
    np.testing.assert_array_equal(b, [[0, 13, 255], [10, 5, 5]])  # polegroup's colour is the pole's
    assert [s.name for s in list_samples(tmp_path, "gta5", "val")] == ["00003"]
    assert len(list_samples(tmp_path, "gta5", "all")) == 3
    assert len(list_samples(tmp_path, "gta5", str(tmp_path / "train.txt"))) == 2
    with pytest.raises(DrivingDataError, match="split 'test'"):
        list_samples(tmp_path, "gta5", "test")
    (tmp_path / "bad.txt").write_text("00009.png\n")
    with pytest.raises(DrivingDataError, match="00009.png"):
        list_samples(tmp_path, "gta5", "bad")


def test_gta5_split_mat(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    for n in ("00001", "00002"):
        save_rgb(tmp_path / "images" / f"{n}.png", image(2, 2))
        save_grey(tmp_path / "labels" / f"{n}.png", np.full((2, 2), 7), palette=CS_PALETTE)
    scipy_io.savemat(tmp_path / "split.mat", {"trainIds": np.array([[2]]), "valIds": np.array([[1]]),
                                              "testIds": np.zeros((0, 1))})
    assert [s.name for s in list_samples(tmp_path, "gta5", "train")] == ["00002"]
    assert [s.name for s in list_samples(tmp_path, "gta5", "val")] == ["00001"]


def test_bdd100k_layout(tmp_path):
    lab = np.array([[0, 1, 255], [13, 18, 10]], dtype=np.uint8)
    save_rgb(tmp_path / "images" / "10k" / "val" / "7d2f7975-e0c1c5a7.jpg", image(2, 3))
    save_grey(tmp_path / "labels" / "sem_seg" / "masks" / "val" / "7d2f7975-e0c1c5a7.png", lab)
    ds = D.BDD100KDataset(tmp_path, "val")
    assert ds.samples[0].name == "7d2f7975-e0c1c5a7"
    np.testing.assert_array_equal(ds[0]["label"][0].numpy(), lab)
    save_rgb(tmp_path / "images" / "10k" / "val" / "zz.jpg", image(2, 3))
    with pytest.raises(DrivingDataError, match="zz.png"):
        list_samples(tmp_path, "bdd100k", "val")


@pytest.mark.parametrize("labels_dir", ["labels", "v1.2/labels"])
def test_mapillary_layout(tmp_path, labels_dir):
    idx = np.array([[13, 24, 41, 65], [19, 20, 55, 63]], dtype=np.uint8)
    save_rgb(tmp_path / "validation" / "images" / "abc.jpg", image(2, 4))
    palette = np.random.default_rng(1).integers(0, 256, 768).tolist()
    save_grey(tmp_path / "validation" / labels_dir / "abc.png", idx, palette=palette)
    for split in ("validation", "val", None):
        (s,) = list_samples(tmp_path, "mapillary", split)
    np.testing.assert_array_equal(load_sample(s)[1], [[0, 0, 0, 255], [11, 12, 13, 255]])


def test_synthia_16bit_first_channel(tmp_path):
    cls = np.array([[3, 4, 0], [22, 8, 10]], dtype=np.uint16)
    inst = np.array([[0, 0, 0], [0, 300, 4095]], dtype=np.uint16)
    # channel 0 of the file holds the class; the others would give wrong (or undefined) classes
    write_png16(tmp_path / "GT" / "LABELS" / "0000007.png", np.stack([cls, inst, np.full_like(cls, 9)], -1))
    save_rgb(tmp_path / "RGB" / "0000007.png", image(2, 3))
    (tmp_path / "val.txt").write_text("0000007.png\n")
    raw = read_label(tmp_path / "GT" / "LABELS" / "0000007.png", "synthia")
    assert raw.dtype == np.uint16 and raw.shape == (2, 3, 3)
    np.testing.assert_array_equal(raw[..., 0], cls)
    np.testing.assert_array_equal(raw[..., 1], inst)
    expected = [[0, 1, 255], [255, 13, 11]]  # 0 void and 22 lane marking are ignored
    np.testing.assert_array_equal(to_train_ids(raw, "synthia"), expected)
    np.testing.assert_array_equal(D.SynthiaDataset(tmp_path, "val")[0]["label"][0].numpy(), expected)
    np.testing.assert_array_equal(D.SynthiaDataset(tmp_path, "all")[0]["label"][0].numpy(), expected)
    # an RGBA 16-bit label keeps the class in channel 0 too
    write_png16(tmp_path / "GT" / "LABELS" / "0000007.png", np.stack([cls, inst, inst, inst], -1))
    np.testing.assert_array_equal(to_train_ids(read_label(tmp_path / "GT" / "LABELS" / "0000007.png", "synthia"),
                                               "synthia"), expected)


def test_dataset_subclass_and_factory_checks(tmp_path):
    with pytest.raises(DrivingDataError, match="reads 'cityscapes'"):
        D.CityscapesDataset(tmp_path, dataset="gta5")
    with pytest.raises(DrivingDataError, match="unknown dataset"):
        D.make_dataset("kitti", tmp_path)


# --------------------------------------------------------------------------------------------- transforms


def test_train_transform_cotransforms_mask_and_is_seeded():
    h, w = 40, 60
    img = np.zeros((h, w, 3), np.uint8)
    ids = np.zeros((h, w), np.uint8)
    img[:, : w // 2] = 200  # left half bright <-> class 3
    ids[:, : w // 2] = 3
    tf = driving_transforms(train=True, crop_size=(32, 64), scale=(0.5, 1.5))
    for seed in range(8):
        a_img, a_ids = tf.set_random_state(seed=seed)(img, ids)
        b_img, b_ids = tf.set_random_state(seed=seed)(img, ids)
        np.testing.assert_array_equal(a_img, b_img)
        np.testing.assert_array_equal(a_ids, b_ids)
        assert a_img.shape == (32, 64, 3) and a_ids.shape == (32, 64)
        assert set(np.unique(a_ids)) <= {0, 3, 255}  # nearest-neighbour mask, padding ignored
        bright = a_img[..., 0] > 100
        # the mask moved with the image (up to the bilinear edge column of the image)
        assert np.mean(bright != (a_ids == 3)) < 0.05
        if (a_ids == 255).any():
            assert (a_img[a_ids == 255] == 0).all()
    assert driving_transforms(train=False) is None
    r_img, r_ids = driving_transforms(train=False, resize=(20, 30))(img, ids)
    assert r_img.shape == (20, 30, 3) and r_ids.shape == (20, 30)


def test_seeded_dataset_reproduces_items(tmp_path):
    from medrobust.data.synthetic.driving import write_synthetic_driving
    from medrobust.train.loop import SeededDataset

    write_synthetic_driving(tmp_path, "cityscapes", split="train", n=2, size=(64, 128))
    ds = SeededDataset(D.CityscapesDataset(tmp_path, "train",
                                           driving_transforms(train=True, crop_size=(32, 64), scale=(0.5, 2.0))))
    a, b, c = ds[(0, 11)], ds[(0, 11)], ds[(0, 12)]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    assert not torch.equal(a["image"], c["image"])


# ------------------------------------------------------------------------------------ synthetic default


def test_embedded_default_round_trips_through_the_real_readers(tmp_path):
    import time

    from medrobust.data.synthetic.driving import make_scene, write_default_driving

    t0 = time.perf_counter()
    roots = write_default_driving(tmp_path, n_train=4, n_val=2, n_target=2, size=(64, 128))
    assert time.perf_counter() - t0 < 10
    assert (roots["source"] / "leftImg8bit" / "train").is_dir() and (roots["source"] / "gtFine" / "val").is_dir()
    assert len(list_samples(roots["source"], "cityscapes", "train")) == 4
    assert (roots["bdd100k"] / "labels" / "sem_seg" / "masks" / "val").is_dir()
    assert (roots["mapillary"] / "validation" / "labels").is_dir()
    assert (roots["synthia"] / "GT" / "LABELS").is_dir()
    seen: set[int] = set()
    for name, ds in (("source", "cityscapes"), ("bdd100k", "bdd100k"), ("mapillary", "mapillary"), ("synthia", "synthia")):
        for s in list_samples(roots[name], ds):
            img, ids = load_sample(s)
            assert img.shape == (64, 128, 3) and ids.shape == (64, 128)
            seen |= set(np.unique(ids).tolist())
    raw = read_label(next((roots["synthia"] / "GT" / "LABELS").glob("*.png")), "synthia")
    assert raw.dtype == np.uint16 and raw.shape[-1] == 3 and raw[..., 0].max() <= 22
    assert {0, 1, 2, 10} <= seen
    # each layout's encoding decodes to the scene's train ids up to that dataset's own ignore rules
    from medrobust.data.synthetic.driving import LANE, encode_label

    scene = make_scene(3, (64, 128), "source")
    truth = scene.train_ids
    for ds in ("cityscapes", "gta5", "bdd100k", "mapillary"):
        np.testing.assert_array_equal(to_train_ids(encode_label(scene, ds), ds), truth)
    syn = to_train_ids(encode_label(scene, "synthia"), "synthia")
    np.testing.assert_array_equal(syn[scene.raw != LANE], truth[scene.raw != LANE])
    assert (syn[scene.raw == LANE] == 255).all()


# ------------------------------------------------------------------------------------------------- mIoU


def test_miou_matches_torchmetrics_and_hand_computation():
    from medrobust.tasks.driving.evaluate import summarize
    from medrobust.evaluate.metrics import confusion_matrix

    rng = np.random.default_rng(0)
    gt = rng.integers(0, 19, (3, 20, 30))
    gt[rng.uniform(size=gt.shape) < 0.2] = 255
    pred = np.where(rng.uniform(size=gt.shape) < 0.6, np.where(gt == 255, 0, gt), rng.integers(0, 19, gt.shape))
    cm = sum(confusion_matrix(p, g, 19, 255) for p, g in zip(pred, gt))
    s = summarize(cm, CLASS_NAMES, 3)
    # by hand
    valid = gt != 255
    ious = []
    for c in range(19):
        tp = np.sum((pred == c) & (gt == c) & valid)
        fp = np.sum((pred == c) & (gt != c) & valid)
        fn = np.sum((pred != c) & (gt == c) & valid)
        ious.append(tp / (tp + fp + fn))
    assert s["miou"] == pytest.approx(float(np.mean(ious)), abs=1e-12)
    assert [s["iou"][n] for n in CLASS_NAMES] == pytest.approx(ious, abs=1e-12)
    tm = pytest.importorskip("torchmetrics")
    metric = tm.classification.MulticlassJaccardIndex(num_classes=19, ignore_index=255, average="macro")
    metric.update(torch.as_tensor(pred), torch.as_tensor(gt))
    assert s["miou"] == pytest.approx(float(metric.compute()), abs=1e-6)


def test_miou_skips_classes_absent_from_gt_and_prediction():
    from medrobust.tasks.driving.evaluate import summarize
    from medrobust.evaluate.metrics import confusion_matrix

    gt = np.array([[0, 0, 1, 255]])
    pred = np.array([[0, 1, 1, 5]])
    s = summarize(confusion_matrix(pred, gt, 19, 255), CLASS_NAMES, 1)
    # road 1/2, sidewalk 1/2; pole predicted only on an ignored pixel -> absent; the rest absent
    assert s["miou"] == pytest.approx(0.5)
    assert np.isnan(s["iou"]["pole"]) and s["n_pixels"] == 3
