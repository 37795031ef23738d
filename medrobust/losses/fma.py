"""The feature-map augmentation (FMA) loss (Kapoor et al., arXiv 2012.01386): stability training on
intermediate feature maps.

``L = L_task(x') + λ · Σ_l d(F_l(x), F_l(x'))`` over named layers ``l`` of the model. :class:`FMALoss`
returns the feature term (already multiplied by λ = ``weight``) and both outputs; the task loss on the
distorted logits stays the caller's.

Our choices (the paper's exact layers, distance and λ were not retrievable):

* **one forward pass**: clean and distorted inputs go through the model concatenated (``2N``
  samples), the hooks capture each layer's output and split it into the clean and distorted halves.
  That is the cost of a second forward pass and no more; batch-norm layers see both halves in one
  batch (as in the consistency losses of :mod:`medrobust.train.steps`). Works under DDP (one forward,
  one backward) and AMP (distances in float32).
* **hooks**: forward hooks on ``model.named_modules()`` names are registered for the call and
  removed before it returns (also on errors), so nothing leaks across steps or into a saved model.
  Each captured map is cloned, so an in-place op after the layer (``ReLU(inplace=True)``) does not
  change it. A layer that runs several times in one forward contributes every call.
* **per-layer normalisation**: each ``d`` is a mean over the batch and every element of the map
  (``l2``: mean squared difference, ``l1``: mean absolute difference) or over the batch of per-sample
  ``1 − cos`` of the flattened maps (``cosine``), so a ``64×32×32`` map and a ``512×4×4`` one weigh
  alike per layer whatever their size; the layer terms are summed (``Σ_l``), as in the formula.
* **gradient**: through both branches by default (``detach_clean=False``); the feature term reaches
  the weights only through the hooked features (layers after the last hooked one get no gradient
  from it).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = ["FMALoss", "FMA_DISTANCES", "feature_distance", "unwrap_model"]

#: the distances ``d`` of :class:`FMALoss`
FMA_DISTANCES = ("l2", "l1", "cosine")


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DDP/DataParallel wrapper (``model.module``), else ``model``."""
    inner = model
    while isinstance(inner, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
        inner = inner.module
    return inner


def feature_distance(a: torch.Tensor, b: torch.Tensor, distance: str = "l2") -> torch.Tensor:
    """``d(a, b)`` of two feature maps ``(N, ...)`` normalised per layer (see the module doc), float32."""
    a, b = a.float(), b.float()
    if distance == "l2":
        return (a - b).pow(2).mean()
    if distance == "l1":
        return (a - b).abs().mean()
    if distance == "cosine":
        return (1 - torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1), dim=1, eps=1e-8)).mean()
    raise ValueError(f"distance: expected one of {list(FMA_DISTANCES)}, got {distance!r}")


def _first_tensor(out: Any) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    if isinstance(out, dict):
        return next((v for v in out.values() if isinstance(v, torch.Tensor)), None)
    return None


class FMALoss:
    """The FMA feature term over named layers of ``model``.

    Args:
        model: the network (a DDP/DataParallel wrapper is fine: names are those of the inner module).
        layers: ``named_modules()`` names, e.g. ``["net.features.2", "net.features.5"]`` (DigitNet in
            its Classifier) or ``["net.layer2", "net.layer3"]`` (a torchvision ResNet). An unknown name
            raises ``ValueError`` naming it with the closest existing names.
        distance: ``"l2"`` (mean squared), ``"l1"`` or ``"cosine"``.
        weight: λ, the factor the returned feature term already carries.
        detach_clean: stop the gradient through the clean features (default False).

    ``fma(x_clean, x_distorted)`` -> ``(feature_loss, logits_clean, logits_distorted)``: one forward
    pass over ``cat([x_clean, x_distorted])``; ``feature_loss`` is ``weight · Σ_l d_l`` (a scalar),
    the logits are the model's outputs on each half.
    """

    def __init__(self, model: torch.nn.Module, layers: Sequence[str], distance: str = "l2", weight: float = 1.0, *,
                 detach_clean: bool = False) -> None:
        if isinstance(layers, str) or not isinstance(layers, Sequence) or not layers:
            raise ValueError(f"layers: expected a non-empty list of module names, got {layers!r}")
        if distance not in FMA_DISTANCES:
            raise ValueError(f"distance: expected one of {list(FMA_DISTANCES)}, got {distance!r}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ValueError(f"weight: expected a number >= 0, got {weight!r}")
        self.model = model
        self.layers = list(layers)
        self.distance = distance
        self.weight = float(weight)
        self.detach_clean = bool(detach_clean)
        self._modules = self._resolve(unwrap_model(model), self.layers)

    @staticmethod
    def _resolve(root: torch.nn.Module, layers: Sequence[str]) -> list[torch.nn.Module]:
        named = dict(root.named_modules())
        out = []
        for name in layers:
            if not isinstance(name, str) or name not in named or name == "":
                names = [n for n in named if n]
                close = difflib.get_close_matches(str(name), names, n=5, cutoff=0.5)
                hint = f"closest: {close}" if close else f"e.g. {names[:8]}"
                raise ValueError(f"layers: unknown layer {name!r} in {type(root).__name__} "
                                 f"(names are the model's named_modules()); {hint}")
            out.append(named[name])
        return out

    def _hook(self, store: list[torch.Tensor], name: str) -> Callable[..., None]:
        def hook(module: torch.nn.Module, inputs: Any, output: Any) -> None:
            t = _first_tensor(output)
            if t is None:
                raise TypeError(f"layers: {name!r} returns {type(output).__name__}, not a tensor")
            store.append(t.clone())

        return hook

    def __call__(self, x_clean: torch.Tensor, x_distorted: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if x_clean.shape != x_distorted.shape:
            raise ValueError(f"x_clean {tuple(x_clean.shape)} and x_distorted {tuple(x_distorted.shape)}: "
                             "expected the same shape")
        n = x_clean.shape[0]
        stores: list[list[torch.Tensor]] = [[] for _ in self._modules]
        handles = [m.register_forward_hook(self._hook(s, name))
                   for m, s, name in zip(self._modules, stores, self.layers)]
        try:
            out = self.model(torch.cat([x_clean, x_distorted]))
        finally:
            for h in handles:
                h.remove()
        logits = _first_tensor(out)
        if logits is None:
            raise TypeError(f"model returns {type(out).__name__}, not a tensor")
        terms = []
        for name, store in zip(self.layers, stores):
            if not store:
                raise ValueError(f"layers: {name!r} did not run in the forward pass")
            for f in store:
                if f.shape[0] != 2 * n:
                    raise ValueError(f"layers: {name!r} output has batch size {f.shape[0]}, expected {2 * n} "
                                     "(clean and distorted halves)")
                clean = f[:n].detach() if self.detach_clean else f[:n]
                terms.append(feature_distance(clean, f[n:], self.distance))
        loss = torch.stack(terms).sum() * self.weight
        return loss, logits[:n], logits[n:]

    def __repr__(self) -> str:
        return f"FMALoss(layers={self.layers}, distance={self.distance!r}, weight={self.weight})"
