"""``corrupt_cifar`` writing the public CIFAR-10-C layout (resumable, atomic, device-independent draws)."""

import json
import pickle

import numpy as np
import pytest
import torch

import medrobust.augment as A
import medrobust.corrupt.cifar as writer
from medrobust.corrupt import MANIFEST_NAME, corrupt_cifar, derive_seed
from medrobust.data.cifar import read_cifar10, read_cifar_c, to_chw_float

CORR = ["gaussian_noise", "brightness"]


def write_cifar10_test(root, n_test=6):
    """``root/cifar-10-batches-py/test_batch`` (+ batches.meta) in the released layout (Python 2 pickles)."""
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    i, c, y, x = np.meshgrid(np.arange(n_test), np.arange(3), np.arange(32), np.arange(32), indexing="ij")
    data = ((100 + i + 40 * c + y + x) % 256).astype(np.uint8).reshape(n_test, 3072)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    for name, obj in (("test_batch", {b"data": data, b"labels": [k % 10 for k in range(n_test)]}),
                      ("batches.meta", {b"label_names": [s.encode() for s in names], b"num_vis": 3072})):
        with open(base / name, "wb") as f:
            pickle.dump(obj, f, protocol=2)
    return base


def test_corrupt_cifar_writes_the_public_layout(tmp_path):
    write_cifar10_test(tmp_path / "c10", n_test=7)
    out = tmp_path / "c10c"
    summary = corrupt_cifar(tmp_path / "c10", out, corruptions=CORR, seed=3, progress=False, batch_size=4)
    assert summary["written"] == CORR and summary["shape"] == [35, 32, 32, 3]
    labels = np.load(out / "labels.npy")
    assert labels.dtype == np.uint8 and labels.shape == (35,) and labels.tolist() == [i % 10 for i in range(7)] * 5
    clean = read_cifar10(tmp_path / "c10", "test").images
    x = to_chw_float(clean)
    for c in CORR:
        arr = np.load(out / f"{c}.npy")
        assert arr.dtype == np.uint8 and arr.shape == (35, 32, 32, 3)
        # severity blocks in order 1..5, each batch reproducible from its seed with augment.corrupt
        for s in range(1, 6):
            ys = [A.corrupt(x[lo : lo + 4], c, s, table="cifar", generator=torch.Generator().manual_seed(derive_seed(3, c, s, b)))
                  for b, lo in enumerate(range(0, 7, 4))]
            ref = torch.round(torch.cat(ys).clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
            np.testing.assert_array_equal(arr[(s - 1) * 7 : s * 7], ref)
        # the readers take the written files as CIFAR-10-C
        imgs, lab = read_cifar_c(out, c, 5)
        assert imgs.shape == (7, 32, 32, 3) and lab.tolist() == [i % 10 for i in range(7)]
    noise = np.load(out / "gaussian_noise.npy").astype(float)
    dev = [np.abs(noise[(s - 1) * 7 : s * 7] - clean).mean() for s in range(1, 6)]
    assert dev == sorted(dev), "gaussian noise should grow with severity"
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["done"] and set(manifest["complete"]) == set(CORR) and manifest["settings"]["seed"] == 3
    assert "device" not in manifest["settings"]


def test_corrupt_cifar_resumes_and_refuses_other_settings(tmp_path, monkeypatch):
    src = write_cifar10_test(tmp_path / "c10", n_test=5)
    fresh = tmp_path / "fresh"
    corrupt_cifar(src, fresh, corruptions=CORR, severities=[1, 3], progress=False, batch_size=3)

    real = writer.corrupt_batch

    def crash_on_brightness(core, *a, **k):
        if core == "natural_brightness":
            raise KeyboardInterrupt("simulated crash")
        return real(core, *a, **k)

    out = tmp_path / "resumed"
    monkeypatch.setattr(writer, "corrupt_batch", crash_on_brightness)
    with pytest.raises(KeyboardInterrupt):
        corrupt_cifar(src, out, corruptions=CORR, severities=[1, 3], progress=False, batch_size=3)
    assert (out / "gaussian_noise.npy").is_file() and not (out / "brightness.npy").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no temporary file left behind"
    monkeypatch.setattr(writer, "corrupt_batch", real)
    mtime = (out / "gaussian_noise.npy").stat().st_mtime_ns
    summary = corrupt_cifar(src, out, corruptions=CORR, severities=[1, 3], progress=False, batch_size=3)
    assert summary["skipped"] == ["gaussian_noise"] and summary["written"] == ["brightness"]
    assert (out / "gaussian_noise.npy").stat().st_mtime_ns == mtime
    for name in ("gaussian_noise.npy", "brightness.npy", "labels.npy"):
        assert (out / name).read_bytes() == (fresh / name).read_bytes()
    with pytest.raises(FileExistsError, match="other settings"):
        corrupt_cifar(src, out, corruptions=CORR, severities=[1, 3], seed=1, progress=False, batch_size=3)
    corrupt_cifar(src, out, corruptions=["gaussian_noise"], severities=[2], seed=1, overwrite=True, progress=False)
    assert np.load(out / "gaussian_noise.npy").shape == (5, 32, 32, 3)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        corrupt_cifar(src, tmp_path / "junk", corruptions=CORR, progress=False)
    with pytest.raises(ValueError, match="unknown name"):
        corrupt_cifar(src, tmp_path / "o2", corruptions=["gausian_noise"], progress=False)
    with pytest.raises(FileNotFoundError, match="test_batch"):
        corrupt_cifar(tmp_path, tmp_path / "o3", corruptions=CORR, progress=False)


def test_device_argument(tmp_path):
    src = write_cifar10_test(tmp_path / "c10", n_test=4)
    corrupt_cifar(src, tmp_path / "cpu", corruptions="gaussian_noise", severities=[2], progress=False, device="cpu")
    corrupt_cifar(src, tmp_path / "dev", corruptions="gaussian_noise", severities=[2], progress=False,
                  device=torch.device("cpu"))
    assert (tmp_path / "cpu" / "gaussian_noise.npy").read_bytes() == (tmp_path / "dev" / "gaussian_noise.npy").read_bytes()
    with pytest.raises(ValueError, match=r"--device: expected cpu, cuda, cuda:N or auto, got 'tpu'"):
        corrupt_cifar(src, tmp_path / "bad", corruptions=CORR, progress=False, device="tpu")
    assert not (tmp_path / "bad").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_up_to_rounding(tmp_path):
    # the draws are made on the CPU for every device, so only float rounding differs
    src = write_cifar10_test(tmp_path / "c10", n_test=9)
    kw = {"corruptions": "all", "severities": [1, 5], "progress": False, "batch_size": 4}
    corrupt_cifar(src, tmp_path / "cpu", **kw)
    corrupt_cifar(src, tmp_path / "cuda", device="cuda", **kw)
    settings = [json.loads((tmp_path / d / MANIFEST_NAME).read_text())["settings"] for d in ("cpu", "cuda")]
    assert settings[0] == settings[1]
    for c in settings[0]["corruptions"]:
        a, b = (np.load(tmp_path / d / f"{c}.npy").astype(int) for d in ("cpu", "cuda"))
        diff = np.abs(a - b)
        # rounding can move a pixel across a uint8 step, and a few ops (JPEG, pixelate, glass) amplify it
        assert (diff <= 1).mean() > 0.99 and diff.mean() < 0.1, (c, diff.max(), diff.mean())


def _stale_temp(dest):
    """The 0-byte temporary ``atomic_path`` leaves when its process is killed mid-write."""
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=f".tmp{''.join(dest.suffixes)}", dir=dest.parent)
    os.close(fd)
    return tmp


