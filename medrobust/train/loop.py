"""One explicit training loop shared by every task.

The loop is step-based. Everything random is a function of the config seed and the step:

* the data order comes from :class:`StepBatchSampler` (a seeded permutation per epoch, sharded by DDP
  rank), and each sample carries its own seed for the CPU-side random transforms
  (:class:`SeededDataset`), so worker count and resume points do not change the data;
* GPU-side augmentation draws from a ``torch.Generator`` whose state is checkpointed;
* ``last.pt`` holds model, optimiser, scheduler, AMP scaler, step, best metric, elapsed time and every
  RNG state, written atomically; ``--resume`` continues exactly where it stopped.

Run directories (:func:`prepare_run_dir`, called by every task's trainer): a folder that holds a
checkpoint is never replaced without ``overwrite`` (``--overwrite``), and ``resume`` (``--resume``)
refuses a config that differs from the saved ``config.yaml`` except in :data:`RESUME_SAFE_KEYS`.

Multi-GPU/multi-node: launched with ``torchrun``, the loop initialises the process group (NCCL on
CUDA, gloo on CPU), wraps the model in DDP and shards each global batch across ranks; rank 0 writes
metrics and checkpoints.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..config import ConfigError, read_yaml, save_config, validate
from ..io import append_jsonl, atomic_torch_save, read_jsonl
from .seeding import mix_seed

__all__ = [
    "fit_config",
    "run_paths",
    "prepare_run_dir",
    "config_changes",
    "RESUME_SAFE_KEYS",
    "CHECKPOINT_FILES",
    "StepBatchSampler",
    "SeededDataset",
    "DistEnv",
    "dist_env",
    "resolve_device",
    "fit",
    "FitResult",
    "set_seed",
]


# ------------------------------------------------------------------------------------------ data order
_mix = mix_seed


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields batches of ``(index, sample_seed)`` for steps ``start_step .. total_steps - 1``.

    The global batch of step ``s`` is a fixed function of ``(seed, s)``: a per-epoch permutation of
    the dataset, cut into consecutive batches (the last partial batch of an epoch wraps into the next
    permutation). With ``world_size > 1`` each rank takes every ``world_size``-th element.
    """

    def __init__(self, n_items: int, batch_size: int, total_steps: int, *, seed: int = 0,
                 start_step: int = 0, rank: int = 0, world_size: int = 1) -> None:
        if n_items <= 0:
            raise ValueError("training set is empty")
        if batch_size % world_size:
            raise ValueError(f"train.batch_size {batch_size} must be divisible by the number of processes {world_size}")
        self.n, self.batch_size, self.total_steps = n_items, batch_size, total_steps
        self.seed, self.start_step, self.rank, self.world_size = seed, start_step, rank, world_size

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step)

    def _perm(self, epoch: int) -> torch.Tensor:
        return torch.randperm(self.n, generator=torch.Generator().manual_seed(_mix(self.seed, epoch)))

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        pos = self.start_step * self.batch_size
        epoch, offset = divmod(pos, self.n)
        perm = self._perm(epoch)
        for step in range(self.start_step, self.total_steps):
            batch: list[int] = []
            while len(batch) < self.batch_size:
                take = min(self.batch_size - len(batch), self.n - offset)
                batch.extend(perm[offset : offset + take].tolist())
                offset += take
                if offset == self.n:
                    epoch, offset = epoch + 1, 0
                    perm = self._perm(epoch)
            items = [(idx, _mix(self.seed, step, j)) for j, idx in enumerate(batch)]
            yield items[self.rank :: self.world_size]


