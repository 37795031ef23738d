"""Finetuning: start a run from another run's weights (``train.init_from``) and keep modules fixed
(``train.freeze``), for every task (applied by :func:`medrobust.train.loop.fit_config`).

* ``init_from``: a run folder (its ``best.pt``) or a checkpoint file (a ``last.pt``/``best.pt`` of
  ``medrobust train`` or a plain ``state_dict``), loaded ``weights_only`` and **strictly**; the
  optimiser, schedule, step and RNG states start fresh. A checkpoint of another architecture is one
  line with counts and one example key. The source is recorded in the new run: ``config.yaml`` keeps
  ``train.init_from`` as given, and ``init_from.json`` has the resolved checkpoint, its SHA-256, the
  step it was saved at and the source run's name, task and model. ``--resume`` of a finetuning run
  continues from its own ``last.pt`` and does not load the source again.
* ``freeze``: ``named_modules()`` names; their parameters get ``requires_grad=False`` (AdamW skips
  them) and the modules stay in eval mode, so batch-norm statistics stay fixed as well.
"""

from __future__ import annotations

import difflib
import hashlib
import types
from pathlib import Path
from typing import Any

import torch

from ..config import ConfigError, read_yaml

__all__ = ["resolve_init_from", "load_init_weights", "freeze_modules", "prepare_finetune"]


def resolve_init_from(init_from: str | Path, *, what: str = "train.init_from") -> tuple[Path, Path | None]:
    """``(checkpoint, source run folder or None)``: a folder gives its ``best.pt`` (``last.pt`` when
    there is no best); ``FileNotFoundError`` naming ``what`` otherwise."""
    p = Path(init_from).expanduser()
    if p.is_dir():
        for name in ("best.pt", "last.pt", "model.pt"):
            if (p / name).is_file():
                return p / name, p
        raise FileNotFoundError(f"{what}: {p} holds no best.pt or last.pt; expected a trained run folder or a "
                                "checkpoint file")
    if p.is_file():
        return p, p.parent if (p.parent / "config.yaml").is_file() else None
    raise FileNotFoundError(f"{what}: {p} does not exist; expected a trained run folder or a checkpoint file")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_init_weights(model: torch.nn.Module, init_from: str | Path, *, what: str = "train.init_from",
                      model_name: str | None = None) -> dict[str, Any]:
    """Load the weights of ``init_from`` into ``model`` strictly and return the provenance record.

    ``ValueError`` (one line) when the file is unreadable or holds another architecture."""
    import warnings

    ckpt_path, source_dir = resolve_init_from(init_from, what=what)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 -- truncated file, a pickle the weights-only loader refuses
        raise ValueError(f"{what}: {ckpt_path} is not a readable checkpoint ({type(err).__name__})") from None
    step = None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        step = state.get("step")
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{what}: {ckpt_path} holds no state_dict (expected a checkpoint of `medrobust train` or a "
                         "saved model.state_dict())")
    source: dict[str, Any] = {}
    if source_dir is not None and (source_dir / "config.yaml").is_file():
        try:
            raw = read_yaml(source_dir / "config.yaml")
            source = {"name": raw.get("name"), "task": raw.get("task"),
                      "model": (raw.get("model") or {}).get("name") if isinstance(raw.get("model"), dict) else None}
        except ConfigError:
            source = {}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shaped = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shaped:
        example = (missing or unexpected or shaped)[0]
        src = f" (source model {source['model']})" if source.get("model") else ""
        this = f" (model {model_name})" if model_name else ""
        raise ValueError(f"{what}: {ckpt_path}{src} is a checkpoint of another architecture ({len(missing)} weights "
                         f"missing, {len(unexpected)} unexpected, {len(shaped)} of another shape, e.g. {example!r}); "
                         f"expected weights of this config's model{this}")
    model.load_state_dict(state, strict=True)
    return {"init_from": str(init_from), "checkpoint": str(ckpt_path.resolve()), "sha256": _sha256(ckpt_path),
            "step": int(step) if isinstance(step, int) else None, "source": source}


def _eval_train(self: torch.nn.Module, mode: bool = True) -> torch.nn.Module:
    return torch.nn.Module.train(self, False)


def freeze_modules(model: torch.nn.Module, names: list[str], *, what: str = "train.freeze") -> list[str]:
    """Fix the parameters (and batch-norm statistics) of the named modules; returns the frozen
    parameter names. An unknown name raises ``ValueError`` listing the closest ones."""
    named = dict(model.named_modules())
    frozen: list[str] = []
    for name in names:
        if name not in named or name == "":
            close = difflib.get_close_matches(name, [n for n in named if n], n=5, cutoff=0.5)
            hint = f"closest: {close}" if close else f"e.g. {[n for n in named if n][:8]}"
            raise ValueError(f"{what}: unknown module {name!r} (names are the model's named_modules()); {hint}")
        module = named[name]
        for pname, p in module.named_parameters():
            p.requires_grad_(False)
            frozen.append(f"{name}.{pname}")
        module.train = types.MethodType(_eval_train, module)  # type: ignore[method-assign]
        module.eval()
    return frozen


def prepare_finetune(cfg: Any, model: torch.nn.Module, *, resume: bool, is_main: bool = True) -> dict[str, Any] | None:
    """Apply ``cfg.train.init_from`` (fresh runs only; a resume continues its own ``last.pt``) and
    ``cfg.train.freeze`` to ``model``; rank 0 writes ``run_dir/init_from.json``. Returns the record."""
    import json

    from ..io import atomic_write_text

    t = cfg.train
    record = None
    init_from = getattr(t, "init_from", None)
    if init_from is not None and not resume:
        model_name = getattr(getattr(cfg, "model", None), "name", None)
        record = load_init_weights(model, init_from, model_name=model_name)
        if is_main:
            atomic_write_text(Path(cfg.run_dir) / "init_from.json", json.dumps(record, indent=1) + "\n")
    freeze = list(getattr(t, "freeze", []) or [])
    if freeze:
        freeze_modules(model, freeze)
    return record
