"""Dynamic sparse training: exact ERK/uniform counts, masked weights stay 0, drop/grow semantics, DDP, resume."""

import math
import os
import socket
import subprocess
import sys

import pytest
import torch
from torch import nn

from medrobust.config import ConfigError
from medrobust.io import read_jsonl
from medrobust.models.classifiers import DigitNet
from medrobust.tasks import load_config
from medrobust.train.sparse import (
    SparseMasks,
    erk_counts,
    make_updater,
    prunable_weights,
)

METHODS = ["set", "rigl", "mest", "granet"]


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 16, 3), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 5),
    )


def counts(masks: SparseMasks) -> dict[str, int]:
    return {n: int(m.sum()) for n, m in masks.masks.items()}


def test_only_conv_and_linear_weights_are_masked():
    names = list(prunable_weights(small_net()))
    assert names == ["0.weight", "3.weight", "7.weight", "9.weight"], "no bias, no batch norm"


@pytest.mark.parametrize("sparsity", [0.1, 0.3, 0.5, 0.9])
def test_erk_meets_the_total_exactly_with_the_dense_first_layer(sparsity):
    model = DigitNet()
    m = SparseMasks(model, sparsity)  # erk, first conv dense
    assert m.masks["features.0.weight"].all()
    assert "classifier.4.weight" not in m.dense, "the classifier is not kept dense by configuration"
    total = sum(p.numel() for p in prunable_weights(model).values())
    assert sum(counts(m).values()) == round((1 - sparsity) * total), "total exact to one weight"
    assert abs(m.density() - (1 - sparsity)) < 0.01
    assert counts(m) == m.targets
    # the ERK law: every sparse, non-full layer's density is eps * sum(shape)/prod(shape)
    shapes = {n: tuple(p.shape) for n, p in prunable_weights(model).items()}
    ratios = [counts(m)[n] / math.prod(s) / (sum(s) / math.prod(s)) for n, s in shapes.items()
              if n not in m.dense and counts(m)[n] < math.prod(s)]
    assert ratios and max(ratios) / min(ratios) < 1.01


def test_erk_makes_full_layers_dense_and_redistributes():
    shapes = {"a": (4, 3, 3, 3), "b": (256, 128, 3, 3), "c": (10, 256)}
    c = erk_counts(shapes, 0.5)
    assert c["a"] == 108 and c["c"] == 2560, "small layers would exceed density 1: made dense"
    assert sum(c.values()) == round(0.5 * sum(math.prod(s) for s in shapes.values()))


def test_uniform_every_sparse_layer_to_one_weight():
    model = DigitNet()
    m = SparseMasks(model, 0.3, "uniform")
    for n, p in prunable_weights(model).items():
        want = p.numel() if n == "features.0.weight" else 0.7 * p.numel()
        assert abs(counts(m)[n] - want) <= 1


def test_bad_settings_name_the_key():
    with pytest.raises(ValueError, match="dense_layers.*'nope'"):
        SparseMasks(small_net(), 0.5, dense_layers=["nope"])
    with pytest.raises(ValueError, match="train.sparse.sparsity"):
        SparseMasks(small_net(), 1.2)
    with pytest.raises(ValueError, match="train.sparse.method"):
        make_updater("prune", SparseMasks(small_net(), 0.5), update_every=1, drop_fraction=0.3, end=1, total_steps=4)
    for bad, key in [("train.sparse.sparsity=1.2", "train.sparse.sparsity"),
                     ("train.sparse.method=magic", "train.sparse.method"),
                     ("train.sparse.grow=gradient", "train.sparse")]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_config("classification/digits/baseline", ["train.sparse.method=set", bad])


def test_every_shipped_recipe_accepts_train_sparse():
    from medrobust.config import packaged_configs

    names = packaged_configs()
    assert {n.split("/")[0] for n in names} >= {"cardiac", "classification", "driving", "microscopy"}
    for name in names:
        root = ["data.root=/somewhere"] if name.startswith(("classification/cifar10c/", "classification/pacs/")) else []
        cfg = load_config(name, [*root, "train.sparse={method: rigl, sparsity: 0.3}"])
        assert cfg.train.sparse.method == "rigl" and cfg.train.sparse.update_every == 100, name


