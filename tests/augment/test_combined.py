"""The ``combined`` core: one member per sample, each member called once on its subset, exact replay."""

import pytest
import torch

import medrobust.augment as A
from medrobust.augment import select_params

MEMBERS = ["natural_gaussian_noise", "natural_contrast", {"name": "natural_fog", "severity": [2, 4]},
           {"name": "randconv", "kernel_sizes": [3]}]


def core(**kw):
    return A.build({"name": "combined", "members": MEMBERS, "defaults": {"table": "cifar"}, **kw})


def images(n=24, seed=0):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_each_sample_is_its_members_output_with_the_same_params():
    c, x = core(), images()
    params = c.sample_params(x, torch.Generator().manual_seed(1))
    y = c.apply(x, params)
    member = params["member"]
    assert len(set(member.tolist())) == len(MEMBERS), "24 samples should draw every one of 4 members"
    for k, m in enumerate(c.members):
        rows = torch.nonzero(member == k).squeeze(1)
        alone = m.apply(x[rows], params["members"][k])  # the member alone, the same params
        torch.testing.assert_close(y[rows], alone, rtol=0, atol=0)
        assert not torch.equal(y[rows], x[rows])


def test_severities_are_drawn_per_sample_within_each_members_range():
    c, x = core(severity=[1, 5]), images(64)
    params = c.sample_params(x, torch.Generator().manual_seed(2))
    noise = params["members"][0]["severity"]
    fog = params["members"][2]["severity"]
    assert noise.shape == (int((params["member"] == 0).sum()),) and noise.dtype == torch.long
    assert len(set(noise.tolist())) > 1  # per sample, not one per batch
    assert set(fog.tolist()) <= {2, 3, 4}  # the member's own range wins over combined's severity
    assert "severity" not in params["members"][3]  # randconv: not a corruption core
    # the per-sample severity tensor reaches the core: the same noise at two severities differs
    sub = params["members"][0]
    rows = torch.nonzero(params["member"] == 0).squeeze(1)
    y1 = c.members[0].apply(x[rows], sub)
    y5 = c.members[0].apply(x[rows], {**sub, "severity": torch.full_like(sub["severity"], 5)})
    hi = sub["severity"] < 5
    assert hi.any() and not torch.equal(y1[hi], y5[hi])


def test_exact_replay_and_slices():
    c, x = core(), images(12)
    y1 = c(x, torch.Generator().manual_seed(5))
    y2 = c(x, torch.Generator().manual_seed(5))
    torch.testing.assert_close(y1, y2, rtol=0, atol=0)
    params = c.sample_params(x, torch.Generator().manual_seed(5))
    torch.testing.assert_close(c.apply(x, params), y1, rtol=0, atol=0)
    idx = torch.tensor([7, 0, 3, 11])
    torch.testing.assert_close(c.apply(x[idx], select_params(params, idx, 12)), y1[idx], rtol=1e-6, atol=1e-6)


def test_each_member_is_called_once_per_batch(monkeypatch):
    c, x = core(), images(32)
    calls = []
    for m in c.members:
        orig = m.apply
        monkeypatch.setattr(m, "apply", lambda xs, p, _o=orig: calls.append(xs.shape[0]) or _o(xs, p))
    c(x, torch.Generator().manual_seed(0))
    assert len(calls) == len(MEMBERS) and sum(calls) == 32


def test_p_weights_and_errors():
    x = images(40)
    c = core(p=0.5)
    params = c.sample_params(x, torch.Generator().manual_seed(0))
    off = ~params["apply"]
    assert off.any() and bool((params["member"][off] == -1).all())
    assert torch.equal(c.apply(x, params)[off], x[off])
    only_first = core(weights=[1, 0, 0, 0]).sample_params(x, torch.Generator().manual_seed(0))
    assert set(only_first["member"].tolist()) == {0}
    with pytest.raises(ValueError, match="members"):
        A.build({"name": "combined", "members": []})
    with pytest.raises(ValueError, match=r"members\[1\].*unknown augmentation 'fogg'"):
        A.build({"name": "combined", "members": ["gin", "fogg"]})
    with pytest.raises(ValueError, match="weights"):
        core(weights=[1, 2])
    with pytest.raises(ValueError, match="mixes samples"):
        A.build({"name": "combined", "members": ["gin", "amplitude_mix"]})


def test_mri_members_on_volumes_and_slices():
    names = sorted(n for n in A.REGISTRY if n.startswith("mri_"))[:3]
    c = A.build({"name": "combined", "members": names})
    for x in (torch.rand(6, 1, 4, 16, 16), torch.rand(6, 1, 16, 16)):
        if x.ndim - 2 not in c.spatial_dims:
            continue
        y = c(x, torch.Generator().manual_seed(0))
        assert y.shape == x.shape and torch.isfinite(y).all()
