"""Image-folder readers (class folders, PACS-style domains, ImageNet-C folders) on exact-layout fixtures,
the leave-one-domain-out split, and the embedded digits writer."""

import json

import numpy as np
import pytest
from PIL import Image

from medrobust.data.folders import (
    FolderDataset,
    Record,
    leave_one_domain_out,
    read_image,
    scan_class_folders,
    scan_corruption_folders,
    scan_domains,
    split_records,
)

DOMAINS = ("art_painting", "cartoon", "photo", "sketch")
CLASSES = ("dog", "elephant", "giraffe")


def _save(path, value, size=(20, 16), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((size[1], size[0], 3), value, np.uint8)
    Image.fromarray(arr).save(path, format=fmt)


def write_pacs(root, n=4):
    """ROOT/<domain>/<class>/<image>, PNG and JPEG, plus the clutter a real copy has."""
    for d, domain in enumerate(DOMAINS):
        for c, cls in enumerate(CLASSES):
            for i in range(n):
                ext = ".jpg" if i % 2 else ".PNG"
                _save(root / domain / cls / f"pic_{i:03d}{ext}", 10 * d + c, fmt="JPEG" if ext == ".jpg" else "PNG")
            (root / domain / cls / ".DS_Store").write_text("x")
            (root / domain / cls / "notes.txt").write_text("not an image")
    (root / ".hidden_folder").mkdir()
    return root


def test_domains_classes_and_labels(tmp_path):
    root = write_pacs(tmp_path / "PACS")
    domains, classes = scan_domains(root)
    assert list(domains) == list(DOMAINS) and classes == list(CLASSES)
    for d, recs in domains.items():
        assert len(recs) == 12 and {r.domain for r in recs} == {d}
        assert sorted({r.label for r in recs}) == [0, 1, 2]
        assert all(r.path.parent.name == CLASSES[r.label] for r in recs)
    only, _ = scan_domains(root, ["sketch"])
    assert list(only) == ["sketch"]
    ds = FolderDataset(domains["photo"], size=32, preload=True)
    item = ds[5]
    assert item["image"].shape == (3, 32, 32) and item["label"].item() == domains["photo"][5].label
    assert abs(float(item["image"][0, 10, 10]) * 255 - (20 + item["label"].item())) <= 2  # JPEG tolerance
    lazy = FolderDataset(domains["photo"], size=32)
    assert np.allclose(lazy[5]["image"].numpy(), item["image"].numpy())


def test_folder_errors_name_the_folder(tmp_path):
    root = write_pacs(tmp_path / "PACS")
    with pytest.raises(FileNotFoundError, match=r"domain folder\(s\) \['clipart'\] not found.*available"):
        scan_domains(root, ["clipart"])
    (root / "sketch" / "horse").mkdir()
    with pytest.raises(ValueError, match=r"sketch: class folders differ.*extra \['horse'\]"):
        scan_domains(root)
    _save(root / "sketch" / "horse" / "a.png", 0)
    with pytest.raises(ValueError, match="not among the expected classes"):
        scan_class_folders(root / "sketch", CLASSES)
    (root / "photo" / "dog" / "pic_000.PNG").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"pic_000\.PNG: cannot read image"):
        read_image(root / "photo" / "dog" / "pic_000.PNG")
    empty = tmp_path / "E" / "cat"
    empty.mkdir(parents=True)
    with pytest.raises(ValueError, match="cat: class folder has no images"):
        scan_class_folders(tmp_path / "E")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        scan_domains(tmp_path / "nope")
    with pytest.raises(ValueError, match=r"missing class folder\(s\) \['zebra'\]"):
        scan_class_folders(root / "photo", [*CLASSES, "zebra"])


