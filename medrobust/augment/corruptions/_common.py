"""Helpers shared by the MRI and natural-image corruption cores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from ..base import BatchAugment, Params, rand

__all__ = ["SeverityCore", "parse_severity", "lookup", "draw_severity", "severity_argument", "corrupt_with"]


def parse_severity(severity: Any) -> tuple[int, int]:
    """``int`` -> fixed ``(s, s)``; ``(low, high)`` -> inclusive random range; both within 1..5.

    Raises ``ValueError`` naming the argument otherwise (bools and floats are rejected).
    """

    def ok(v: Any) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 1 <= v <= 5

    if ok(severity):
        return int(severity), int(severity)
    if isinstance(severity, Sequence) and not isinstance(severity, str) and len(severity) == 2:
        low, high = severity
        if ok(low) and ok(high) and low <= high:
            return int(low), int(high)
    raise ValueError(
        "severity: expected an int in 1..5 or a (low, high) pair with 1 <= low <= high <= 5, "
        f"got {severity!r}"
    )


def lookup(name: Any, table: dict[str, Any], prefix: str, what: str) -> Any:
    """``table[name]`` for a corruption name, case-insensitive, with or without its registry
    ``prefix`` (``"mri_"``, ``"natural_"``); ``ValueError`` listing the names otherwise."""
    key = name.lower() if isinstance(name, str) else name
    if isinstance(key, str) and key.startswith(prefix):
        key = key[len(prefix):]
    if key not in table:
        raise ValueError(f"unknown {what} {name!r}; choose one of {list(table)}")
    return table[key]


def draw_severity(n: int, severity: tuple[int, int], generator: torch.Generator | None,
                  device: torch.device) -> torch.Tensor:
    """``(n,)`` int64 severities uniform in the inclusive ``severity = (low, high)``, from one
    uniform per sample whatever the range, so the draws after it do not depend on the severity."""
    low, high = severity
    u = rand(n, generator=generator, device=device)
    return (low + torch.floor(u * (high - low + 1))).long().clamp_(low, high)


def severity_argument(severity: Any, n: int) -> int | torch.Tensor:
    """The ``severity`` argument of ``corrupt``/``corrupt_mri``: an int 1..5 (a 0-d tensor counts),
    or an integer tensor of shape ``(n,)`` with values in 1..5 (returned as is). ``TypeError`` /
    ``ValueError`` naming ``severity`` otherwise."""
    if isinstance(severity, torch.Tensor) and severity.ndim == 0:
        severity = severity.item()
    if isinstance(severity, torch.Tensor):
        if severity.dtype == torch.bool or severity.is_floating_point() or severity.is_complex():
            raise TypeError(f"severity: expected an integer tensor, got dtype {severity.dtype}")
        if tuple(severity.shape) != (n,):
            raise ValueError(f"severity: expected shape ({n},) (one per sample), got {tuple(severity.shape)}")
        if bool(((severity < 1) | (severity > 5)).any()):
            raise ValueError(f"severity: values must be in 1..5, got {severity.tolist()}")
        return severity
    if isinstance(severity, (bool, float)) or not hasattr(severity, "__index__"):
        raise TypeError(f"severity: expected an int 1..5 or an int tensor of shape ({n},), got {severity!r}")
    sev = int(severity.__index__())
    if not 1 <= sev <= 5:
        raise ValueError(f"severity: expected an int in 1..5, got {sev}")
    return sev


class SeverityCore(BatchAugment, abstract=True):
    """Base of the MRI and natural-image corruption cores: a severity, an int 1..5 (fixed) or an
    inclusive ``(low, high)`` pair drawn per sample, and random draws that never depend on it.

    Params always hold ``severity`` (``(N,)`` int64); subclasses add their draws in
    ``_sample_extra``.
    """

    #: keep the severities on the host (drawn, checked and returned there): cores that only group
    #: by them and look their parameters up on the host then never wait for the device
    severity_on_host: ClassVar[bool] = False

    def __init__(self, *, severity: int | tuple[int, int] = (1, 5), p: float = 1.0) -> None:
        super().__init__(p=p)
        self.severity = parse_severity(severity)

    def _sample(self, x: torch.Tensor, generator: torch.Generator | None) -> Params:
        device = None if self.severity_on_host else x.device  # None: where the generator draws
        params: Params = {"severity": draw_severity(x.shape[0], self.severity, generator, device)}
        params.update(self._sample_extra(x, generator))
        return params

    def _sample_extra(self, x: torch.Tensor, generator: torch.Generator | None) -> Params:
        return {}

    def severities(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """``params['severity']`` as ``(N,)`` int64, checked (shape, values 1..5): on ``x``'s device,
        or on the host for :attr:`severity_on_host` cores (a device tensor is copied once)."""
        sev = (params["severity"].cpu() if self.severity_on_host else params["severity"].to(x.device)).long()
        if sev.shape != (x.shape[0],):
            raise ValueError(f"params['severity']: expected shape ({x.shape[0]},), got {tuple(sev.shape)}")
        if bool(((sev < 1) | (sev > 5)).any()):
            raise ValueError(f"params['severity']: values must be in 1..5, got {sev.tolist()}")
        return sev


def corrupt_with(core: Any, x: Any, severity: Any, generator: torch.Generator | None, *,
                 validate: bool = True) -> torch.Tensor:
    """The body of ``corrupt``/``corrupt_mri``: validate ``x`` with ``core`` (once), draw its
    parameters, set the severity (one int or one per sample) and apply. The severity replaces the
    drawn one, which consumes the same random draws whatever the value, so an int ``s`` gives the
    same result as a core built with ``severity=s``.

    A uint8 batch goes through ``core.apply_uint8`` (cores that have it) and comes back as uint8;
    it needs no value check. ``validate=False`` keeps only the layout checks (``core.check_layout``)
    and skips the pass over the values and its host sync, for hot loops over a batch the caller
    validated once.
    """
    uint8 = isinstance(x, torch.Tensor) and x.dtype == torch.uint8 and hasattr(core, "apply_uint8")
    integer = isinstance(x, torch.Tensor) and not torch.is_floating_point(x)
    if hasattr(core, "check_layout") and (integer or not validate):
        x = core.check_layout(x)  # uint8 passes; other integer dtypes get its one-line TypeError
    else:
        x = core.check(x)
    sev = severity_argument(severity, x.shape[0])
    params = core._sample_checked(x, generator)
    drawn = params["severity"]
    params["severity"] = (sev.to(device=drawn.device, dtype=torch.long) if isinstance(sev, torch.Tensor)
                          else torch.full_like(drawn, sev))
    return core.apply_uint8(x, params) if uint8 else core._apply_checked(x, params)
