"""The helpers the corrupted-copy writers share: parsers, seeds, device check, manifest rules."""

import json

import pytest
import torch

from medrobust.augment import corruption_names
from medrobust.augment.corruptions.mri import NAMES, corrupt_mri
from medrobust.corrupt import parse_corruptions, parse_severities
from medrobust.corrupt.common import (
    MANIFEST_NAME,
    check_device,
    corrupt_batch,
    derive_seed,
    prepare_output,
    write_manifest,
)


def test_parse_severities():
    assert parse_severities("1-5") == [1, 2, 3, 4, 5]
    assert parse_severities("1,3,5") == [1, 3, 5]
    assert parse_severities("2") == [2]
    assert parse_severities(" 4, 1-2 ") == [1, 2, 4]
    assert parse_severities([3, 1]) == [1, 3]
    assert parse_severities(4) == [4]
    for bad, msg in (("0-3", "1..5"), ("6", "1..5"), ("5-1", "reversed"), ("a", "cannot parse"), ("", "cannot parse"),
                     (True, "expected"), ([1.0], "integers"), ([], "nothing")):
        with pytest.raises(ValueError, match=msg):
            parse_severities(bad)


def test_parse_corruptions_mri():
    assert parse_corruptions("all", NAMES, prefix="mri_") == NAMES
    assert parse_corruptions("rician_noise, bias_field", NAMES, prefix="mri_") == ["bias_field", "rician_noise"]
    assert parse_corruptions(["MRI_Gibbs_Ringing", "gibbs_ringing"], NAMES, prefix="mri_") == ["gibbs_ringing"]
    with pytest.raises(ValueError, match=r"unknown name\(s\) \['fog'\].*'all'.*bias_field"):
        parse_corruptions("bias_field,fog", NAMES, prefix="mri_")
    with pytest.raises(ValueError, match="empty"):
        parse_corruptions(" , ", NAMES)


def test_parse_corruptions_groups():
    groups = {g: corruption_names(g) for g in ("all", "common", "extra")}
    known = corruption_names("all")
    assert parse_corruptions("common", known, groups=groups) == corruption_names("common")
    assert parse_corruptions(" EXTRA ", known, groups=groups) == corruption_names("extra")
    assert parse_corruptions(["fog", "natural_gaussian_noise"], known, groups=groups, prefix="natural_") == [
        "gaussian_noise", "fog"]
    with pytest.raises(ValueError, match=r"unknown name\(s\) \['common'\]"):  # a group only as the whole string
        parse_corruptions(["common"], known, groups=groups)


def test_derive_seed_is_the_documented_hash():
    # pinned values (from the former file_seed / batch_seed): seeds of existing outputs must never change
    assert derive_seed(3, "fog", 1, 0) == 3705256286473666168
    assert derive_seed(0, "bias_field", 5, "training/patient001/patient001_frame01.nii.gz") == 5644855713684732050
    assert derive_seed(3, "fog", 1, 0) != derive_seed(3, "fog", 1, 1) != derive_seed(3, "fog", 2, 1)
    assert 0 <= derive_seed(2**40, "x", 5, "y") < 2**63


def test_check_device():
    assert check_device("cpu") == torch.device("cpu")
    assert check_device(torch.device("cpu")) == torch.device("cpu")
    assert check_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("gpu", "cuda:x", "", "mps", None):
        with pytest.raises(ValueError, match=r"^--device: "):
            check_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="--device: 'cuda' requested but CUDA is not available"):
            check_device("cuda")


def test_corrupt_batch_equals_the_core_functions():
    x = torch.rand(2, 1, 3, 16, 20, generator=torch.Generator().manual_seed(0))
    for name in NAMES:
        ref = corrupt_mri(x, name, 4, generator=torch.Generator().manual_seed(11))
        assert torch.equal(corrupt_batch(f"mri_{name}", x, 4, 11, torch.device("cpu")), ref), name


