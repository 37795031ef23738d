"""Linear-latent defocus autoencoder (Mazilu, Wang et al., CAIP 2023; nis-research/linear-latent-blur).

Architecture (the original's, with configurable widths): an encoder of stride-2 blocks
``Conv 3×3 → norm → LeakyReLU`` (64, 128, 256, 512, 1024 channels in the paper: a spatial latent
1024×4×4 for a 128×128 crop), a mirrored decoder of ×2 up-sampling blocks ``up → norm → LeakyReLU``,
and a final ``up → norm → LeakyReLU → Conv 3×3 → sigmoid`` back to the input channels. The latent is
the encoder's last activation. The up-sampling (``decoder``):

* ``"transpose"`` — the original's ``ConvTranspose 3×3, stride 2``. Its kernel overlaps unevenly
  (2 taps on even, 1 on odd output pixels), so it paints a period-2 checkerboard (a spectral peak at
  0.5 cycles/px) that training only partly removes. Checkpoints without a ``decoder`` entry are this.
* ``"resize"`` (the default of new configs) — nearest ×2 resize then ``Conv 3×3``
  (resize-convolution, Odena et al., Distill 2016): every output pixel sees the same taps, no
  checkerboard by construction on flat inputs.
* ``"subpixel"`` — ``Conv 3×3`` to 4× channels then ``PixelShuffle(2)`` (Shi et al., 2016) with the
  ICNR initialisation (Aitken et al., 2017), which starts checkerboard-free.

Training makes the latent path between focal planes linear. For a focal stack with planes
``x_0`` (in focus) … ``x_{P−1}`` (most blurred) at blur positions ``t_0 = 0 < … < t_{P−1} = 1`` and a
triplet ``(a, b → k)`` with ``α = (t_k − t_a) / (t_b − t_a)``, all losses MSE:

* reconstruction: ``D(E(x_k)) ≈ x_k`` for every plane;
* explicit linearity: ``(1 − α)·E(x_a) + α·E(x_b) ≈ E(x_k)`` (latent space);
* implicit linearity: ``D((1 − α)·E(x_a) + α·E(x_b)) ≈ x_k`` (image space).

Triplet schemes: ``endpoints`` — ``(0, P−1 → k)`` for every intermediate plane (the latent of plane k on
the line between the sharp and the most-blurred latents, at ``t_k``); ``midpoints`` — the original's
recursive halving at ``α = 0.5`` (for 9 planes: (0, 8 → 4), (0, 4 → 2), (4, 8 → 6), (0, 2 → 1), ...,
the paper's z0/z16 → z8 scheme on even planes); ``all`` — every ``a < k < b``.

Synthesis: ``y(t) = D((1 − t)·E(sharp) + t·E(blurred))`` (the METHODS.md ``α`` is ``1 − t``);
deblurring a plane at position ``α`` by extrapolation: ``E(sharp) ≈ (E(x_k) − α·E(blurred)) / (1 − α)``,
i.e. ``t = −α / (1 − α)`` relative to ``(x_k, blurred)``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..augment.blur import (  # the pure latent maths lives in augment
    LatentBlur,
    pad_to_multiple,
    synthesize_blur,
)

__all__ = [
    "BlurAutoencoder",
    "BlurModel",
    "PAPER_WIDTHS",
    "TRIPLET_SCHEMES",
    "DECODERS",
    "plane_triplets",
    "triplet_alphas",
    "interpolate_latents",
    "explicit_linearity_loss",
    "implicit_linearity_loss",
    "blur_losses",
    "pad_to_multiple",
    "synthesize_blur",
    "deblur",
    "save_blur_model",
    "load_blur_model",
    "latent_blur_from_checkpoint",
    "MODEL_FORMAT",
]

#: channel widths of the original (5 stride-2 blocks, latent 1024×4×4 at 128×128)
PAPER_WIDTHS: tuple[int, ...] = (64, 128, 256, 512, 1024)
TRIPLET_SCHEMES: tuple[str, ...] = ("endpoints", "midpoints", "all")
#: up-sampling layers of the decoder (see the module docstring)
DECODERS: tuple[str, ...] = ("transpose", "resize", "subpixel")
MODEL_FORMAT = "medrobust.blur_autoencoder"


def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    if kind == "group":
        return nn.GroupNorm(min(8, ch), ch)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm: expected 'batch', 'group' or 'none', got {kind!r}")


def _icnr_(weight: torch.Tensor, scale: int = 2) -> None:
    """ICNR initialisation of a sub-pixel conv ``(out·s², in, k, k)``: the ``s²`` sub-filters of each
    output channel start equal, so the shuffled output is a nearest-neighbour up-sampling (no checkerboard)."""
    out = weight.shape[0] // (scale * scale)
    sub = torch.empty(out, *weight.shape[1:])
    nn.init.kaiming_normal_(sub, a=0.01)
    with torch.no_grad():
        weight.copy_(sub.repeat_interleave(scale * scale, dim=0))


def _up(kind: str, a: int, b: int) -> nn.Module:
    """×2 up-sampling from ``a`` to ``b`` channels (``kind`` in :data:`DECODERS`)."""
    if kind == "transpose":
        return nn.ConvTranspose2d(a, b, 3, stride=2, padding=1, output_padding=1)
    if kind == "resize":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(a, b, 3, padding=1))
    if kind == "subpixel":
        conv = nn.Conv2d(a, 4 * b, 3, padding=1)
        _icnr_(conv.weight)
        nn.init.zeros_(conv.bias)
        return nn.Sequential(conv, nn.PixelShuffle(2))
    raise ValueError(f"decoder: expected one of {DECODERS}, got {kind!r}")


class BlurAutoencoder(nn.Module):
    """Plain convolutional autoencoder with a spatial latent (no skip connections).

    Args:
        in_channels: image channels (1 for grey; RGB data is usually processed channel by channel).
        widths: encoder widths, one stride-2 block each (``len(widths)`` halvings; inputs must be
            divisible by ``2**len(widths)`` — :func:`pad_to_multiple` handles other sizes).
        norm: ``"batch"`` (the original), ``"group"`` or ``"none"``.
        decoder: ``"transpose"`` (the original's transposed convolutions), ``"resize"``
            (resize-convolution) or ``"subpixel"`` (pixel shuffle, ICNR-initialised); see the module docstring.
    """

    def __init__(self, in_channels: int = 1, widths: Sequence[int] = PAPER_WIDTHS, norm: str = "batch",
                 decoder: str = "transpose") -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if not widths or any(w < 1 for w in widths):
            raise ValueError(f"widths: expected one or more positive channel counts, got {list(widths)}")
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels: expected a positive int, got {in_channels!r}")
        _norm(norm, widths[0])  # validates
        if decoder not in DECODERS:
            raise ValueError(f"decoder: expected one of {DECODERS}, got {decoder!r}")
        self.in_channels, self.widths, self.norm, self.decoder_kind = in_channels, widths, norm, decoder
        enc: list[nn.Module] = []
        ch = in_channels
        for w in widths:
            enc.append(nn.Sequential(nn.Conv2d(ch, w, 3, stride=2, padding=1), _norm(norm, w), nn.LeakyReLU()))
            ch = w
        self.encoder = nn.Sequential(*enc)
        rev = widths[::-1]
        dec: list[nn.Module] = []
        for a, b in zip(rev[:-1], rev[1:]):
            dec.append(nn.Sequential(_up(decoder, a, b), _norm(norm, b), nn.LeakyReLU()))
        self.decoder = nn.Sequential(*dec)
        self.final_layer = nn.Sequential(
            _up(decoder, widths[0], widths[0]), _norm(norm, widths[0]),
            nn.LeakyReLU(), nn.Conv2d(widths[0], in_channels, 3, padding=1), nn.Sigmoid())

    @property
    def factor(self) -> int:
        """Input sides must be multiples of this (``2**depth``)."""
        return 2 ** len(self.widths)

    @property
    def hparams(self) -> dict[str, Any]:
        return {"in_channels": self.in_channels, "widths": list(self.widths), "norm": self.norm,
                "decoder": self.decoder_kind}

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % self.factor or x.shape[-1] % self.factor:
            raise ValueError(f"x: spatial size {tuple(x.shape[-2:])} is not divisible by {self.factor} "
                             "(pad with pad_to_multiple)")
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.final_layer(self.decoder(z))

    def forward(self, x: torch.Tensor, interp: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None):
        """``x (B, C, H, W) -> (latent, reconstruction)``; with ``interp = (ia, ib, alpha)`` (``(T,)``
        each, indices into the batch) also ``D((1 − α)·z[ia] + α·z[ib])`` as a third output.

        Everything the training step needs happens in this one call, so DDP sees a single forward.
        """
        z = self.encode(x)
        recon = self.decode(z)
        if interp is None:
            return z, recon
        ia, ib, alpha = interp
        a = alpha.to(z.dtype).view(-1, *([1] * (z.ndim - 1)))
        return z, recon, self.decode(torch.lerp(z[ia], z[ib], a))


# ----------------------------------------------------------------------------------- linearity losses
def plane_triplets(n_planes: int, scheme: str = "endpoints") -> list[tuple[int, int, int]]:
    """Triplets ``(a, b, k)`` (``a < k < b``) of plane indices for the linearity losses."""
    if n_planes < 3:
        raise ValueError(f"linearity losses need at least 3 planes (sharp, intermediate, blurred), got {n_planes}")
    if scheme == "endpoints":
        return [(0, n_planes - 1, k) for k in range(1, n_planes - 1)]
    if scheme == "midpoints":
        out: list[tuple[int, int, int]] = []
        todo = [(0, n_planes - 1)]
        while todo:  # breadth first: (0, 8 → 4), (0, 4 → 2), (4, 8 → 6), ...
            a, b = todo.pop(0)
            if b - a < 2:
                continue
            m = (a + b) // 2
            out.append((a, b, m))
            todo += [(a, m), (m, b)]
        return out
    if scheme == "all":
        return [(a, b, k) for a in range(n_planes) for b in range(a + 2, n_planes) for k in range(a + 1, b)]
    raise ValueError(f"scheme: expected one of {TRIPLET_SCHEMES}, got {scheme!r}")


def triplet_alphas(positions: Sequence[float] | torch.Tensor, triplets: Sequence[tuple[int, int, int]]) -> torch.Tensor:
    """``α = (t_k − t_a) / (t_b − t_a)`` per triplet (float32 ``(T,)``)."""
    t = torch.as_tensor(positions, dtype=torch.float64)
    tri = torch.as_tensor(triplets, dtype=torch.long).reshape(-1, 3)
    a, b, k = t[tri[:, 0]], t[tri[:, 1]], t[tri[:, 2]]
    if bool((b <= a).any()):
        raise ValueError(f"positions must increase from the sharp to the most-blurred plane, got {t.tolist()}")
    return ((k - a) / (b - a)).float()


def interpolate_latents(latents: torch.Tensor, triplets: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """``(1 − α)·z_a + α·z_b`` for every triplet: ``latents (N, P, *L) -> (N, T, *L)``."""
    tri = torch.as_tensor(triplets, dtype=torch.long, device=latents.device).reshape(-1, 3)
    a = alphas.to(device=latents.device, dtype=latents.dtype).view(1, -1, *([1] * (latents.ndim - 2)))
    return torch.lerp(latents[:, tri[:, 0]], latents[:, tri[:, 1]], a)


def explicit_linearity_loss(latents: torch.Tensor, triplets: Any, alphas: torch.Tensor) -> torch.Tensor:
    """MSE between the interpolated latents and the encoded targets, ``latents (N, P, *L)``.

    Zero exactly when every target latent lies on the line between its pair at its ``α``.
    """
    tri = torch.as_tensor(triplets, dtype=torch.long, device=latents.device).reshape(-1, 3)
    return F.mse_loss(interpolate_latents(latents, tri, alphas), latents[:, tri[:, 2]])


def implicit_linearity_loss(decoded: torch.Tensor, images: torch.Tensor, triplets: Any) -> torch.Tensor:
    """MSE between decoded interpolated latents ``(N, T, *I)`` and the real target planes of ``images (N, P, *I)``."""
    tri = torch.as_tensor(triplets, dtype=torch.long, device=images.device).reshape(-1, 3)
    return F.mse_loss(decoded, images[:, tri[:, 2]])


def blur_losses(model: nn.Module, planes: torch.Tensor, triplets: Sequence[tuple[int, int, int]], alphas: torch.Tensor,
                *, reconstruction: float = 1.0, explicit: float = 1.0, implicit: float = 1.0
                ) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the three losses for a batch of aligned stacks ``planes (N, P, C, H, W)``.

    ``model`` may be a :class:`BlurAutoencoder` or a DDP wrapper around one (one forward call).
    """
    n, p = planes.shape[:2]
    tri = torch.as_tensor(triplets, dtype=torch.long).reshape(-1, 3)
    t = tri.shape[0]
    base = torch.arange(n).repeat_interleave(t) * p
    ia = (base + tri[:, 0].repeat(n)).to(planes.device)
    ib = (base + tri[:, 1].repeat(n)).to(planes.device)
    alpha = alphas.to(planes.device).repeat(n)
    z, recon, dec = model(planes.flatten(0, 1), (ia, ib, alpha))
    latents = z.view(n, p, *z.shape[1:])
    l_rec = F.mse_loss(recon.float(), planes.flatten(0, 1).float())
    l_exp = explicit_linearity_loss(latents.float(), tri, alphas)
    l_imp = implicit_linearity_loss(dec.float().view(n, t, *dec.shape[1:]), planes.float(), tri)
    total = reconstruction * l_rec + explicit * l_exp + implicit * l_imp
    return total, {"loss_reconstruction": float(l_rec.detach()), "loss_explicit": float(l_exp.detach()),
                   "loss_implicit": float(l_imp.detach())}


# ------------------------------------------------------------------------------------------- inference
def deblur(model: BlurAutoencoder, x: torch.Tensor, reference: torch.Tensor, strength: float | torch.Tensor, *,
           detail: bool = False) -> torch.Tensor:
    """Move ``x`` towards focus: ``D((E(x) − α·E(reference)) / (1 − α))`` with ``α = strength`` in [0, 1).

    With ``reference`` the most-blurred plane of the same field, ``α`` is ``x``'s blur position
    ``t_k`` and the result estimates the in-focus plane (the original's deblurring by extrapolation).
    ``detail``: also extrapolate the reconstruction residuals (see :func:`synthesize_blur`).
    """
    a = torch.as_tensor(strength, dtype=torch.float64)
    if bool((a < 0).any()) or bool((a >= 1).any()):
        raise ValueError(f"strength: expected values in [0, 1), got {a.tolist()}")
    return synthesize_blur(model, x, reference, (-a / (1 - a)).float(), detail=detail)


# --------------------------------------------------------------------------------------------- files
@dataclass
class BlurModel:
    """A trained autoencoder with what inference needs.

    Attributes:
        model: the network (eval mode).
        positions: blur position ``t`` of each training plane (0 = sharp, 1 = most blurred).
        reference_sigma: Gaussian sigma (pixels, training resolution) that best maps the sharp to the
            most-blurred plane of the training stacks; the single-image reference ``G_σ(x)``.
        intensity: how images were mapped to [0, 1] (:class:`medrobust.data.microscopy.Intensity` fields).
        config: the resolved training config (plain dict) when known.
        source: the file it came from.
    """

    model: BlurAutoencoder
    positions: list[float]
    reference_sigma: float
    intensity: dict[str, Any] = field(default_factory=lambda: {"mode": "stack", "lo": 0.0, "hi": 1.0})
    config: dict[str, Any] | None = None
    source: str = ""

    def to(self, device: torch.device | str) -> BlurModel:
        self.model.to(device)
        return self


def save_blur_model(path: str | Path, model: BlurAutoencoder, *, positions: Sequence[float], reference_sigma: float,
                    intensity: dict[str, Any], config: dict[str, Any] | None = None) -> Path:
    """Write a self-contained model file (weights, hyperparameters, metadata), atomically.

    Readable with ``torch.load(path, weights_only=True)``.
    """
    from ..io import atomic_torch_save

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_torch_save({
        "format": MODEL_FORMAT, "version": 1, "hparams": model.hparams, "state_dict": state,
        "positions": [float(p) for p in positions], "reference_sigma": float(reference_sigma),
        "intensity": dict(intensity), "config": config,
    }, path)
    return Path(path)


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {err})") from None


