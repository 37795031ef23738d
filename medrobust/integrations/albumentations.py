"""albumentations 2.x transforms for every registered core: ``RandConv``, ``GIN``, ``IPA``, ... (the core's class name).

Generated from :data:`medrobust.augment.REGISTRY` when this module is imported (a core registered later
gets its class on first attribute access): one ``albumentations.ImageOnlyTransform`` subclass per core,
with an ``InitSchema`` (pydantic, one field per core argument; the core itself checks the values when
the transform is built), so ``to_dict`` / ``from_dict`` round-trip::

    import albumentations as A
    from medrobust.integrations.albumentations import RandConv

    pipeline = A.Compose([A.HorizontalFlip(), RandConv(p=0.5, mixing=True)], seed=0)
    out = pipeline(image=image_uint8_hwc, mask=mask)          # mask untouched by RandConv

* ``p`` is albumentations' coin; the core is built with ``p=1`` and the other arguments.
* Randomness comes from the transform's own ``random_generator`` (seeded by ``Compose(seed=...)``
  and, in DataLoader workers, by albumentations' per-worker reseeding): one seed per call, which seeds
  the core's ``torch.Generator``.
* Images are NumPy ``(H, W, C)`` or ``(H, W)``, ``uint8`` (read as ``/255``, written back rounded and
  clipped to 0..255) or ``float32`` (values in [0, 1] in, float32 out, not clipped, like
  albumentations' own float transforms). The core runs on the CPU on a batch of one ``(1, C, H, W)``.
* Cores that take data arguments (``dfmx`` maps, ``latent_blur`` network) work, but such arguments
  are not serialisable (``to_dict`` keeps the object).
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import albumentations as A
import numpy as np
import pydantic
import torch
from albumentations.core.transforms_interface import BaseTransformInitSchema

from ..augment import BatchAugment, build
from ..augment.registry import allowed_kwargs
from ._generated import GeneratedTransforms

__all__ = ["CoreTransform", "TRANSFORMS", "image_transform"]

_MAX_SEED = 2**31 - 1


class CoreTransform(A.ImageOnlyTransform):
    """Base of the generated transforms (subclasses set :attr:`core_name` and :attr:`core_args`)."""

    core_name: str = ""
    core_args: tuple[str, ...] = ()

    def _setup(self, p: float, kwargs: dict[str, Any]) -> None:
        A.ImageOnlyTransform.__init__(self, p=p)
        for k in self.core_args:
            setattr(self, k, kwargs[k])
        given = {k: v for k, v in kwargs.items() if v is not _DEFAULT}
        self.core: BatchAugment = build({"name": self.core_name, **given, "p": 1.0}, where=type(self).__name__)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return tuple(k for k in self.core_args if getattr(self, k) is not _DEFAULT)

    def get_params(self) -> dict[str, Any]:
        return {"seed": int(self.random_generator.integers(0, _MAX_SEED))}

    def apply(self, img: np.ndarray, seed: int = 0, **params: Any) -> np.ndarray:
        if not isinstance(img, np.ndarray) or img.ndim not in (2, 3):
            raise ValueError(f"{type(self).__name__}: expected a NumPy image (H, W) or (H, W, C), got "
                             f"{getattr(img, 'shape', type(img).__name__)}")
        if img.dtype == np.uint8:
            x = torch.from_numpy(img.astype(np.float32) / 255.0)
        elif img.dtype == np.float32:
            x = torch.from_numpy(np.ascontiguousarray(img))
        else:
            raise TypeError(f"{type(self).__name__}: expected a uint8 or float32 image, got {img.dtype}")
        chw = x[None] if x.ndim == 2 else x.permute(2, 0, 1)
        y = self.core(chw[None].contiguous(), torch.Generator().manual_seed(int(seed)))[0]
        y = y[0] if img.ndim == 2 else y.permute(1, 2, 0)
        out = y.contiguous().numpy()
        if img.dtype == np.uint8:
            return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
        return out.astype(np.float32)


class _Default:
    """Marks a core argument left at the core's own default (not passed, not serialised)."""

    def __repr__(self) -> str:
        return "<core default>"


_DEFAULT: Any = _Default()


def _make(name: str, cls: type[BatchAugment]) -> type[CoreTransform]:
    tname = re.sub(r"\W", "", cls.__name__)
    args = tuple(a for a in allowed_kwargs(cls) if a not in ("p", "strict", "seed"))
    schema = pydantic.create_model(f"{tname}InitSchema", __base__=BaseTransformInitSchema,
                                   **{a: (Any, _DEFAULT) for a in args})

    def __init__(self: CoreTransform, p: float = 0.5, **kwargs: Any) -> None:
        self._setup(p, {a: kwargs.get(a, _DEFAULT) for a in args})

    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
              inspect.Parameter("p", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=0.5)]
    params += [inspect.Parameter(a, inspect.Parameter.KEYWORD_ONLY, default=_DEFAULT) for a in args]
    __init__.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    doc = (f"albumentations ``ImageOnlyTransform`` of the ``{name}`` core (:class:`{cls.__module__}.{cls.__name__}`): "
           f"``{tname}(p=0.5, {', '.join(f'{a}=...' for a in args)})``; see :class:`CoreTransform`.")
    ns = {"core_name": name, "core_args": args, "InitSchema": schema, "__init__": __init__, "__doc__": doc,
          "__module__": __name__, "__qualname__": tname}
    return type(A.ImageOnlyTransform).__new__(type(A.ImageOnlyTransform), tname, (CoreTransform,), ns)


_GENERATED = GeneratedTransforms(_make, globals(), __all__)
#: registry name -> generated transform class
TRANSFORMS: dict[str, type[CoreTransform]] = _GENERATED.classes  # type: ignore[assignment]


def image_transform(name: str) -> type[CoreTransform]:
    """The transform class of registry core ``name`` (``ValueError`` listing the names otherwise)."""
    return _GENERATED.get(name)


__getattr__, __dir__ = _GENERATED.hooks(__name__)  # cores registered after this module was imported
_GENERATED.generate()
