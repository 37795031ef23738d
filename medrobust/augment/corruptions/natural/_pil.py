"""PIL's box resampling (pixelate) as tensor ops, and the libjpeg round trip (JPEG compression)."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ...base import to_device
from ...functional.chunks import chunked, map_chunks
from ...functional.opencv import cv2_module, cv2_planes

__all__ = ["pixelate", "pixelate_uint8", "pixelate_pil_uint8", "jpeg_roundtrip", "jpeg_roundtrip_uint8"]


def pixelate(x: torch.Tensor, hs: int, ws: int) -> torch.Tensor:
    """PIL box down to ``(hs, ws)`` and box up again, ``(N, C, H, W)`` -> same shape.

    Every step works on rows (dim -2), where a gather copies whole contiguous rows: box down the
    rows (a weighted sum of the few row runs of each box), transpose, box down the former columns
    the same way, upsample them (PIL's box upsampling picks one source per output), transpose back
    and upsample the rows straight into the output. Cache-sized chunks on the CPU.
    """
    h, w = x.shape[-2:]
    dev, dt = x.device, x.dtype
    down_h, down_w = _box_taps(h, hs, dev, dt), _box_taps(w, ws, dev, dt)
    up_h = torch.as_tensor(_pil_box_up_index(hs, h), device=dev)
    up_w = torch.as_tensor(_pil_box_up_index(ws, w), device=dev)

    def block(xb: torch.Tensor, out: torch.Tensor, i: int) -> None:
        t = _box_down_rows(xb, down_h)  # (b, C, hs, W)
        t = _box_down_rows(t.transpose(2, 3), down_w).index_select(2, up_w)  # (b, C, W, hs)
        torch.index_select(t.transpose(2, 3).contiguous(), 2, up_h, out=out)

    return chunked(x, block)


def pixelate_uint8(x: torch.Tensor, hs: int, ws: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """PIL's ``BOX`` down to ``(hs, ws)`` and ``BOX`` back for a uint8 batch ``(N, C, H, W)`` (any
    device), in PIL's own 8-bit fixed-point arithmetic: bit-identical to ``Image.resize`` (tested).

    As in ``ImagingResample``: the horizontal pass first, then the vertical one, each output the
    sum of its box's inputs times PIL's 22-bit coefficient ``int(0.5 + 2^22 / len)`` (a box
    weighs its inputs equally), plus ``2^21``, shifted right by 22 and stored as 8 bits; upsampling
    with the box picks one input per output. Every step gathers whole contiguous rows (the
    columns of a pass are made rows by one small transposed copy), summed in int16. ``out``: a
    contiguous uint8 tensor of ``x``'s shape to write the result into.
    """
    h, w = x.shape[-2:]
    t = _box_down_rows_u8(_swap_last(x), w, ws)  # horizontal pass: (N, C, ws, H)
    t = _box_down_rows_u8(_swap_last(t), h, hs)  # vertical pass: (N, C, hs, ws)
    up_w = torch.as_tensor(_pil_box_up_index(ws, w), device=x.device)
    up_h = torch.as_tensor(_pil_box_up_index(hs, h), device=x.device)
    t = _swap_last(t).index_select(-2, up_w)  # (N, C, W, hs)
    if out is None:
        return _swap_last(t).index_select(-2, up_h)
    return torch.index_select(_swap_last(t), -2, up_h, out=out)  # straight into the caller's slice


def _swap_last(x: torch.Tensor) -> torch.Tensor:
    """``x.transpose(-1, -2)`` as a contiguous tensor; on the CPU ``cv2.transpose`` per plane (10x
    torch's transposing copy for uint8 at 224², measured) or NumPy's (4x) without OpenCV."""
    if x.device.type != "cpu":
        return x.transpose(-1, -2).contiguous()
    cv2 = cv2_module()
    if cv2 is None or x.dtype != torch.uint8:
        return torch.from_numpy(np.ascontiguousarray(x.numpy().swapaxes(-1, -2)))
    out = torch.empty((*x.shape[:-2], x.shape[-1], x.shape[-2]), dtype=x.dtype)
    return cv2_planes(lambda a, b: cv2.transpose(a, b), x, out)


@functools.lru_cache(maxsize=128)
def _pil_box_fixed(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """PIL's box downsampling of ``n_in`` rows to ``n_out`` in fixed point: ``(taps, n_out)`` input
    rows per output (``n_in``, a zero row, past the end of a shorter box) and the ``(n_out,)``
    22-bit coefficient of each output (``normalize_coeffs_8bpc``)."""
    start, end = _pil_box_runs(n_in, n_out)
    length = end - start
    rows = start[None, :] + np.arange(int(length.max()))[:, None]
    rows = np.where(rows < end[None, :], rows, n_in)
    return rows, (0.5 + (1.0 / length) * (1 << _PIL_BITS)).astype(np.int64)


_PIL_BITS = 22  # PRECISION_BITS of Pillow's 8-bit resampling (32 - 8 - 2)


def _box_down_rows_u8(x: torch.Tensor, n_in: int, n_out: int) -> torch.Tensor:
    """One PIL 8-bit box pass along dim -2 of a contiguous uint8 ``(N, C, n_in, L)``: uint8
    ``(N, C, n_out, L)``."""
    rows, coef = _pil_box_fixed(n_in, n_out)
    dev = x.device
    # row n_in is 0: the unused taps of shorter boxes
    padded = torch.cat([x, torch.zeros((*x.shape[:-2], 1, x.shape[-1]), dtype=torch.uint8, device=dev)], dim=-2)
    idx = torch.as_tensor(rows, device=dev)
    padded = padded.to(torch.int16 if len(rows) * 255 <= 32767 else torch.int32)
    acc = padded.index_select(-2, idx[0])
    for r in idx[1:]:
        acc += padded.index_select(-2, r)
    kk = torch.as_tensor(coef, dtype=torch.int32, device=dev).view(-1, 1)
    # kk * sum <= 255 * 2^22 + len / 2: the 8-bit result never needs a clip
    return acc.to(torch.int32).mul_(kk).add_(1 << (_PIL_BITS - 1)).bitwise_right_shift_(_PIL_BITS).to(torch.uint8)


def pixelate_pil_uint8(x: torch.Tensor, sizes: Sequence[tuple[int, int]]) -> torch.Tensor:
    """PIL ``BOX`` down to ``sizes[k] = (hs, ws)`` and ``BOX`` back, per image of a uint8 CPU batch
    ``(N, 3, H, W)``: the published pixelate bit for bit. One batched layout copy each way; the
    per-image resampling runs on the chunk workers (:func:`~...functional.chunks.map_chunks`)
    and does no torch work inside them."""
    from PIL import Image

    n, _, h, w = x.shape
    hwc = x.permute(0, 2, 3, 1).contiguous().numpy()  # (N, H, W, 3)
    out = np.empty_like(hwc)

    def run(i: int, j: int) -> None:
        for k in range(i, j):
            hs, ws = sizes[k]
            im = Image.fromarray(hwc[k])
            out[k] = np.asarray(im.resize((ws, hs), Image.BOX).resize((w, h), Image.BOX))

    map_chunks(run, n, 8)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _box_taps(n: int, n_out: int, device: torch.device, dtype: torch.dtype) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """PIL box downsampling of ``n`` rows to ``n_out`` as taps ``(row index, weight)``: output row
    ``i`` is the mean of its contiguous run of input rows (tap ``k`` of a shorter run weighs 0)."""
    start, end = _pil_box_runs(n, n_out)
    length = end - start
    return [(torch.as_tensor(np.minimum(start + k, n - 1), device=device),
             torch.as_tensor(((k < length) / length).reshape(1, 1, -1, 1), dtype=dtype, device=device))
            for k in range(int(length.max()))]


def _box_down_rows(x: torch.Tensor, taps: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Box-downsample dim -2 of ``(b, C, n, W)`` (any strides) with :func:`_box_taps`."""
    out = x.index_select(2, taps[0][0]).mul_(taps[0][1])
    for index, weight in taps[1:]:
        out.addcmul_(x.index_select(2, index), weight)
    return out


@functools.lru_cache(maxsize=128)
def _pil_box_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` resampling matrix of PIL's ``Image.BOX`` filter (``precompute_coeffs``)."""
    scale = n_in / n_out
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    ss = 1.0 / filterscale
    m = np.zeros((n_out, n_in))
    for xx in range(n_out):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), n_in)
        t = (np.arange(xmin, xmax) - center + 0.5) * ss
        wts = ((t > -0.5) & (t <= 0.5)).astype(np.float64)
        total = wts.sum()
        if total > 0:
            m[xx, xmin:xmax] = wts / total
    return m


@functools.lru_cache(maxsize=128)
def _pil_box_runs(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last input index of each output's box (a contiguous run)."""
    m = _pil_box_matrix(n_in, n_out) > 0
    start = m.argmax(axis=1)
    end = n_in - m[:, ::-1].argmax(axis=1)
    if not np.array_equal(m.sum(axis=1), end - start):  # pragma: no cover - PIL boxes are contiguous
        raise RuntimeError("non-contiguous box")
    return start, end


@functools.lru_cache(maxsize=128)
def _pil_box_up_index(n_in: int, n_out: int) -> np.ndarray:
    """Upsampling with PIL's box filter picks exactly one input pixel per output pixel."""
    return _pil_box_matrix(n_in, n_out).argmax(axis=1)


def jpeg_roundtrip(x: torch.Tensor, quality: Sequence[int]) -> torch.Tensor:
    """8-bit JPEG round trip of a ``(N, 3, H, W)`` float batch in [0, 1] at per-image ``quality``:
    rounded to uint8 (one batched op), :func:`jpeg_roundtrip_uint8`, back to float."""
    u8 = x.mul(255.0).round_().to(torch.uint8)  # x is in [0, 1]: no clamp needed
    return jpeg_roundtrip_uint8(u8, quality).to(x.dtype).div_(255.0)


def jpeg_roundtrip_uint8(x: torch.Tensor, quality: Sequence[int]) -> torch.Tensor:
    """JPEG encode/decode of a uint8 ``(N, 3, H, W)`` batch at per-image ``quality``; uint8 out.

    CPU: libjpeg through OpenCV (:func:`_codec_cv2`, bit-identical to Pillow; torchvision's
    bindings, :func:`_codec`, without OpenCV), groups of up to 8 images of one quality coded
    straight into the output on the chunk workers (:func:`~...functional.chunks.map_chunks`, one
    group per job). The workers run only the codec (no torch parallel region inside), so they
    never start OpenMP teams of their own on top of torch's. CUDA: nvJPEG through torchvision's
    batched ``encode_jpeg``/``decode_jpeg`` on the device (the encoded bytes go through the host:
    ``decode_jpeg`` takes them there), see :func:`_codec_cuda`; the CPU codec when this
    torchvision has no CUDA JPEG support.
    """
    n = x.shape[0]
    groups: dict[int, list[int]] = {}
    for k in range(n):
        groups.setdefault(int(quality[k]), []).append(k)
    if x.device.type == "cuda":
        dec = _codec_cuda(x, groups)
        if dec is not None:
            return dec
        return jpeg_roundtrip_uint8(x.cpu(), quality).to(x.device)
    x = x.contiguous()
    out = torch.empty_like(x)
    jobs = [(q, idx[i:i + 8]) for q, idx in groups.items() for i in range(0, len(idx), 8)]
    cv2 = cv2_module()
    if cv2 is not None:
        src, dst = x.numpy(), out.numpy()

        def run(job: tuple[int, list[int]]) -> None:
            q, idx = job
            for k in idx:
                _codec_cv2(cv2, src[k], q, dst[k])
    else:
        images = list(x.unbind(0))  # views: no copy
        results: list[torch.Tensor | None] = [None] * n

        def run(job: tuple[int, list[int]]) -> None:
            q, idx = job
            for k, dec in zip(idx, _codec([images[k] for k in idx], q)):
                results[k] = dec

    with warnings.catch_warnings():  # held by this thread until the workers are done
        warnings.filterwarnings("ignore", message=".*capabilities of TorchVision are deprecated", category=DeprecationWarning)
        map_chunks(lambda i, j: [run(jobs[k]) for k in range(i, j)], len(jobs), 1)
    if cv2 is None:
        torch.stack(results, out=out)  # type: ignore[arg-type]
    return out


def _codec_cv2(cv2: Any, img: np.ndarray, quality: int, out: np.ndarray) -> None:
    """libjpeg round trip of one ``(3, H, W)`` uint8 RGB array into ``out`` through OpenCV.

    OpenCV links libjpeg-turbo with the same defaults as Pillow (4:2:0 chroma, islow DCT, fancy
    upsampling), so the bytes equal Pillow's ``save(..., 'JPEG', quality=q)`` round trip (the
    fidelity test checks it against imagecorruptions), and unlike Pillow's and torchvision's
    codec calls, OpenCV's release the GIL, so the codec threads run in parallel (measured 1.5x
    on 2 cores at 224², and 0.29 vs 0.35-0.38 ms per image on one thread).
    """
    bgr = cv2.merge([img[2], img[1], img[0]])
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - libjpeg does not fail on a valid uint8 image
        raise RuntimeError("jpeg_compression: OpenCV could not encode the image")
    b, g, r = cv2.split(cv2.imdecode(buf, cv2.IMREAD_COLOR))
    out[0], out[1], out[2] = r, g, b


def _codec_cuda(x: torch.Tensor, groups: dict[int, list[int]]) -> torch.Tensor | None:
    """nvJPEG round trip of a CUDA uint8 batch (one batched encode and decode per quality), or None
    when this torchvision cannot code JPEG on CUDA. Bit-identity with libjpeg is not expected
    (nvJPEG's DCT and chroma resampling differ); the fidelity test bounds the PSNR to Pillow's."""
    try:
        from torchvision.io import decode_jpeg, encode_jpeg
    except ImportError:  # pragma: no cover
        return None
    out = torch.empty_like(x)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*capabilities of TorchVision are deprecated", category=DeprecationWarning)
        try:
            for q, idx in groups.items():
                enc = encode_jpeg([x[k] for k in idx], quality=q)
                dec = decode_jpeg([e.cpu() for e in enc], device=x.device)
                index = to_device(torch.tensor(idx), x.device)
                out.index_copy_(0, index, torch.stack(dec))
        except (RuntimeError, TypeError, NotImplementedError):  # pragma: no cover - no CUDA codec in this build
            return None
    return out


def _codec(images: list[torch.Tensor], quality: int) -> list[torch.Tensor]:
    """One libjpeg encode/decode round trip per ``(3, H, W)`` uint8 image, without OpenCV.

    torchvision's libjpeg bindings when they load: they take planar tensors and give the same
    bytes as Pillow's ``save(..., 'JPEG', quality=q)`` round trip (tested), but hold the GIL, so
    the threads of :func:`jpeg_roundtrip_uint8` take turns (measured); Pillow otherwise
    (torchvision deprecated these functions in 0.29 in favour of TorchCodec).
    """
    try:
        from torchvision.io import decode_jpeg, encode_jpeg

        return list(decode_jpeg(encode_jpeg(images, quality=quality)))
    except (ImportError, RuntimeError, AttributeError):  # pragma: no cover - no torchvision image codecs
        pass
    import io

    from PIL import Image

    res = []
    for im in images:
        buf = io.BytesIO()
        Image.fromarray(im.permute(1, 2, 0).numpy()).save(buf, "JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as dec:
            res.append(torch.from_numpy(np.array(dec.convert("RGB"))).permute(2, 0, 1))
    return res