def _train(model, masks, updater, opt, steps, data):
    x, y = data
    for s in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        updater.step(s, opt)
        for n, m in masks.masks.items():
            p = masks.params[n]
            assert int((p != 0).sum()) <= int(m.sum()) and bool((p[~m] == 0).all()), f"{n}: masked weight non-zero"
            assert int(m.sum()) == masks.targets[n]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("optim", ["sgd", "adamw"])
def test_masked_weights_stay_zero_and_counts_stay_exact(method, optim):
    model = small_net()
    masks = SparseMasks(model, 0.5, seed=1)
    upd = make_updater(method, masks, update_every=2, drop_fraction=0.3, end=0.8, total_steps=10)
    masks.apply_()
    opt = (torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if optim == "sgd"
           else torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.1))
    g = torch.Generator().manual_seed(0)
    data = torch.rand(8, 3, 10, 10, generator=g), torch.randint(0, 5, (8,), generator=g)
    _train(model, masks, upd, opt, 8, data)
    done = [r for r in upd.history if "moved" in r]
    assert [r["step"] for r in done] == [2, 4, 6, 8]
    assert sum(r["moved_total"] for r in done) > 0, "updates move connections"
    assert abs(masks.density() - 0.5) < 0.01 and masks.targets == upd.final


def test_granet_prunes_gradually_from_initial_density_on_the_cubic_schedule():
    model = small_net()
    masks = SparseMasks(model, 0.5)
    upd = make_updater("granet", masks, update_every=2, drop_fraction=0.3, end=1.0, total_steps=8)
    assert masks.density() > 0.75, "starts near initial_density 0.8"
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    masks.apply_()
    g = torch.Generator().manual_seed(0)
    data = torch.rand(8, 3, 10, 10, generator=g), torch.randint(0, 5, (8,), generator=g)
    dens = []
    for s in range(8):
        _train(model, masks, upd, opt, 0, data)
        opt.zero_grad()
        nn.functional.cross_entropy(model(data[0]), data[1]).backward()
        opt.step()
        upd.step(s, opt)
        if upd.is_update(s):
            dens.append(masks.density())
            assert counts(masks) == {n: upd.target(n, s) for n in masks.masks}
    assert dens == sorted(dens, reverse=True) and abs(dens[-1] - 0.5) < 0.01


def test_drop_fraction_zero_leaves_masks_unchanged():
    model = small_net()
    masks = SparseMasks(model, 0.5)
    before = {n: m.clone() for n, m in masks.masks.items()}
    for method in ("set", "rigl", "mest"):
        upd = make_updater(method, masks, update_every=1, drop_fraction=0.0, end=1.0, total_steps=3)
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        for s in range(3):
            upd.step(s, None)
        assert all(torch.equal(before[n], masks.masks[n]) for n in before), method


@pytest.mark.parametrize("method", ["rigl", "set"])
def test_rigl_regrows_exactly_the_largest_gradient_positions(method):
    lin = nn.Linear(10, 10, bias=False)
    model = nn.Sequential(nn.Conv2d(1, 1, 1), lin)
    masks = SparseMasks(model, 0.5, dense_first_layer=True, distribution="uniform", seed=3)
    old = masks.masks["1.weight"].clone().flatten()
    with torch.no_grad():
        w = torch.arange(1, 101, dtype=torch.float32)  # distinct magnitudes: the 15 smallest active go
        lin.weight.copy_(w.view(10, 10))
    masks.apply_()
    active = old.nonzero().flatten()
    dropped = active[torch.argsort(w[active])[:15]]
    grad = torch.zeros(100)
    inactive = (~old).nonzero().flatten()
    chosen = inactive[torch.randperm(len(inactive), generator=torch.Generator().manual_seed(0))[:15]]
    grad[chosen] = torch.linspace(5, 9, 15)
    grad[dropped] = 0.01  # smaller than the chosen ones
    lin.weight.grad = grad.view(10, 10).clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt.state[lin.weight]["momentum_buffer"] = torch.ones(10, 10)
    upd = make_updater(method, masks, update_every=1, drop_fraction=0.3, end=1.0, total_steps=1_000_000)
    upd.step(0, opt)
    new = masks.masks["1.weight"].flatten()
    kept = old.clone()
    kept[dropped] = False
    if method == "rigl":
        assert torch.equal(new & old, kept), "dropped exactly the 15 smallest-magnitude active weights"
    else:  # SET's random regrowth may pick a just-dropped position again (google-research/rigl does too)
        assert torch.equal(new & kept, kept) and int(new.sum()) == 50
    grown = (new & ~old).nonzero().flatten()
    if method == "rigl":
        assert sorted(grown.tolist()) == sorted(chosen.tolist())
    assert len(grown) == (15 if method == "rigl" else int((new & ~old).sum())) and bool((lin.weight.flatten()[grown] == 0).all()), "regrown weights start at 0"
    mom = opt.state[lin.weight]["momentum_buffer"].flatten()
    assert bool((mom[grown] == 0).all()) and bool((mom[new & old] == 1).all()), "optimiser state reset where grown"


