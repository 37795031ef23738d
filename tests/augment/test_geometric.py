"""Cores that move pixels are flagged (``geometric``) and refused where a label map must line up: the
segmentation tasks' configs (augment and objective.distortion) and the segmentation adapter."""

from __future__ import annotations

import pytest
import torch

from medrobust.augment import build, refuse_geometric
from medrobust.augment.augmix import GEOMETRIC_OPS, PHOTOMETRIC_OPS, AugMix
from medrobust.config import ConfigError
from medrobust.tasks import load_config
from medrobust.train.steps import SegmentationAdapter


def test_flags_follow_what_the_core_does():
    assert AugMix().geometric and AugMix(ops=["equalize", "translate_x"]).geometric
    assert not AugMix(ops=list(PHOTOMETRIC_OPS) + ["contrast", "brightness", "sharpness", "color"]).geometric
    assert build("natural_elastic_transform").geometric and not build("natural_glass_blur").geometric
    assert not build("randconv").geometric and not build("gin").geometric and not build("mri_bias_field").geometric
    assert build([{"name": "randconv"}, {"name": "augmix"}]).geometric  # a chain with one geometric core
    assert build({"name": "combined", "members": ["mri_bias_field", "natural_elastic_transform"]}).geometric
    assert not build({"name": "combined", "members": ["mri_bias_field", "natural_fog"]}).geometric


def test_photometric_augmix_keeps_every_pixel_where_it_was():
    """A photometric op maps equal pixel values to equal values: a constant patch stays constant, so
    nothing moved; a translate moves a bright square off its place."""
    x = torch.zeros(4, 1, 32, 32)
    x[:, :, 10:20, 10:20] = 0.8
    g = torch.Generator().manual_seed(0)
    y = AugMix(ops=list(PHOTOMETRIC_OPS), severity=10).eval()(x, g)
    inside, outside = y[:, :, 10:20, 10:20], y[:, :, :8]
    assert (inside == inside[:, :, :1, :1]).all() and (outside == outside[:, :, :1, :1]).all()
    moved = AugMix(ops=["translate_x"], severity=10, width=1, depth=1)(x, torch.Generator().manual_seed(0))
    assert not torch.equal(moved > 0.4, x > 0.4)
    assert set(GEOMETRIC_OPS) | set(PHOTOMETRIC_OPS) == set(AugMix().ops)


@pytest.mark.parametrize("recipe,override,where", [
    ("cardiac/baseline", "augment=[{name: augmix}]", "augment[0]: augmix with"),
    ("cardiac/st_ca", "objective.distortion={name: combined, members: [natural_elastic_transform, mri_bias_field]}",
     "objective.distortion: natural_elastic_transform"),
    ("driving/baseline", "augment=[{name: natural_elastic_transform}]", "augment[0]: natural_elastic_transform"),
])
def test_segmentation_configs_refuse_geometric_cores(recipe, override, where):
    with pytest.raises(ConfigError, match="moves pixels but not the label map") as err:
        load_config(recipe, [override])
    assert where in str(err.value)


def test_classification_and_photometric_segmentation_are_accepted():
    load_config("classification/digits/baseline", ["augment=[{name: augmix}]"])
    load_config("cardiac/baseline", ["augment=[{name: augmix, ops: [equalize, contrast]}]"])


def test_segmentation_adapter_refuses_a_geometric_core():
    with pytest.raises(ValueError, match="augment: augmix with"):
        SegmentationAdapter(AugMix())
    with pytest.raises(ValueError, match="moves pixels"):
        refuse_geometric(build("natural_elastic_transform"))
    SegmentationAdapter(AugMix(ops=["equalize"]))  # photometric: accepted