class SeededDataset(Dataset):
    """Wrap a dataset so ``ds[(index, seed)]`` runs its random transforms with that seed.

    The wrapped dataset's ``transform`` (a MONAI ``Randomizable``/``Compose`` or any callable with
    ``set_random_state``) is re-seeded per item; Python, NumPy and torch RNGs are seeded too, so a
    transform based on any of them is reproducible in any worker.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int] | int) -> Any:
        if isinstance(item, tuple):
            index, seed = item
            seed32 = seed % (2**32)
            # seed the global RNGs for this item only, then restore them (the main process's RNG
            # stream must not depend on the number of DataLoader workers)
            py_state, np_state = random.getstate(), np.random.get_state()
            with torch.random.fork_rng(devices=[]):
                random.seed(seed32)
                np.random.seed(seed32)
                torch.manual_seed(seed32)
                transform = getattr(self.dataset, "transform", None)
                if transform is not None and hasattr(transform, "set_random_state"):
                    transform.set_random_state(seed=seed32)
                try:
                    return self.dataset[index]
                finally:
                    random.setstate(py_state)
                    np.random.set_state(np_state)
        return self.dataset[item]


# ---------------------------------------------------------------------------------------- environment
@dataclass
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def dist_env() -> DistEnv:
    """Read the torchrun environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``)."""
    return DistEnv(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0)))


def resolve_device(name: str | torch.device, env: DistEnv | None = None, *, what: str = "train.device") -> torch.device:
    """``auto`` -> ``cuda`` when available else ``cpu``; ``cuda`` -> this rank's GPU under torchrun.
    A name torch does not know, or a GPU that is not there, is a ``ValueError`` naming ``what``."""
    env = env or dist_env()
    name = str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and env.distributed:
        name = f"cuda:{env.local_rank}"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"{what}: expected auto, cpu, cuda or cuda:N, got {name!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{what}: {name} requested but CUDA is not available")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(
            f"{what}: {name} does not exist ({torch.cuda.device_count()} CUDA device(s)); with torchrun, "
            "start at most one process per GPU (--nproc_per_node), or set train.device=cpu for gloo"
        )
    return dev


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _init_distributed(env: DistEnv, device: torch.device) -> None:
    import torch.distributed as dist

    if env.distributed and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(device)


# --------------------------------------------------------------------------------------------- fitting
@dataclass
class FitResult:
    run_dir: Path
    step: int
    best_metric: float
    best_step: int
    history: list[dict[str, Any]] = field(default_factory=list)


def _lr_lambda(total: int, warmup: int, schedule: str, step_size: int | None = None,
               gamma: float = 0.5) -> Callable[[int], float]:
    """The learning-rate factor of optimiser step ``step``: linear warm-up, then cosine to 0 at
    ``total``, constant, or ``step`` (``gamma ** ((step - warmup) // step_size)``)."""
    if schedule == "step" and not step_size:
        raise ValueError("step_size: schedule step needs a positive step_size")

    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        if schedule == "step":
            return float(gamma) ** ((step - warmup) // int(step_size))  # type: ignore[arg-type]
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return f


def _rng_state(aug_gen: torch.Generator) -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": np.random.get_state()[1].tolist(),
        "numpy_pos": int(np.random.get_state()[2]),
        "python": repr(random.getstate()),
        "augment": aug_gen.get_state(),
    }


def _set_rng_state(state: dict[str, Any], aug_gen: torch.Generator) -> None:
    import ast

    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(("MT19937", np.array(state["numpy"], dtype=np.uint32), state["numpy_pos"], 0, 0.0))
    random.setstate(ast.literal_eval(state["python"]))
    aug_gen.set_state(state["augment"])


def fit(
    *,
    model: torch.nn.Module,
    train_set: Dataset,
    collate: Callable[[list[Any]], Any] | None,
    step_fn: Callable[[torch.nn.Module, Any, torch.Generator], tuple[torch.Tensor, dict[str, float]]],
    validate_fn: Callable[[torch.nn.Module], dict[str, float]] | None,
    run_dir: str | Path,
    steps: int,
    batch_size: int,
    lr: float,
    weight_decay: float = 0.0,
    schedule: str = "cosine",
    warmup_steps: int = 0,
    optimizer: str = "adamw",
    momentum: float = 0.9,
    step_size: int | None = None,
    gamma: float = 0.5,
    amp: bool = True,
    grad_clip: float | None = None,
    val_every: int = 100,
    ckpt_every: int = 100,
    log_every: int = 10,
    seed: int = 0,
    device: torch.device | str = "cpu",
    num_workers: int = 0,
    resume: bool = False,
    metric_name: str = "val_dice",
    progress: bool = True,
    stop_after: int | None = None,
    sparse: Any = None,
) -> FitResult:
    """Train ``model`` for ``steps`` optimiser steps.

    Args:
        step_fn: ``(model, batch_on_device, aug_generator) -> (loss, logs)`` — the task adapter's
            forward + loss (augmentation happens inside it, on the device).
        validate_fn: ``model -> metrics`` on rank 0 (``metrics[metric_name]`` picks ``best.pt``).
        resume: continue from ``run_dir/last.pt`` (``FileNotFoundError`` if missing, ``ValueError``
            naming the file if it is unreadable, not a training checkpoint, or of another model).
        stop_after: stop after this many steps of *this call* (simulates a crash in tests).
        optimizer: ``adamw`` (decoupled ``weight_decay``) or ``sgd`` (``momentum``, L2 ``weight_decay``).
        schedule: ``cosine`` (to 0 at ``steps``), ``constant``, or ``step`` (the learning rate times
            ``gamma`` every ``step_size`` steps); after ``warmup_steps`` of linear warm-up.
        sparse: a ``train.sparse`` section (:class:`medrobust.config.SparseConfig`) for dynamic
            sparse training: masks and their history go into ``last.pt``, ``run_dir/sparse.{json,md}``
            get per-layer densities and the connections each update moved.
    Returns:
        :class:`FitResult`. Files: ``run_dir/{last,best}.pt``, ``run_dir/metrics.jsonl``.
    """
    from tqdm.auto import tqdm

    env = dist_env()
    device = torch.device(device)
    _init_distributed(env, device)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path, metrics_path = run_dir / "last.pt", run_dir / "best.pt", run_dir / "metrics.jsonl"

    set_seed(seed)
    model.to(device)
    opt: torch.optim.Optimizer
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    elif optimizer == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer: expected adamw or sgd, got {optimizer!r}")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(steps, warmup_steps, schedule, step_size, gamma))
    use_amp = bool(amp) and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    aug_gen = torch.Generator(device="cpu").manual_seed(_mix(seed, env.rank, 17))
    start, best, best_step = 0, -math.inf, -1
    sparse_updater = _sparse_updater(sparse, model, steps, seed)

    elapsed = 0.0  # seconds of training before this call (``time`` in metrics.jsonl continues across a resume)
    if resume:
        ckpt = _read_checkpoint(last_path)
        _load_checkpoint(last_path, ckpt, model, opt, sched, scaler)
        start, best, best_step = int(ckpt["step"]), float(ckpt["best_metric"]), int(ckpt["best_step"])
        if sparse_updater is not None:
            if not isinstance(ckpt.get("sparse"), dict):
                raise ValueError(f"--resume: {last_path} has no sparse masks but train.sparse is set; pass --overwrite "
                                 "to start the run over")
            sparse_updater.load_state_dict(ckpt["sparse"])
        kept = [r for r in read_jsonl(metrics_path) if r.get("step", 0) <= start] if metrics_path.is_file() else []
        # checkpoints of earlier releases have no "time": continue from the last one logged
        elapsed = float(ckpt.get("time", max((float(r.get("time", 0.0)) for r in kept), default=0.0)))
        if env.is_main and metrics_path.is_file():  # drop log lines written after the checkpoint
            import json

            from ..io import atomic_write_text

            atomic_write_text(metrics_path, "".join(json.dumps(r) + "\n" for r in kept))
    elif env.is_main and metrics_path.exists():
        metrics_path.unlink()

    net: torch.nn.Module = model
    if env.distributed:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    sampler = StepBatchSampler(len(train_set), batch_size, steps, seed=seed, start_step=start,  # type: ignore[arg-type]
                               rank=env.rank, world_size=env.world_size)
    loader = DataLoader(SeededDataset(train_set), batch_sampler=sampler, num_workers=num_workers,
                        collate_fn=collate, pin_memory=device.type == "cuda", persistent_workers=False)

    def save(path: Path, step: int) -> None:
        atomic_torch_save({
            "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "scaler": scaler.state_dict(), "step": step, "best_metric": best, "best_step": best_step,
            "time": round(elapsed + time.perf_counter() - t0, 3), "rng": _rng_state(aug_gen),
            **({"sparse": sparse_updater.state_dict()} if sparse_updater is not None else {}),
        }, path)
        if sparse_updater is not None and path == last_path:
            import json

            from ..io import atomic_write_text

            atomic_write_text(run_dir / "sparse.json", json.dumps(sparse_updater.summary(), indent=1) + "\n")
            atomic_write_text(run_dir / "sparse.md", sparse_updater.markdown())

    history: list[dict[str, Any]] = []
    bar = tqdm(total=steps, initial=start, desc=f"train {run_dir.name}", disable=not (progress and env.is_main),
               dynamic_ncols=True, leave=False)
    step = start
    t0 = time.perf_counter()
    done_here = 0
    # the DataLoader draws its base seed from the global torch RNG when its iterator is created
    # (before step 1 in a fresh run): restore the saved RNG states only after that draw, so models
    # that use the global RNG in forward (dropout) see the same stream as an uninterrupted run
    batches = iter(loader)
    if resume:
        _set_rng_state(ckpt["rng"], aug_gen)
    for batch in batches:
        net.train()
        batch = _to_device(batch, device)
        with torch.autocast(device_type=device.type, enabled=use_amp):
            loss, logs = step_fn(net, batch, aug_gen)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"step {step}: loss is {loss_value}; lower train.lr or check the inputs")
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if grad_clip:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scale_before = scaler.get_scale() if sparse_updater is not None and use_amp else None
        scaler.step(opt)
        scaler.update()
        if sparse_updater is not None:  # zero masked weights; drop/grow on update steps (not after a skipped AMP step)
            finite = scale_before is None or scaler.get_scale() >= scale_before
            sparse_rec = sparse_updater.step(step, opt, finite=finite)
            if sparse_rec is not None and env.is_main:
                append_jsonl(metrics_path, {"step": step + 1, **{f"sparse_{k}": v for k, v in sparse_rec.items()
                                                                  if k in ("moved_total", "density", "fraction", "skipped")}})
        sched.step()
        step += 1
        done_here += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.4f}")
        if env.is_main and (step % log_every == 0 or step == steps):
            rec = {"step": step, "loss": loss_value, "lr": sched.get_last_lr()[0],
                   "time": round(elapsed + time.perf_counter() - t0, 3), **{k: float(v) for k, v in logs.items()}}
            append_jsonl(metrics_path, rec)
            history.append(rec)
        if validate_fn is not None and (step % val_every == 0 or step == steps):
            if env.is_main:
                net.eval()
                with torch.no_grad():
                    metrics = validate_fn(model)
                value = float(metrics[metric_name])
                rec = {"step": step, **{k: float(v) for k, v in metrics.items()}}
                if value > best:
                    best, best_step = value, step
                    rec["best"] = True
                append_jsonl(metrics_path, rec)
                history.append(rec)
                if rec.get("best"):
                    save(best_path, step)
            _barrier(env)
        if env.is_main and (step % ckpt_every == 0 or step == steps):
            save(last_path, step)
        if stop_after is not None and done_here >= stop_after:
            break
    bar.close()
    if env.is_main and validate_fn is None and step == steps:
        save(best_path, step)
    _barrier(env)
    return FitResult(run_dir, step, best, best_step, history)


