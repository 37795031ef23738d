"""Offline corrupted-copy writers: a corrupted dataset written to disk once, read back by ``evaluate``.

* :mod:`.nifti` — :func:`corrupt_nifti`: any tree of NIfTI volumes (``--images GLOB``, ``--labels GLOB``)
  -> ``OUT/<corruption>/<severity>/<same tree>``, and the one volume implementation (header kept, float32,
  nothing clipped) that :mod:`.acdc` shares.
* :mod:`.acdc` — :func:`corrupt_acdc`: ACDC NIfTI folders -> ``OUT/<corruption>/<severity>/<same layout>``
  (the MRI corruption cores).
* :mod:`.cifar` — :func:`corrupt_cifar`: a CIFAR-10/100 test batch -> the public CIFAR-10-C layout
  ``OUT/<corruption>.npy`` + ``labels.npy`` (the natural-image corruption cores, CIFAR table).
* :mod:`.common` — what they share: :func:`parse_severities` / :func:`parse_corruptions`, the
  per-unit seed :func:`derive_seed`, the manifest with its resume / refusal rules, and running one
  core on a device with the random draws on the CPU (outputs do not depend on the device beyond
  floating-point rounding). Read its docstring for the protocol.

Layer: imports ``augment``, ``data`` and ``io`` only (never ``evaluate``, ``tasks``, ``bench``, ``cli``).
"""

from .acdc import corrupt_acdc
from .cifar import corrupt_cifar, find_test_batch
from .common import MANIFEST_NAME, derive_seed, parse_corruptions, parse_severities
from .nifti import corrupt_nifti

__all__ = ["MANIFEST_NAME", "corrupt_acdc", "corrupt_cifar", "corrupt_nifti", "derive_seed", "find_test_batch", "parse_corruptions",
           "parse_severities"]
