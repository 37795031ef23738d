"""The NIfTI corrupted-set writer on real scans (nibabel's bundled data) and scaled int16 volumes: headers
kept, nothing lost or clipped, ``corrupted - clean`` is the corruption only; pairing, layout, 4D, spacing,
resume, CLI, and the cardiac evaluation reading such a set."""

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medrobust.cli import main
from medrobust.corrupt.nifti import PERCENTILE, corrupt_nifti

DATA = Path(nib.__file__).parent / "tests" / "data"
#: header fields the writer may change (the encoding); everything else must be equal
ENCODING_FIELDS = {"datatype", "bitpix", "scl_slope", "scl_inter"}


def _fields(img):
    return {k: np.asarray(img.header[k]) for k in img.header.keys() if k not in ENCODING_FIELDS}


def _expected_change(clean: np.ndarray, corruption: str, severity: int, seed: int, spacing=None) -> np.ndarray:
    """The corruption mapped to the scan's units, computed here from the documented recipe."""
    vol = clean.reshape(*clean.shape[:3], -1) if clean.ndim >= 3 else clean[:, :, None, None]
    lo, hi = vol.min(), np.percentile(vol, PERCENTILE)
    x = np.clip((vol - lo) / (hi - lo), 0, 1).transpose(3, 2, 0, 1)[:, None].astype(np.float32)
    xt = torch.from_numpy(np.ascontiguousarray(x))
    from medrobust.augment import build

    core = build({"name": f"mri_{corruption}", "severity": severity,
                  **({"spacing": spacing} if spacing is not None else {})})
    y = core(xt, torch.Generator().manual_seed(seed))
    return ((y.double() - xt.double())[:, 0].numpy().transpose(2, 3, 1, 0) * (hi - lo)).reshape(clean.shape)


def _scaled_int16(path: Path, slope: float, inter: float, rng) -> None:
    raw = np.zeros((40, 36, 3), np.int16)
    raw[8:32, 6:30] = rng.integers(20000, 30000, (24, 24, 3))
    raw[18:22, 16:20] = 32000  # a bright spot above the 99.8th percentile
    img = nib.Nifti1Image(raw, np.diag([1.25, 1.25, 8.0, 1.0]))
    img.header.set_data_dtype(np.int16)
    img.header.set_slope_inter(slope, inter)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_intent("estimate", name="t1")
    nib.save(img, path)


@pytest.fixture
def scans(tmp_path):
    """Real scans (3D big-endian int16, oblique 4D NIfTI-2, anisotropic uint8) and scaled int16 volumes."""
    root = tmp_path / "scans"
    (root / "real").mkdir(parents=True)
    (root / "scaled").mkdir()
    for name in ("anatomical.nii", "example_nifti2.nii.gz", "standard.nii.gz"):
        shutil.copy(DATA / name, root / "real" / name)
    rng = np.random.default_rng(0)
    _scaled_int16(root / "scaled" / "tiny.nii.gz", 1.07e-5, 0.0, rng)  # values 0..0.35
    _scaled_int16(root / "scaled" / "large.nii.gz", 0.075, 3100.0, rng)
    return root


