"""MONAI dictionary transforms for every registered core: ``RandConvd``, ``GINd``, ``IPAd``, ... (``<Core>d``).

Generated from :data:`medrobust.augment.REGISTRY` when this module is imported (a core registered
later gets its class on first attribute access), one :class:`CoreDictTransform` subclass per core,
named after the core's class with MONAI's ``d`` suffix (``mri_rician_noise`` -> ``MRIRicianNoised``;
:data:`TRANSFORMS` maps registry names to classes, :func:`dict_transform` looks one up)::

    from monai.transforms import Compose, LoadImaged, EnsureChannelFirstd, ScaleIntensityd
    from medrobust.integrations.monai import RandConvd, GINd

    train = Compose([LoadImaged(["image", "label"]), EnsureChannelFirstd(["image", "label"]),
                     ScaleIntensityd("image"), RandConvd(keys="image", prob=0.5, mixing=True)])
    train.set_random_state(seed=0)

Behaviour (MONAI's ``RandomizableTransform`` + ``MapTransform`` contract):

* ``prob`` is MONAI's coin (drawn from ``self.R``); the core itself is built with ``p=1`` and the
  remaining keyword arguments (``**core_kwargs``, checked by :func:`medrobust.augment.build`).
* Randomness: per call, one seed is drawn from ``self.R`` and seeds the core's ``torch.Generator``, so
  ``set_random_state`` (and ``Compose.set_random_state``, ``monai.utils.set_determinism``, MONAI's
  DataLoader ``worker_init_fn``) fixes the core's draws too; results are reproducible per worker.
* Inputs are channel-first and un-batched ``(C, H, W)`` / ``(C, D, H, W)`` (a batch of one is formed
  inside), as tensors, ``MetaTensor`` (metadata and ``applied_operations`` kept) or NumPy arrays (the
  output type follows the input). Float inputs in [0, 1] as the cores expect; other keys (labels) are
  never touched. Cores that take labels (DFM-X, SLAug) get ``data[label_key]`` when ``label_key`` is set.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform

from ..augment import BatchAugment, build
from ._generated import GeneratedTransforms

__all__ = ["CoreDictTransform", "TRANSFORMS", "dict_transform"]

_MAX_SEED = 2**31 - 1


class CoreDictTransform(RandomizableTransform, MapTransform):
    """Base of the generated dictionary transforms (subclasses set :attr:`core_name`).

    Args:
        keys: the image keys to augment (each gets its own draw).
        prob: probability of augmenting a sample (MONAI's coin, one per call for all ``keys``).
        allow_missing_keys: skip missing keys instead of raising ``KeyError``.
        label_key: for cores that take labels (``uses_labels``): the key whose value is passed as
            ``labels`` (class index or segmentation map, batch dimension added); never modified.
        **core_kwargs: the core's own arguments (e.g. ``mixing=True`` for RandConv).
    """

    core_name: str = ""

    def __init__(self, keys: KeysCollection, prob: float = 1.0, allow_missing_keys: bool = False,
                 label_key: str | None = None, **core_kwargs: Any) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        if "p" in core_kwargs:
            raise ValueError(f"{type(self).__name__}: use prob= (MONAI's coin) instead of the core's p=")
        self.core: BatchAugment = build({"name": self.core_name, **core_kwargs, "p": 1.0},
                                        where=type(self).__name__)
        self.label_key = label_key
        self.generator = torch.Generator()
        self._seed = 0

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self._seed = int(self.R.randint(0, _MAX_SEED))

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> CoreDictTransform:
        super().set_random_state(seed, state)
        return self

    def _labels(self, d: Mapping[Hashable, Any]) -> torch.Tensor | None:
        if self.label_key is None or not self.core.uses_labels:
            return None
        lab = d[self.label_key]
        lab = lab.as_tensor() if hasattr(lab, "as_tensor") else torch.as_tensor(np.asarray(lab))
        if lab.ndim >= 2 and lab.shape[0] == 1:  # channel-first segmentation map (1, *S)
            lab = lab[0]
        return lab.long()[None]

    def _augment(self, img: Any, labels: torch.Tensor | None) -> Any:
        is_numpy = isinstance(img, np.ndarray)
        x = torch.from_numpy(img) if is_numpy else img
        meta = None
        if hasattr(x, "as_tensor"):  # MetaTensor: compute on the plain tensor, put the metadata back
            meta = x
            x = x.as_tensor()
        if x.ndim not in (3, 4):
            raise ValueError(f"{type(self).__name__}: expected a channel-first image (C, H, W) or (C, D, H, W), got "
                             f"shape {tuple(x.shape)}")
        kw = {"labels": labels.to(x.device)} if labels is not None else {}
        y = self.core(x[None], self.generator, **kw)[0] if kw else self.core(x[None], self.generator)[0]
        if meta is not None:
            out = meta.clone()
            out.set_array(y)
            return out
        return y.numpy() if is_numpy else y

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize()
        if not self._do_transform:
            return d
        self.generator.manual_seed(self._seed)
        labels = self._labels(d)
        for key in self.key_iterator(d):
            d[key] = self._augment(d[key], labels)
        return d


def _class_name(cls: type) -> str:
    return re.sub(r"\W", "", cls.__name__) + "d"


def _make(name: str, cls: type[BatchAugment]) -> type[CoreDictTransform]:
    doc = (f"MONAI dictionary transform of the ``{name}`` core (:class:`{cls.__module__}.{cls.__name__}`): "
           f"``{_class_name(cls)}(keys, prob=1.0, allow_missing_keys=False, label_key=None, **core_kwargs)``; "
           "see :class:`CoreDictTransform`.")
    return type(_class_name(cls), (CoreDictTransform,), {"core_name": name, "__doc__": doc, "__module__": __name__})


_GENERATED = GeneratedTransforms(_make, globals(), __all__)
#: registry name -> generated transform class
TRANSFORMS: dict[str, type[CoreDictTransform]] = _GENERATED.classes  # type: ignore[assignment]


def dict_transform(name: str) -> type[CoreDictTransform]:
    """The transform class of registry core ``name`` (``ValueError`` listing the names otherwise)."""
    return _GENERATED.get(name)


__getattr__, __dir__ = _GENERATED.hooks(__name__)  # cores registered after this module was imported
_GENERATED.generate()
