"""Dominant frequency maps and frequency-shortcut analysis (Wang et al., "What do neural networks learn
in image classification? A frequency shortcut perspective", ICCV 2023; nis-research/nn-frequency-shortcuts).

* **Loss map** (:func:`loss_maps`): the spectrum is tiled in ``patch × patch`` bins (centred layout,
  DC at ``(H // 2, W // 2)``); for every patch (together with its point-reflected conjugate, so
  filtered images stay real) the patch is zeroed in all test images of a class and the class's summed
  cross-entropy is recorded; the map holds the increase over the unfiltered loss. Bands are evaluated
  in batches on the device (the original runs one filter per image on the CPU in complex128).
* **DFM** (:func:`dominant_frequency_maps`): the top ``top`` fraction of patches by loss increase,
  as a boolean ``(K, H, W)`` map (DC always included).
* **Shortcut test** (:func:`shortcut_test`): all test images filtered to class ``k``'s DFM (and,
  separately, with it removed; DC is kept in both); ``TPR_k`` = share of class-``k`` images still predicted ``k``,
  ``FPR_k`` = share of other images predicted ``k``. High TPR with high FPR on DFM-only images marks a
  frequency shortcut.
* **ADCS** (:func:`adcs`): for class ``i``, ``Σ_j sign(E_j − E_i)`` over the mean (grey-level)
  amplitude spectra ``E`` of the classes, per frequency, and its mean as a scalar score.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..augment.dfm import as_dfms, filter_to_masks

__all__ = ["patch_masks", "loss_maps", "dominant_frequency_maps", "shortcut_test", "adcs", "remove_masks",
           "load_dfms", "resolve_augment_files"]


def load_dfms(dfms: str | os.PathLike[str] | np.ndarray | torch.Tensor, *, name: str = "dfms") -> torch.Tensor:
    """Boolean DFMs ``(K, H, W)`` (centred layout) from a ``.npy`` file (as written by ``medrobust dfm``),
    an array or a tensor; ``FileNotFoundError`` / ``ValueError`` naming ``name`` and the file."""
    if isinstance(dfms, (str, os.PathLike)):
        path = Path(dfms)
        if not path.is_file():
            raise FileNotFoundError(f"{name}: {path} does not exist (write DFMs with `medrobust dfm`)")
        try:
            dfms = np.load(path, allow_pickle=False)
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"{name}: cannot read {path}: {err}") from err
    return as_dfms(dfms, name=name)


def resolve_augment_files(spec: Any) -> Any:
    """``augment`` config entries (one mapping or a list) with the files they name loaded, for
    :func:`medrobust.augment.build` (the cores read no files): ``dfmx``'s ``dfms`` (a ``.npy``, see
    :func:`load_dfms`) and ``latent_blur``'s ``model`` (a ``model.pt`` or run directory; its stored
    ``reference_sigma`` unless one is given). Other entries and values are returned as they are."""
    if isinstance(spec, Sequence) and not isinstance(spec, (str, bytes)):
        return [resolve_augment_files(s) for s in spec]
    if not isinstance(spec, Mapping):
        return spec
    out = dict(spec)
    name = str(out.get("name", "")).lower()
    if name == "dfmx" and isinstance(out.get("dfms"), (str, os.PathLike)):
        out["dfms"] = load_dfms(out["dfms"])
    elif name == "latent_blur" and isinstance(out.get("model"), (str, os.PathLike)):
        from ..models.blur_autoencoder import load_blur_model

        bundle = load_blur_model(out["model"])
        out["model"] = bundle.model
        if out.get("reference_sigma") is None:
            out["reference_sigma"] = bundle.reference_sigma
    return out


def patch_masks(size: tuple[int, int], patch: int) -> torch.Tensor:
    """``(B, H, W)`` bool: one mask per ``patch × patch`` tile of the centred spectrum, each united
    with its point reflection through DC (the conjugate bins)."""
    h, w = size
    if h % patch or w % patch:
        raise ValueError(f"patch: {patch} must divide the image size {size}")
    gh, gw = h // patch, w // patch
    masks = torch.zeros(gh * gw, h, w, dtype=torch.bool)
    ii = torch.arange(h)
    jj = torch.arange(w)
    for b in range(gh * gw):  # a few hundred tiny masks, built once
        r, c = divmod(b, gw)
        rows = ii[r * patch : (r + 1) * patch]
        cols = jj[c * patch : (c + 1) * patch]
        masks[b, rows[:, None], cols[None, :]] = True
        masks[b, ((h - rows) % h)[:, None], ((w - cols) % w)[None, :]] = True
    return masks


def remove_masks(x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Zero the frequencies in ``masks`` (centred, ``(N, H, W)``) of images ``(N, C, H, W)``."""
    h, w = x.shape[-2:]
    keep = torch.fft.ifftshift(~masks.to(x.device), dim=(-2, -1))
    return torch.fft.ifft2(torch.fft.fft2(x.float(), dim=(-2, -1)) * keep[:, None], dim=(-2, -1)).real.to(x.dtype)


@torch.no_grad()
def _predict(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int) -> torch.Tensor:
    return torch.cat([model(x[i : i + chunk]).float() for i in range(0, len(x), chunk)])