def test_symlinked_targets_are_refused_and_nothing_is_written_outside(tmp_path):
    from medrobust.cli import main

    write_cifar10_test(tmp_path / "c10")
    out, elsewhere = tmp_path / "c10c", tmp_path / "elsewhere"
    kw = {"corruptions": ["brightness"], "severities": "1", "progress": False}
    corrupt_cifar(tmp_path / "c10", out, **kw)
    elsewhere.mkdir()
    for name in ("brightness.npy", "labels.npy"):
        good = (out / name).read_bytes()
        (out / name).rename(elsewhere / name)
        (out / name).symlink_to(elsewhere / name)  # a symlink must not count as done, nor be written through
        for overwrite in (False, True):
            with pytest.raises(ValueError, match=rf"c10c/{name} is a symlink to .*elsewhere/{name}, outside --out"):
                corrupt_cifar(tmp_path / "c10", out, overwrite=overwrite, **kw)
        assert main(["corrupt", "--task", "cifar", "--root", str(tmp_path / "c10"), "--out", str(out), "--corruptions",
                     "brightness", "--severities", "1", "--overwrite", "--no-progress"]) == 2
        assert (elsewhere / name).read_bytes() == good and [p.name for p in elsewhere.iterdir()] == [name]
        (out / name).unlink()
        (elsewhere / name).rename(out / name)
    assert corrupt_cifar(tmp_path / "c10", out, **kw)["skipped"] == ["brightness"]


def test_stale_temporaries_are_removed_and_never_count(tmp_path):
    write_cifar10_test(tmp_path / "c10")
    out = tmp_path / "c10c"
    out.mkdir()
    first = _stale_temp(out / MANIFEST_NAME)  # killed while writing the first manifest: --out is still "empty"
    kw = {"corruptions": ["brightness", "gaussian_noise"], "severities": "1", "progress": False}
    ref = corrupt_cifar(tmp_path / "c10", tmp_path / "ref", **kw)
    summary = corrupt_cifar(tmp_path / "c10", out, **kw)
    assert summary["written"] == ref["written"] and not (tmp_path / first).exists()
    # killed while filling gaussian_noise.npy: the rerun writes it, byte-identical, and removes the temporary
    (out / "gaussian_noise.npy").unlink()
    stale = _stale_temp(out / "gaussian_noise.npy")
    assert corrupt_cifar(tmp_path / "c10", out, **kw)["written"] == ["gaussian_noise"]
    assert not (tmp_path / stale).exists() and not [p.name for p in out.iterdir() if p.name.startswith(".")]
    for name in ("brightness.npy", "gaussian_noise.npy", "labels.npy"):
        assert (out / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()
