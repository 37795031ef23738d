"""Wrappers that put the registered cores into the pipelines users already have.

* :mod:`.monai` — a MONAI dictionary transform per core (``RandConvd``, ``GINd``, ``IPAd``, ...).
* :mod:`.albumentations` — an albumentations 2.x ``ImageOnlyTransform`` per core (``RandConv``, ...).

Both are generated from :data:`medrobust.augment.REGISTRY`, so a new core gets its wrappers without
code here. Import the submodule you need (each imports its framework). Layer 3: imports ``augment``
and ``io`` only.
"""

__all__ = ["albumentations", "monai"]
