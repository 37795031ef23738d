"""ACDC reader, splits, datasets and transforms on tiny cohorts written here with nibabel."""

from __future__ import annotations

import gzip
import re
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medrobust.data.acdc import (
    ACDCError,
    ACDCWarning,
    list_patients,
    load_cohort,
    read_patient,
    split_patients,
)
from medrobust.data.acdc_datasets import ACDCSliceDataset, ACDCVolumeDataset, acdc_transforms

SHAPE = (20, 24, 3)  # (X, Y, Z), all different so a transposed array would show
SPACING = (1.25, 1.5, 9.0)


def _label_volume(shape: tuple[int, ...], shift: int = 0) -> np.ndarray:
    x, y = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    r = np.hypot(x - shape[0] / 2 - shift, y - shape[1] / 2)
    lab2d = np.select([r < 3, r < 5, (r < 8) & (x < shape[0] / 2)], [3, 2, 1], 0).astype(np.uint8)
    return np.repeat(lab2d[:, :, None], shape[2], axis=2)


def _save(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> None:
    aff = np.diag([*SPACING, 1.0]) if affine is None else affine
    nib.save(nib.Nifti1Image(data, aff), str(path))


def make_patient(
    root: Path,
    number: int,
    subset: str = "training",
    *,
    group: str = "DCM",
    ed: int = 1,
    es: int = 12,
    shape: tuple[int, int, int] = SHAPE,
) -> Path:
    """Write one patient in the public ACDC layout; the image is ``100 * label + 50`` (int16)."""
    pid = f"patient{number:03d}"
    folder = root / subset / pid
    folder.mkdir(parents=True)
    (folder / "Info.cfg").write_text(f"ED: {ed}\nES: {es}\nGroup: {group}\nHeight: 184.0\nNbFrame: 30\nWeight: 95.0\n")
    _save(folder / f"{pid}_4d.nii.gz", np.zeros((*shape, 2), np.int16))
    for k, idx in enumerate((ed, es)):
        lab = _label_volume(shape, shift=k)
        img = (lab.astype(np.int16) * 100 + 50).astype(np.int16)
        _save(folder / f"{pid}_frame{idx:02d}.nii.gz", img)
        _save(folder / f"{pid}_frame{idx:02d}_gt.nii.gz", lab)
    return folder


@pytest.fixture()
def patient_dir(tmp_path: Path) -> Path:
    return make_patient(tmp_path, 1)


@pytest.fixture()
def cohort(tmp_path: Path) -> Path:
    groups = ["NOR", "MINF", "DCM", "HCM", "RV"]
    for i in range(1, 6):
        make_patient(tmp_path, i, group=groups[i - 1], es=10 + i)
    make_patient(tmp_path, 101, "testing", group="NOR")
    return tmp_path


# ---------------------------------------------------------------------------------------------
# happy path
# ---------------------------------------------------------------------------------------------


def test_read_patient_info_frames_and_spacing(patient_dir: Path) -> None:
    p = read_patient(patient_dir)
    assert p.id == "patient001"
    assert p.info == {"ED": 1, "ES": 12, "Group": "DCM", "Height": 184.0, "NbFrame": 30, "Weight": 95.0}
    assert all(type(p.info[k]) is int for k in ("ED", "ES", "NbFrame"))
    assert all(type(p.info[k]) is float for k in ("Height", "Weight"))
    assert set(p.frames) == {"ED", "ES"}
    ed, es = p.frames["ED"], p.frames["ES"]
    assert (ed.frame_index, es.frame_index) == (1, 12)
    assert ed.path.name == "patient001_frame01.nii.gz" and es.path.name == "patient001_frame12.nii.gz"
    for fr, shift in ((ed, 0), (es, 1)):
        assert fr.image.shape == SHAPE and fr.label.shape == SHAPE  # (X, Y, Z) kept
        assert fr.image.dtype == np.float32 and fr.label.dtype == np.uint8
        assert fr.spacing == SPACING and all(type(s) is float for s in fr.spacing)
        assert fr.affine.shape == (4, 4)
        np.testing.assert_array_equal(fr.label, _label_volume(SHAPE, shift))
        np.testing.assert_array_equal(fr.image, fr.label * 100.0 + 50.0)


def test_spacing_comes_from_header(tmp_path: Path) -> None:
    folder = make_patient(tmp_path, 7)
    # zooms and affine both say 0.7 x 0.8 x 5 mm, with an off-diagonal affine (rotation)
    c, s = np.cos(0.3), np.sin(0.3)
    aff = np.array([[0.7 * c, -0.8 * s, 0, 10], [0.7 * s, 0.8 * c, 0, -5], [0, 0, 5.0, 3], [0, 0, 0, 1]])
    for f in folder.glob("patient007_frame*.nii.gz"):
        data = np.asanyarray(nib.load(str(f)).dataobj)
        _save(f, data, aff)
    p = read_patient(folder)
    assert p.frames["ED"].spacing == pytest.approx((0.7, 0.8, 5.0))
    np.testing.assert_allclose(p.frames["ES"].affine, aff, atol=1e-5)


def test_lazy_reads_arrays_on_access(patient_dir: Path) -> None:
    p = read_patient(patient_dir, lazy=True)
    fr = p.frames["ED"]
    assert not fr.loaded and fr.shape == SHAPE
    assert fr.label.max() == 3 and fr.loaded
    fr.unload()
    assert not fr.loaded and fr.image.shape == SHAPE


def test_list_patients_and_load_cohort(cohort: Path) -> None:
    tr = list_patients(cohort, "training")
    assert [p.name for p in tr] == [f"patient00{i}" for i in range(1, 6)]
    assert [p.name for p in list_patients(cohort, "testing")] == ["patient101"]
    assert len(list_patients(cohort, "all")) == 6
    pats = load_cohort(cohort, "training", lazy=True)
    assert [p.id for p in pats] == [p.name for p in tr] and [p.info["ES"] for p in pats] == [11, 12, 13, 14, 15]
    with pytest.raises(ValueError, match="subset"):
        list_patients(cohort, "validation")


# ---------------------------------------------------------------------------------------------
# errors: every one names the offending file
# ---------------------------------------------------------------------------------------------


def _raises(folder: Path, fname: str, match: str | None = None) -> ACDCError:
    with pytest.raises(ACDCError) as ei:
        read_patient(folder)
    msg = str(ei.value)
    assert fname in msg, msg
    if match:
        assert match in msg, msg
    return ei.value


def test_error_list_patients_missing_root(tmp_path: Path) -> None:
    with pytest.raises(ACDCError, match="nowhere"):
        list_patients(tmp_path / "nowhere")


def test_error_list_patients_missing_subset(cohort: Path) -> None:
    (cohort / "testing" / "patient101").rename(cohort / "p101")
    (cohort / "testing").rmdir()
    with pytest.raises(ACDCError, match="testing"):
        list_patients(cohort, "testing")


def test_error_list_patients_empty_subset(tmp_path: Path) -> None:
    (tmp_path / "training" / "notes").mkdir(parents=True)
    with pytest.raises(ACDCError, match="training"):
        list_patients(tmp_path, "training")


def test_error_missing_info(patient_dir: Path) -> None:
    (patient_dir / "Info.cfg").unlink()
    _raises(patient_dir, "Info.cfg", "not found")


def test_error_missing_info_key(patient_dir: Path) -> None:
    cfg = patient_dir / "Info.cfg"
    cfg.write_text("\n".join(line for line in cfg.read_text().splitlines() if not line.startswith("Weight")))
    _raises(patient_dir, "Info.cfg", "Weight")


@pytest.mark.parametrize(("key", "bad"), [("ES", "twelve"), ("Height", "tall"), ("NbFrame", "30.5")])
def test_error_non_numeric_info(patient_dir: Path, key: str, bad: str) -> None:
    cfg = patient_dir / "Info.cfg"
    cfg.write_text("".join(f"{key}: {bad}\n" if line.startswith(key) else line + "\n" for line in cfg.read_text().splitlines()))
    _raises(patient_dir, "Info.cfg", key)


def test_error_unknown_group(patient_dir: Path) -> None:
    cfg = patient_dir / "Info.cfg"
    cfg.write_text(cfg.read_text().replace("Group: DCM", "Group: XYZ"))
    _raises(patient_dir, "Info.cfg", "Group")


def test_error_missing_frame_image(patient_dir: Path) -> None:
    (patient_dir / "patient001_frame12.nii.gz").unlink()
    _raises(patient_dir, "patient001_frame12.nii.gz", "ES")


def test_error_missing_frame_gt(patient_dir: Path) -> None:
    (patient_dir / "patient001_frame01_gt.nii.gz").unlink()
    _raises(patient_dir, "patient001_frame01_gt.nii.gz", "ED")


def test_error_shape_mismatch(patient_dir: Path) -> None:
    _save(patient_dir / "patient001_frame01_gt.nii.gz", np.zeros((20, 24, 4), np.uint8))
    _raises(patient_dir, "patient001_frame01_gt.nii.gz", "shape")


def test_error_affine_mismatch(patient_dir: Path) -> None:
    aff = np.diag([*SPACING, 1.0])
    aff[0, 3] = 2.0  # shifted origin
    _save(patient_dir / "patient001_frame12_gt.nii.gz", _label_volume(SHAPE, 1), aff)
    err = _raises(patient_dir, "patient001_frame12_gt.nii.gz", "affine")
    assert "\n" not in str(err) and "patient001_frame12.nii.gz" in str(err)


def test_affine_within_tolerance_is_accepted(patient_dir: Path) -> None:
    aff = np.diag([*SPACING, 1.0])
    aff[0, 3] = 1e-5
    _save(patient_dir / "patient001_frame12_gt.nii.gz", _label_volume(SHAPE, 1), aff)
    assert read_patient(patient_dir).frames["ES"].label.max() == 3


def test_error_label_out_of_range(patient_dir: Path) -> None:
    lab = _label_volume(SHAPE)
    lab[0, 0, 0] = 4
    _save(patient_dir / "patient001_frame01_gt.nii.gz", lab)
    _raises(patient_dir, "patient001_frame01_gt.nii.gz", "0..3")


def test_error_label_out_of_range_lazy(patient_dir: Path) -> None:
    _save(patient_dir / "patient001_frame01_gt.nii.gz", _label_volume(SHAPE).astype(np.float32) * 1.5)
    p = read_patient(patient_dir, lazy=True)
    with pytest.raises(ACDCError, match="patient001_frame01_gt.nii.gz"):
        p.frames["ED"].label


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("lazy", [False, True])
def test_error_non_finite_image_at_load_time(patient_dir: Path, bad: float, lazy: bool) -> None:
    # found when the patient is read (also lazily), not when the frame is first used at evaluation
    img = np.asarray(nib.load(patient_dir / "patient001_frame12.nii.gz").dataobj).astype(np.float32)
    img[2, 3, 1] = bad
    _save(patient_dir / "patient001_frame12.nii.gz", img)
    with pytest.raises(ACDCError, match=r"patient001_frame12.nii.gz: image contains NaN or Inf") as ei:
        read_patient(patient_dir, lazy=lazy)
    assert "\n" not in str(ei.value)
    with pytest.raises(ACDCError, match="patient001_frame12.nii.gz"):
        load_cohort(patient_dir.parent.parent, "training", lazy=True)


def test_lazy_read_keeps_no_arrays(patient_dir: Path) -> None:
    p = read_patient(patient_dir, lazy=True)
    assert not any(fr.loaded or fr._image is not None for fr in p.frames.values())


@pytest.mark.parametrize(("ed", "es", "nb", "match"), [
    (5, 5, 30, "ED and ES are the same frame (5)"),
    (1, 31, 30, "ES frame 31 is beyond NbFrame 30"),
    (40, 12, 30, "ED frame 40 is beyond NbFrame 30"),
])
def test_info_warns_on_suspicious_frames(tmp_path: Path, ed: int, es: int, nb: int, match: str) -> None:
    folder = make_patient(tmp_path, 1, ed=ed, es=es)
    cfg = folder / "Info.cfg"
    cfg.write_text(cfg.read_text().replace("NbFrame: 30", f"NbFrame: {nb}"))
    with pytest.warns(ACDCWarning, match=re.escape(f"{cfg}: {match}")):
        p = read_patient(folder)
    assert p.info["ED"] == ed and p.info["ES"] == es


def test_info_without_suspicious_frames_does_not_warn(patient_dir: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_patient(patient_dir)


def test_error_not_a_nifti(patient_dir: Path) -> None:
    (patient_dir / "patient001_frame12.nii.gz").write_bytes(b"this is not a nifti file at all" * 20)
    _raises(patient_dir, "patient001_frame12.nii.gz", "cannot read")


def test_error_truncated_gzip(patient_dir: Path) -> None:
    f = patient_dir / "patient001_frame01.nii.gz"
    raw = gzip.decompress(f.read_bytes())
    f.write_bytes(gzip.compress(raw)[: len(gzip.compress(raw)) // 2])  # header intact, data cut
    _raises(patient_dir, "patient001_frame01.nii.gz", "cannot read")


def test_error_4d_image(patient_dir: Path) -> None:
    _save(patient_dir / "patient001_frame01.nii.gz", np.zeros((*SHAPE, 2), np.int16))
    _raises(patient_dir, "patient001_frame01.nii.gz", "3D")


# ---------------------------------------------------------------------------------------------
# splits
# ---------------------------------------------------------------------------------------------


def _pairs(per_group: int) -> list[tuple[str, str]]:
    groups = ["NOR", "MINF", "DCM", "HCM", "RV"]
    return [(f"patient{g * per_group + i + 1:03d}", groups[g]) for g in range(5) for i in range(per_group)]


def test_split_deterministic_stratified_disjoint() -> None:
    pairs = _pairs(10)
    a = split_patients(pairs, seed=3)
    assert a == split_patients(list(reversed(pairs)), seed=3)  # input order does not matter
    assert a != split_patients(pairs, seed=4)
    assert [len(a[k]) for k in ("train", "val", "test")] == [35, 5, 10]
    ids = a["train"] + a["val"] + a["test"]
    assert len(ids) == len(set(ids)) == 50
    group = dict(pairs)
    for name, per_group in (("train", 7), ("val", 1), ("test", 2)):
        counts = {g: sum(group[i] == g for i in a[name]) for g in set(group.values())}
        assert set(counts.values()) == {per_group}, (name, counts)


def test_split_small_cohort_has_every_split() -> None:
    for n in (1, 2):
        s = split_patients(_pairs(n), seed=0)
        assert all(s[k] for k in ("train", "val", "test")), s
        assert sorted(s["train"] + s["val"] + s["test"]) == sorted(i for i, _ in _pairs(n))
    s3 = split_patients([("a", "NOR"), ("b", "NOR"), ("c", "DCM")])
    assert all(len(v) == 1 for v in s3.values())


def test_split_accepts_patients_and_checks_input(cohort: Path) -> None:
    pats = load_cohort(cohort, "all", lazy=True)
    s = split_patients(pats, fractions=(0.5, 0.25, 0.25))
    assert sorted(sum(s.values(), [])) == sorted(p.id for p in pats)
    with pytest.raises(ValueError, match="fractions"):
        split_patients(pats, fractions=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="duplicate"):
        split_patients([("a", "NOR"), ("a", "DCM")])


# ---------------------------------------------------------------------------------------------
# datasets and transforms
# ---------------------------------------------------------------------------------------------


def test_slice_dataset_raw(cohort: Path) -> None:
    pats = load_cohort(cohort, "training")
    ds = ACDCSliceDataset(pats)
    assert len(ds) == 5 * 2 * SHAPE[2]
    it = ds[SHAPE[2] + 1]  # patient001, ES, slice 1
    assert (it["patient"], it["frame"], it["slice"]) == ("patient001", "ES", 1)
    assert it["image"].shape == (1, SHAPE[0], SHAPE[1]) and it["image"].dtype == torch.float32
    assert it["label"].shape == (1, SHAPE[0], SHAPE[1]) and it["label"].dtype == torch.int64
    assert it["spacing"] == SPACING[:2]
    np.testing.assert_array_equal(it["label"][0].numpy(), pats[0].frames["ES"].label[:, :, 1])


def test_volume_dataset_raw(cohort: Path) -> None:
    ds = ACDCVolumeDataset(load_cohort(cohort, "training", lazy=True))
    assert len(ds) == 10
    it = ds[1]
    assert (it["patient"], it["frame"]) == ("patient001", "ES")
    assert it["image"].shape == (1, *SHAPE) and it["image"].dtype == torch.float32
    assert it["label"].shape == (1, *SHAPE) and it["label"].dtype == torch.int64
    assert it["spacing"] == SPACING


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("size", [(16, 32), (24, 24)])
def test_slice_transforms_keep_image_and_label_aligned(cohort: Path, train: bool, size: tuple[int, int]) -> None:
    ds = ACDCSliceDataset(load_cohort(cohort, "training"), transform=acdc_transforms("2d", size, train=train, seed=0))
    for i in (0, 4, 7):
        it = ds[i]
        assert type(it["image"]) is torch.Tensor and type(it["label"]) is torch.Tensor
        assert it["image"].shape == (1, *size) and it["image"].dtype == torch.float32
        assert it["label"].shape == (1, *size) and it["label"].dtype == torch.int64
        assert 0.0 <= float(it["image"].min()) and float(it["image"].max()) <= 1.0
        # image = 100 * label + 50 scales to label / 3, padding is 0 in both: geometry matches
        torch.testing.assert_close(torch.round(it["image"] * 3).long(), it["label"])
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 1, *size) and batch["label"].dtype == torch.int64


def test_slice_transforms_resample_to_pixel_spacing(cohort: Path) -> None:
    ds = ACDCSliceDataset(load_cohort(cohort, "training"), transform=acdc_transforms("2d", (40, 40), pixel_spacing=0.625, train=False))
    it = ds[0]
    assert it["image"].shape == (1, 40, 40) and it["label"].dtype == torch.int64
    assert it["spacing"] == pytest.approx((0.625, 24 * 1.5 / 58))  # achieved spacing (58 whole pixels)
    assert set(it["label"].unique().tolist()) == {0, 1, 2, 3}
    # X: 20 px * 1.25 mm -> 40 px at 0.625 mm (no padding); Y: 24 * 1.5 / 0.625 = 57.6 -> 58, cropped to 40
    raw = torch.from_numpy(ds.patients[0].frames["ED"].label[:, :, 0].astype(np.int64))
    assert int((it["label"] == 3).sum()) == pytest.approx(int((raw == 3).sum()) * 2.0 * 2.4, rel=0.25)


def test_seeded_train_transforms_are_reproducible(cohort: Path) -> None:
    pats = load_cohort(cohort, "training")
    a = ACDCSliceDataset(pats, transform=acdc_transforms("2d", (24, 24), 1.0, train=True, seed=5))
    b = ACDCSliceDataset(pats, transform=acdc_transforms("2d", (24, 24), 1.0, train=True, seed=5))
    for i in range(4):
        torch.testing.assert_close(a[i]["label"], b[i]["label"])


@pytest.mark.parametrize("train", [False, True])
def test_volume_transforms(cohort: Path, train: bool) -> None:
    ds = ACDCVolumeDataset(load_cohort(cohort, "training"), transform=acdc_transforms("3d", (16, 16), pixel_spacing=2.0, train=train, seed=0))
    it = ds[0]
    assert type(it["image"]) is torch.Tensor and it["image"].dtype == torch.float32
    assert it["image"].shape == (1, 16, 16, SHAPE[2]) and it["label"].shape == (1, 16, 16, SHAPE[2])
    assert it["label"].dtype == torch.int64 and set(it["label"].unique().tolist()) <= {0, 1, 2, 3}
    assert it["spacing"] == pytest.approx((2.0, 2.0, SPACING[2]), rel=0.05)


def test_transform_argument_checks() -> None:
    with pytest.raises(ValueError, match="mode"):
        acdc_transforms("4d")
    with pytest.raises(ValueError, match="spatial_size"):
        acdc_transforms("2d", (16, 16, 4))


def test_reading_acdc_imports_neither_torch_nor_monai():
    import subprocess
    import sys

    code = "import sys, medrobust.data.acdc as a; a.read_info; print('torch' in sys.modules, 'monai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
