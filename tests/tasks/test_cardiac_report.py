"""Tests for medrobust.tasks.cardiac.report (Dice / HD95 tables, severity curves, prediction grid)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from medrobust.tasks.cardiac.report import comparison_table, plot_prediction_grid, write_cardiac_report

CLASSES = ("RV", "Myo", "LV")


def _summary(dice: float, hd: float = 5.0, missing: int = 0) -> dict:
    d = {c: dice + 0.01 * (i - 1) for i, c in enumerate(CLASSES)}  # per-class mean equals `dice`
    d["mean"] = dice
    h = {c: hd for c in CLASSES}
    h["mean"] = hd
    return {
        "n_cases": 4,
        "dice": d,
        "hd95": h,
        "hd95_missing": {**{c: 0 for c in CLASSES}, "LV": missing, "total": missing},
    }


def _results() -> dict:
    models = {}
    for name, clean, drop in (("unet_baseline", 0.90, 0.05), ("unet_robust", 0.88, 0.02)):
        corr = {
            c: {str(s): _summary(clean - drop * s * k, hd=5.0 + s) for s in range(1, 6)}
            for k, c in ((1, "gaussian_noise"), (2, "motion_blur"), (0.5, "bias_field"))
        }
        models[name] = {"clean": _summary(clean, hd=4.123), "corruptions": corr, "shifted": _summary(clean - 0.1)}
    models["unet_robust"]["shifted"]["hd95"]["mean"] = float("nan")  # NaN must be written as null
    return {
        "task": "cardiac",
        "run": "test-run",
        "models": models,
        "references": {"nnU-Net (Isensee 2021)": {"dice": {"RV": 92.8, "Myo": 89.9, "LV": 95.9}}},
    }


def test_comparison_table_numbers():
    res = _results()
    t = comparison_table(res)
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in t.splitlines()[2:]}
    # baseline: clean 90.00; corrupted mean = 0.90 - 0.05 * mean(s) * mean(k) = 0.90 - 0.05*3*(3.5/3) = 0.725
    assert rows["unet_baseline"] == ["90.00", "72.50", "80.00", "4.12"]
    assert rows["unet_robust"][:3] == ["88.00", "81.00", "78.00"]
    with pytest.raises(ValueError, match="models"):
        comparison_table({"task": "cardiac"})
    with pytest.raises(ValueError, match="clean"):
        comparison_table({"models": {"m": {"shifted": _summary(0.5)}}})


def test_write_cardiac_report(tmp_path):
    res = _results()
    paths = write_cardiac_report(tmp_path / "run", res, title="ACDC robustness")
    for key in ("json", "markdown", "dice_vs_severity"):
        assert paths[key].is_file(), key
    assert paths["dice_vs_severity"] == tmp_path / "run" / "figures" / "dice_vs_severity.png"
    assert not list((tmp_path / "run").rglob(".*tmp*"))  # no atomic-write leftovers

    # JSON: strict (no NaN tokens) and round-trips, NaN -> null
    text = paths["json"].read_text()
    assert "NaN" not in text
    loaded = json.loads(text)
    assert loaded["models"]["unet_robust"]["shifted"]["hd95"]["mean"] is None
    loaded["models"]["unet_robust"]["shifted"]["hd95"]["mean"] = float("nan")
    assert json.dumps(loaded, sort_keys=True) == json.dumps(res, sort_keys=True)

    md = paths["markdown"].read_text()
    assert md.startswith("# ACDC robustness\n\n**task:** cardiac  \n**run:** test-run\n\n")
    for s in ("unet_baseline", "unet_robust", "gaussian_noise", "motion_blur", "bias_field", "nnU-Net (Isensee 2021)"):
        assert s in md
    assert comparison_table(res) in md
    assert "| unet_baseline | 89.00 | 90.00 | 91.00 | 90.00 |" in md  # per-structure clean Dice
    assert "| gaussian_noise | 85.00 | 80.00 | 75.00 | 70.00 | 65.00 | 75.00 |" in md  # baseline severities 1..5
    assert "## Dice (%) by corruption and severity\n\n### unet_baseline\n\n| Corruption |" in md
    assert "## References (published numbers, as reported)\n\n| Reference | dice.RV | dice.Myo | dice.LV |" in md
    assert "92.8" in md  # reference numbers printed as given
    assert md.endswith("## Figures\n\n![dice_vs_severity](figures/dice_vs_severity.png)\n")

    _check_png(paths["dice_vs_severity"], min_side=300)


def test_write_cardiac_report_minimal_grid_and_extra_figures(tmp_path):
    # clean only, no hd95, no corruptions: no severity figure, tables still render
    res = {"task": "t", "run": "r", "models": {"m": {"clean": {"dice": {"RV": 0.5, "mean": 0.5}}}}}
    grid = plot_prediction_grid(
        np.random.default_rng(0).random((1, 24, 24)),
        np.zeros((1, 24, 24), np.int64),
        {"m": np.zeros((1, 24, 24), np.int64)},
        tmp_path / "grid.png",
    )
    rows = [{"image": np.random.default_rng(1).random((24, 24)), "label": np.ones((24, 24), np.int64),
             "preds": {"m": np.ones((24, 24), np.int64)}, "title": "case clean"}]
    paths = write_cardiac_report(tmp_path / "run", res, rows, extra_figures={"prediction_grid": grid})
    assert "dice_vs_severity" not in paths
    assert paths["predictions"] == tmp_path / "run" / "figures" / "predictions.png"
    assert paths["prediction_grid"] == tmp_path / "run" / "figures" / "grid.png"  # copied into figures/
    assert paths["prediction_grid"].is_file() and paths["predictions"].is_file()
    md = paths["markdown"].read_text()
    # no always-empty columns: no corruptions, no shifted set and no HD95 were evaluated
    assert "| Model | Clean Dice (%) |\n|---|---|\n| m | 50.00 |\n" in md
    assert "Shifted Dice" not in md and "HD95 (mm)" not in md and "Corrupted Dice" not in md
    assert "![predictions](figures/predictions.png)\n\n![prediction_grid](figures/grid.png)\n" in md
    with pytest.raises(ValueError, match="reserved"):
        write_cardiac_report(tmp_path / "run2", res, rows, extra_figures={"predictions": grid})


def test_plot_prediction_grid(tmp_path):
    import torch

    rng = np.random.default_rng(0)
    n, h, w = 3, 48, 48
    labels = np.zeros((n, h, w), np.int64)
    labels[:, 10:30, 8:20] = 1
    labels[:, 12:36, 24:40] = 2
    labels[:, 18:30, 28:36] = 3
    images = rng.normal(size=(n, 1, h, w)).astype(np.float32) + labels[:, None]
    preds = {"baseline": np.roll(labels, 3, axis=2), "robust": torch.from_numpy(labels)}
    out = plot_prediction_grid(torch.from_numpy(images), labels, preds, tmp_path / "g.png", titles=["clean", "noise s3", "blur s5"])
    _check_png(out, min_side=200)
    with pytest.raises(ValueError, match="titles"):
        plot_prediction_grid(images, labels, preds, tmp_path / "x.png", titles=["a"])
    with pytest.raises(ValueError, match="preds_by_model"):
        plot_prediction_grid(images, labels, {"m": labels[:2]}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def _check_png(path, min_side: int) -> None:
    import matplotlib.image as mpimg

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(path)
    assert img.ndim == 3 and min(img.shape[:2]) >= min_side
    assert float(img[..., :3].std()) > 0.01 and not math.isnan(float(img.mean()))  # not blank
