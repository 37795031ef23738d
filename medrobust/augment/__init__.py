"""Shared augmentation cores: batched tensor code for CPU and CUDA.

Public API: :class:`BatchAugment`, :class:`RandConv`, :class:`GIN`, :class:`IPA`, :func:`build`.
"""

from .base import BatchAugment, check_input, select_params
from .registry import REGISTRY, Compose, available, build, register

__all__ = ["BatchAugment", "check_input", "select_params", "REGISTRY", "Compose", "available", "build", "register"]

from .gin import GIN, IPA  # noqa: E402  (registers the cores)
from .randconv import RandConv  # noqa: E402

__all__ += ["GIN", "IPA", "RandConv"]
from .corruptions import mri  # noqa: E402,F401  (registers the mri_* corruption cores)
from .fourier import AmplitudeMix, BandFilter, FourierBasisNoise  # noqa: E402

__all__ += ["AmplitudeMix", "BandFilter", "FourierBasisNoise"]
from .dfm import DFMX  # noqa: E402

__all__ += ["DFMX"]
from .augmix import AugMix  # noqa: E402

__all__ += ["AugMix"]
from .corruptions import natural  # noqa: E402,F401  (registers the natural_* corruption cores)
from .corruptions.natural import corrupt, corruption_names  # noqa: E402

__all__ += ["corrupt", "corruption_names"]
from .blur import DefocusBlur, LatentBlur  # noqa: E402,F401  (registers defocus_psf, latent_blur)