def test_real_scans_keep_header_and_only_the_corruption_changes(scans, tmp_path):
    out = tmp_path / "out"
    cases = [("gaussian_blur", 1), ("rician_noise", 3), ("motion_ghosting", 5)]
    for corruption, severity in cases:
        corrupt_nifti(str(scans / "**" / "*.nii*"), out / corruption, corruptions=[corruption], severities=[severity],
                      seed=3, progress=False)
    manifest = json.loads((out / "gaussian_blur" / "manifest.json").read_text())
    assert manifest["settings"]["encoding"].startswith("float32")
    for rel in ("real/anatomical.nii", "real/example_nifti2.nii.gz", "real/standard.nii.gz", "scaled/tiny.nii.gz",
                "scaled/large.nii.gz"):
        src = nib.load(scans / rel)
        clean = src.get_fdata(dtype=np.float64)
        for corruption, severity in cases:
            m = json.loads((out / corruption / "manifest.json").read_text())
            entry = next(e for e in m["files"] if e["source"] == rel)
            dst = nib.load(out / corruption / entry["path"])
            assert type(dst) is type(src) and dst.shape == src.shape
            assert dst.get_data_dtype().newbyteorder("=") == np.float32 and dst.header.get_slope_inter() in ((1.0, 0.0), (None, None))
            got, want = _fields(dst), _fields(src)
            for k in want:  # affine, qform/sform and codes, pixdim, units, intent, description
                np.testing.assert_array_equal(got[k], want[k], err_msg=f"{rel}: header field {k}")
            np.testing.assert_array_equal(dst.get_qform(coded=True)[1], src.get_qform(coded=True)[1])
            np.testing.assert_allclose(dst.affine, src.affine)
            change = dst.get_fdata(dtype=np.float64) - clean
            spacing = list(src.header.get_zooms()[:2]) if corruption == "gaussian_blur" else None
            expected = _expected_change(clean, corruption, severity, entry["seed"], spacing)
            span = np.percentile(clean, PERCENTILE) - clean.min()
            np.testing.assert_allclose(change, expected, atol=2e-6 * span + 1e-6 * np.abs(clean).max(), rtol=0,
                                       err_msg=f"{rel} {corruption}")
            assert np.abs(change).max() > 1e-3 * span, f"{rel} {corruption}: the corruption was lost"
        if rel.startswith("scaled") or rel == "real/anatomical.nii":
            blurred = nib.load(out / "gaussian_blur" / "gaussian_blur" / "1" / rel).get_fdata()
            assert blurred.max() > 0.9 * clean.max(), f"{rel}: a mild blur clipped the bright voxels"
    # the tiny slope survives (it was rounded to zero by format 1)
    tiny = nib.load(out / "rician_noise" / "rician_noise" / "3" / "scaled/tiny.nii.gz").get_fdata()
    assert 0.2 < tiny.max() < 0.5 and np.count_nonzero(tiny) > 0.9 * tiny.size


