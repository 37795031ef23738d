"""The synthetic ACDC-layout cohort: readable by the real reader, anatomically sane, two contrasts."""

from __future__ import annotations

import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medrobust.data.acdc import GROUPS, list_patients, load_cohort, read_patient
from medrobust.data.synthetic import make_synthetic_patient, write_synthetic_acdc

SMALL = {"n_train": 5, "n_test": 1, "size": (64, 72), "n_slices": 4}


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("syn")
    return {d: write_synthetic_acdc(base / d, domain=d, seed=1, **SMALL) for d in ("bssfp", "shifted")}


def test_default_cohort_layout_and_speed(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    root = write_synthetic_acdc(tmp_path / "acdc")
    elapsed = time.perf_counter() - t0
    assert elapsed < 10.0  # ~0.5 s on one core; generous for a shared machine
    assert [p.name for p in list_patients(root, "training")] == [f"patient{i:03d}" for i in range(1, 9)]
    assert [p.name for p in list_patients(root, "testing")] == ["patient101", "patient102"]
    folder = root / "training" / "patient003"
    info = (folder / "Info.cfg").read_text().splitlines()
    assert [line.split(":")[0] for line in info] == ["ED", "ES", "Group", "Height", "NbFrame", "Weight"]
    p = read_patient(folder)
    ed, es = p.info["ED"], p.info["ES"]
    for idx in (ed, es):
        img = nib.load(str(folder / f"patient003_frame{idx:02d}.nii.gz"))
        gt = nib.load(str(folder / f"patient003_frame{idx:02d}_gt.nii.gz"))
        assert img.get_data_dtype() == np.int16 and gt.get_data_dtype() == np.uint8
        assert img.shape == (96, 96, 6)
        np.testing.assert_allclose(img.affine, np.diag([1.5, 1.5, 10.0, 1.0]))
    assert p.frames["ED"].spacing == (1.5, 1.5, 10.0)
    assert 1 <= ed < es <= p.info["NbFrame"]
    groups = [q.group for q in load_cohort(root, "training", lazy=True)]
    assert set(groups) == set(GROUPS)  # balanced: 8 patients cover all five groups


def test_read_back_labels_and_volumes(cohorts: dict[str, Path]) -> None:
    pats = load_cohort(cohorts["bssfp"], "all")
    assert [p.id for p in pats] == ["patient001", "patient002", "patient003", "patient004", "patient005", "patient101"]
    for p in pats:
        ed, es = p.frames["ED"], p.frames["ES"]
        assert ed.image.shape == (64, 72, 4) and ed.spacing == (1.5, 1.5, 10.0)
        assert set(np.unique(ed.label).tolist()) == {0, 1, 2, 3}
        assert 0 <= ed.image.min() and ed.image.max() < 1500
        lv_ed, lv_es = int((ed.label == 3).sum()), int((es.label == 3).sum())
        rv_ed, rv_es = int((ed.label == 1).sum()), int((es.label == 1).sum())
        assert lv_ed > lv_es > 0, p.id
        assert rv_ed > rv_es, p.id
        # myocardium is thicker at ES: about the same area, around a smaller cavity
        myo_ed, myo_es = int((ed.label == 2).sum()), int((es.label == 2).sum())
        assert 0.6 < myo_es / myo_ed < 1.4, p.id
        # apex-to-base: the LV cavity shrinks towards the apex (last slice)
        per_slice = (ed.label == 3).sum(axis=(0, 1))
        assert per_slice[0] > per_slice[-1], (p.id, per_slice)
        # the LV radius is in a visible range (about 10-20 px at 1.5 mm at the base)
        r_px = np.sqrt(per_slice[0] / np.pi)
        assert 8 < r_px < 22, (p.id, r_px)


def _tissue_means(root: Path) -> dict[str, float]:
    means: dict[str, list[float]] = {"blood": [], "myo": []}
    for p in load_cohort(root, "all"):
        fr = p.frames["ED"]
        means["blood"].append(float(fr.image[fr.label == 3].mean()))
        means["myo"].append(float(fr.image[fr.label == 2].mean()))
    return {k: float(np.mean(v)) for k, v in means.items()}


def test_shifted_domain_changes_contrast_not_anatomy(cohorts: dict[str, Path]) -> None:
    b = load_cohort(cohorts["bssfp"], "all")
    s = load_cohort(cohorts["shifted"], "all")
    for pb, ps in zip(b, s):
        assert pb.info == ps.info
        np.testing.assert_array_equal(pb.frames["ES"].label, ps.frames["ES"].label)
    mb, ms = _tissue_means(cohorts["bssfp"]), _tissue_means(cohorts["shifted"])
    assert mb["blood"] > 2.0 * mb["myo"]  # bSSFP: bright blood, dark myocardium
    assert ms["blood"] < ms["myo"]  # shifted: the order flips
    assert not np.allclose(b[0].frames["ED"].image, s[0].frames["ED"].image)


def test_deterministic_given_seed(tmp_path: Path, cohorts: dict[str, Path]) -> None:
    again = write_synthetic_acdc(tmp_path / "again", domain="bssfp", seed=1, **SMALL)
    other = write_synthetic_acdc(tmp_path / "other", domain="bssfp", seed=2, **SMALL)
    ref = load_cohort(cohorts["bssfp"], "all")
    for pa, pr in zip(load_cohort(again, "all"), ref):
        assert pa.info == pr.info
        for k in ("ED", "ES"):
            np.testing.assert_array_equal(pa.frames[k].image, pr.frames[k].image)
            np.testing.assert_array_equal(pa.frames[k].label, pr.frames[k].label)
    po = load_cohort(other, "all")
    assert any(not np.array_equal(a.frames["ED"].label, r.frames["ED"].label) for a, r in zip(po, ref))


def test_no_leftover_temporary_files(cohorts: dict[str, Path]) -> None:
    names = [f.name for f in cohorts["bssfp"].rglob("*") if f.is_file()]
    assert names and not any(".tmp" in n for n in names)


def test_make_synthetic_patient_and_argument_checks() -> None:
    p = make_synthetic_patient(3, group="HCM", size=(48, 48), n_slices=3, seed=0)
    assert p.id == "patient003" and p.info["Group"] == "HCM"
    assert p.images["ED"].dtype == np.int16 and p.labels["ES"].dtype == np.uint8
    assert p.images["ED"].shape == (48, 48, 3)
    with pytest.raises(ValueError, match="domain"):
        make_synthetic_patient(1, domain="ct")
    with pytest.raises(ValueError, match="n_train"):
        write_synthetic_acdc("/nonexistent-never-written", n_train=101)
