"""Fourier-domain cores: AFA's planar-wave noise, amplitude-spectrum mixing and band filters.

``FourierBasisNoise`` follows AFA (Vaish, Wang, Strisciuglio, CVPR 2024; nis-research/afa-augment):

* basis ``B(u, v) = sin(2π (f/S) (u·cos θ + v·sin θ) − π/4)`` on the grid ``u, v ∈ linspace(−S/2, S/2, S)``
  (``indexing="ij"``: ``u`` runs down the rows), normalised to unit L2 norm and multiplied by ``S/32``,
  so the per-pixel RMS of a unit-strength wave is 1/32 at any size;
* per image **and channel**: frequency ``f`` uniform in ``1..S`` cycles per image (values above S/2
  alias, as in the original; ``max_frequency`` caps it), orientation ``θ`` from 448 evenly spaced
  values in [−π, 0], strength ``s = min_strength + Exponential(mean_strength)``;
* ``x' = clamp(x + s·B, 0, 1)``.

Non-square images use ``f/H`` along rows and ``f/W`` along columns (cycles per image along each
axis) and the scale ``sqrt(H·W)/32``; 3D volumes use planar waves ``sin(2π f (d·r) − π/4)`` with a
direction ``d`` uniform on the sphere. The wave is built separably in 2D (two outer products, no
per-pixel ``sin``) with a closed-form norm; the original builds a ``(b, c, f, p, h, w)`` tensor of waves
and contracts it with einsum. ``strength`` is differentiable in ``apply`` (the AFA adversarial step
ascends on it, see :mod:`medrobust.train.afa`).
"""

from __future__ import annotations

import math

import torch

from .base import BatchAugment, Params, as_range, per_sample_view, rand, randint, randn
from .functional.fft import box_mask, masked_rfftn, radial_frequency, rfft_half
from .registry import register

__all__ = ["planar_wave", "FourierBasisNoise", "AmplitudeMix", "BandFilter", "N_ORIENTATIONS", "radial_frequency"]

#: number of evenly spaced orientations in [−π, 0] (the original's granularity)
N_ORIENTATIONS = 448


