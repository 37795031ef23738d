"""Finding NIfTI volumes by glob and pairing labels by name (ACDC, M&Ms, BraTS, MSD naming), with one-line errors."""

import nibabel as nib
import numpy as np
import pytest

from medrobust.data.nifti import common_root, find_nifti, read_volume


def _touch(path, shape=(4, 4, 2)):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.zeros(shape, np.int16), np.eye(4)), path)


def test_pairing_schemes_and_errors(tmp_path):
    for case in ("A01", "B02"):  # M&Ms: <id>_sa.nii.gz + <id>_sa_gt.nii.gz in one folder per case
        _touch(tmp_path / "mnm" / case / f"{case}_sa.nii.gz")
        _touch(tmp_path / "mnm" / case / f"{case}_sa_gt.nii.gz")
    pairs = find_nifti(str(tmp_path / "mnm/*/*_sa.nii.gz"), str(tmp_path / "mnm/*/*_gt.nii.gz"))
    assert [(p.image.name, p.label.name) for p in pairs] == [("A01_sa.nii.gz", "A01_sa_gt.nii.gz"),
                                                             ("B02_sa.nii.gz", "B02_sa_gt.nii.gz")]
    assert common_root(pairs) == (tmp_path / "mnm").resolve()
    # MSD / nnU-Net: imagesTr/x.nii.gz + labelsTr/x.nii.gz (same names, other folders)
    _touch(tmp_path / "msd/imagesTr/la_003.nii.gz")
    _touch(tmp_path / "msd/labelsTr/la_003.nii.gz")
    (p,) = find_nifti(str(tmp_path / "msd/imagesTr/*.nii.gz"), str(tmp_path / "msd/labelsTr/*.nii.gz"))
    assert p.label.parent.name == "labelsTr"
    # BraTS: several modalities share one label, with a --pair-key that strips the modality
    for mod in ("t1", "flair", "seg"):
        _touch(tmp_path / "brats/BraTS_001" / f"BraTS_001_{mod}.nii.gz")
    key = r"^(.*)_(?:t1|t1ce|t2|flair|seg)\.nii\.gz$"
    pairs = find_nifti(str(tmp_path / "brats/*/*_[tf]*.nii.gz"), str(tmp_path / "brats/*/*_seg.nii.gz"), pair_pattern=key)
    assert len(pairs) == 2 and {p.label.name for p in pairs} == {"BraTS_001_seg.nii.gz"}
    # mismatches: one line naming the file
    _touch(tmp_path / "mnm/C03/C03_sa.nii.gz")
    with pytest.raises(ValueError, match=r"--images: no label for .*C03_sa.nii.gz"):
        find_nifti(str(tmp_path / "mnm/*/*_sa.nii.gz"), str(tmp_path / "mnm/*/*_gt.nii.gz"))
    _touch(tmp_path / "mnm/D04/D04_sa_gt.nii.gz")
    with pytest.raises(ValueError, match=r"--labels: no image for .*D04_sa_gt.nii.gz"):
        find_nifti(str(tmp_path / "mnm/[ABD]*/*_sa.nii.gz"), str(tmp_path / "mnm/*/*_gt.nii.gz"))
    with pytest.raises(ValueError, match="both match"):
        find_nifti(str(tmp_path / "mnm/*/*.nii.gz"), str(tmp_path / "mnm/*/*_gt.nii.gz"))
    with pytest.raises(FileNotFoundError, match="--labels: no files match"):
        find_nifti(str(tmp_path / "mnm/*/*_sa.nii.gz"), str(tmp_path / "none/*.nii.gz"))
    with pytest.raises(ValueError, match="does not match --pair-key"):
        find_nifti(str(tmp_path / "mnm/A01/*_sa.nii.gz"), str(tmp_path / "mnm/A01/*_gt.nii.gz"), pair_pattern=r"^x(.*)$")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="not a .nii or .nii.gz file"):
        find_nifti(str(tmp_path / "*"))


def test_read_volume(tmp_path):
    img = nib.Nifti1Image(np.arange(32, dtype=np.int16).reshape(4, 4, 2), np.eye(4))
    img.header.set_slope_inter(0.5, 10.0)
    nib.save(img, tmp_path / "a.nii.gz")
    v = read_volume(tmp_path / "a.nii.gz", shape=(4, 4, 2))
    assert v.dtype == np.float32 and float(v.max()) == 10.0 + 0.5 * 31
    with pytest.raises(ValueError, match="differs from the clean volume"):
        read_volume(tmp_path / "a.nii.gz", shape=(4, 4, 3))
    (tmp_path / "bad.nii.gz").write_bytes(b"nope")
    with pytest.raises(ValueError, match="cannot read NIfTI image"):
        read_volume(tmp_path / "bad.nii.gz")