@torch.no_grad()
def loss_maps(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    *,
    patch: int = 2,
    bands_per_batch: int = 32,
    chunk: int = 2048,
    clamp: bool = True,
    progress: bool = False,
) -> torch.Tensor:
    """Per-class loss increase when each frequency patch is removed.

    Args:
        model: logits ``(N, K)`` from images ``(N, C, H, W)`` (put it in eval mode first).
        images: float ``(N, C, H, W)`` in [0, 1], on the device to use.
        labels: ``(N,)`` ints in ``0..num_classes-1``.
        patch: patch side in frequency bins (must divide H and W).
        bands_per_batch: patches evaluated together (memory ~ bands × class size × image).
        chunk: images per forward pass.
        clamp: clamp filtered images to [0, 1] before the forward pass.
    Returns:
        ``(K, H // patch, W // patch)`` float: summed CE increase of each class per patch.
    """
    from tqdm.auto import tqdm

    if images.ndim != 4:
        raise ValueError(f"images: expected (N, C, H, W), got {tuple(images.shape)}")
    labels = labels.to(images.device).long()
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels: expected shape ({images.shape[0]},), got {tuple(labels.shape)}")
    h, w = images.shape[-2:]
    masks = patch_masks((h, w), patch).to(images.device)
    out = torch.zeros(num_classes, len(masks))
    bar = tqdm(total=num_classes * len(masks), desc="DFM loss maps", disable=not progress, leave=False)
    for k in range(num_classes):
        xk = images[labels == k]
        if len(xk) == 0:
            bar.update(len(masks))
            continue
        yk = torch.full((len(xk),), k, device=images.device)
        base = F.cross_entropy(_predict(model, xk, chunk), yk, reduction="sum")
        spec = torch.fft.fft2(xk.float(), dim=(-2, -1))
        for start in range(0, len(masks), bands_per_batch):
            m = masks[start : start + bands_per_batch]
            keep = torch.fft.ifftshift(~m, dim=(-2, -1))  # (B, H, W)
            filtered = torch.fft.ifft2(spec[None] * keep[:, None, None], dim=(-2, -1)).real  # (B, n, C, H, W)
            if clamp:
                filtered = filtered.clamp(0, 1)
            logits = _predict(model, filtered.reshape(-1, *xk.shape[1:]).to(images.dtype), chunk)
            ce = F.cross_entropy(logits, yk.repeat(len(m)), reduction="none").view(len(m), -1).sum(1)
            out[k, start : start + len(m)] = (ce - base).cpu()
            bar.update(len(m))
    bar.close()
    return out.view(num_classes, h // patch, w // patch)


def dominant_frequency_maps(maps: torch.Tensor, *, top: float = 0.1, patch: int = 2) -> torch.Tensor:
    """Boolean DFMs ``(K, H, W)`` (centred) keeping the top ``top`` share of patches per class.

    Each selected patch contributes its conjugate too (as it was removed with it); DC is included.
    """
    if not 0 < top <= 1:
        raise ValueError(f"top: expected a fraction in (0, 1], got {top!r}")
    k, gh, gw = maps.shape
    h, w = gh * patch, gw * patch
    masks = patch_masks((h, w), patch)
    n_keep = max(1, int(round(top * gh * gw)))
    out = torch.zeros(k, h, w, dtype=torch.bool)
    for c in range(k):
        idx = maps[c].flatten().topk(n_keep).indices
        out[c] = masks[idx].any(0)
        out[c, h // 2, w // 2] = True
    return out


@torch.no_grad()
def shortcut_test(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    dfms: torch.Tensor,
    *,
    chunk: int = 2048,
) -> dict[str, Any]:
    """TPR/FPR per class on images filtered to (``kept``) and without (``removed``) each class's DFM."""
    labels = labels.to(images.device).long()
    k = dfms.shape[0]
    result: dict[str, Any] = {"classes": []}
    for c in range(k):
        row: dict[str, Any] = {"class": c}
        for mode in ("kept", "removed"):
            m = dfms[c].to(images.device).clone()
            if mode == "removed":
                m[m.shape[0] // 2, m.shape[1] // 2] = False  # DC is never removed (nor filtered away)
            m = m.expand(len(images), -1, -1)
            x = filter_to_masks(images, m) if mode == "kept" else remove_masks(images, m)
            pred = _predict(model, x.clamp(0, 1), chunk).argmax(1)
            pos = labels == c
            row[f"tpr_{mode}"] = float((pred[pos] == c).float().mean()) if pos.any() else float("nan")
            row[f"fpr_{mode}"] = float((pred[~pos] == c).float().mean()) if (~pos).any() else float("nan")
        row["shortcut_score"] = row["tpr_kept"] * row["fpr_kept"] if not np.isnan(row["fpr_kept"]) else float("nan")
        result["classes"].append(row)
    return result


def adcs(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, Any]:
    """ADCS per class: ``Σ_{j≠i} sign(E_j − E_i)`` of mean grey amplitude spectra (centred).

    Returns ``{"maps": (K, H, W) tensor, "scores": [mean of each map / (K − 1)]}``; a strongly
    negative score means class ``i`` carries more energy than the others at most frequencies.
    """
    grey = images.float().mean(1)
    amp = torch.fft.fftshift(torch.fft.fft2(grey).abs(), dim=(-2, -1))
    labels = labels.to(images.device).long()
    e = torch.stack([amp[labels == c].mean(0) if (labels == c).any() else torch.zeros_like(amp[0]) for c in range(num_classes)])
    maps = torch.stack([sum(torch.sign(e[j] - e[i]) for j in range(num_classes) if j != i) for i in range(num_classes)])
    scores = [float(m.mean()) / max(1, num_classes - 1) for m in maps]
    return {"maps": maps.cpu(), "scores": scores}
