"""Name -> core class, so configs can name cores: ``build({"name": "randconv", "mixing": True})``."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import torch

from .base import BatchAugment, Params, check_input

__all__ = ["REGISTRY", "register", "build", "validate", "available", "Compose"]

REGISTRY: dict[str, type[BatchAugment]] = {}

T = TypeVar("T", bound=type[BatchAugment])


def register(name: str) -> Callable[[T], T]:
    """Class decorator adding a core to :data:`REGISTRY` under ``name`` (lower case)."""

    def deco(cls: T) -> T:
        key = name.lower()
        if cls.__dict__.get("abstract", False):
            raise TypeError(f"{cls.__name__} is declared abstract=True and cannot be registered")
        if key in REGISTRY and REGISTRY[key] is not cls:
            raise ValueError(f"augmentation name {key!r} registered twice ({REGISTRY[key].__name__}, {cls.__name__})")
        REGISTRY[key] = cls
        cls.registry_name = key  # type: ignore[attr-defined]
        return cls

    return deco


def available() -> list[str]:
    """Sorted names of the registered cores."""
    return sorted(REGISTRY)


def allowed_kwargs(cls: type) -> list[str]:
    sig = inspect.signature(cls.__init__)
    return [n for n, p in sig.parameters.items() if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _resolve(spec: Mapping[str, Any], where: str) -> tuple[type[BatchAugment], dict[str, Any], str]:
    """``(class, keyword arguments, name)`` of one config entry; ``ValueError`` naming ``where``."""
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: expected a mapping with a 'name' key, got {type(spec).__name__}")
    kwargs = dict(spec)
    name = kwargs.pop("name", None)
    if not isinstance(name, str):
        raise ValueError(f"{where}.name: missing; choose one of {available()}")
    cls = REGISTRY.get(name.lower())
    if cls is None:
        raise ValueError(f"{where}.name: unknown augmentation {name!r}; choose one of {available()}")
    allowed = allowed_kwargs(cls)
    unknown = [k for k in kwargs if k not in allowed]
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown} for {name!r}; allowed keys: {allowed}")
    return cls, kwargs, name


def _entries(spec: Any, where: str) -> list[tuple[Any, str]] | None:
    """The ``(entry, where)`` items of a list spec (None for a single entry)."""
    if isinstance(spec, Sequence) and not isinstance(spec, (str, bytes)):
        return [(s, f"{where}[{i}]") for i, s in enumerate(spec)]
    return None


def build(spec: Mapping[str, Any] | Sequence[Mapping[str, Any]] | str, *, where: str = "augment") -> BatchAugment:
    """Build a core from a config entry.

    ``spec`` is a dict with a ``name`` key plus the core's keyword arguments, a bare name, or a list of
    such dicts (composed in order, see :class:`Compose`). Unknown names and unknown or mistyped
    arguments raise ``ValueError`` naming ``where`` (the config path) and what is allowed. Data
    arguments (:attr:`BatchAugment.data_args`: tensors, networks) must be given as objects: files
    are loaded by the caller.
    """
    if isinstance(spec, str):
        spec = {"name": spec}
    items = _entries(spec, where)
    if items is not None:
        return Compose([build(s, where=w) for s, w in items])
    cls, kwargs, name = _resolve(spec, where)  # type: ignore[arg-type]
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where} ({name}): {err}") from err


def refuse_geometric(core: Any, *, where: str = "augment") -> None:
    """A one-line ``ValueError`` naming ``where`` when ``core`` (or a core inside it) moves pixels
    (:attr:`BatchAugment.geometric`): segmentation trains on label maps that would no longer line up."""
    if core is None or not getattr(core, "geometric", False):
        return
    parts = list(getattr(core, "cores", None) or getattr(core, "members", None) or [core])
    culprits = [c for c in parts if getattr(c, "geometric", False)]

    def name(c: Any) -> str:
        ops = [o for o in getattr(c, "ops", ()) if o in getattr(c, "geometric_ops", ())]
        label = getattr(c, "registry_name", None) or type(c).__name__
        return f"{label} with {ops}" if ops else label

    hints = [h for h in dict.fromkeys(getattr(c, "photometric_hint", "") for c in culprits) if h]
    raise ValueError(f"{where}: {', '.join(map(name, culprits))} moves pixels but not the label map; segmentation "
                     f"needs photometric augmentation{' (' + '; '.join(hints) + ')' if hints else ''}")


def validate(spec: Mapping[str, Any] | Sequence[Mapping[str, Any]] | str, *, where: str = "augment",
             label_maps: bool = False) -> None:
    """Check a config entry as :func:`build` would, without reading files.

    Names and keys are always checked. The core is built to check its values too, unless one of its
    :attr:`~BatchAugment.data_args` is given as a path (``str`` / ``os.PathLike``): the task layer
    loads that file and builds the core later (no such core moves pixels). ``label_maps``: the task
    trains on label maps, so a core that moves pixels is refused (:func:`refuse_geometric`). Raises
    ``ValueError`` naming ``where``.
    """
    if isinstance(spec, str):
        spec = {"name": spec}
    items = _entries(spec, where)
    if items is not None:
        for s, w in items:
            validate(s, where=w, label_maps=label_maps)
        return
    cls, kwargs, _ = _resolve(spec, where)  # type: ignore[arg-type]
    if any(isinstance(kwargs.get(k), (str, os.PathLike)) for k in cls.data_args):
        return
    core = build(spec, where=where)
    if label_maps:
        refuse_geometric(core, where=where)


class Compose(BatchAugment, abstract=True):
    """Apply cores in order; params are the children's params in a list (built by :func:`build` from a
    list, so not registered itself)."""

    def __init__(self, cores: Sequence[BatchAugment]) -> None:
        super().__init__(p=1.0)
        self.cores = torch.nn.ModuleList(cores)
        dims = set((2, 3))
        for c in self.cores:
            dims &= set(c.spatial_dims)
        self.spatial_dims = tuple(sorted(dims))  # type: ignore[misc]
        self.uses_labels = any(c.uses_labels for c in self.cores)  # type: ignore[misc]
        self.geometric = any(c.geometric for c in self.cores)  # type: ignore[misc]

    def sample_params(self, x: torch.Tensor, generator: torch.Generator | None = None) -> Params:
        # each child draws on the output of the previous one, so sampling also runs the chain
        x = check_input(x, spatial_dims=self.spatial_dims)
        children = []
        for core in self.cores:
            p = core.sample_params(x, generator)
            children.append(p)
            x = core.apply(x, p)
        return {"children": children, "apply": torch.ones(x.shape[0], dtype=torch.bool, device=x.device)}

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None, *,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        x = check_input(x, spatial_dims=self.spatial_dims)
        for core in self.cores:
            x = core(x, generator, labels=labels) if core.uses_labels else core(x, generator)
        return x

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        for core, p in zip(self.cores, params["children"]):
            x = core.apply(x, p)
        return x
