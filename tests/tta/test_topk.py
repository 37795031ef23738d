"""DynTTA's follow-up: the top-ranked ops of an evaluation report become an AugMix op list and a training
recipe (``medrobust tta topk``); the shipped ``classification/digits/augmix_topk`` recipe builds it."""

from __future__ import annotations

import json

import pytest
import yaml

from medrobust.augment.augmix import AugMix
from medrobust.cli import main
from medrobust.tasks import load_config
from medrobust.tasks.base import build_augment
from medrobust.tasks.tta.topk import (
    augmix_recipe,
    read_blend_weights,
    topk_augmix_ops,
)

W = {"lowpass_50": 0.30, "brightness": 0.25, "gamma": 0.15, "equalize": 0.12, "rotate": 0.10, "saturation": 0.08}


def _report(tmp_path, folder="report", **enhancers):
    rep = tmp_path / folder
    rep.mkdir()
    tta = {n: {"mean_weights": {"corrupt": w, "clean": {o: 1 / len(w) for o in w}}} for n, w in enhancers.items()}
    (rep / "report.json").write_text(json.dumps({"models": {}, "tta": tta}))
    return rep


def test_ranking_skips_ops_without_an_augmix_equivalent(tmp_path):
    rep = _report(tmp_path, dyntta=W)
    name, w = read_blend_weights(rep)
    assert name == "dyntta" and w == W
    assert topk_augmix_ops(w, 3) == ["brightness", "equalize", "rotate"]  # lowpass and gamma have none
    assert topk_augmix_ops(w, 10) == ["brightness", "equalize", "rotate", "color"]  # saturation -> color
    with pytest.raises(ValueError, match="--k"):
        topk_augmix_ops(w, 0)
    with pytest.raises(ValueError, match="AugMix equivalent"):
        topk_augmix_ops({"lowpass_50": 1.0}, 2)
    with pytest.raises(ValueError, match="--kind"):
        read_blend_weights(rep, kind="shifted")
    with pytest.raises(FileNotFoundError, match="report.json"):
        read_blend_weights(tmp_path)
    two = _report(tmp_path, "two", a=W, b={"contrast": 1.0})
    with pytest.raises(ValueError, match="--tta"):
        read_blend_weights(two)
    assert read_blend_weights(two, tta="b")[1] == {"contrast": 1.0}


def test_shipped_recipe_and_written_recipe_build_the_restricted_augmix(tmp_path, capsys):
    cfg = load_config("classification/digits/augmix_topk")
    (core,) = build_augment(cfg.augment).cores
    assert isinstance(core, AugMix) and core.ops == ("brightness", "contrast", "sharpness")
    assert cfg.consistency is not None and cfg.consistency.views == 3
    raw = augmix_recipe(["rotate", "equalize"], name="x")
    assert raw["name"] == "x" and raw["augment"][0]["ops"] == ["rotate", "equalize"]
    with pytest.raises(ValueError, match="augmix"):
        augmix_recipe(["rotate"], "classification/digits/baseline")

    rep = _report(tmp_path, dyntta=W)
    out = tmp_path / "sub" / "topk.yaml"
    assert main(["tta", "topk", str(rep), "--k", "2", "--out", str(out), "--name", "digits_topk2"]) == 0
    assert "['brightness', 'equalize']" in capsys.readouterr().out
    text = out.read_text()
    assert text.startswith("# Written by `medrobust tta topk`") and "brightness 25.0%" in text
    assert yaml.safe_load(text)["name"] == "digits_topk2"
    (core,) = build_augment(load_config(out).augment).cores
    assert core.ops == ("brightness", "equalize")
    assert main(["tta", "topk", str(rep), "--kind", "clean"]) == 0  # prints only
    assert "augment.0.ops=[" in capsys.readouterr().out
    assert main(["tta", "topk", str(tmp_path / "nothing")]) == 2
    assert "report.json" in capsys.readouterr().err


def test_cardiac_recipe_is_photometric_and_its_ranking_skips_rotate(tmp_path, capsys):
    """Segmentation recipes train on label maps: the ranking skips rotate, the default recipe follows the
    report's task, and the shipped cardiac recipe builds a photometric AugMix with 3 consistency views."""
    from medrobust.tasks.tta.topk import default_recipe, recipe_label_maps, write_augmix_recipe

    cfg = load_config("cardiac/augmix_topk")
    (core,) = build_augment(cfg.augment).cores
    assert isinstance(core, AugMix) and not core.geometric and cfg.consistency.views == 3
    assert recipe_label_maps("cardiac/augmix_topk") and not recipe_label_maps("classification/digits/augmix_topk")
    w = {"rotate": 0.4, "contrast": 0.3, "scale": 0.2, "sharpness": 0.1}
    assert topk_augmix_ops(w, 2) == ["rotate", "contrast"]
    assert topk_augmix_ops(w, 2, photometric_only=True) == ["contrast", "sharpness"]
    rep = _report(tmp_path, dyntta=w)
    assert default_recipe(rep) == "classification/digits/augmix_topk"  # no task in this report
    data = json.loads((rep / "report.json").read_text())
    (rep / "report.json").write_text(json.dumps({**data, "task": "cardiac"}))
    assert default_recipe(rep) == "cardiac/augmix_topk"
    ops, out = write_augmix_recipe(rep, tmp_path / "acdc.yaml", k=2, recipe="cardiac/augmix_topk")
    assert ops == ["contrast", "sharpness"] and "geometric ops skipped" in out.read_text()
    assert main(["tta", "topk", str(rep), "--k", "2"]) == 0  # the report's task picks the cardiac recipe
    printed = capsys.readouterr().out
    assert "['contrast', 'sharpness']" in printed and "cardiac/augmix_topk" in printed
