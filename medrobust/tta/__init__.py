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

__all__ = ["DynTTA", "op_names", "OPS", "Op", "get_op", "FFT_RADII", "fft_masks", "fft_blend", "straight_through",
           "PREDICTORS", "START_LOGIT_OFF", "SmallPredictor", "ResidualUNet", "build_predictor", "Enhanced",
           "RandomCorruption", "freeze", "load_enhancer", "enhancer_from_section"]
