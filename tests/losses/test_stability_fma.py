"""Stability training and the FMA loss (medrobust.losses.stability_loss / FMALoss)."""

import copy
import io

import pytest
import torch

from medrobust.losses import FMALoss, stability_loss
from medrobust.models.classifiers import create_classifier


def digitnet(seed=0):
    torch.manual_seed(seed)
    return create_classifier("digitnet", 10, 3, image_size=32)


def hooks_left(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


# ------------------------------------------------------------------------------------------ stability
@pytest.mark.parametrize("shape", [(8, 10), (4, 3, 6, 5)])
def test_stability_zero_for_identical_and_positive_otherwise(shape):
    a = torch.randn(*shape, requires_grad=True)
    assert float(stability_loss(a, a.clone()).detach()) == pytest.approx(0.0, abs=1e-7)
    b = a.detach() + 0.5 * torch.randn(*shape)
    loss = stability_loss(a, b)
    assert float(loss.detach()) > 0
    loss.backward()
    assert a.grad is not None and a.grad.abs().sum() > 0  # through the clean branch by default
    a.grad = None
    stability_loss(a, b.requires_grad_(), detach_clean=True).backward()
    assert a.grad is None


def test_stability_kl_matches_torch_batchmean_and_per_pixel_mean():
    p, q = torch.randn(6, 5), torch.randn(6, 5)
    ref = torch.nn.functional.kl_div(q.log_softmax(1), p.log_softmax(1), log_target=True, reduction="batchmean")
    torch.testing.assert_close(stability_loss(p, q), ref)
    seg_p, seg_q = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    flat = lambda t: t.permute(0, 2, 3, 1).reshape(-1, 4)  # noqa: E731
    torch.testing.assert_close(stability_loss(seg_p, seg_q), stability_loss(flat(seg_p), flat(seg_q)))


def test_stability_l2_on_embeddings():
    e = torch.randn(5, 16, requires_grad=True)
    zero = stability_loss(e, e.detach().clone(), kind="l2")
    assert float(zero) == 0.0
    zero.backward()
    assert torch.isfinite(e.grad).all()  # no NaN from the norm at 0
    f = e.detach() + 1.0
    torch.testing.assert_close(stability_loss(e, f, kind="l2"), torch.tensor(4.0))  # ||1_16|| = 4
    with pytest.raises(ValueError, match="kind"):
        stability_loss(e, f, kind="kll")
    with pytest.raises(ValueError, match="same shape"):
        stability_loss(e, f[:2])


# ------------------------------------------------------------------------------------------------ FMA
LAYERS = ["net.features.2", "net.features.5"]


def test_fma_zero_for_identity_and_positive_for_a_distortion():
    model = digitnet()
    x = torch.rand(4, 3, 32, 32)
    fma = FMALoss(model, LAYERS, weight=2.0)
    loss, lc, ld = fma(x, x.clone())
    assert float(loss) == pytest.approx(0.0, abs=1e-10)
    torch.testing.assert_close(lc, model(x))
    loss, lc, ld = fma(x, (x + 0.2 * torch.randn_like(x)).clamp(0, 1))
    assert float(loss) > 0
    one, _, _ = FMALoss(model, LAYERS, weight=1.0)(x, x.flip(0))
    two, _, _ = FMALoss(model, LAYERS, weight=2.0)(x, x.flip(0))
    torch.testing.assert_close(two, 2 * one)  # the returned term already carries the weight


@pytest.mark.parametrize("distance", ["l2", "l1", "cosine"])
def test_fma_gradient_reaches_the_weights_only_through_the_hooked_features(distance):
    model = digitnet()
    x = torch.rand(4, 3, 32, 32)
    loss, _, _ = FMALoss(model, ["net.features.2"], distance=distance)(x, (x + 0.3 * torch.rand_like(x)).clamp(0, 1))
    loss.backward()
    conv1 = model.net.features[0].weight.grad
    assert conv1 is not None and conv1.abs().sum() > 0
    # layers after the hooked one get nothing from the feature term
    assert model.net.features[3].weight.grad is None
    assert model.net.classifier[-1].weight.grad is None


def test_fma_hooks_are_removed_after_each_call_and_on_errors():
    model = digitnet()
    before = hooks_left(model)
    fma = FMALoss(model, LAYERS)
    x = torch.rand(2, 3, 32, 32)
    for _ in range(3):
        fma(x, x)
        assert hooks_left(model) == before == 0
    with pytest.raises(RuntimeError):
        fma(torch.rand(2, 5, 32, 32), torch.rand(2, 5, 32, 32))  # the forward fails inside
    assert hooks_left(model) == 0
    buf = io.BytesIO()
    torch.save(model, buf)  # a whole-model save holds no hook either
    buf.seek(0)
    assert hooks_left(torch.load(buf, weights_only=False)) == 0
    assert hooks_left(copy.deepcopy(model)) == 0


def test_fma_unknown_layer_names_the_closest():
    with pytest.raises(ValueError, match=r"unknown layer 'net.feature.2'.*closest.*'net.features.2'"):
        FMALoss(digitnet(), ["net.feature.2"])
    with pytest.raises(ValueError, match="distance"):
        FMALoss(digitnet(), LAYERS, distance="l3")
    with pytest.raises(ValueError, match="layers"):
        FMALoss(digitnet(), [])


def _check_models(cases):
    for model, layers, shape in cases:
        x = torch.rand(*shape)
        loss, lc, ld = FMALoss(model, layers)(x, (x + 0.1 * torch.randn_like(x)).clamp(0, 1))
        assert lc.shape == ld.shape and lc.shape[0] == shape[0] and float(loss) > 0
        loss.backward()
        assert hooks_left(model) == 0


@pytest.mark.slow  # the fast path through a MONAI U-Net is tests/train/test_objectives.py (fit_config + FMA)
def test_fma_on_a_monai_unet():
    from medrobust.models.factory import create_segmentation_model

    torch.manual_seed(0)
    _check_models([(create_segmentation_model("monai_unet", in_channels=1, num_classes=4, spatial_dims=2,
                                              channels=(8, 16, 32), strides=(2, 2), num_res_units=1),
                    ["model.0", "model.1.submodule.0"], (2, 1, 32, 32))])


@pytest.mark.slow
def test_fma_on_resnet_and_smp():
    from medrobust.models.factory import create_segmentation_model

    torch.manual_seed(0)
    _check_models([
        (create_classifier("resnet18", 10, 3, image_size=32), ["net.layer1", "net.layer3"], (2, 3, 32, 32)),
        (create_segmentation_model("smp_unet", in_channels=1, num_classes=4, spatial_dims=2, encoder_name="resnet18"),
         ["encoder.layer2"], (2, 1, 64, 64)),
    ])


def test_fma_under_autocast_is_float32():
    model = digitnet()
    x = torch.rand(2, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, lc, _ = FMALoss(model, LAYERS)(x, x * 0.5)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
