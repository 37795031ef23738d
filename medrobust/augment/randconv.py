"""RandConv: random convolutions as a data augmentation (Xu et al., ICLR 2021).

A dense ``C -> C`` convolution with freshly drawn weights (stride 1, 'same' padding) is applied to
each image. Differences from the released code (wildphoton/RandConv), by design:

* kernel size, weights, bias, the mixing weight ``alpha`` and the identity coin are drawn **per
  sample** (the original shares them across the batch; ``per_sample=False`` reproduces that);
* any channel count, 2D images and 3D volumes, any device; one grouped convolution per kernel size
  present in the batch (no Python loop over samples).

Weight distributions (``fan_in = C_in * k**d``, ``fan_out = C_out * k**d``, gain 1):

=======================  ================================================================
``kaiming_normal``       ``N(0, 1/fan_in)`` — std 0.577, 0.192, 0.115, 0.082 for k = 1, 3, 5, 7, C = 3
``kaiming_uniform``      ``U(-sqrt(3/fan_in), sqrt(3/fan_in))``
``kaiming_normal_clamp`` ``N(0, 1/fan_in)`` clamped to ``±2·std``
``xavier_normal``        ``N(0, 2/(fan_in + fan_out))``
=======================  ================================================================

Optional bias ``U(±1/sqrt(fan_in))``. Order of operations: convolution → ``output="norm"`` rescaling →
mixing ``y = alpha·conv(x) + (1 − alpha)·x`` with ``alpha ~ U(0, 1)`` (when ``mixing``) →
``output="clamp"`` clamping to ``value_range``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch

from .base import BatchAugment, Params, choice, per_sample_view, rand, randn, to_device
from .functional.conv import grouped_conv
from .registry import register

__all__ = ["RandConv", "DISTRIBUTIONS"]

DISTRIBUTIONS = ("kaiming_normal", "kaiming_uniform", "kaiming_normal_clamp", "xavier_normal")
OUTPUTS = ("clamp", "norm", "none")


def sample_conv_weights(
    n: int,
    c_out: int,
    c_in: int,
    k: int,
    dims: int,
    distribution: str,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Draw ``n`` weight tensors ``(n, c_out, c_in, k, ..., k)`` from ``distribution`` (gain 1)."""
    shape = (n, c_out, c_in, *([k] * dims))
    fan_in = c_in * k**dims
    fan_out = c_out * k**dims
    if distribution == "kaiming_normal":
        return randn(*shape, generator=generator) / math.sqrt(fan_in)
    if distribution == "kaiming_normal_clamp":
        std = 1.0 / math.sqrt(fan_in)
        return (randn(*shape, generator=generator) * std).clamp_(-2 * std, 2 * std)
    if distribution == "kaiming_uniform":
        bound = math.sqrt(3.0 / fan_in)
        return (rand(*shape, generator=generator) * 2 - 1) * bound
    if distribution == "xavier_normal":
        return randn(*shape, generator=generator) * math.sqrt(2.0 / (fan_in + fan_out))
    raise ValueError(f"distribution: expected one of {DISTRIBUTIONS}, got {distribution!r}")


def _pad_kernel(w: torch.Tensor, kmax: int, dims: int) -> torch.Tensor:
    """Zero-pad the trailing ``dims`` kernel dims of ``w`` to ``kmax`` (centred)."""
    pad = (kmax - w.shape[-1]) // 2
    return torch.nn.functional.pad(w, [pad, pad] * dims) if pad else w


def _crop_kernel(w: torch.Tensor, k: int, dims: int) -> torch.Tensor:
    """Inverse of :func:`_pad_kernel`: the centred ``k``-sized window of the kernel dims."""
    start = (w.shape[-1] - k) // 2
    index = (slice(None),) * (w.ndim - dims) + (slice(start, start + k),) * dims
    return w[index]


