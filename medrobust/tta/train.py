"""Task-agnostic pieces of DynTTA training: the training-time shifts, freezing the model the enhancer
serves, the enhanced model, and loading a trained enhancer from its run folder.

* non-blind (:class:`RandomCorruption`): each training image is corrupted with probability ``p``
  (paper: 15/16) by one of the corruptions (the 15 ImageNet-C ones of
  :mod:`medrobust.augment.corruptions.natural`, or any MRI core), drawn uniformly, at a severity
  drawn uniformly from ``severities``; one batched call per corruption present, never per sample;
* blind: AugMix images (:class:`medrobust.augment.AugMix`, no JSD), built by the task from the config.

The task (``medrobust.tasks.tta``) passes the enhancer to the shared loop as *the* model, so only its
parameters get an optimiser, and calls the frozen model inside the step (:class:`Enhanced`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..augment.base import check_input, rand, randint
from .dyntta import DynTTA

__all__ = ["Enhanced", "RandomCorruption", "enhancer_from_section", "freeze", "load_enhancer"]


class RandomCorruption:
    """Corrupt each image with probability ``p`` by one of ``names`` at a random severity.

    Args:
        corrupt_fn: ``(x, name, severity (N,) long, generator) -> x'`` (e.g. natural ``corrupt`` with
            its table bound).
        names: the corruptions drawn from (uniformly).
        severities: the severities drawn from (uniformly).
        p: probability per image of being corrupted (the rest stay clean).

    ``__call__(x, generator)``: ``(N, C, H, W)`` in [0, 1] -> same shape, in [0, 1]; all draws from
    ``generator`` (so a run replays).
    """

    uses_labels = False

    def __init__(self, corrupt_fn: Callable[..., torch.Tensor], names: Sequence[str], severities: Sequence[int] = (1, 2, 3, 4, 5),
                 p: float = 15 / 16) -> None:
        if not names:
            raise ValueError("corruptions: expected at least one corruption")
        if not severities or any(int(s) < 1 or int(s) > 5 for s in severities):
            raise ValueError(f"severities: expected values in 1..5, got {list(severities)}")
        if not 0 <= p <= 1:
            raise ValueError(f"p: expected a probability in [0, 1], got {p}")
        self.corrupt_fn, self.names, self.p = corrupt_fn, list(names), float(p)
        self.severities = torch.tensor([int(s) for s in severities])

    def check(self, x: Any, name: str = "x") -> torch.Tensor:
        """Validate a ``(N, C, H, W)`` batch and return it (the training adapters call it once per
        batch, as for an augmentation core)."""
        return check_input(x, name=name, spatial_dims=(2,))

    def sample(self, n: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(which (N,) long: index into names, -1 = clean; severity (N,) long)``."""
        coin = rand(n, generator=generator)
        which = randint(0, len(self.names), (n,), generator=generator)
        sev = self.severities[randint(0, len(self.severities), (n,), generator=generator)]
        return torch.where(coin < self.p, which, torch.full_like(which, -1)), sev

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None, **_: Any) -> torch.Tensor:
        which, sev = self.sample(x.shape[0], generator)
        out = x.clone()
        for k, name in enumerate(self.names):
            sel = (which == k).nonzero().flatten()
            if len(sel):
                idx = sel.to(x.device)
                out[idx] = self.corrupt_fn(x[idx], name, sev[sel].to(x.device), generator).to(x.dtype).clamp(0, 1)
        return out


def freeze(model: nn.Module) -> nn.Module:
    """``model`` in eval mode with ``requires_grad`` off for every parameter (gradients still flow
    through it to its input)."""
    model.eval()
    model.requires_grad_(False)
    return model


class Enhanced(nn.Module):
    """``model(enhancer(x))``: a frozen model behind its enhancer (evaluation). Records the mean blend
    weights per ``condition`` (set it before each batch; ``None``: not recorded) in ``weight_sums`` /
    ``counts``."""

    def __init__(self, enhancer: DynTTA, model: nn.Module) -> None:
        super().__init__()
        self.enhancer, self.model = enhancer, model
        self.condition: str | None = None
        self.weight_sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m, w = self.enhancer.predict(x)
        if self.condition is not None:
            s = w.detach().double().sum(0).cpu()
            self.weight_sums[self.condition] = self.weight_sums.get(self.condition, torch.zeros_like(s)) + s
            self.counts[self.condition] = self.counts.get(self.condition, 0) + x.shape[0]
        return self.model(self.enhancer.blend(x, m, w))

    def mean_weights(self) -> dict[str, dict[str, float]]:
        """``{condition: {op: mean blend weight}}`` of what was recorded."""
        return {c: dict(zip(self.enhancer.op_names, (s / max(1, self.counts[c])).tolist()))
                for c, s in self.weight_sums.items()}


def enhancer_from_section(section: dict[str, Any], *, image_size: int = 224) -> DynTTA:
    """An untrained :class:`DynTTA` as a run's ``tta:`` config section describes it."""
    if section.get("num_channels") is None:
        raise ValueError("tta.num_channels: missing (a config written by `medrobust tta train` has it)")
    return DynTTA(int(section["num_channels"]), section.get("ops", "all"), section.get("predictor", "small"),
                  image_size=image_size)


def load_enhancer(run_dir: str | Path, *, checkpoint: str = "best.pt", device: torch.device | str = "cpu",
                  ) -> tuple[dict[str, Any], DynTTA]:
    """``(the run's config as a dict, the trained enhancer in eval mode)`` of a ``medrobust tta train``
    run folder (``config.yaml`` with a ``tta:`` section, ``<checkpoint>`` loaded weights-only). One-line
    errors name the folder and what is missing."""
    from ..config import read_yaml
    from ..models.factory import load_weights

    run_dir = Path(run_dir)
    cfg_path, ckpt = run_dir / "config.yaml", run_dir / checkpoint
    if not cfg_path.is_file():
        raise FileNotFoundError(f"--tta {run_dir}: no config.yaml (is this a run folder from `medrobust tta train`?)")
    raw = read_yaml(cfg_path)
    section = raw.get("tta")
    if not isinstance(section, dict):
        raise ValueError(f"--tta {run_dir}: {cfg_path} has no tta: section; expected a run folder from "
                         "`medrobust tta train` (a model run goes to --run)")
    if not ckpt.is_file():
        raise FileNotFoundError(f"--tta {run_dir}: no {checkpoint}; train it first (`medrobust tta train`)")
    data = raw.get("data") or {}
    size = int(data.get("image_size") or (data.get("spatial_size") or [224])[0])  # cardiac: spatial_size
    enhancer = enhancer_from_section(section, image_size=size)
    load_weights(enhancer, ckpt, what=f"--tta {run_dir}", detail=f" (the DynTTA of {cfg_path})")
    return raw, enhancer.to(device).eval()
