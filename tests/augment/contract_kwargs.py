"""Keyword arguments the shared contract test builds each core with (test fixtures, not production code).

``CONTRACT_KWARGS`` maps a registry name to a factory of keyword arguments; cores missing here are built
with their defaults. A core whose constructor needs data (a tensor, a network) must have an entry:
``test_registry_complete.py`` fails otherwise.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch


@functools.lru_cache(maxsize=None)
def _tiny_autoencoder() -> torch.nn.Module:
    """A tiny randomly initialised blur autoencoder, built once with its own seed (the global RNG is
    left alone)."""
    from medrobust.models.blur_autoencoder import BlurAutoencoder

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return BlurAutoencoder(in_channels=1, widths=(4, 8))


def _latent_blur() -> dict[str, Any]:
    return {"model": _tiny_autoencoder(), "reference_sigma": 1.5}


def _dfmx() -> dict[str, Any]:
    from medrobust.augment.dfm import example_dfms

    return {"dfms": example_dfms(10, 32)}


def _combined() -> dict[str, Any]:
    # natural corruptions (per-sample severities) and a non-corruption core, on the 24x24 contract batch
    return {"members": ["natural_gaussian_noise", "natural_contrast", {"name": "randconv", "kernel_sizes": [3]}],
            "defaults": {"table": "cifar"}}


CONTRACT_KWARGS: dict[str, Callable[[], dict[str, Any]]] = {
    "latent_blur": _latent_blur,
    "dfmx": _dfmx,
    "combined": _combined,
}


def contract_kwargs(name: str) -> dict[str, Any]:
    """The contract keyword arguments of registry core ``name`` (a fresh dict; empty for defaults)."""
    factory = CONTRACT_KWARGS.get(name)
    return dict(factory()) if factory is not None else {}
