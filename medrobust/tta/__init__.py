"""Test-time methods: DynTTA, a learned per-image blend of differentiable enhancement ops in front of a
frozen model (:mod:`medrobust.tta.ops` the op bank, :mod:`medrobust.tta.dyntta` the module,
:mod:`medrobust.tta.train` the task-agnostic training pieces). Task set-up: :mod:`medrobust.tasks.tta`."""

from .dyntta import (
           PREDICTORS,
           START_LOGIT_OFF,
           DynTTA,
           ResidualUNet,
           SmallPredictor,
           build_predictor,
)
from .ops import (
           FFT_RADII,
           OPS,
           Op,
           fft_blend,
           fft_masks,
           get_op,
           op_names,
           straight_through,
)
from .train import (
           Enhanced,
           RandomCorruption,
           enhancer_from_section,
           freeze,
           load_enhancer,
)

__all__ = [
           "FFT_RADII",
           "OPS",
           "PREDICTORS",
           "START_LOGIT_OFF",
           "DynTTA",
           "Enhanced",
           "Op",
           "RandomCorruption",
           "ResidualUNet",
           "SmallPredictor",
           "build_predictor",
           "enhancer_from_section",
           "fft_blend",
           "fft_masks",
           "freeze",
           "get_op",
           "load_enhancer",
           "op_names",
           "straight_through",
]
