"""Shared augmentation cores: batched tensor code for CPU and CUDA.

Public API: :class:`BatchAugment`, the registered cores (:data:`REGISTRY`, :func:`build`,
:func:`validate`), :func:`corrupt` / :func:`corruption_names` (natural-image corruptions). The
package is pure: it imports torch, NumPy and SciPy only, reads no files and knows no task.

Every module that defines cores is imported below, so importing this package registers them all;
``tests/augment/test_registry_complete.py`` fails when a module (or a core) is left out.
"""

from .base import BatchAugment, check_input, select_params
from .registry import REGISTRY, Compose, available, build, refuse_geometric, register, validate

__all__ = ["BatchAugment", "check_input", "select_params", "REGISTRY", "Compose", "available", "build", "register",
           "validate", "refuse_geometric"]

# the modules that define (and so register) cores
from . import augmix, blur, combined, dfm, fourier, gin, randconv  # noqa: E402,F401
from .augmix import AugMix  # noqa: E402
from .blur import DefocusBlur, LatentBlur  # noqa: E402
from .combined import Combined  # noqa: E402
from .corruptions import mri, natural  # noqa: E402,F401
from .corruptions.natural import corrupt, corruption_names  # noqa: E402
from .dfm import DFMX  # noqa: E402
from .fourier import AmplitudeMix, BandFilter, FourierBasisNoise  # noqa: E402
from .gin import GIN, IPA  # noqa: E402
from .randconv import RandConv  # noqa: E402
from .slaug import SLAug  # noqa: E402  (registers slaug)

__all__ += ["AugMix", "Combined", "DefocusBlur", "LatentBlur", "corrupt", "corruption_names", "DFMX", "AmplitudeMix",
            "BandFilter", "FourierBasisNoise", "GIN", "IPA", "RandConv"]
__all__ += ["SLAug"]