def test_prepare_output_rules(tmp_path):
    settings = {"seed": 0, "corruptions": ["a"], "severities": (1, 2)}  # tuples compare as stored (lists)
    out = tmp_path / "out"
    assert prepare_output(out, settings, overwrite=False, what="a thing") is None  # missing folder: fresh run
    write_manifest(out, {"settings": settings, "complete": {"a": "x"}})
    assert prepare_output(out, settings, overwrite=False, what="a thing")["complete"] == {"a": "x"}  # resume
    assert prepare_output(out, settings, overwrite=True, what="a thing") is None
    with pytest.raises(FileExistsError, match="holds a thing written with other settings"):
        prepare_output(out, {**settings, "seed": 1}, overwrite=False, what="a thing")
    (out / MANIFEST_NAME).write_text("[1, 2]")
    with pytest.raises(FileExistsError, match="other settings"):
        prepare_output(out, settings, overwrite=False, what="a thing")
    (out / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(FileExistsError, match="other settings"):
        prepare_output(out, settings, overwrite=False, what="a thing")
    assert prepare_output(out, settings, overwrite=True, what="a thing") is None
    (out / MANIFEST_NAME).unlink()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty and has no manifest.json"):
        prepare_output(out, settings, overwrite=False, what="a thing")
    assert prepare_output(out, settings, overwrite=True, what="a thing") is None
    assert json.loads(json.dumps(settings))["severities"] == [1, 2]


def test_temp_names_and_stale_temp_removal(tmp_path):
    from medrobust.io import atomic_path, is_temp_name, remove_stale_temps

    names = ["manifest.json", "patient001_frame01.nii.gz", "Info.cfg", "fog.npy", "noext", "a.b.c"]
    for name in names:
        with atomic_path(tmp_path / "sub" / name) as tmp:
            assert is_temp_name(tmp.name), tmp.name
    for name in (*names, ".hidden", ".fog.npy.abcdefgh.tmp.json", ".fog.npy.abc.tmp.npy", "x.abcdefgh.tmp"):
        assert not is_temp_name(name), name
    stale = [tmp_path / ".fog.npy.abcdefgh.tmp.npy", tmp_path / "sub" / ".Info.cfg.x1_y2z3w.tmp.cfg"]
    for p in stale:
        p.write_bytes(b"")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    keep = outside / ".a.npy.abcdefgh.tmp.npy"
    keep.write_bytes(b"")
    (tmp_path / "link").symlink_to(outside, target_is_directory=True)
    assert remove_stale_temps(tmp_path) == sorted(stale)
    assert keep.exists(), "symlinked folders are not followed"
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == sorted(names)
    assert remove_stale_temps(tmp_path / "missing") == []


def test_check_targets(tmp_path):
    from medrobust.corrupt.common import check_targets

    out = tmp_path / "out"
    check_targets(out, ["manifest.json", "a/b/c.nii.gz"])  # nothing there yet: fine
    (out / "a" / "b").mkdir(parents=True)
    (out / "a" / "b" / "c.nii.gz").write_bytes(b"x")
    check_targets(out, ["manifest.json", "a/b/c.nii.gz"])
    (tmp_path / "x").mkdir()
    (out / "a" / "b" / "d.nii.gz").symlink_to(tmp_path / "x" / "d.nii.gz")  # dangling
    with pytest.raises(ValueError, match=r"^\S*out/a/b/d.nii.gz is a symlink to \S*x/d.nii.gz, outside --out"):
        check_targets(out, ["a/b/c.nii.gz", "a/b/d.nii.gz"])
    (out / "e").symlink_to(out / "a", target_is_directory=True)
    with pytest.raises(ValueError, match=r"out/e is a symlink to \S*out/a, elsewhere under --out"):
        check_targets(out, ["e/b/c.nii.gz"])
    for bad in ("../x", "/abs/x"):
        with pytest.raises(ValueError, match="leaves --out"):
            check_targets(out, [bad])
    prepare_output(tmp_path / "x", {}, overwrite=False, what="a thing")  # empty: fine
    (tmp_path / "x" / ".manifest.json.abcdefgh.tmp.json").write_bytes(b"")  # a killed run's temporary only
    prepare_output(tmp_path / "x", {}, overwrite=False, what="a thing")