@register("randconv")
class RandConv(BatchAugment):
    """Random convolution augmentation, per sample, 2D and 3D.

    Args:
        kernel_sizes: odd kernel sizes to draw from uniformly (original scripts: 1, 3, 5, 7).
        mixing: RC_mix, ``y = alpha·conv(x) + (1 − alpha)·x`` with ``alpha ~ U(0, 1)`` per sample.
        p: probability per sample of being augmented (RC_img with p: the rest pass unchanged).
        distribution: weight initialisation, one of :data:`DISTRIBUTIONS`.
        rand_bias: add a random bias ``U(±1/sqrt(fan_in))`` per output channel.
        output: ``"clamp"`` to ``value_range`` (default), ``"norm"`` per-sample min-max rescaling of
            the convolution output to ``value_range`` (all channels jointly, before mixing),
            ``"none"`` unbounded.
        per_sample: draw one kernel size/weights/alpha/coin per sample (True) or share one draw across
            the batch as the original code does (False).
        value_range: the valid pixel range of the inputs.

    Input ``(N, C, H, W)`` or ``(N, C, D, H, W)`` float; output the same shape, dtype and device.
    """

    def __init__(
        self,
        kernel_sizes: Sequence[int] | int = (1, 3, 5, 7),
        mixing: bool = False,
        p: float = 1.0,
        distribution: Literal["kaiming_normal", "kaiming_uniform", "kaiming_normal_clamp", "xavier_normal"] = "kaiming_normal",
        rand_bias: bool = False,
        output: Literal["clamp", "norm", "none"] = "clamp",
        per_sample: bool = True,
        value_range: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        super().__init__(p=p)
        sizes = (kernel_sizes,) if isinstance(kernel_sizes, int) else tuple(kernel_sizes)
        if not sizes or any(not isinstance(k, int) or isinstance(k, bool) or k < 1 or k % 2 == 0 for k in sizes):
            raise ValueError(f"kernel_sizes: expected positive odd integers, got {kernel_sizes!r}")
        if distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution: expected one of {DISTRIBUTIONS}, got {distribution!r}")
        if output not in OUTPUTS:
            raise ValueError(f"output: expected one of {OUTPUTS}, got {output!r}")
        lo, hi = (float(v) for v in value_range)
        if not lo < hi:
            raise ValueError(f"value_range: expected (low, high) with low < high, got {value_range!r}")
        self.kernel_sizes = sizes
        self.mixing = bool(mixing)
        self.distribution = distribution
        self.rand_bias = bool(rand_bias)
        self.output = output
        self.per_sample = bool(per_sample)
        self.value_range = (lo, hi)

    def extra_repr(self) -> str:
        return (
            f"kernel_sizes={self.kernel_sizes}, mixing={self.mixing}, p={self.p}, distribution={self.distribution!r}, "
            f"rand_bias={self.rand_bias}, output={self.output!r}, per_sample={self.per_sample}"
        )

    # -- sampling ---------------------------------------------------------------------------------
    def _sample(self, x: torch.Tensor, generator: torch.Generator | None) -> Params:
        n, c = x.shape[:2]
        dims = x.ndim - 2
        draws = n if self.per_sample else 1
        kmax = max(self.kernel_sizes)
        ksize = choice(self.kernel_sizes, draws, generator=generator)
        # one weight tensor per sample, padded into the largest kernel so params stack; the
        # zero border is cropped again in apply(), so the padding never costs compute
        weight = torch.zeros(draws, c, c, *([kmax] * dims))
        for k in sorted(set(ksize.tolist())):  # loop over kernel sizes, not samples
            idx = (ksize == k).nonzero().flatten()
            w = sample_conv_weights(len(idx), c, c, k, dims, self.distribution, generator)
            weight[idx] = _pad_kernel(w.cpu(), kmax, dims)
        params: Params = {"ksize": ksize, "weight": weight}
        if self.rand_bias:
            fan_in = (c * ksize.double() ** dims).float()
            params["bias"] = (rand(draws, c, generator=generator).cpu() * 2 - 1) / fan_in.sqrt().unsqueeze(1)
        if self.mixing:
            params["alpha"] = rand(draws, generator=generator).cpu()
        if not self.per_sample:  # share the single draw across the batch
            params = {k: v.expand(n, *v.shape[1:]) for k, v in params.items()}
        # the kernel sizes are metadata read on the host (which sizes are present): they stay there;
        # the tensors go to the device without waiting for it
        return {k: v if k == "ksize" else to_device(v, x.device) for k, v in params.items()}

    def _sample_apply_mask(self, n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
        if self.per_sample:
            return super()._sample_apply_mask(n, generator, device)
        return (rand(1, generator=generator, device=device) < self.p).expand(n)

    # -- application ------------------------------------------------------------------------------
    def convolve(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        """The raw random convolution of ``x`` (before norm/mixing/clamp)."""
        n, c = x.shape[:2]
        dims = x.ndim - 2
        weight, ksize, bias = params["weight"], params["ksize"], params.get("bias")
        if weight.shape[:3] != (n, c, c):
            raise ValueError(f"params['weight']: expected leading shape ({n}, {c}, {c}), got {tuple(weight.shape)}")
        sizes = sorted(set(ksize.tolist()))  # host tensor from _sample: no device sync
        # batch-shared draws (per_sample=False) use the same grouped kernel with identical weights:
        # measured on CPU it is faster than one dense conv over a 1- or 3-channel batch (docs/benchmarks.md)
        if len(sizes) == 1:
            return grouped_conv(x, _crop_kernel(weight, sizes[0], dims), bias)
        if x.device.type != "cpu":
            # on an accelerator one conv with every kernel zero-padded to the largest size beats a
            # conv per size: the per-size subsets change the batch shape (re-tuning cuDNN each time)
            # and cost a device sync each; on the CPU the zero taps would cost real compute
            return grouped_conv(x, weight, bias)
        out = torch.empty_like(x)
        for k in sizes:  # one grouped convolution per kernel size present
            idx = (ksize.cpu() == k).nonzero().flatten()
            b = bias[idx] if bias is not None else None
            out[idx] = grouped_conv(x[idx], _crop_kernel(weight[idx], k, dims), b)
        return out

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        y = self.convolve(x, params)
        lo, hi = self.value_range
        if self.output == "norm":
            flat = y.reshape(y.shape[0], -1)
            mn = per_sample_view(flat.amin(1), y.ndim)
            mx = per_sample_view(flat.amax(1), y.ndim)
            y = (y - mn) / (mx - mn).clamp_min(1e-8) * (hi - lo) + lo
        if self.mixing:
            alpha = per_sample_view(params["alpha"].to(x.dtype), x.ndim)
            y = torch.lerp(x, y, alpha)  # alpha·y + (1 − alpha)·x
        out = torch.empty_like(x, memory_format=torch.contiguous_format)
        if self.output == "clamp":
            return torch.clamp(y, lo, hi, out=out)  # layout change fused with the clamp
        return out.copy_(y)