def test_leave_one_domain_out_is_stratified_seeded_and_disjoint(tmp_path):
    root = write_pacs(tmp_path / "PACS", n=10)
    domains, classes = scan_domains(root)
    split = leave_one_domain_out(domains, classes, ["sketch"], val_fraction=0.2, test_fraction=0.1, seed=0)
    assert split.sources == ["art_painting", "cartoon", "photo"] and list(split.targets) == ["sketch"]
    assert len(split.targets["sketch"]) == 30
    assert (len(split.train), len(split.val), len(split.test)) == (63, 18, 9)
    paths = [r.path for part in (split.train, split.val, split.test) for r in part]
    assert len(set(paths)) == 90 and not any(r.domain == "sketch" for r in split.train)
    for part in (split.val, split.test):  # every (domain, class) stratum is represented
        assert {(r.domain, r.label) for r in part} == {(d, c) for d in split.sources for c in range(3)}
    again = leave_one_domain_out(domains, classes, ["sketch"], val_fraction=0.2, test_fraction=0.1, seed=0)
    assert [r.path for r in again.val] == [r.path for r in split.val]
    other = leave_one_domain_out(domains, classes, ["sketch"], val_fraction=0.2, test_fraction=0.1, seed=1)
    assert [r.path for r in other.val] != [r.path for r in split.val]
    with pytest.raises(ValueError, match="both source and target"):
        leave_one_domain_out(domains, classes, ["sketch"], sources=["sketch", "photo"])
    with pytest.raises(ValueError, match="not found"):
        leave_one_domain_out(domains, classes, ["clipart"])
    # listing order does not matter
    shuffled = {d: list(reversed(v)) for d, v in domains.items()}
    s2 = leave_one_domain_out(shuffled, classes, ["sketch"], val_fraction=0.2, test_fraction=0.1, seed=0)
    assert sorted(r.path for r in s2.val) == sorted(r.path for r in split.val)


def test_split_records_small_strata():
    recs = [Record(path=__import__("pathlib").Path(f"/x/{i}.png"), label=i % 2) for i in range(6)]
    a, b = split_records(recs, (0.8, 0.2), seed=0)
    assert len(a) + len(b) == 6 and {r.label for r in b} == {0, 1}


def test_imagenet_c_folders(tmp_path):
    root = tmp_path / "ImageNet-C"
    for c in ("fog", "snow"):
        for s in (1, 2, 3, 4, 5):
            for k, cls in enumerate(CLASSES[:2]):  # a class may be absent in a corrupted copy
                _save(root / c / str(s) / cls / f"img{s}.JPEG", s * 10 + k, fmt="JPEG")
    out = scan_corruption_folders(root, CLASSES, ["fog"], [2, 5])
    assert set(out) == {("fog", 2), ("fog", 5)}
    assert sorted(r.label for r in out[("fog", 5)]) == [0, 1]
    every = scan_corruption_folders(root, CLASSES)
    assert len(every) == 10
    with pytest.raises(FileNotFoundError, match=r"frost[/\\]1: missing"):
        scan_corruption_folders(root, CLASSES, ["frost"], [1])


@pytest.fixture(scope="module")
def digits_root(tmp_path_factory):
    from medrobust.data.synthetic.digits import write_synthetic_digits

    root = tmp_path_factory.mktemp("digits") / "digits"
    info = write_synthetic_digits(root, seed=0)
    return root, info


def test_embedded_digits_layout(digits_root):
    from medrobust.data.synthetic.digits import DIGIT_DOMAINS, write_synthetic_digits

    root, info = digits_root
    assert info["written"] and info["domains"]["source"] + info["domains"]["colored"] == 1797
    domains, classes = scan_domains(root)
    assert list(domains) == sorted(DIGIT_DOMAINS) and classes == [str(c) for c in range(10)]
    img = read_image(domains["colored"][0].path)
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    # the target domains share digits with each other but never with the source (disjoint handwriting)
    idx = {d: {r.path.stem.split("_")[-1] for r in recs} for d, recs in domains.items()}
    assert idx["colored"] == idx["noisy"] == idx["inverted"] == idx["textured"]
    assert not idx["source"] & idx["colored"]
    # styles differ: the source is grey on black, inverted is light
    src = np.stack([read_image(r.path) for r in domains["source"][:20]]).astype(float)
    inv = np.stack([read_image(r.path) for r in domains["inverted"][:20]]).astype(float)
    assert np.allclose(src[..., 0], src[..., 1]) and src.mean() < 80 and inv.mean() > 150
    again = write_synthetic_digits(root, seed=0)
    assert again["written"] is False
    with pytest.raises(FileExistsError, match="other settings"):
        write_synthetic_digits(root, seed=1)
    assert json.loads((root / ".complete").read_text())["settings"]["seed"] == 0
