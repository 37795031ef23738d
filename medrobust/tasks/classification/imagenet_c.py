"""Published ImageNet-C reference errors (AlexNet) that normalise the corruption error CE / mCE.

One copy, shared with ``medrobust benchmark``: :mod:`medrobust.evaluate.benchmark` holds the table."""

from __future__ import annotations

from ...evaluate.benchmark import ALEXNET_CLEAN_ERROR, ALEXNET_ERRORS

__all__ = ["ALEXNET_ERRORS", "ALEXNET_CLEAN_ERROR"]