def _sparse_updater(sparse: Any, model: torch.nn.Module, steps: int, seed: int) -> Any:
    """Masks (zeroed into ``model``) and the updater of a ``train.sparse`` section; ``None`` without one."""
    if sparse is None:
        return None
    from .sparse import SparseMasks, make_updater

    masks = SparseMasks(model, sparse.sparsity, sparse.distribution, sparse.dense_first_layer,
                        dense_layers=sparse.dense_layers, seed=seed)
    updater = make_updater(sparse.method, masks, update_every=sparse.update_every, drop_fraction=sparse.drop_fraction,
                           end=sparse.end, total_steps=steps, grow=sparse.grow, grad_weight=sparse.grad_weight,
                           initial_density=sparse.initial_density)
    masks.apply_()
    return updater


def _barrier(env: DistEnv) -> None:
    if env.distributed:
        import torch.distributed as dist

        dist.barrier()


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def fit_config(cfg: Any, *, model: torch.nn.Module, train_set: Any, collate: Any, step_fn: Any, validate_fn: Any,
               device: torch.device | str, metric_name: str, resume: bool = False, progress: bool = True,
               stop_after: int | None = None) -> FitResult:
    """:func:`fit` with the hyperparameters of an experiment config.

    ``cfg`` is any task config with ``train`` (``steps``, ``batch_size``, ``lr``, ``weight_decay``,
    ``optimizer``, ``momentum``, ``schedule``, ``step_size``, ``gamma``, ``warmup_steps``, ``amp``, ``grad_clip``, ``val_every``, ``ckpt_every``,
    ``log_every``), ``data.num_workers``, ``seed`` and ``run_dir``; the task adapter supplies the
    model, data, step and validation functions.

    Shared by every task: ``train.init_from`` / ``train.freeze`` (:mod:`.finetune`; a resume continues
    its own ``last.pt``) and an ``objective:`` section (:mod:`.objectives`, around the adapter's step).
    """
    t = cfg.train
    from .finetune import prepare_finetune
    from .objectives import objective_step

    prepare_finetune(cfg, model, resume=resume, is_main=dist_env().is_main)
    step_fn = objective_step(cfg, step_fn, model)
    return fit(
        model=model, train_set=train_set, collate=collate, step_fn=step_fn, validate_fn=validate_fn,
        run_dir=cfg.run_dir, steps=t.steps, batch_size=t.batch_size, lr=t.lr, weight_decay=t.weight_decay,
        schedule=t.schedule, warmup_steps=t.warmup_steps, optimizer=t.optimizer, momentum=t.momentum,
        step_size=t.step_size, gamma=t.gamma, amp=t.amp, grad_clip=t.grad_clip, val_every=t.val_every,
        ckpt_every=t.ckpt_every, log_every=t.log_every, seed=cfg.seed, device=device,
        num_workers=cfg.data.num_workers, resume=resume, metric_name=metric_name, progress=progress,
        stop_after=stop_after, sparse=getattr(t, "sparse", None),
    )


