"""DynTTA: a predictor blends the ops of the bank per image (Enomoto et al., IEEE Access 2024).

For an input ``x`` ``(N, C, H, W)`` in [0, 1], the predictor maps ``x`` to ``2K`` numbers: ``K`` raw
magnitudes ``m`` and ``K`` blend logits, ``w = softmax(logits)``, and::

    out = clamp(Σ_i w_i · op_i(x; m_i), 0, 1)

The frozen model then sees ``out`` (its own input normalisation stays inside the model, see
:class:`medrobust.models.classifiers.Classifier`). Ops without a magnitude ignore theirs (the paper's
predictor also has 100 outputs for 50 ops). The predictor's last layer starts at zero weights with its biases at
each op's identity magnitude, and with blend logits 0 for the ops that are then the identity (the eight
magnitude ops and the restoration network, whose residual starts at 0) and :data:`START_LOGIT_OFF` for
the others, so the untrained enhancer is close to the identity (a uniform start would scale the image
by about 0.6: a low-pass and a high-pass filter of one radius only add up to the image). This start is
ours; the paper does not state one.

The enhancer always runs in float32 (FFT sizes that are not powers of two have no half-precision
kernels), also under autocast; its output has the input's dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .ops import OPS, Op, fft_blend, fft_masks, op_names

__all__ = ["PREDICTORS", "START_LOGIT_OFF", "DynTTA", "ResidualUNet", "SmallPredictor", "build_predictor"]

#: the starting blend logit of the ops that are not the identity at start (invert, autocontrast, equalize,
#: the FFT filters); the others start at 0, so the untrained enhancer gives them about 92 % of the weight
START_LOGIT_OFF = -4.0
#: predictor names :class:`DynTTA` accepts
PREDICTORS = ("small", "resnet18")


class SmallPredictor(nn.Module):
    """Four 3x3 conv-BN-ReLU blocks (16, 32, 64, 64 channels; strides 2, 2, 2, 1), global average
    pooling and one linear layer: ``(N, C, H, W) -> (N, outputs)``."""

    def __init__(self, in_channels: int, outputs: int, width: int = 16) -> None:
        super().__init__()
        chans = (width, 2 * width, 4 * width, 4 * width)
        layers: list[nn.Module] = []
        prev = in_channels
        for c, s in zip(chans, (2, 2, 2, 1)):
            layers += [nn.Conv2d(prev, c, 3, stride=s, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            prev = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(prev, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


def build_predictor(name: str, in_channels: int, outputs: int, *, image_size: int = 224,
                    weights: str | Path | None = None) -> tuple[nn.Module, nn.Linear]:
    """``(predictor, its last linear layer)``. ``small``: :class:`SmallPredictor`; ``resnet18``:
    torchvision's ResNet-18 (random init; the CIFAR stem for images of 64 pixels or less), optionally
    starting from a local backbone ``state_dict`` (``weights``; the classification head is not loaded,
    never downloaded)."""
    if name == "small":
        if weights is not None:
            raise ValueError("tta.predictor_weights: only the resnet18 predictor loads weights")
        net = SmallPredictor(in_channels, outputs)
        return net, net.head
    if name == "resnet18":
        from ..models.classifiers import create_classifier

        model = create_classifier("resnet18", outputs, in_channels, image_size=image_size)
        resnet = model.net
        if weights is not None:
            path = Path(weights)
            if not path.is_file():
                raise FileNotFoundError(f"tta.predictor_weights: {path} does not exist")
            state = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and isinstance(state.get("model"), dict):
                state = state["model"]
            state = {k.removeprefix("net."): v for k, v in state.items() if not k.removeprefix("net.").startswith("fc.")}
            own = resnet.state_dict()
            bad = [k for k, v in state.items() if k not in own or tuple(own[k].shape) != tuple(v.shape)]
            if bad or not state:
                raise ValueError(f"tta.predictor_weights: {path} is not a ResNet-18 backbone state_dict for {in_channels} "
                                 f"channels (e.g. {bad[:1] or 'no weights'})")
            resnet.load_state_dict(state, strict=False)
        return resnet, resnet.fc
    raise ValueError(f"predictor: expected one of {PREDICTORS}, got {name!r}")


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(min(8, cout), cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(min(8, cout), cout), nn.ReLU(inplace=True))


class ResidualUNet(nn.Module):
    """The restoration op: ``x + α · unet(x)``, a two-level U-Net (``width``, 2·``width``, 4·``width``
    channels; max-pool down, bilinear up, skip concatenation, GroupNorm) with a learned scalar ``α``
    that starts at 0, so the op starts as the identity. Sides that are not a multiple of 4 are
    reflect-padded and cropped back."""

    def __init__(self, channels: int, width: int = 16) -> None:
        super().__init__()
        self.enc1, self.enc2, self.mid = _block(channels, width), _block(width, 2 * width), _block(2 * width, 4 * width)
        self.dec2, self.dec1 = _block(6 * width, 2 * width), _block(3 * width, width)
        self.out = nn.Conv2d(width, channels, 1)
        self.alpha = nn.Parameter(torch.zeros(()))

    def unet(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        mid = self.mid(F.max_pool2d(e2, 2))
        up = F.interpolate(mid, size=e2.shape[-2:], mode="bilinear", align_corners=False)
        d2 = self.dec2(torch.cat([up, e2], 1))
        up = F.interpolate(d2, size=e1.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(self.dec1(torch.cat([up, e1], 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % 4, (-w) % 4
        xp = F.pad(x, (0, pw, 0, ph), mode="reflect") if ph or pw else x
        return x + self.alpha * self.unet(xp)[..., :h, :w]


class DynTTA(nn.Module):
    """Test-time image enhancement by a learned, per-image blend of differentiable ops.

    Args:
        num_channels: image channels (3: RGB; 1: MRI; the colour ops drop out unless 3).
        ops: ``"all"`` (:func:`~medrobust.tta.op_names` for ``num_channels``) or a list of op names.
        predictor: ``"small"`` (:class:`SmallPredictor`) or ``"resnet18"`` (torchvision, random init).
        image_size: the side the predictor is built for (ResNet stem choice only).
        predictor_weights: local ResNet-18 backbone weights (never downloaded).

    ``forward(x)``: ``x`` ``(N, num_channels, H, W)`` in [0, 1] (H, W >= 3) -> the enhanced batch,
    same shape and dtype, in [0, 1]. :meth:`predict` gives the raw magnitudes and blend weights,
    :meth:`blend` applies given ones.
    """

    def __init__(self, num_channels: int = 3, ops: str | Sequence[str] = "all", predictor: str = "small", *,
                 image_size: int = 224, predictor_weights: str | Path | None = None) -> None:
        super().__init__()
        allowed = op_names(num_channels)
        if isinstance(ops, str):
            if ops != "all":
                raise ValueError(f"ops: expected 'all' or a list of op names, got {ops!r}")
            names = allowed
        else:
            names = list(ops)
            wrong = [n for n in names if n not in allowed]
            if not names or wrong or len(set(names)) != len(names):
                raise ValueError(f"ops: expected distinct names from {allowed} (for {num_channels} channel(s)), "
                                 f"got {names!r}")
        self.num_channels = int(num_channels)
        self.op_names: list[str] = names
        self.ops: list[Op] = [OPS[n] for n in names]
        k = len(names)
        self.predictor, head = build_predictor(predictor, num_channels, 2 * k, image_size=image_size,
                                               weights=predictor_weights)
        self.predictor_name = predictor
        with torch.no_grad():
            head.weight.zero_()
            head.bias.zero_()
            head.bias[:k] = torch.tensor([op.identity or 0.0 for op in self.ops])
            head.bias[k:] = torch.tensor([0.0 if op.identity is not None or op.name == "restore" else START_LOGIT_OFF
                                          for op in self.ops])
        self._fft_idx = [i for i, op in enumerate(self.ops) if op.radius is not None]
        self._fn_idx = [i for i, op in enumerate(self.ops) if op.fn is not None]
        self.restore = ResidualUNet(num_channels) if "restore" in names else None
        self._restore_idx = names.index("restore") if "restore" in names else None
        self._masks: dict[tuple[int, int, str], torch.Tensor] = {}

    def extra_repr(self) -> str:
        return f"num_channels={self.num_channels}, ops={len(self.op_names)}, predictor={self.predictor_name!r}"

    def _check(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 4:
            raise ValueError(f"DynTTA: expected a float tensor (N, {self.num_channels}, H, W), got "
                             f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
        if x.shape[1] != self.num_channels or min(x.shape[-2:]) < 3:
            raise ValueError(f"DynTTA: expected (N, {self.num_channels}, H, W) with H, W >= 3, got {tuple(x.shape)}")

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(raw magnitudes (N, K), blend weights (N, K) summing to 1)`` for ``x`` in [0, 1]."""
        self._check(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            out = self.predictor(x.float() * 2 - 1)
            k = len(self.ops)
            return out[:, :k], torch.softmax(out[:, k:], dim=1)

    def _fft_masks(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        key = (h, w, str(device))
        if key not in self._masks:
            self._masks[key] = fft_masks([self.ops[i] for i in self._fft_idx], (h, w), device=device)
        return self._masks[key]

    def blend(self, x: torch.Tensor, magnitudes: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``clamp(Σ_i weights[:, i] · op_i(x; magnitudes[:, i]), 0, 1)`` (float32 inside)."""
        self._check(x)
        dtype = x.dtype
        with torch.autocast(device_type=x.device.type, enabled=False):
            xf = x.float()
            m, w = magnitudes.float(), weights.float()
            out = torch.zeros_like(xf)
            for i in self._fn_idx:
                fn = self.ops[i].fn
                assert fn is not None
                out = out + w[:, i].view(-1, 1, 1, 1) * fn(xf, m[:, i])
            if self._fft_idx:
                masks = self._fft_masks(xf.shape[-2], xf.shape[-1], xf.device)
                out = out + fft_blend(xf, w[:, self._fft_idx], masks)
            if self.restore is not None and self._restore_idx is not None:
                out = out + w[:, self._restore_idx].view(-1, 1, 1, 1) * self.restore(xf)
            return out.clamp(0, 1).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m, w = self.predict(x)
        return self.blend(x, m, w)

    def apply_op(self, name: str, x: torch.Tensor, magnitude: torch.Tensor | None = None) -> torch.Tensor:
        """One op of the bank alone (the restoration network included), for inspection and tests."""
        i = self.op_names.index(name)
        k = len(self.ops)
        w = torch.zeros(x.shape[0], k, dtype=x.dtype, device=x.device)
        w[:, i] = 1
        m = torch.zeros(x.shape[0], k, dtype=x.dtype, device=x.device)
        if magnitude is not None:
            m[:, i] = magnitude
        return self.blend(x, m, w)

    def config(self) -> dict[str, Any]:
        return {"num_channels": self.num_channels, "ops": list(self.op_names), "predictor": self.predictor_name}
