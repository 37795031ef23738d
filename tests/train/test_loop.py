"""The shared loop: exact resume, data order, DDP with 2 CPU processes."""

import os
import subprocess
import sys

import pytest
import torch

from medrobust.tasks.cardiac import train_cardiac
from medrobust.tasks import load_config
from medrobust.io import read_jsonl
from medrobust.train.loop import StepBatchSampler

TINY = [
    "data.synthetic.n_train=4", "data.synthetic.n_test=1", "data.synthetic.size=[48, 48]", "data.synthetic.n_slices=2",
    "data.spatial_size=[32, 32]", "model.channels=[4, 8, 16]", "model.strides=[2, 2]", "train.batch_size=4",
    "train.val_every=3", "train.ckpt_every=1", "train.log_every=1", "evaluate.batch_size=8",
]


def tiny_cfg(tmp_path, name, *extra):
    return load_config(None, [f"output_dir={tmp_path}", f"name={name}", *TINY, *extra])


def test_step_sampler_order_is_a_function_of_seed_and_step():
    full = list(StepBatchSampler(10, 4, 8, seed=3))
    resumed = list(StepBatchSampler(10, 4, 8, seed=3, start_step=5))
    assert full[5:] == resumed
    flat = [i for b in full[:5] for i, _ in b][:10]
    assert sorted(flat) == list(range(10)), "each epoch is a permutation"
    shards = [list(StepBatchSampler(10, 4, 8, seed=3, rank=r, world_size=2)) for r in (0, 1)]
    for step in range(8):
        assert sorted(shards[0][step] + shards[1][step]) == sorted(full[step])
    assert list(StepBatchSampler(10, 4, 8, seed=4))[0] != full[0]
    with pytest.raises(ValueError, match="divisible"):
        StepBatchSampler(10, 3, 8, world_size=2)


def test_resume_continues_exactly(tmp_path):
    # dropout draws from the global torch RNG inside forward: resume must restore it at the right point.
    # A crash between checkpoints (killed after step 3, last.pt of step 2, like kill -9): the log lines
    # after the checkpoint are dropped and redone, and ``time`` continues from the checkpoint's
    aug = ["augment.0={name: randconv, mixing: true}", "consistency.views=2", "train.steps=6", "model.dropout=0.2",
           "train.ckpt_every=2"]
    straight = train_cardiac(tiny_cfg(tmp_path, "straight", *aug), progress=False)
    crashed = tiny_cfg(tmp_path, "crashed", *aug)
    first = train_cardiac(crashed, progress=False, stop_after=3)
    assert first.step == 3 and torch.load(tmp_path / "crashed" / "last.pt", weights_only=True)["step"] == 2
    before = {r["step"]: r["time"] for r in read_jsonl(tmp_path / "crashed" / "metrics.jsonl") if "time" in r}
    resumed = train_cardiac(crashed, resume=True, progress=False)
    assert resumed.step == 6
    times = [r["time"] for r in read_jsonl(tmp_path / "crashed" / "metrics.jsonl") if "time" in r]
    assert len(times) == 6 and times[:2] == [before[1], before[2]], "lines up to the checkpoint are kept"
    assert all(b > a for a, b in zip(times, times[1:])), f"time must continue across the resume: {times}"
    assert times[2] > before[2] and torch.load(tmp_path / "crashed" / "last.pt", weights_only=True)["time"] >= times[-1]
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "crashed" / "last.pt", weights_only=True)
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0, msg=f"weights differ at {k}")
    assert a["optimizer"]["state"][0]["step"] == b["optimizer"]["state"][0]["step"]
    la = [r["loss"] for r in read_jsonl(tmp_path / "straight" / "metrics.jsonl") if "loss" in r]
    lb = [r["loss"] for r in read_jsonl(tmp_path / "crashed" / "metrics.jsonl") if "loss" in r]
    assert la == lb and len(la) == 6
    assert (tmp_path / "crashed" / "best.pt").is_file() and (tmp_path / "crashed" / "config.yaml").is_file()


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="last.pt"):
        train_cardiac(tiny_cfg(tmp_path, "none", "train.steps=2"), resume=True, progress=False)


def test_more_processes_than_gpus_is_a_clear_error(monkeypatch):
    from medrobust.train.loop import DistEnv, resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    env = DistEnv(rank=1, local_rank=1, world_size=2)
    with pytest.raises(ValueError, match="one process per GPU"):
        resolve_device("auto", env)
    assert resolve_device("cpu", env).type == "cpu"


def test_ddp_two_cpu_processes(tmp_path):
    """torchrun with 2 processes (gloo): trains, rank 0 writes the checkpoint and metrics."""
    import socket

    with socket.socket() as s:  # a free loopback port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port),
           "-m", "medrobust.cli", "train", "--no-progress",
           *[a for s in [f"output_dir={tmp_path}", "name=ddp", *TINY, "train.steps=3", "train.device=cpu"]
             for a in ("--set", s)]]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ckpt = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)
    assert ckpt["step"] == 3
    recs = read_jsonl(tmp_path / "ddp" / "metrics.jsonl")
    assert [r["step"] for r in recs if "loss" in r] == [1, 2, 3], "exactly one process logs"


def test_sgd_with_step_decay_trains_and_resumes_exactly(tmp_path):
    """train.optimizer sgd (momentum) with schedule step: the logged lr halves every step_size steps,
    the optimiser holds momentum buffers, and a resume continues bit for bit."""
    from medrobust.config import ConfigError
    from medrobust.train.loop import _lr_lambda

    f = _lr_lambda(100, 2, "step", step_size=3, gamma=0.5)
    assert [f(s) for s in range(9)] == [0.5, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]
    sgd = ["train.optimizer=sgd", "train.momentum=0.9", "train.lr=0.01", "train.schedule=step", "train.step_size=2",
           "train.gamma=0.5", "train.steps=5", "train.ckpt_every=2"]
    straight = train_cardiac(tiny_cfg(tmp_path, "straight", *sgd), progress=False)
    lrs = [r["lr"] for r in read_jsonl(tmp_path / "straight" / "metrics.jsonl") if "lr" in r]
    assert lrs == pytest.approx([0.01, 0.005, 0.005, 0.0025, 0.0025])  # the lr of each step's update, after it
    ckpt = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    assert "momentum_buffer" in ckpt["optimizer"]["state"][0] and ckpt["optimizer"]["param_groups"][0]["momentum"] == 0.9
    crashed = tiny_cfg(tmp_path, "crashed", *sgd)
    train_cardiac(crashed, progress=False, stop_after=3)
    resumed = train_cardiac(crashed, resume=True, progress=False)
    assert straight.step == resumed.step == 5
    b = torch.load(tmp_path / "crashed" / "last.pt", weights_only=True)
    for k in ckpt["model"]:
        torch.testing.assert_close(ckpt["model"][k], b["model"][k], rtol=0, atol=0, msg=f"weights differ at {k}")
    with pytest.raises(ConfigError, match="step_size"):
        tiny_cfg(tmp_path, "bad", "train.schedule=step")
    with pytest.raises(ConfigError, match="step_size"):
        tiny_cfg(tmp_path, "bad", "train.step_size=3")
    with pytest.raises(ConfigError, match="optimizer"):
        tiny_cfg(tmp_path, "bad", "train.optimizer=adam")