def run_paths(run_dir: str | Path, checkpoint: str = "best.pt") -> tuple[Path, Path]:
    """``run_dir/config.yaml`` and ``run_dir/<checkpoint>`` of a training run, each checked to exist
    (``FileNotFoundError`` naming the run directory and what is missing)."""
    run_dir = Path(run_dir)
    cfg_path, ckpt_path = run_dir / "config.yaml", run_dir / checkpoint
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{run_dir}: no config.yaml (is this a run directory from `medrobust train`?)")
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"{run_dir}: no {checkpoint}; train first or pass another checkpoint")
    return cfg_path, ckpt_path


# ------------------------------------------------------------------------------------- run directories
#: files of a run folder that make it a trained run: never replaced without ``overwrite``
CHECKPOINT_FILES = ("last.pt", "best.pt", "model.pt")
#: what a run writes into its folder (``overwrite`` removes these, and nothing else)
_RUN_FILES = (*CHECKPOINT_FILES, "metrics.jsonl", "config.yaml", "sparse.json", "sparse.md", "init_from.json")

#: The config keys (dotted paths) a ``--resume`` may change, and why each cannot change the weights.
#: Any other difference from the run's ``config.yaml`` is refused, and the saved config is rewritten
#: only when every difference is one of these, so ``config.yaml`` always describes the weights.
RESUME_SAFE_KEYS: dict[str, str] = {
    "name": "where the run lives (a moved or copied run folder)",
    "output_dir": "where the run lives (a moved run folder; the embedded data is rewritten identically)",
    "train.device": "which device runs the steps",
    "train.log_every": "how often metrics.jsonl gets a line",
    "train.ckpt_every": "how often last.pt is written",
    "data.num_workers": "how many processes load the data (the data of a step is a function of seed and step)",
    "train.steps": "only to a larger value, and only with train.schedule: constant or step (a cosine schedule's "
                   "learning rate at every step already taken depends on train.steps)",
}