def test_amp_non_finite_step_skips_the_update():
    masks = SparseMasks(small_net(), 0.5)
    before = {n: m.clone() for n, m in masks.masks.items()}
    upd = make_updater("set", masks, update_every=1, drop_fraction=0.3, end=1.0, total_steps=10)
    upd.step(0, None, finite=False)
    assert upd.history[-1]["skipped"] and all(torch.equal(before[n], masks.masks[n]) for n in before)


# ------------------------------------------------------------------------------------------ in the loop
def _fit(run_dir, sparse, **kw):
    from medrobust.config import SparseConfig
    from medrobust.train.loop import fit

    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.rand(32, 3, 10, 10, generator=g), torch.randint(0, 5, (32,), generator=g))

    def step_fn(model, batch, gen):
        x, y = batch
        return nn.functional.cross_entropy(model(x), y), {}

    return fit(model=small_net(), train_set=data, collate=None, step_fn=step_fn, validate_fn=None, run_dir=run_dir,
               steps=6, batch_size=8, lr=0.01, weight_decay=0.01, amp=False, ckpt_every=2, log_every=1, seed=0,
               device="cpu", progress=False, sparse=SparseConfig(**sparse), **kw)


def test_loop_resume_equals_uninterrupted_and_reports_density(tmp_path):
    import json

    sp = {"method": "rigl", "sparsity": 0.5, "update_every": 2, "end": 1.0}
    _fit(tmp_path / "straight", sp)
    _fit(tmp_path / "crashed", sp, stop_after=3)  # last.pt of step 2, killed after step 3
    _fit(tmp_path / "crashed", sp, resume=True)
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "crashed" / "last.pt", weights_only=True)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for k in a["sparse"]["masks"]["masks"]:
        assert torch.equal(a["sparse"]["masks"]["masks"][k], b["sparse"]["masks"]["masks"][k]), k
    assert a["sparse"]["history"] == b["sparse"]["history"] and len(a["sparse"]["history"]) == 3
    rep = json.loads((tmp_path / "straight" / "sparse.json").read_text())
    assert abs(rep["density"] - 0.5) < 0.01 and rep["layers"]["0.weight"]["density"] == 1.0
    assert [u["step"] for u in rep["updates"]] == [2, 4, 6] and [u["moved_total"] > 0 for u in rep["updates"]] == [
        True, True, False], "the drop fraction decays to 0 at end"
    w = a["model"]["7.weight"]
    assert int((w != 0).sum()) == rep["layers"]["7.weight"]["nonzero"] < w.numel(), "saved weights are sparse"
    md = (tmp_path / "straight" / "sparse.md").read_text()
    assert "| `0.weight` (dense) | 8x3x3x3 | 216 | 1.0000 |" in md and "| 2 | 0.2250 | 260 |" in md, md
    moved = [r for r in read_jsonl(tmp_path / "straight" / "metrics.jsonl") if "sparse_moved_total" in r]
    assert [r["step"] for r in moved] == [2, 4, 6]
    (tmp_path / "dense").mkdir()
    _fit(tmp_path / "dense", sp, stop_after=2)
    ck = torch.load(tmp_path / "dense" / "last.pt", weights_only=True)
    del ck["sparse"]
    torch.save(ck, tmp_path / "dense" / "last.pt")
    with pytest.raises(ValueError, match="no sparse masks but train.sparse"):
        _fit(tmp_path / "dense", sp, resume=True)


