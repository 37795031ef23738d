"""Models for ``medrobust benchmark``: model specs -> :class:`~medrobust.evaluate.benchmark.BenchModel`.

Spec forms (``--model NAME[=SPEC]``):

* ``DIR`` or ``NAME=DIR``: a run directory of ``medrobust train`` (its task from ``config.yaml``
  through :data:`medrobust.tasks.TASKS`; ``best.pt``, weights only). The run's model holds its own
  input normalisation; the crops are resized to the run's ``data.image_size``.
* ``torchvision:ARCH=PATH`` (or ``NAME=torchvision:ARCH=PATH``): ``torchvision.models.get_model(ARCH,
  weights=None)`` with the local state dict ``PATH`` (``.safetensors`` or a ``torch.save`` file,
  loaded with ``weights_only=True``); ImageNet mean/std.
* ``timm:ARCH=PATH``: ``timm.create_model(ARCH, pretrained=False)`` with ``PATH``; mean/std from
  the architecture's ``pretrained_cfg`` (ImageNet's when it has none); a model with a fixed input
  size (ViTs at 384, ...) gets the crops resized to it.

Weights are never downloaded. The class count follows the weights file (its last linear layer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..evaluate.benchmark import BenchModel

__all__ = ["parse_model_spec", "resolve_model", "read_state_dict"]

_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def parse_model_spec(item: str) -> tuple[str, str, str | None]:
    """``--model`` item -> ``(name, kind, target)``: kind ``run`` (target a folder), ``torchvision``
    or ``timm`` (target ``ARCH=PATH``)."""
    if not item or not item.strip():
        raise ValueError("--model: empty model spec")
    head, sep, rest = item.partition("=")
    if head.startswith(("torchvision:", "timm:")):
        return head, head.split(":", 1)[0], item.split(":", 1)[1]
    if sep and rest.startswith(("torchvision:", "timm:")):
        return head, rest.split(":", 1)[0], rest.split(":", 1)[1]
    if ":" in head and not Path(head).exists() and not Path(item).exists():
        raise ValueError(f"--model {item}: unknown model spec; expected a run directory, torchvision:ARCH=PATH or "
                         "timm:ARCH=PATH")
    path = rest if sep else item
    name = head if sep else Path(path.rstrip("/")).name
    if not name:
        raise ValueError(f"--model {item}: empty model name")
    return name, "run", path


def read_state_dict(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """A local state dict: ``.safetensors`` or a ``torch.save`` file (weights only; a checkpoint dict
    with a ``model`` or ``state_dict`` entry works too)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: weights file {path} does not exist (weights are never downloaded)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised in one line naming the file
        raise ValueError(f"{what}: cannot read weights {path}: {str(err).splitlines()[0] if str(err) else err!r}") from None
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{what}: {path} is not a state dict of tensors")
    return state


def _last_linear(net: torch.nn.Module) -> str | None:
    name = None
    for n, mod in net.named_modules():
        if isinstance(mod, torch.nn.Linear) or (isinstance(mod, torch.nn.Conv2d) and n.endswith(("fc", "head", "classifier"))):
            name = n
    return name


def _build_arch(kind: str, arch: str, spec: str, num_classes: int | None) -> torch.nn.Module:
    kw = {} if num_classes is None else {"num_classes": num_classes}
    if kind == "torchvision":
        import torchvision

        if arch not in torchvision.models.list_models():
            raise ValueError(f"--model {spec}: unknown torchvision architecture {arch!r}")
        return torchvision.models.get_model(arch, weights=None, **kw)
    import timm

    if not timm.is_model(arch):
        raise ValueError(f"--model {spec}: unknown timm architecture {arch!r}")
    return timm.create_model(arch, pretrained=False, **kw)


def _load_arch(kind: str, target: str, spec: str) -> tuple[torch.nn.Module, dict[str, Any], int | None]:
    from ..models.classifiers import Classifier

    arch, sep, path = target.partition("=")
    if not arch:
        raise ValueError(f"--model {spec}: no architecture name (expected {kind}:ARCH=PATH)")
    if not sep or not path:
        raise ValueError(f"--model {spec}: no weights file; give {kind}:{arch}=PATH (local weights, never downloaded)")
    net = _build_arch(kind, arch, spec, None)
    state = read_state_dict(path, f"--model {spec}")
    head = _last_linear(net)
    if head is not None and f"{head}.weight" in state:
        n = int(state[f"{head}.weight"].shape[0])
        if n != int(net.state_dict()[f"{head}.weight"].shape[0]):
            net = _build_arch(kind, arch, spec, n)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"--model {spec}: {path} does not match {kind} {arch}: {str(err).splitlines()[0]}") from None
    mean, std = _IMAGENET
    input_size = None
    cfg = dict(getattr(net, "pretrained_cfg", None) or {})
    if kind == "timm":
        mean, std = tuple(cfg.get("mean") or mean), tuple(cfg.get("std") or std)
        if cfg.get("fixed_input_size") and cfg.get("input_size"):
            input_size = int(cfg["input_size"][-1])
    info = {"kind": kind, "architecture": arch, "weights": str(path), "mean": list(mean), "std": list(std),
            "input_size": input_size}
    return Classifier(net, mean, std).eval(), info, input_size


def resolve_model(item: str, device: torch.device | str = "cpu") -> BenchModel:
    """A ``--model`` spec (see the module doc) as a :class:`BenchModel` on ``device``."""
    name, kind, target = parse_model_spec(item)
    if kind == "run":
        assert target is not None
        from .registry import run_task

        run = Path(target)
        if not run.is_dir():
            raise FileNotFoundError(f"--model {item}: run directory {run} does not exist (or use torchvision:ARCH=PATH, "
                                    "timm:ARCH=PATH)")
        task = run_task(run)
        cfg, model = task.load_run(run, device=device, checkpoint="best.pt")
        size = getattr(getattr(cfg, "data", None), "image_size", None)
        info = {"kind": "run", "run": str(run), "task": task.name, "config": getattr(cfg, "name", None),
                "image_size": size}
        return BenchModel(name, model.eval(), int(size) if size else None, info)
    assert target is not None
    module, info, size = _load_arch(kind, target, item)
    return BenchModel(name, module.to(device), size, info)
