"""On a dataset where each class is defined by energy at a known frequency, the DFM recovers it."""

import math

import numpy as np
import pytest
import torch

from medrobust.analysis.dfm import adcs, dominant_frequency_maps, loss_maps, patch_masks, shortcut_test

SIZE = 16
FREQS = {0: (0, 2), 1: (0, 5), 2: (3, 0), 3: (4, 4)}  # (row, col) cycles per image per class


def make_data(n_per_class, seed):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    xs, ys = [], []
    for c, (fr, fc) in FREQS.items():
        phase = torch.rand(n_per_class, 1, 1, generator=g) * 2 * math.pi
        wave = torch.cos(2 * math.pi * (fr * yy + fc * xx) / SIZE + phase)
        noise = torch.rand(n_per_class, SIZE, SIZE, generator=g)
        img = (0.5 + 0.25 * wave + 0.15 * (noise - 0.5)).clamp(0, 1)
        xs.append(img[:, None].repeat(1, 3, 1, 1))
        ys.append(torch.full((n_per_class,), c))
    return torch.cat(xs), torch.cat(ys)


def train_model(x, y):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 5, padding=2), torch.nn.ReLU(), torch.nn.Conv2d(16, 16, 5, padding=2), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 4))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(300):
        idx = torch.randint(0, len(x), (64,))
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_patch_masks_are_conjugate_symmetric():
    m = patch_masks((8, 8), 2)
    assert m.shape == (16, 8, 8)
    for mask in m:
        flipped = torch.roll(torch.flip(mask, (0, 1)), shifts=(1, 1), dims=(0, 1))  # k -> -k in centred layout
        assert torch.equal(mask, mask | flipped) and torch.equal(mask, flipped | mask)
    assert m.any(0).all()


def test_dfm_recovers_the_class_frequencies():
    x, y = make_data(96, 0)
    model = train_model(x, y)
    xt, yt = make_data(32, 1)
    acc = float((model(xt).argmax(1) == yt).float().mean())
    assert acc > 0.95, f"toy model did not learn the task ({acc:.2f})"
    maps = loss_maps(model, xt, yt, 4, patch=1, bands_per_batch=64)
    assert maps.shape == (4, SIZE, SIZE)
    dfms = dominant_frequency_maps(maps, top=0.02, patch=1)
    c0 = SIZE // 2
    for c, (fr, fc) in FREQS.items():
        assert dfms[c, c0 + fr, c0 + fc] and dfms[c, c0 - fr, c0 - fc], f"class {c}: its frequency is not in its DFM"
        # and, DC aside (removing the mean brightness hurts every class), the top patch of the loss
        # map is the class frequency or its conjugate
        m = maps[c].clone()
        m[c0, c0] = -float("inf")
        top = int(m.flatten().argmax())
        assert divmod(top, SIZE) in {(c0 + fr, c0 + fc), ((c0 - fr) % SIZE, (c0 - fc) % SIZE)}
    res = shortcut_test(model, xt, yt, dfms)
    for row in res["classes"]:
        assert row["tpr_kept"] > 0.9, "class frequency alone should keep the prediction (shortcut)"
    # without its frequency a class is mostly lost (a wave-free image may fall into one default class)
    assert sum(r["tpr_removed"] for r in res["classes"]) / 4 < 0.5
    scores = adcs(xt, yt, 4)
    assert scores["maps"].shape == (4, SIZE, SIZE) and len(scores["scores"]) == 4


def test_load_dfms_and_resolve_config_files(tmp_path):
    from medrobust.analysis.dfm import load_dfms, resolve_augment_files
    from medrobust.augment import DFMX, build, validate
    from medrobust.augment.dfm import example_dfms

    path = tmp_path / "dfms.npy"
    np.save(path, example_dfms(4, 16).numpy())
    assert torch.equal(load_dfms(path), example_dfms(4, 16)) and torch.equal(load_dfms(str(path)), example_dfms(4, 16))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dfms(tmp_path / "missing.npy")
    (tmp_path / "junk.npy").write_text("junk")
    with pytest.raises(ValueError, match="cannot read"):
        load_dfms(tmp_path / "junk.npy")
    with pytest.raises(ValueError, match="shape"):
        load_dfms(torch.zeros(16, 16))
    spec = [{"name": "randconv"}, {"name": "dfmx", "dfms": str(path), "p": 0.5}]
    validate(spec)  # config validation reads no file
    resolved = resolve_augment_files(spec)
    assert spec[1]["dfms"] == str(path) and resolved[0] == spec[0]  # the config itself is unchanged
    core = build(resolved)
    assert isinstance(core.cores[1], DFMX) and torch.equal(core.cores[1].dfms, example_dfms(4, 16))
    with pytest.raises(ValueError, match=r"augment\[1\].*unknown key"):
        validate([{"name": "randconv"}, {"name": "dfmx", "dfms": str(path), "q": 1}])