def test_resume_refuses_a_changed_train_sparse(tmp_path):
    from medrobust.train.loop import prepare_run_dir

    cfg = load_config("classification/digits/baseline", [f"output_dir={tmp_path}", "name=r",
                                                           "train.sparse={method: rigl, sparsity: 0.5}"])
    prepare_run_dir(cfg)
    (tmp_path / "r" / "last.pt").write_bytes(b"x")
    changed = load_config("classification/digits/baseline", [f"output_dir={tmp_path}", "name=r",
                                                               "train.sparse={method: set, sparsity: 0.5}"])
    with pytest.raises(ValueError, match=r"train\.sparse\.method"):
        prepare_run_dir(changed, resume=True)


@pytest.mark.slow
def test_ddp_two_gloo_processes_end_with_identical_masks(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "MEDROBUST_SPARSE_DUMP": str(tmp_path)}
    script = tmp_path / "ddp_sparse.py"
    script.write_text(_DDP_SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), str(script)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["history"] == r1["history"] and sum(u["moved_total"] for u in r0["history"]) > 0
    for k in r0["masks"]:
        assert torch.equal(r0["masks"][k], r1["masks"][k]), k
    for k in r0["model"]:
        assert torch.equal(r0["model"][k], r1["model"][k]), k


_DDP_SCRIPT = '''
import os, torch, torch.distributed as dist
from torch import nn
from medrobust.train.sparse import SparseMasks, make_updater
dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 16, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                      nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 5))
masks = SparseMasks(model, 0.5, seed=7)
# SET's random regrowth: rank 1 gets another seed, so only the broadcast from rank 0 keeps them equal
upd = make_updater("set", masks, update_every=2, drop_fraction=0.3, end=1.0, total_steps=8, seed=rank)
masks.apply_()
net = nn.parallel.DistributedDataParallel(model)
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
g = torch.Generator().manual_seed(rank)
for s in range(8):
    x, y = torch.rand(4, 3, 10, 10, generator=g), torch.randint(0, 5, (4,), generator=g)
    opt.zero_grad()
    nn.functional.cross_entropy(net(x), y).backward()
    opt.step()
    upd.step(s, opt)
torch.save({"masks": masks.state_dict()["masks"], "history": upd.history, "model": model.state_dict()},
           os.path.join(os.environ["MEDROBUST_SPARSE_DUMP"], f"rank{rank}.pt"))
dist.destroy_process_group()
'''


def _reference_select(score: torch.Tensor, count: int, largest: bool) -> torch.Tensor:
    """The ``count`` extreme entries by a stable full sort (ties: the lower index first)."""
    order = torch.sort(-score if largest else score, stable=True).indices[:count]
    out = torch.zeros(score.numel(), dtype=torch.bool)
    out[order] = True
    return out


@pytest.mark.parametrize("kind", ["distinct", "ties", "sentinels", "sorted"])
def test_fast_selection_equals_a_stable_full_sort(kind):
    # the sample-bracketed kthvalue selection of the updates (> 2^16 entries takes the bracket path,
    # a run of tied zeros the tie path, an ascending input defeats the strided sample)
    from medrobust.train.sparse import _kth, _select

    gen = torch.Generator().manual_seed(3)
    n = 100_003
    score = torch.rand(n, generator=gen)
    if kind == "ties":
        score[torch.rand(n, generator=gen) < 0.6] = 0.0  # zero gradients of dead units
    elif kind == "sentinels":
        score[torch.rand(n, generator=gen) < 0.5] = 1e30
    elif kind == "sorted":
        score = torch.sort(score).values
    for count in (1, n // 3, n - 5):
        for largest in (False, True):
            got = _select(score, count, largest)
            assert int(got.sum()) == count
            assert torch.equal(got, _reference_select(score, count, largest)), (count, largest)
        assert _kth(score, count) == torch.kthvalue(score, count).values


@pytest.mark.parametrize("method", METHODS)
def test_cardiac_sparse_recipes_are_the_baseline_plus_train_sparse(method):
    base = load_config("cardiac/baseline").model_dump()
    cfg = load_config(f"cardiac/sparse_{method}")
    assert cfg.train.sparse.method == method and cfg.train.sparse.sparsity == 0.3
    rec = cfg.model_dump()
    rec["train"].pop("sparse"), base["train"].pop("sparse")
    rec.pop("name"), base.pop("name")
    assert rec == base  # the dense twin is cardiac/baseline: same data, model, steps, optimiser
