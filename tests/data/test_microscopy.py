"""Focal-stack readers on fixtures written in the real layouts (multi-page TIFF, sample folders, BBBC006-style
plane folders), every error case, aligned patches, intensity mapping and the embedded synthetic default."""

import json

import cv2
import numpy as np
import pytest
import tifffile
import torch

from medrobust.data.microscopy import (
    FocalStackPatches,
    Intensity,
    discover_stacks,
    fold_channels,
    list_plane_files,
    load_stack,
    read_image,
    read_stack,
    split_stacks,
    write_image,
    write_stack,
)


def rand_stack(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    hi = np.iinfo(dtype).max
    return rng.integers(0, hi, size=shape, endpoint=True).astype(dtype)


# ------------------------------------------------------------------------------------ multi-page TIFF
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("rgb", [False, True])
def test_multipage_tiff_roundtrip(tmp_path, dtype, rgb):
    shape = (5, 20, 24, 3) if rgb else (5, 20, 24)
    stack = rand_stack(shape, dtype)
    tifffile.imwrite(tmp_path / "s.tif", stack, photometric="rgb" if rgb else "minisblack")
    out = read_stack(tmp_path / "s.tif")
    assert out.dtype == dtype and out.shape == shape
    np.testing.assert_array_equal(out, stack)


def test_tiff_pages_written_one_by_one_and_imagej_hyperstack(tmp_path):
    stack = rand_stack((4, 16, 18), np.uint16)
    for plane in stack:
        tifffile.imwrite(tmp_path / "pages.tif", plane, append=True)
    np.testing.assert_array_equal(read_stack(tmp_path / "pages.tif"), stack)
    rgb = rand_stack((3, 16, 18, 3), np.uint8)
    tifffile.imwrite(tmp_path / "ij.tif", np.moveaxis(rgb, -1, 1), imagej=True, metadata={"axes": "ZCYX"})
    np.testing.assert_array_equal(read_stack(tmp_path / "ij.tif"), rgb)


def test_tiff_errors_name_the_file(tmp_path):
    tifffile.imwrite(tmp_path / "single.tif", rand_stack((16, 16), np.uint16))
    with pytest.raises(ValueError, match=r"single\.tif.*single image"):
        read_stack(tmp_path / "single.tif")
    tifffile.imwrite(tmp_path / "uneven.tif", rand_stack((16, 16), np.uint16), append=True)
    tifffile.imwrite(tmp_path / "uneven.tif", rand_stack((16, 20), np.uint16), append=True)
    with pytest.raises(ValueError, match=r"uneven\.tif.*unequal size"):
        read_stack(tmp_path / "uneven.tif")
    (tmp_path / "broken.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(ValueError, match=r"broken\.tif.*not a readable TIFF"):
        read_stack(tmp_path / "broken.tif")
    with pytest.raises(FileNotFoundError, match="nope"):
        read_stack(tmp_path / "nope.tif")
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"x\.png.*multi-page TIFF or a folder"):
        read_stack(tmp_path / "x.png")


# ------------------------------------------------------------------------------------- sample folders
@pytest.mark.parametrize("dtype,suffix,rgb", [(np.uint8, ".png", False), (np.uint16, ".png", True),
                                              (np.uint16, ".tif", False), (np.uint8, ".tif", True)])
def test_sample_folder_roundtrip(tmp_path, dtype, suffix, rgb):
    stack = rand_stack((4, 18, 22, 3) if rgb else (4, 18, 22), dtype, seed=3)
    write_stack(tmp_path / "field", stack, suffix=suffix)
    out = read_stack(tmp_path / "field")
    assert out.dtype == dtype and out.shape == stack.shape
    np.testing.assert_array_equal(out, stack)


def test_plane_names_with_prefixes_and_padding_and_mixed_formats(tmp_path):
    stack = rand_stack((3, 10, 12), np.uint16, seed=4)
    d = tmp_path / "s"
    d.mkdir()
    write_image(d / "z00.tif", stack[0])
    write_image(d / "plane_1.png", stack[1])
    write_image(d / "z2.tiff", stack[2])
    (d / "notes.txt").write_text("ignored")
    (d / ".DS_Store").write_bytes(b"x")
    assert [p.name for p in list_plane_files(d)] == ["z00.tif", "plane_1.png", "z2.tiff"]
    np.testing.assert_array_equal(read_stack(d), stack)


def test_png_channel_order_is_rgb(tmp_path):
    img = np.zeros((8, 8, 3), np.uint16)
    img[..., 0] = 60000  # red
    write_image(tmp_path / "r.png", img)
    raw = cv2.imread(str(tmp_path / "r.png"), cv2.IMREAD_UNCHANGED)
    assert raw[..., 2].max() == 60000 and raw[..., 0].max() == 0  # stored BGR on disk
    np.testing.assert_array_equal(read_image(tmp_path / "r.png"), img)


def test_sample_folder_errors_name_the_file(tmp_path):
    def folder(name, planes):
        d = tmp_path / name
        d.mkdir()
        for fname, arr in planes.items():
            write_image(d / fname, arr)
        return d

    a8 = rand_stack((12, 12), np.uint8)
    a16 = rand_stack((12, 12), np.uint16)
    d = folder("missing", {"0.png": a8, "1.png": a8, "3.png": a8})
    with pytest.raises(ValueError, match=r"missing.*missing plane\(s\) \[2\]"):
        read_stack(d)
    d = folder("uneven", {"0.png": a8, "1.png": rand_stack((12, 14), np.uint8)})
    with pytest.raises(ValueError, match=r"uneven[/\\]1\.png.*differs"):
        read_stack(d)
    d = folder("channels", {"0.png": a8, "1.png": rand_stack((12, 12, 3), np.uint8)})
    with pytest.raises(ValueError, match=r"channels[/\\]1\.png.*differs"):
        read_stack(d)
    d = folder("bits", {"0.png": a8, "1.png": a16})
    with pytest.raises(ValueError, match=r"bits[/\\]1\.png.*pixel type uint16"):
        read_stack(d)
    d = folder("dup", {"0.png": a8, "0.tif": a8, "1.png": a8})
    with pytest.raises(ValueError, match=r"plane 0 given twice"):
        read_stack(d)
    d = folder("noindex", {"0.png": a8, "focus.png": a8})
    with pytest.raises(ValueError, match=r"focus\.png.*plane index"):
        read_stack(d)
    d = folder("corrupt", {"0.png": a8})
    (d / "1.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ValueError, match=r"corrupt[/\\]1\.png.*not a readable PNG"):
        read_stack(d)
    d = folder("one", {"0.png": a8})
    with pytest.raises(ValueError, match=r"one.*at least 2 planes"):
        read_stack(d)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty.*no plane images"):
        read_stack(tmp_path / "empty")


# ---------------------------------------------------------------------------------- discovery, split
def test_discover_tiffs_and_sample_folders_together(tmp_path):
    write_stack(tmp_path / "b.tif", rand_stack((3, 16, 16), np.uint16))
    write_stack(tmp_path / "a", rand_stack((3, 16, 16), np.uint16))
    (tmp_path / "readme.md").write_text("x")
    srcs = discover_stacks(tmp_path)
    assert [s.name for s in srcs] == ["a", "b"]
    assert all(s.read().shape == (3, 16, 16) for s in srcs)
    with pytest.raises(FileNotFoundError, match="no focal stacks"):
        discover_stacks(tmp_path / "a", layout="tiff")  # a sample folder holds PNG planes, no stacks


def test_discover_plane_folders_bbbc006_style(tmp_path):
    stacks = {name: rand_stack((4, 14, 16), np.uint16, seed=i) for i, name in enumerate(["a01_s1", "a01_s2"])}
    for k in range(4):
        (tmp_path / f"z{k}").mkdir()
        for name, st in stacks.items():
            write_image(tmp_path / f"z{k}" / f"{name}.tif", st[k])
    srcs = discover_stacks(tmp_path)
    assert [s.name for s in srcs] == ["a01_s1", "a01_s2"]
    np.testing.assert_array_equal(srcs[1].read(), stacks["a01_s2"])
    # BBBC006 keeps the focus in the middle: select and re-order planes, in-focus first
    np.testing.assert_array_equal(load_stack(srcs[0], [2, 1, 0]), stacks["a01_s1"][[2, 1, 0]])
    with pytest.raises(ValueError, match=r"asks for plane\(s\) \[7\]"):
        load_stack(srcs[0], [0, 7])
    (tmp_path / "z2" / "a01_s2.tif").unlink()
    with pytest.raises(ValueError, match=r"z2[/\\]a01_s2\.tif: missing"):
        discover_stacks(tmp_path)
    (tmp_path / "z5").mkdir()
    with pytest.raises(ValueError, match=r"missing plane\(s\) \[4\]"):
        discover_stacks(tmp_path)


def test_split_is_seeded_and_disjoint():
    items = [f"s{i}" for i in range(10)]
    a = split_stacks(items, (0.6, 0.2, 0.2), seed=1)
    assert a == split_stacks(items, (0.6, 0.2, 0.2), seed=1)
    assert sorted(a["train"] + a["val"] + a["test"]) == sorted(items)
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (6, 2, 2)
    assert split_stacks(items[:2])["test"] == items[:2]


# ------------------------------------------------------------------------------- intensity, patches
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_intensity_roundtrip_keeps_dtype_and_range(dtype):
    img = rand_stack((20, 20), dtype) // 3 + 7
    for mode in ("stack", "dtype"):
        lo, hi = Intensity(mode).range_of(img)
        back = Intensity.denormalize(Intensity.normalize(img, lo, hi), lo, hi, dtype)
        assert back.dtype == dtype
        np.testing.assert_allclose(back.astype(float), img.astype(float), atol=1)
    fitted = Intensity.fit("dataset", [img, img // 2])
    assert fitted.mode == "dataset" and fitted.lo == pytest.approx(img.min() // 2 / np.iinfo(dtype).max)


def test_patches_are_aligned_across_planes_and_seeded():
    h, w, p = 40, 50, 4
    base = np.arange(h * w, dtype=np.float64).reshape(h, w) * 10
    stack = np.stack([base + 1000 * k for k in range(p)]).astype(np.uint16)  # plane k = plane 0 + const
    ds = FocalStackPatches([stack], patch_size=16, patches_per_stack=20, intensity=Intensity("dtype"), seed=5)
    scale = 65535.0
    for i in range(len(ds)):
        t = ds[i]["planes"]
        assert t.shape == (p, 1, 16, 16) and t.dtype == torch.float32
        for k in range(p):  # the same crop (and flip/rotation) of every plane
            torch.testing.assert_close(t[k] - t[0], torch.full_like(t[0], 1000 * k / scale), atol=1e-6, rtol=0)
    torch.testing.assert_close(ds[3]["planes"], ds[3]["planes"])  # seeded: a fixed function of the index
    assert not torch.equal(ds[3]["planes"], ds[4]["planes"])
    free = FocalStackPatches([stack], patch_size=16, patches_per_stack=4, seed=None)
    np.random.seed(0)
    x1 = free[0]["planes"]
    np.random.seed(0)
    torch.testing.assert_close(free[0]["planes"], x1)  # global RNG (the training loop seeds it per sample)


def test_patches_errors_and_channel_folding():
    small = rand_stack((3, 10, 10), np.uint16)
    with pytest.raises(ValueError, match="smaller than the patch size"):
        FocalStackPatches([small], patch_size=16)
    with pytest.raises(ValueError, match="planes, but the first stack has"):
        FocalStackPatches([rand_stack((3, 20, 20), np.uint16), rand_stack((4, 20, 20), np.uint16)], patch_size=8)
    grey = FocalStackPatches([rand_stack((3, 20, 20), np.uint16)], patch_size=8, seed=0)
    rgb = FocalStackPatches([rand_stack((3, 20, 20, 3), np.uint8)], patch_size=8, seed=0)
    batch = fold_channels([grey[0], rgb[0]])["planes"]
    assert batch.shape == (4, 3, 1, 8, 8)


# --------------------------------------------------------------------------------- synthetic default
def test_skimage_samples_load_offline():
    from medrobust.data.synthetic.microscopy import skimage_images

    imgs = skimage_images()
    assert imgs["cell"].ndim == 2 and imgs["immunohistochemistry"].shape[-1] == 3
    assert all(0 <= im.min() and im.max() <= 1 for im in imgs.values())


def test_embedded_default_is_real_16bit_tiff_and_blur_grows(tmp_path):
    from medrobust.data.synthetic.microscopy import Optics, write_synthetic_stacks

    paths = write_synthetic_stacks(tmp_path, n_stacks=2, size=(48, 48), optics=Optics(planes=4, max_radius=4.0),
                                   skimage_tiles=1, seed=0)
    assert [p.name for p in paths] == ["synthetic_000.tif", "synthetic_001.tif", "skimage_cell_0.tif",
                                       "skimage_immunohistochemistry_0.tif"]
    with tifffile.TiffFile(paths[0]) as tif:
        assert len(tif.pages) == 4 and tif.pages[0].dtype == np.uint16
    for p in paths:
        st = read_stack(p).astype(np.float64)
        energy = [np.square(np.diff(plane, axis=0)).mean() for plane in st]
        factor = 1.5 if p.name.startswith("synthetic") else 1.0  # skimage tiles: smooth brightfield, shot noise
        assert energy[0] > energy[-1] * factor, f"{p.name}: the last plane should be smoother than plane 0"
    assert read_stack(paths[-1]).shape == (4, 48, 48, 3)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["radii"] == [0.0, 4 / 3, 8 / 3, 4.0] and len(manifest["stacks"]) == 4
    # same seed, same data
    again = write_synthetic_stacks(tmp_path / "again", n_stacks=2, size=(48, 48), optics=Optics(planes=4, max_radius=4.0),
                                   skimage_tiles=1, seed=0)
    np.testing.assert_array_equal(read_stack(again[0]), read_stack(paths[0]))