def test_pairs_labels_layout_4d_spacing_resume_and_cli(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "cohort"
    for case in ("A01", "B02"):
        d = root / "Testing" / case
        d.mkdir(parents=True)
        frame = rng.integers(0, 200, (16, 12, 2)).astype(np.int16)
        img = np.stack([frame, frame, frame], -1)  # 4D: three identical frames
        nib.save(nib.Nifti1Image(img, np.diag([1.0, 3.0, 8.0, 1.0])), d / f"{case}_sa.nii.gz")
        nib.save(nib.Nifti1Image(rng.integers(0, 4, (16, 12, 2, 3)).astype(np.uint8), np.diag([1.0, 3.0, 8.0, 1.0])),
                 d / f"{case}_sa_gt.nii.gz")
    out = tmp_path / "out"
    images, labels = str(root / "Testing/*/*_sa.nii.gz"), str(root / "Testing/*/*_sa_gt.nii.gz")
    s = corrupt_nifti(images, out, labels=labels, corruptions="rician_noise,gaussian_blur", severities="2",
                      progress=False)
    assert s["written"] == s["total"] == 2 * 2 * 2
    for c in ("rician_noise", "gaussian_blur"):
        for case in ("A01", "B02"):
            gt = f"{case}/{case}_sa_gt.nii.gz"  # paths below the inputs' common folder (Testing/)
            assert (out / c / "2" / gt).read_bytes() == (root / "Testing" / gt).read_bytes()
    noisy = nib.load(out / "rician_noise/2/A01/A01_sa.nii.gz").get_fdata()
    assert not np.allclose(noisy[..., 0], noisy[..., 1])  # 4D: one independent draw per frame
    # anisotropic in-plane spacing (1, 3): the coarse axis is blurred 3x less than the fine one
    x = torch.rand(1, 1, 2, 32, 32, generator=torch.Generator().manual_seed(0))
    from medrobust.augment import build

    iso = build({"name": "mri_gaussian_blur", "severity": 5})(x)
    aniso = build({"name": "mri_gaussian_blur", "severity": 5, "spacing": [1.0, 3.0]})(x)
    d_h, d_w = (aniso.diff(dim=d).abs().mean() for d in (-2, -1))
    assert d_w > 2 * d_h and not torch.allclose(iso, aniso)
    # resume: a deleted copy is rewritten byte-identical, the rest skipped
    target = out / "rician_noise/2/B02/B02_sa.nii.gz"
    before = target.read_bytes()
    target.unlink()
    s = corrupt_nifti(images, out, labels=labels, corruptions="rician_noise,gaussian_blur", severities="2",
                      progress=False)
    assert s["written"] == 1 and target.read_bytes() == before
    # pairing errors, before anything is written
    (root / "Testing/B02/B02_sa_gt.nii.gz").rename(root / "Testing/B02/B03_sa_gt.nii.gz")
    with pytest.raises(ValueError, match="no label for .*B02_sa.nii.gz"):
        corrupt_nifti(images, tmp_path / "x", labels=labels, progress=False)
    assert not (tmp_path / "x").exists()
    (root / "Testing/B02/B03_sa_gt.nii.gz").rename(root / "Testing/B02/B02_sa_gt.nii.gz")
    with pytest.raises(ValueError, match="overlaps the input tree"):
        corrupt_nifti(images, root / "Testing" / "out", labels=labels, progress=False)
    # the CLI
    argv = ["corrupt", "--task", "nifti", "--images", images, "--labels", labels, "--out", str(tmp_path / "cli"),
            "--corruptions", "bias_field", "--severities", "1", "--no-progress"]
    assert main(argv) == 0
    assert (tmp_path / "cli/bias_field/1/A01/A01_sa_gt.nii.gz").is_file()
    assert main(["corrupt", "--task", "nifti", "--out", str(tmp_path / "c2")]) == 2
    assert main(["corrupt", "--task", "nifti", "--images", str(tmp_path / "none/*.nii"), "--out",
                 str(tmp_path / "c2")]) == 2


@pytest.mark.slow  # trains a tiny run and evaluates it twice (~35 s on a loaded core)
def test_cardiac_evaluate_reads_a_nifti_set(tmp_path, capsys):
    tiny = ["data.synthetic.n_train=4", "data.synthetic.n_test=1", "data.synthetic.size=[48, 48]",
            "data.synthetic.n_slices=2", "data.spatial_size=[32, 32]", "model.channels=[4, 8, 16]", "model.strides=[2, 2]",
            "train.batch_size=4", "train.steps=2", "train.val_every=2", "evaluate.batch_size=8"]
    sets = [a for s in [f"output_dir={tmp_path}", "name=base", *tiny] for a in ("--set", s)]
    assert main(["train", "--no-progress", *sets]) == 0
    root = next((tmp_path / "data").glob("acdc_synthetic_*"))
    acdc_c, nifti_c = tmp_path / "acdc_c", tmp_path / "nifti_c"
    common = ["--corruptions", "rician_noise", "--severities", "4", "--no-progress"]
    assert main(["corrupt", "--task", "acdc", "--root", str(root), "--out", str(acdc_c), *common]) == 0
    assert main(["corrupt", "--task", "nifti", "--images", str(root / "**/patient*_frame??.nii.gz"), "--labels",
                 str(root / "**/patient*_frame??_gt.nii.gz"), "--out", str(nifti_c), *common]) == 0
    ev = ["--set", "evaluate.corruptions=[rician_noise]", "--set", "evaluate.severities=[4]", "--set", "evaluate.shifted=false"]
    dice = {}
    for name, croot in (("acdc", acdc_c), ("nifti", nifti_c)):
        out = tmp_path / f"report_{name}"
        assert main(["evaluate", "--run", f"b={tmp_path / 'base'}", "--out", str(out), "--corrupted-root", str(croot),
                     "--no-progress", *ev]) == 0
        dice[name] = json.loads((out / "report.json").read_text())["models"]["b"]["corruptions"]["rician_noise"]["4"]
    # same files below the same root (same relative paths, so the same seeds): the same numbers
    assert dice["acdc"] == dice["nifti"]
    # a nifti set written from other data is refused in one line
    other = tmp_path / "other"
    shutil.copytree(root, other)
    elsewhere = tmp_path / "nifti_other"
    assert main(["corrupt", "--task", "nifti", "--images", str(other / "**/patient*_frame??.nii.gz"), "--out",
                 str(elsewhere), *common]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--run", f"b={tmp_path / 'base'}", "--out", str(tmp_path / "r3"), "--corrupted-root",
                 str(elsewhere), "--no-progress", *ev]) == 2
    err = capsys.readouterr().err
    assert "is not under the folder the set was written from" in err and err.count("\n") == 1
