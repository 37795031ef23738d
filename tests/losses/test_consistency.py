import math

import pytest
import torch
import torch.nn.functional as F

from medrobust.losses.consistency import consistency_loss, jsd, kl_to_mean


def augmix_reference(logits):
    """The AugMix / RandConv reference formulation, three views, classification."""
    p = [F.softmax(l, dim=1) for l in logits]
    m = torch.clamp(sum(p) / len(p), 1e-7, 1).log()
    return sum(F.kl_div(m, pi, reduction="batchmean") for pi in p) / len(p)


def test_matches_augmix_reference_and_jsd_agrees():
    g = torch.Generator().manual_seed(0)
    logits = [torch.randn(8, 10, generator=g) for _ in range(3)]
    torch.testing.assert_close(kl_to_mean(logits), augmix_reference(logits))
    torch.testing.assert_close(jsd(logits), kl_to_mean(logits), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(kl_to_mean(logits, weight=10.0), 10 * augmix_reference(logits))


def test_zero_for_identical_views_and_bounded():
    x = torch.randn(4, 5)
    assert float(kl_to_mean([x, x, x])) == pytest.approx(0, abs=1e-7)
    assert float(jsd([x, x])) == pytest.approx(0, abs=1e-7)
    # maximally different one-hot predictions: JSD = log K, normalised = 1
    a = torch.tensor([[50.0, -50.0]])
    b = torch.tensor([[-50.0, 50.0]])
    assert float(jsd([a, b])) == pytest.approx(math.log(2), rel=1e-4)
    assert float(jsd([a, b], normalize=True)) == pytest.approx(1.0, rel=1e-4)


def test_segmentation_logits_average_over_pixels():
    g = torch.Generator().manual_seed(1)
    small = [torch.randn(2, 4, 8, 8, generator=g) for _ in range(3)]
    big = [v.repeat_interleave(2, -1).repeat_interleave(2, -2) for v in small]
    torch.testing.assert_close(kl_to_mean(small), kl_to_mean(big))  # image size does not change the scale
    pix = [v.permute(0, 2, 3, 1).reshape(-1, 4) for v in small]
    torch.testing.assert_close(kl_to_mean(small), kl_to_mean(pix))


def test_gradients_flow_to_every_view():
    views = [torch.randn(3, 4, requires_grad=True) for _ in range(3)]
    kl_to_mean(views).backward()
    assert all(v.grad is not None and v.grad.abs().sum() > 0 for v in views)


def test_errors():
    with pytest.raises(ValueError, match="at least 2"):
        kl_to_mean([torch.randn(2, 3)])
    with pytest.raises(ValueError, match="shape"):
        jsd([torch.randn(2, 3), torch.randn(2, 4)])
    with pytest.raises(TypeError, match="single tensor"):
        jsd(torch.randn(2, 3))
    with pytest.raises(ValueError, match="unknown name"):
        consistency_loss("mse")
