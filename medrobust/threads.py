"""The CPU thread settings medrobust relies on, and a record of them for benchmarks."""

from __future__ import annotations

import os
import sys

__all__ = ["omp_wait_policy"]


def omp_wait_policy() -> str:
    """The OpenMP wait policy torch's CPU threads use in this process.

    ``"passive (medrobust)"`` when medrobust set it before torch was imported (see
    :mod:`medrobust`), ``"<value> (environment)"`` when the environment set ``OMP_WAIT_POLICY`` or
    ``GOMP_SPINCOUNT``, ``"default (torch imported first)"`` when torch was loaded before medrobust
    could set it (the OpenMP runtime's spinning default is then in force).
    """
    marker = os.environ.get("_MEDROBUST_SET_OMP_WAIT_POLICY")
    if marker == "1":
        return "passive (medrobust)"
    if marker == "late":
        return "default (torch imported first)"
    for var in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        if var in os.environ:
            return f"{var}={os.environ[var]} (environment)"
    return "default (torch imported first)" if "torch" in sys.modules else "default"
