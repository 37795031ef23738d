"""Digital corruptions (ImageNet-C ``digital`` group: contrast, elastic transform, pixelate, JPEG;
plus the held-out saturate)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...base import bulk_rand, device_generator, rand
from ...functional.chunks import chunked, map_chunks
from ...functional.filters import gaussian_weights, separable_filter
from ...registry import register
from ._base import NaturalCorruption, pv, run_grouped, take
from ._pil import jpeg_roundtrip, jpeg_roundtrip_uint8, pixelate, pixelate_pil_uint8, pixelate_uint8

__all__ = ["NaturalContrast", "NaturalElasticTransform", "NaturalPixelate", "NaturalJPEGCompression", "NaturalSaturate"]


@register("natural_contrast")
class NaturalContrast(NaturalCorruption):
    """Contrast: ``clip((x - m) * c + m)``, ``m`` the per-channel mean of the image.

    ==========  ====  ====  ====  ====  ====
    severity    1     2     3     4     5
    imagenet    .4    .3    .2    .1    .05
    cifar       .75   .5    .4    .3    .15
    ==========  ====  ====  ====  ====  ====
    """

    name = "contrast"
    levels = {"imagenet": (0.4, 0.3, 0.2, 0.1, 0.05), "cifar": (0.75, 0.5, 0.4, 0.3, 0.15)}

    def _corrupt(self, x, params, sev):
        c = pv(self.vec(sev, x))
        m = x.mean(dim=(2, 3), keepdim=True)  # cascade summation: ~1e-7 of NumPy's float64 mean
        return torch.addcmul(m * (1 - c), x, c)


@register("natural_elastic_transform")
class NaturalElasticTransform(NaturalCorruption):
    """Elastic transform: a random affine warp then a smooth random displacement field.

    As published (a modification of the well-known elastic-deformation gist): the three points
    ``centre + (s, s)``, ``centre + (s, -s)``, ``centre - (s, s)`` (``s = min(H, W) // 3``) move by
    ``U(-affine, affine)`` each; the affine map through them warps the image
    (``cv2.warpAffine``, bilinear, BORDER_REFLECT_101); then ``dx, dy = alpha *
    gaussian(U(-1, 1), sigma, mode='reflect', truncate=3)`` and the image is resampled at
    ``(y + dy, x + dx)`` (``map_coordinates(order=1, mode='reflect')``). The published constants
    are in pixels (``244 * k`` for ImageNet — "244 should have been 224" says the source — and
    ``32 * k`` for CIFAR). imagecorruptions replaced this by a different, size-relative elastic
    transform without the affine part; this class follows the published ImageNet-C/CIFAR-10-C code.

    ========  =====================================  ===================================
    severity  imagenet (alpha, sigma, affine)        cifar (alpha, sigma, affine)
    1         244*2, 244*.7, 244*.1                  0, 0, 32*.08
    2         244*2, 244*.08, 244*.2                 32*.05, 32*.2, 32*.07
    3         244*.05, 244*.01, 244*.02              32*.08, 32*.06, 32*.06
    4         244*.07, 244*.01, 244*.02              32*.1, 32*.04, 32*.05
    5         244*.12, 244*.01, 244*.02              32*.1, 32*.03, 32*.03
    ========  =====================================  ===================================
    """

    geometric = True

    name = "elastic_transform"
    levels = {
        "imagenet": ((244 * 2, 244 * 0.7, 244 * 0.1), (244 * 2, 244 * 0.08, 244 * 0.2),
                     (244 * 0.05, 244 * 0.01, 244 * 0.02), (244 * 0.07, 244 * 0.01, 244 * 0.02),
                     (244 * 0.12, 244 * 0.01, 244 * 0.02)),
        "cifar": ((32 * 0, 32 * 0, 32 * 0.08), (32 * 0.05, 32 * 0.2, 32 * 0.07), (32 * 0.08, 32 * 0.06, 32 * 0.06),
                  (32 * 0.1, 32 * 0.04, 32 * 0.05), (32 * 0.1, 32 * 0.03, 32 * 0.03)),
    }

    def _sample_extra(self, x, generator):
        n, _, h, w = x.shape
        return {
            "affine": 2.0 * rand(n, 3, 2, generator=generator, device=x.device) - 1.0,
            "field": bulk_rand(n, 2, h, w, generator=device_generator(generator, x.device), device=x.device).mul_(2.0).sub_(1.0),
        }

    @staticmethod
    def affine_grid(shift: torch.Tensor, h: int, w: int, dtype: torch.dtype) -> torch.Tensor:
        """Sampling grid (align_corners=True) of ``cv2.warpAffine`` with the perturbed points."""
        n, dev = shift.shape[0], shift.device
        cy, cx = float(h // 2), float(w // 2)  # np.float32(shape_size) // 2, used as (x, y) by OpenCV
        sq = float(min(h, w) // 3)
        p1 = torch.tensor([[cy + sq, cx + sq], [cy + sq, cx - sq], [cy - sq, cx - sq]], dtype=torch.float64, device=dev)
        p2 = p1[None] + shift.double()  # (N, 3, 2) as (x, y)
        src = torch.cat([p1, torch.ones(3, 1, dtype=torch.float64, device=dev)], dim=1)  # (3, 3)
        fwd = torch.linalg.solve_ex(src[None].expand(n, 3, 3), p2, check_errors=False)[0].transpose(1, 2)  # (N, 2, 3): p2 = A [p1; 1]
        full = torch.cat([fwd, torch.tensor([[[0.0, 0.0, 1.0]]], dtype=torch.float64, device=dev).expand(n, 1, 3)], 1)
        inv = torch.linalg.inv_ex(full, check_errors=False)[0][:, :2]  # dst -> src (no error-check sync)
        scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], dtype=torch.float64, device=dev)
        rows = (inv * scale.view(1, 2, 1)).view(n, 2, 3, 1, 1)  # source (x, y) rows, in grid units
        ys = torch.arange(h, dtype=torch.float64, device=dev).view(1, h, 1)
        xs = torch.arange(w, dtype=torch.float64, device=dev).view(1, 1, w)
        grid = torch.empty(n, h, w, 2, dtype=dtype, device=dev)
        for i in range(2):  # the two coordinates: a x + b y + c - 1, by broadcasting (float64)
            r = rows[:, i]
            grid[..., i] = torch.addcmul(torch.addcmul(r[:, 2] - 1.0, r[:, 1], ys), r[:, 0], xs)
        return grid

    def _corrupt(self, x, params, sev):
        n, c, h, w = x.shape
        aff_all = self.field(params, "affine", x, (n, 3, 2))
        field_all = self.field(params, "field", x, (n, 2, h, w))

        def one(xg: torch.Tensor, s: int, idx: torch.Tensor | None) -> torch.Tensor:
            alpha, sigma, aff = self.level(s)
            aff_g, fld_g = take(aff_all, idx), take(field_all, idx)
            wts = gaussian_weights(float(sigma), 3.0)
            ys = torch.arange(h, dtype=x.dtype, device=x.device)[:, None]
            xs = torch.arange(w, dtype=x.dtype, device=x.device)[None, :]

            def block(xb: torch.Tensor, out: torch.Tensor, i: int) -> None:  # cache-sized chunks
                b = xb.shape[0]
                grid = self.affine_grid(aff_g[i:i + b] * aff, h, w, x.dtype)
                warped = F.grid_sample(xb, grid, mode="bilinear", padding_mode="reflection", align_corners=True)
                fld = fld_g[i:i + b]
                disp = (separable_filter(fld, wts, wts, "reflect") if len(wts) > 1 else fld) * alpha
                gx = (2.0 * (xs + disp[:, 0]) + 1.0) / w - 1.0  # align_corners=False pixel centres
                gy = (2.0 * (ys + disp[:, 1]) + 1.0) / h - 1.0
                grid2 = torch.stack([gx, gy], dim=-1)
                out.copy_(F.grid_sample(warped, grid2, mode="bilinear", padding_mode="reflection", align_corners=False))

            return chunked(xg, block)

        return run_grouped(x, sev, one)


@register("natural_pixelate")
class NaturalPixelate(NaturalCorruption):
    """Pixelate: PIL ``BOX`` resize to ``int(n * c)`` per side, then ``BOX`` back to ``n``
    (the published code; imagecorruptions upsamples with ``NEAREST``, which is the same map except
    at exact ties). Float input: PIL's box coefficients in float arithmetic (PIL's 8-bit
    intermediate rounding differs by at most one grey level). uint8 input (any device): PIL's own
    8-bit fixed-point arithmetic as tensor ops (:func:`._pil.pixelate_uint8`), bit-identical to
    ``Image.resize``; ``use_pil = True`` sends uint8 CPU batches through PIL itself instead.

    ==========  ====  ====  ====  ====  ====
    severity    1     2     3     4     5
    imagenet    .6    .5    .4    .3    .25
    cifar       .95   .9    .85   .75   .65
    ==========  ====  ====  ====  ====  ====
    """

    name = "pixelate"
    levels = {"imagenet": (0.6, 0.5, 0.4, 0.3, 0.25), "cifar": (0.95, 0.9, 0.85, 0.75, 0.65)}

    def _corrupt(self, x, params, sev):
        h, w = x.shape[-2:]

        return run_grouped(x, sev, lambda xg, s, idx: pixelate(xg, *self.size(s, h, w)))

    def size(self, s: int, h: int, w: int) -> tuple[int, int]:
        """The intermediate ``(hs, ws)`` of severity ``s`` for ``h x w`` images (at least 1 x 1)."""
        c = self.level(s)
        return max(1, int(h * c)), max(1, int(w * c))

    def _corrupt_uint8(self, x, params, sev):
        h, w = x.shape[-2:]
        if self.use_pil and x.device.type == "cpu":
            return pixelate_pil_uint8(x, [self.size(s, h, w) for s in sev.tolist()])
        return run_grouped(x, sev, lambda xg, s, idx: self._pixelate_group(xg, *self.size(s, h, w)))

    def _pixelate_group(self, x: torch.Tensor, hs: int, ws: int) -> torch.Tensor:
        """:func:`._pil.pixelate_uint8` of a batch of one size (chunks on the CPU workers)."""
        if x.device.type != "cpu":
            return pixelate_uint8(x, hs, ws)
        out = torch.empty_like(x)
        map_chunks(lambda i, j: pixelate_uint8(x[i:j], hs, ws, out=out[i:j]), x.shape[0], self.sample_chunk(x))
        return out

    #: uint8 CPU batches through PIL's own resampler instead of :func:`._pil.pixelate_uint8` (PIL's
    #: fixed-point arithmetic in torch, bit-identical to it and ~1.5-2x faster per image on one
    #: thread); kept for comparisons
    use_pil: bool = False


@register("natural_jpeg_compression")
class NaturalJPEGCompression(NaturalCorruption):
    """JPEG compression at a low quality: the image is rounded to 8 bits, then encoded and decoded
    with libjpeg through PIL (``save(..., 'JPEG', quality=q)``, 4:2:0 chroma subsampling), exactly
    the published round trip.

    The codec is external, so this is the one corruption that loops over the samples on the CPU
    (one libjpeg call each, ~0.3 ms for 224x224 on one core, on a thread per core). A batched DCT
    re-implementation would not be bit-exact (libjpeg's integer DCT and rounding), so the real
    codec is used (see :func:`._pil._codec`). On CUDA the batch is coded on the device by nvJPEG
    (torchvision's batched ``encode_jpeg``/``decode_jpeg``; not bit-identical to libjpeg, PSNR to
    Pillow's round trip documented in ``docs/benchmarks.md``), with the CPU codec as the fallback.
    uint8 input (``corrupt(x_uint8, ...)``) goes to the codec as it is, as published.

    ==========  ====  ====  ====  ====  ====
    severity    1     2     3     4     5
    imagenet    25    18    15    10    7
    cifar       80    65    58    50    40
    ==========  ====  ====  ====  ====  ====
    """

    name = "jpeg_compression"
    levels = {"imagenet": (25, 18, 15, 10, 7), "cifar": (80, 65, 58, 50, 40)}

    def _corrupt(self, x, params, sev):
        return jpeg_roundtrip(x, [int(self.level(s)) for s in sev.tolist()])

    def _corrupt_uint8(self, x, params, sev):
        return jpeg_roundtrip_uint8(x, [int(self.level(s)) for s in sev.tolist()])


@register("natural_saturate")
class NaturalSaturate(NaturalCorruption):
    """Saturation: HSV ``S -> clip(S * a + b)``; hue and value kept.

    Closed form of ``hsv2rgb(rgb2hsv(x) with the new S)``: ``V - (S' / S) (V - x)``; grey pixels
    (``S = 0``, hue 0 in scikit-image) become ``(V, V (1 - S'), V (1 - S'))``.

    ==========  ========  ========  ======  =========  =========
    severity    1         2         3       4          5
    imagenet    (.3, 0)   (.1, 0)   (2, 0)  (5, .1)    (20, .2)
    cifar       (.3, 0)   (.1, 0)   (1.5,0) (2, .1)    (2.5, .2)
    ==========  ========  ========  ======  =========  =========
    """

    name = "saturate"
    levels = {
        "imagenet": ((0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2)),
        "cifar": ((0.3, 0.0), (0.1, 0.0), (1.5, 0.0), (2.0, 0.1), (2.5, 0.2)),
    }

    def _corrupt(self, x, params, sev):
        a, b = pv(self.vec(sev, x, 0)), pv(self.vec(sev, x, 1))
        v = x.amax(dim=1, keepdim=True)
        delta = v - x.amin(dim=1, keepdim=True)
        tiny = torch.finfo(x.dtype).tiny
        grey = delta <= 0
        s = delta / v.clamp(min=tiny)
        sn = (s * a + b).clamp_(0.0, 1.0)
        f = torch.where(grey, torch.zeros_like(sn), sn * v / delta.clamp(min=tiny))
        out = torch.addcmul(v * (1 - f), x, f)  # f x + (1 - f) V
        if any(self.level(s)[1] > 0 for s in set(sev.tolist())):  # host severities: no device sync
            sub = torch.where(grey, v * sn, torch.zeros_like(v))
            out[:, 1:].sub_(sub)
        return out