def _flat_diff(old: Any, new: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """``(dotted path, old, new)`` of every leaf where two dumped configs differ (lists by index when
    their lengths agree, e.g. ``augment.0.mixing``; missing keys read as ``<missing>``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[tuple[str, Any, Any]] = []
        for k in list(old) + [k for k in new if k not in old]:
            out += _flat_diff(old.get(k, _MISSING), new.get(k, _MISSING), f"{path}.{k}" if path else str(k))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in _flat_diff(a, b, f"{path}.{i}")]
    return [] if old == new else [(path or "<root>", old, new)]


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def _saved_config(cfg: Any, path: Path) -> dict[str, Any]:
    """The run's saved config as ``cfg``'s model dumps it (defaults of newer releases filled in, legacy
    task names read as today's); the raw YAML when it no longer validates (its diff names the keys)."""
    raw = read_yaml(path)
    try:
        return validate(raw, source=str(path), model=type(cfg)).model_dump(mode="json")
    except ConfigError:
        return raw


def config_changes(cfg: Any, run_dir: str | Path | None = None) -> list[tuple[str, Any, Any]] | None:
    """``(dotted key, saved value, new value)`` for every key where ``cfg`` differs from the
    ``config.yaml`` saved in ``run_dir`` (default ``cfg.run_dir``); ``None`` when there is none."""
    path = Path(run_dir if run_dir is not None else cfg.run_dir) / "config.yaml"
    if not path.is_file():
        return None
    return _flat_diff(_saved_config(cfg, path), cfg.model_dump(mode="json"))


def _short(value: Any, width: int = 40) -> str:
    import json

    text = repr(value) if value is _MISSING else json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def _resume_refusal(key: str, old: Any, new: Any, cfg: Any) -> str | None:
    """Why changing ``key`` on resume is refused (``None``: allowed)."""
    if key == "train.steps":
        if not (isinstance(old, int) and isinstance(new, int) and new > old):
            return "may only grow"
        if cfg.train.schedule not in ("constant", "step"):
            return f"train.schedule is {cfg.train.schedule}: the learning rate of the steps taken depends on train.steps"
        return None
    return None if key in RESUME_SAFE_KEYS else ""


def prepare_run_dir(cfg: Any, *, resume: bool = False, overwrite: bool = False, outputs: tuple[str, ...] = (),
                    env: DistEnv | None = None) -> Path:
    """Check and set up ``cfg.run_dir`` before training; every task's trainer calls this first.

    * fresh run (``resume=False``): a folder holding a checkpoint (:data:`CHECKPOINT_FILES`) is
      refused (``FileExistsError``) unless ``overwrite``; with ``overwrite`` the files the run writes
      (checkpoints, ``metrics.jsonl``, ``config.yaml``, the task's ``outputs`` and their temporary
      files) are removed first, nothing else.
    * ``resume=True``: ``last.pt`` must exist (``FileNotFoundError``) and ``cfg`` must equal the saved
      ``config.yaml`` except in :data:`RESUME_SAFE_KEYS` (``ValueError`` naming the dotted keys); the
      saved config is rewritten only when safe keys changed.

    Rank 0 writes ``config.yaml``; every rank runs the checks. Returns the run directory.
    """
    env = env or dist_env()
    run_dir = Path(cfg.run_dir)
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other: --resume continues the run, --overwrite "
                         "starts it over")
    cfg_path = run_dir / "config.yaml"
    if resume:
        last = run_dir / "last.pt"
        if not last.is_file():
            where = "" if run_dir.is_dir() else f" ({run_dir} does not exist)"
            raise FileNotFoundError(f"--resume: no checkpoint {last} to continue{where}; train without --resume to "
                                    "start the run")
        if not cfg_path.is_file():
            raise FileNotFoundError(f"--resume: {cfg_path} is missing, so the config of {last} is unknown; "
                                    "pass --overwrite to start the run over")
        changes = config_changes(cfg, run_dir) or []
        refused = [(k, a, b, why) for k, a, b in changes if (why := _resume_refusal(k, a, b, cfg)) is not None]
        if refused:
            listed = "; ".join(f"{k} {_short(a)} -> {_short(b)}" + (f" ({why})" if why else "") for k, a, b, why in refused)
            raise ValueError(f"--resume: the config differs from {cfg_path} in {listed}; a resume may change only "
                             f"{', '.join(RESUME_SAFE_KEYS)} (see RESUME_SAFE_KEYS): resume with the saved config, "
                             "or pass --overwrite to start the run over")
        if changes and env.is_main:
            save_config(cfg, cfg_path)
        return run_dir
    found = [n for n in CHECKPOINT_FILES if (run_dir / n).is_file()]
    if found and not overwrite:
        raise FileExistsError(f"{run_dir}: holds a trained run ({', '.join(found)}); pass --resume to continue it "
                              "or --overwrite to replace it")
    if env.is_main:
        if overwrite and run_dir.is_dir():
            for name in (*_RUN_FILES, *outputs):
                (run_dir / name).unlink(missing_ok=True)
                for tmp in run_dir.glob(f".{name}.*.tmp*"):  # left by a write that was killed (io.atomic_path)
                    if tmp.is_file():
                        tmp.unlink(missing_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, cfg_path)
    return run_dir


# ------------------------------------------------------------------------------------------ checkpoints
#: what ``last.pt`` holds (written by :func:`fit`)
_CKPT_KEYS = ("model", "optimizer", "scheduler", "scaler", "step", "best_metric", "best_step", "rng")


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """``last.pt`` as a dict, or a one-line error naming the file and what was expected."""
    import warnings

    if not path.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint {path} to continue; train without --resume to start the run")
    expected = "expected the last.pt that `medrobust train` writes; pass --overwrite to start the run over"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 -- truncated zip, garbage bytes, a pickle the weights-only loader refuses
        raise ValueError(f"--resume: {path} is not a readable checkpoint (truncated or corrupt: "
                         f"{type(err).__name__}); {expected}") from None
    if not isinstance(ckpt, dict):
        raise ValueError(f"--resume: {path} holds a {type(ckpt).__name__}, not a training checkpoint; {expected}")
    missing = [k for k in _CKPT_KEYS if k not in ckpt]
    if missing or not isinstance(ckpt["model"], dict):
        raise ValueError(f"--resume: {path} is not a training checkpoint (no {', '.join(missing) or 'model weights'}; "
                         f"it has {', '.join(map(str, list(ckpt)[:6]))}); {expected}")
    return ckpt


def _load_checkpoint(path: Path, ckpt: dict[str, Any], model: torch.nn.Module, opt: Any, sched: Any, scaler: Any) -> None:
    """Load model, optimiser, scheduler and scaler states; a checkpoint of another model (another task
    or model config) is one line with counts and one example key, not the full key listing."""
    own, saved = model.state_dict(), ckpt["model"]
    missing = [k for k in own if k not in saved]
    unexpected = [k for k in saved if k not in own]
    shaped = [k for k in own if k in saved and tuple(getattr(saved[k], "shape", ())) != tuple(own[k].shape)]
    if missing or unexpected or shaped:
        example = (missing or unexpected or shaped)[0]
        raise ValueError(f"--resume: {path} is a checkpoint of another model ({len(missing)} weights missing, "
                         f"{len(unexpected)} unexpected, {len(shaped)} of another shape, e.g. {example!r}); expected "
                         "the last.pt of this run's task and model config")
    try:
        model.load_state_dict(saved)
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
    except (RuntimeError, ValueError, KeyError, TypeError) as err:
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise ValueError(f"--resume: {path} does not fit this model and optimiser ({first}); expected the last.pt "
                         "of this run's task and model config") from None