def _build(hparams: dict[str, Any], state: dict[str, torch.Tensor], source: Path) -> BlurAutoencoder:
    try:
        model = BlurAutoencoder(in_channels=int(hparams["in_channels"]), widths=tuple(hparams["widths"]),
                                norm=str(hparams.get("norm", "batch")),
                                decoder=str(hparams.get("decoder", "transpose")))  # files before `decoder`: transpose
    except (KeyError, TypeError) as err:
        raise ValueError(f"{source}: model hyperparameters are incomplete ({err})") from None
    except ValueError as err:
        raise ValueError(f"{source}: unsupported model hyperparameters ({err}); written by a newer medrobust?") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{source}: weights do not match the stored hyperparameters: {err}") from None
    return model.eval()


def load_blur_model(path: str | Path, *, device: torch.device | str = "cpu") -> BlurModel:
    """Load a trained model from a ``model.pt`` file, a run directory, or a training checkpoint.

    * ``model.pt`` (written by ``medrobust blur train``): self-contained;
    * a run directory: its ``model.pt``, else its ``best.pt``/``last.pt`` with ``config.yaml`` and
      ``blur_meta.json`` (an interrupted run);
    * ``best.pt``/``last.pt`` of the shared training loop: rebuilt from the ``config.yaml`` and
      ``blur_meta.json`` beside it.

    Files are read with ``torch.load(..., weights_only=True)``.
    """
    p = Path(path)
    if p.is_dir():
        for name in ("model.pt", "best.pt", "last.pt"):
            if (p / name).is_file():
                return load_blur_model(p / name, device=device)
        raise FileNotFoundError(f"{p}: no model.pt, best.pt or last.pt in this directory")
    if not p.is_file():
        raise FileNotFoundError(f"{p}: checkpoint not found")
    obj = _torch_load(p)
    if isinstance(obj, dict) and obj.get("format") == MODEL_FORMAT:
        model = _build(obj["hparams"], obj["state_dict"], p)
        return BlurModel(model.to(device), list(obj["positions"]), float(obj["reference_sigma"]), dict(obj["intensity"]),
                         obj.get("config"), str(p))
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):  # a loop checkpoint
        cfg_path, meta_path = p.parent / "config.yaml", p.parent / "blur_meta.json"
        if not (cfg_path.is_file() and meta_path.is_file()):
            raise ValueError(f"{p}: a training checkpoint without hyperparameters; expected config.yaml and "
                             "blur_meta.json beside it (or pass the run's model.pt)")
        import yaml

        cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        m = cfg.get("model", {})
        model = _build({"in_channels": m.get("in_channels", 1), "widths": m.get("widths", list(PAPER_WIDTHS)),
                        "norm": m.get("norm", "batch"), "decoder": m.get("decoder", "transpose")}, obj["model"], p)
        return BlurModel(model.to(device), list(meta["positions"]), float(meta["reference_sigma"]), dict(meta["intensity"]),
                         cfg, str(p))
    raise ValueError(f"{p}: not a blur autoencoder checkpoint (expected a model.pt from `medrobust blur train`)")


def latent_blur_from_checkpoint(checkpoint: str | Path | BlurModel, *, levels: float | tuple[float, float] = (0.0, 1.5),
                                reference_sigma: float | None = None, p: float = 1.0, detail: bool = False,
                                device: torch.device | str = "cpu") -> LatentBlur:
    """The :class:`~medrobust.augment.blur.LatentBlur` core of a trained model.

    ``checkpoint``: a ``model.pt``, a run directory or a training checkpoint (see
    :func:`load_blur_model`), or a loaded :class:`BlurModel`. ``reference_sigma`` defaults to the value
    stored with the model; ``levels``, ``p`` and ``detail`` as for the core. Files of every release load
    (those before the ``decoder`` option hold the original transposed-convolution decoder).
    """
    bundle = checkpoint if isinstance(checkpoint, BlurModel) else load_blur_model(checkpoint, device=device)
    sigma = bundle.reference_sigma if reference_sigma is None else reference_sigma
    return LatentBlur(bundle.model, levels=levels, reference_sigma=sigma, p=p, detail=detail)