def _grid(n: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.linspace(-n / 2, n / 2, n, device=device, dtype=dtype)


def planar_wave(size: int, frequency: float, orientation: float) -> torch.Tensor:
    """The unit-L2-norm planar wave ``(size, size)`` before strength and size/32 scaling.

    Args:
        size: image side ``S``.
        frequency: cycles per image (divided by ``size`` inside).
        orientation: ``θ`` in radians.
    Returns:
        ``sin(2π (f/S)(u cos θ + v sin θ) − π/4)`` on ``u, v = linspace(−S/2, S/2, S)`` (ij
        indexing), divided by its L2 norm; float32.
    """
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size: expected a positive int, got {size!r}")
    u, v = torch.meshgrid(_grid(size, dtype=torch.float64), _grid(size, dtype=torch.float64), indexing="ij")
    w = torch.sin(2 * math.pi * (frequency / size) * (u * math.cos(orientation) + v * math.sin(orientation)) - math.pi / 4)
    return (w / w.norm()).float()


@register("fourier_basis_noise")
class FourierBasisNoise(BatchAugment):
    """AFA's additive planar-wave noise, per sample and channel, 2D and 3D.

    Args:
        min_strength: ``s = min_strength + Exponential(mean_strength)``.
        mean_strength: mean of the exponential part (README examples: 10; class default in the
            original: 5).
        max_frequency: cap on ``f`` (default: the image size, the original's range).
        n_orientations: number of evenly spaced orientations in [−π, 0] (2D).
        clamp: clamp the output to [0, 1].
        p: probability per sample of being augmented.
    """

    def __init__(
        self,
        min_strength: float = 0.0,
        mean_strength: float = 10.0,
        max_frequency: int | None = None,
        n_orientations: int = N_ORIENTATIONS,
        clamp: bool = True,
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        if min_strength < 0 or mean_strength <= 0:
            raise ValueError(f"min_strength >= 0 and mean_strength > 0 expected, got {min_strength}, {mean_strength}")
        if max_frequency is not None and (not isinstance(max_frequency, int) or max_frequency < 1):
            raise ValueError(f"max_frequency: expected a positive int or None, got {max_frequency!r}")
        if not isinstance(n_orientations, int) or n_orientations < 1:
            raise ValueError(f"n_orientations: expected a positive int, got {n_orientations!r}")
        self.min_strength = float(min_strength)
        self.mean_strength = float(mean_strength)
        self.max_frequency = max_frequency
        self.n_orientations = n_orientations
        self.clamp = bool(clamp)
        self.keeps_range = self.clamp  # type: ignore[misc]

    def _sample(self, x: torch.Tensor, generator: torch.Generator | None) -> Params:
        n, c = x.shape[:2]
        size = max(x.shape[2:])
        fmax = min(self.max_frequency or size, size)
        freq = randint(1, fmax + 1, (n, c), generator=generator, device=x.device).float()
        # strength: inverse-CDF exponential, drawn on the generator
        u = rand(n, c, generator=generator, device=x.device).clamp_min(1e-12)
        strength = self.min_strength - self.mean_strength * torch.log(u)
        params: Params = {"frequency": freq, "strength": strength}
        if x.ndim == 4:
            idx = randint(0, self.n_orientations, (n, c), generator=generator, device=x.device)
            params["orientation"] = -math.pi * idx.float() / max(1, self.n_orientations - 1)
        else:
            d = randn(n, c, 3, generator=generator, device=x.device)
            params["direction"] = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return params

    def waves(self, x: torch.Tensor, params: Params, direct: bool | None = None) -> torch.Tensor:
        """Unit-norm waves times ``sqrt(prod(S))/32``, shape of ``x`` (no strength).

        2D: on the CPU (``direct`` None or False) ``sin(a_i + b_j)`` is expanded into 1D factors and
        the norm comes in closed form from 1D sums (no full-size ``sin``); on accelerators (or
        ``direct=True``) the full-size ``sin`` and norm are computed directly (fewer kernels).
        """
        freq = params["frequency"].to(x.dtype)
        spatial = x.shape[2:]
        scale = math.sqrt(math.prod(spatial)) / 32
        if x.ndim == 4:
            h, w = spatial
            theta = params["orientation"].to(x.dtype)
            a = (2 * math.pi * freq / h * torch.cos(theta))[..., None] * _grid(h, x.device, x.dtype)  # (N, C, H)
            b = (2 * math.pi * freq / w * torch.sin(theta))[..., None] * _grid(w, x.device, x.dtype) - math.pi / 4
            use_direct = x.device.type != "cpu" if direct is None else direct
            if use_direct:
                # accelerators: one full-size sin and a norm (~10 kernels instead of ~35 small ones;
                # the launch count, not the arithmetic, sets the time there)
                wave = torch.sin(a[..., :, None] + b[..., None, :])
                norm = torch.linalg.vector_norm(wave, dim=(-2, -1)).clamp_min_(1e-12)
                return wave.mul_((scale / norm)[..., None, None])
            sa, ca, sb, cb = a.sin(), a.cos(), b.sin(), b.cos()
            # sin(a + b) = sin a cos b + cos a sin b; ||·||² in closed form from 1D sums
            norm2 = (sa.square().sum(-1) * cb.square().sum(-1) + ca.square().sum(-1) * sb.square().sum(-1)
                     + 2 * (sa * ca).sum(-1) * (cb * sb).sum(-1))
            k = (scale / norm2.clamp_min(1e-12).sqrt())[..., None, None]
            return k * (sa[..., :, None] * cb[..., None, :] + ca[..., :, None] * sb[..., None, :])
        d = params["direction"].to(x.dtype)
        phase = -math.pi / 4
        total = None
        for axis, size in enumerate(spatial):
            shape = [1] * 3
            shape[axis] = size
            term = (2 * math.pi * freq / size * d[..., axis])[..., None, None, None] * _grid(size, x.device, x.dtype).view(shape)
            total = term if total is None else total + term
        wave = torch.sin(total + phase)
        norm = wave.flatten(2).norm(dim=-1).clamp_min(1e-12)[..., None, None, None]
        return wave * (scale / norm)

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        s = params["strength"].to(x.dtype).view(*x.shape[:2], *([1] * (x.ndim - 2)))
        y = torch.addcmul(x, s, self.waves(x, params))
        return y.clamp_(0, 1) if self.clamp else y


@register("amplitude_mix")
class AmplitudeMix(BatchAugment):
    """Amplitude-spectrum mixing between samples of a batch (FDA / APR style).

    Each sample gets a partner from the same batch (a random permutation); its amplitude spectrum in
    the low-frequency square of half-width ``beta·min(S)/2`` around DC (``beta = 1``: the whole
    spectrum, APR-S's amplitude swap) is blended with the partner's, ``(1 − λ)·A_x + λ·A_partner`` with
    ``λ ~ U(lam_range)``, while the phase is kept. Output clamped to [0, 1].

    Because the output depends on another sample, this core mixes samples (``mixes_samples``).
    """

    mixes_samples = True

    def __init__(self, beta: float = 0.1, lam_range: float | tuple[float, float] = (0.0, 1.0), p: float = 1.0) -> None:
        super().__init__(p=p)
        if not 0 < beta <= 1:
            raise ValueError(f"beta: expected 0 < beta <= 1, got {beta!r}")
        self.beta = float(beta)
        self.lam_range = as_range(lam_range, "lam_range")
        if not 0 <= self.lam_range[0] <= self.lam_range[1] <= 1:
            raise ValueError(f"lam_range: expected values in [0, 1], got {lam_range!r}")

    def _sample(self, x: torch.Tensor, generator: torch.Generator | None) -> Params:
        n = x.shape[0]
        perm = torch.randperm(n, generator=generator, device=generator.device if generator is not None else "cpu")
        lo, hi = self.lam_range
        return {"partner": perm.to(x.device), "lam": lo + (hi - lo) * rand(n, generator=generator, device=x.device)}

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        dims = tuple(range(2, x.ndim))
        size = x.shape[2:]
        spec = torch.fft.rfftn(x.float(), dim=dims)  # real input: half spectrum
        amp = spec.abs()
        box = box_mask(size, self.beta / 2, rfft=True, device=x.device)  # low-frequency box around DC
        lam = per_sample_view(params["lam"].float(), x.ndim) * box
        new_amp = torch.lerp(amp, amp[params["partner"]], lam)
        # same phase, new amplitude: scale each bin by new/old amplitude (no angle/polar round trip)
        mixed = spec * (new_amp / amp.clamp_min(1e-12))
        return torch.fft.irfftn(mixed, s=size, dim=dims).clamp(0, 1).to(x.dtype)


@register("band_filter")
class BandFilter(BatchAugment):
    """Random low-, high- or band-pass filtering in the Fourier domain, per sample.

    Keeps the bins whose normalised radial frequency (:func:`radial_frequency`, 0 = DC, 1 = Nyquist)
    lies in ``[low, high)``: ``mode="low"`` keeps ``[0, r)``, ``"high"`` keeps ``[r, ∞)`` plus DC (so
    the mean intensity survives), ``"band"`` keeps ``[r, r + width)`` plus DC, with ``r ~ U(radius_range)``
    per sample. Output clamped to [0, 1].
    """

    def __init__(self, mode: str = "low", radius_range: float | tuple[float, float] = (0.1, 0.5),
                 width: float = 0.2, p: float = 1.0) -> None:
        super().__init__(p=p)
        if mode not in ("low", "high", "band"):
            raise ValueError(f"mode: expected 'low', 'high' or 'band', got {mode!r}")
        self.mode = mode
        self.radius_range = as_range(radius_range, "radius_range")
        if self.radius_range[0] < 0:
            raise ValueError(f"radius_range: expected non-negative radii, got {radius_range!r}")
        self.width = float(width)

    def _sample(self, x: torch.Tensor, generator: torch.Generator | None) -> Params:
        lo, hi = self.radius_range
        return {"radius": lo + (hi - lo) * rand(x.shape[0], generator=generator, device=x.device)}

    def mask(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        """Boolean keep-mask ``(N, 1, *S)`` over the unshifted ``fftn`` bins."""
        r = radial_frequency(tuple(x.shape[2:]), x.device)[None, None]
        radius = per_sample_view(params["radius"].float(), x.ndim)
        dc = r == 0
        if self.mode == "low":
            return r < radius
        if self.mode == "high":
            return (r >= radius) | dc
        return ((r >= radius) & (r < radius + self.width)) | dc

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        half = rfft_half(self.mask(x, params), x.shape[-1])  # the mask is symmetric: rfft half suffices
        return masked_rfftn(x.float(), half, range(2, x.ndim)).clamp(0, 1).to(x.dtype)
