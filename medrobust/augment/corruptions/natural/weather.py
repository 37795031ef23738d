"""Weather corruptions (ImageNet-C ``weather`` group: snow, frost, fog, brightness; plus the held-out
spatter)."""

from __future__ import annotations

from typing import ClassVar

import torch

from ...base import bulk_rand, bulk_randn, device_generator, rand, randint
from ...functional.chunks import map_chunks
from ...functional.filters import gaussian_filter
from ...functional.opencv import cv2_module, cv2_planes
from ...registry import register
from ._base import NaturalCorruption, pv, run_grouped, take
from ._blur_ops import clipped_zoom, motion_blur
from ._frost import frost_bank
from ._opencv import EMBOSS, box3, canny, correlate3x3, distance_to_edges, equalize_hist, water_distance_cv2
from ._plasma import next_power_of_2, plasma_fractal, plasma_uniform_count

__all__ = ["NaturalSnow", "NaturalFrost", "NaturalFog", "NaturalBrightness", "NaturalSpatter"]


def _gray(x: torch.Tensor) -> torch.Tensor:
    """``cv2.cvtColor(x, COLOR_RGB2GRAY)``: 0.299 R + 0.587 G + 0.114 B, ``(N, 1, H, W)``."""
    # a weighted sum of the planes (an einsum here was a channels-last copy and a matmul: ~5x slower)
    return (x[:, 0:1] * 0.299).add_(x[:, 1:2], alpha=0.587).add_(x[:, 2:3], alpha=0.114)


@register("natural_snow")
class NaturalSnow(NaturalCorruption):
    """Snow: a thresholded, zoomed Gaussian layer of flakes, motion-blurred, added twice (also
    rotated by 180 degrees) to a brightened image.

    Per sample: ``layer ~ N(loc, scale)`` (one channel), ``clipped_zoom(layer, zoom)``, values
    below ``threshold`` set to 0, clipped and truncated to 8 bits, motion blur (``radius``,
    ``sigma``, angle uniform in [-135, -45] degrees), rounded to 8 bits; the image becomes
    ``mix * x + (1 - mix) * max(x, 1.5 * gray(x) + 0.5)``; output
    ``clip(image + layer + rot180(layer))``.

    ========  ======================================  ======================================
    severity  imagenet (loc, scale, zoom, threshold,  cifar
              radius, sigma, mix)
    1         .1, .3, 3, .5, 10, 4, .8                .1, .2, 1, .6, 8, 3, .95
    2         .2, .3, 2, .5, 12, 4, .7                .1, .2, 1, .5, 10, 4, .9
    3         .55, .3, 4, .9, 12, 8, .7               .15, .3, 1.75, .55, 10, 4, .9
    4         .55, .3, 4.5, .85, 12, 8, .65           .25, .3, 2.25, .6, 12, 6, .85
    5         .55, .3, 2.5, .85, 12, 12, .55          .3, .3, 1.25, .65, 14, 12, .8
    ========  ======================================  ======================================
    """

    name = "snow"
    levels = {
        "imagenet": ((0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7), (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
                     (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65), (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)),
        "cifar": ((0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
                  (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)),
    }

    def _sample_extra(self, x, generator):
        n, _, h, w = x.shape
        return {
            "noise": bulk_randn(n, 1, h, w, generator=device_generator(generator, x.device), device=x.device),
            "angle": -135.0 + 90.0 * rand(n, generator=generator, device=x.device),
        }

    def _corrupt(self, x, params, sev):
        n, _, h, w = x.shape
        noise_all = self.field(params, "noise", x, (n, 1, h, w))
        angle_all = self.field(params, "angle", x, (n,)).double()

        def one(xg: torch.Tensor, s: int, idx: torch.Tensor | None) -> torch.Tensor:
            loc, scale, zoom, thr, radius, sigma, mix = self.level(s)
            layer = take(noise_all, idx) * scale + loc
            layer = clipped_zoom(layer, zoom) if zoom != 1 else layer
            layer = torch.where(layer < thr, torch.zeros_like(layer), layer)
            layer = layer.clamp_(0.0, 1.0).mul_(255.0).floor_().div_(255.0)  # PIL 'L' image
            ng = xg.shape[0]
            r = torch.full((ng,), float(radius), dtype=torch.float64, device=x.device)
            sg = torch.full((ng,), float(sigma), dtype=torch.float64, device=x.device)
            layer = motion_blur(layer, r, sg, take(angle_all, idx))
            layer = layer.mul(255.0).round_().div_(255.0)  # back through an 8-bit PNG
            bright = torch.maximum(xg, _gray(xg).mul_(1.5).add_(0.5))
            out = bright.mul_(1.0 - mix).add_(xg, alpha=mix)
            return out.add_(layer).add_(torch.flip(layer, dims=(-2, -1)))

        return run_grouped(x, sev, one)


@register("natural_frost")
class NaturalFrost(NaturalCorruption):
    """Frost: ``clip(a * x + b * frost)`` with a random crop of a frost texture.

    The published code crops one of five photographs of frost (CIFAR: shrunk by 0.2 first); here
    the five textures are generated procedurally with the photographs' sizes and per-channel means
    and standard deviations (see :mod:`._frost`). Per sample: the texture (uniform over 5) and the
    crop position (uniform).

    ==========  ======================================  ======================================
    severity    imagenet (a, b)                         cifar (a, b)
    1..5        (1,.4) (.8,.6) (.7,.7) (.65,.7) (.6,.75)  (1,.2) (1,.3) (.9,.4) (.85,.4) (.75,.45)
    ==========  ======================================  ======================================
    """

    name = "frost"
    levels = {
        "imagenet": ((1.0, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)),
        "cifar": ((1.0, 0.2), (1.0, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
    }
    n_textures: ClassVar[int] = 5

    def _sample_extra(self, x, generator):
        n = x.shape[0]
        return {
            "texture": randint(0, self.n_textures, (n,), generator=generator, device=x.device),
            "position": rand(n, 2, generator=generator, device=x.device),
        }

    def _corrupt(self, x, params, sev):
        n, c, h, w = x.shape
        tex = self.field(params, "texture", x, (n,)).long()
        pos = self.field(params, "position", x, (n, 2)).double()
        bank, sizes = frost_bank(self.table, h, w, x.device, x.dtype)
        room = (sizes[tex] - torch.tensor([h, w], device=x.device)).clamp_(min=0).double()
        start = torch.floor(pos * room).long()  # np.random.randint(0, size - n)
        rows = start[:, 0:1] + torch.arange(h, device=x.device)[None, :]
        cols = start[:, 1:2] + torch.arange(w, device=x.device)[None, :]
        ch = torch.arange(c, device=x.device)
        f = bank[tex[:, None, None, None], ch[None, :, None, None], rows[:, None, :, None], cols[:, None, None, :]]
        return f.mul_(pv(self.vec(sev, x, 1))).addcmul_(x, pv(self.vec(sev, x, 0)))


@register("natural_fog")
class NaturalFog(NaturalCorruption):
    """Fog: ``clip((x + s * plasma) * max(x) / (max(x) + s))`` with a diamond-square plasma map.

    The plasma is the published ``plasma_fractal`` (map size: the next power of two of the larger
    side, cropped to the image), batched, with per-sample uniforms; ``decay`` is its wibble decay.

    ==========  ==============================================  ==========================================
    severity    imagenet (s, decay)                             cifar
    1..5        (1.5,2) (2,2) (2.5,1.7) (2.5,1.5) (3,1.4)       (.2,3) (.5,3) (.75,2.5) (1,2) (1.5,1.75)
    ==========  ==============================================  ==========================================
    """

    name = "fog"
    levels = {
        "imagenet": ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)),
        "cifar": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1.0, 2), (1.5, 1.75)),
    }

    @staticmethod
    def mapsize(h: int, w: int) -> int:
        return next_power_of_2(max(h, w))

    def _sample_extra(self, x, generator):
        m = self.mapsize(*x.shape[-2:])
        # m*m - 1 uniforms per image (65535 at 224x224): drawn on the device, not copied there
        gen = device_generator(generator, x.device)
        return {"uniform": bulk_rand(x.shape[0], plasma_uniform_count(m), generator=gen, device=x.device)}

    def _corrupt(self, x, params, sev):
        n, _, h, w = x.shape
        m = self.mapsize(h, w)
        u = self.field(params, "uniform", x, (n, plasma_uniform_count(m)))
        plasma = plasma_fractal(u, m, self.vec(sev, x, 1))[:, None, :h, :w].to(x.dtype)
        s = pv(self.vec(sev, x, 0))
        mx = pv(x.amax(dim=(1, 2, 3)))
        return torch.addcmul(x, plasma, s).mul_(mx / (mx + s))


@register("natural_brightness")
class NaturalBrightness(NaturalCorruption):
    """Brightness: HSV value ``V -> clip(V + c)``; hue and saturation kept.

    Closed form of ``hsv2rgb(rgb2hsv(x) with V + c)``: ``x * V' / V`` (``V' = min(V + c, 1)``,
    ``V = max`` over channels), and ``V'`` for black pixels.

    ==========  ====  ====  ====  ====  ====
    severity    1     2     3     4     5
    imagenet    .1    .2    .3    .4    .5
    cifar       .05   .1    .15   .2    .3
    ==========  ====  ====  ====  ====  ====
    """

    name = "brightness"
    levels = {"imagenet": (0.1, 0.2, 0.3, 0.4, 0.5), "cifar": (0.05, 0.1, 0.15, 0.2, 0.3)}

    def _corrupt(self, x, params, sev):
        v = x.amax(dim=1, keepdim=True)
        vn = (v + pv(self.vec(sev, x))).clamp_(max=1.0)
        black = v <= 0
        ratio = vn / v.clamp(min=torch.finfo(x.dtype).tiny)
        out = x * ratio
        return out.add_(torch.where(black, vn, torch.zeros_like(vn)))


@register("natural_spatter")
class NaturalSpatter(NaturalCorruption):
    """Spatter: water droplets (severities 1-3 of ImageNet and CIFAR) or mud (4-5).

    Per sample ``liquid ~ N(loc, scale)`` (one channel), Gaussian-blurred (``sigma``, scipy
    ``nearest``), values below ``threshold`` set to 0.

    * water: ``L8`` = liquid truncated to 8 bits (``astype(np.uint8)``: the rare values above 1 wrap
      around, as in the published code); Canny edges (50, 150) of ``L8``; distance to the
      nearest edge capped at 20; 3x3 box blur, truncated to 8 bits; histogram equalisation; emboss
      ``[[-2,-1,0],[-1,1,1],[0,1,2]]`` saturated to 8 bits; 3x3 box blur rounded to 8 bits;
      ``m = L8 * dist / max(L8 * dist) * intensity``; output ``clip(x + m * (175, 238, 238) / 255)``.
      Every step follows OpenCV's semantics (Canny's fixed-point sector test, the 5x5 chamfer
      distance, 8-bit rounding), batched; see :mod:`._opencv`. On the CPU the chain from ``L8``
      to the blurred emboss runs through OpenCV itself, one plane per call on the workers
      (:func:`._opencv.water_distance_cv2`: the published calls, ~9x the batched torch steps).
    * mud: ``m = gaussian(liquid > threshold, intensity)`` with values below 0.8 set to 0; output
      ``clip(x * (1 - m) + m * (63, 42, 20) / 255)``.

    ========  =========================================  =========================================
    severity  imagenet (loc, scale, sigma, threshold,    cifar
              intensity, mud)
    1         .65, .3, 4, .69, .6, 0                     .62, .1, .7, .7, .5, 0
    2         .65, .3, 3, .68, .6, 0                     .65, .1, .8, .7, .5, 0
    3         .65, .3, 2, .68, .5, 0                     .65, .3, 1, .69, .5, 0
    4         .65, .3, 1, .65, 1.5, 1                    .65, .1, .7, .69, .6, 1
    5         .67, .4, 1, .65, 1.5, 1                    .65, .1, .5, .68, .6, 1
    ========  =========================================  =========================================
    """

    # the torch path's per-sample stages run in chunks around one whole-batch distance transform;
    # with OpenCV (the CPU default) the whole chain runs per chunk on the workers
    cpu_chunks = "stages"
    name = "spatter"
    levels = {
        "imagenet": ((0.65, 0.3, 4, 0.69, 0.6, 0), (0.65, 0.3, 3, 0.68, 0.6, 0), (0.65, 0.3, 2, 0.68, 0.5, 0),
                     (0.65, 0.3, 1, 0.65, 1.5, 1), (0.67, 0.4, 1, 0.65, 1.5, 1)),
        "cifar": ((0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
                  (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1)),
    }
    water: ClassVar[tuple[float, float, float]] = (175 / 255, 238 / 255, 238 / 255)
    mud: ClassVar[tuple[float, float, float]] = (63 / 255, 42 / 255, 20 / 255)
    emboss: ClassVar[tuple[tuple[int, ...], ...]] = EMBOSS

    def cpu_split(self) -> str:
        """``"samples"`` with OpenCV (every stage is per sample), ``"stages"`` without."""
        return "samples" if cv2_module() is not None else "stages"

    def _sample_extra(self, x, generator):
        n, _, h, w = x.shape
        return {"noise": bulk_randn(n, 1, h, w, generator=device_generator(generator, x.device), device=x.device)}

    def liquid(self, noise: torch.Tensor, s: int) -> torch.Tensor:
        loc, scale, sigma, thr, _, _ = self.level(s)
        layer = gaussian_filter(noise.double() * scale + loc, sigma)
        return torch.where(layer < thr, torch.zeros_like(layer), layer)

    @staticmethod
    def water_l8(liquid: torch.Tensor) -> torch.Tensor:
        """``L8 = liquid.astype(np.uint8)`` after ``* 255`` (float, integer-valued, ``(n, H, W)``):
        values above 1 wrap around, as in the published code (the liquid is >= 0: truncation is
        the floor, and the low 8 bits are the wrap)."""
        return liquid.mul(255.0).to(torch.int32).bitwise_and_(255).float()

    @classmethod
    def water_edges(cls, liquid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``L8`` (float, integer-valued) and its Canny edges (bool), both ``(n, H, W)``."""
        l8 = cls.water_l8(liquid)
        return l8, canny(l8, 50, 150)

    def water_finish(self, l8: torch.Tensor, dist: torch.Tensor, intensity: float) -> torch.Tensor:
        """The mask from ``L8`` and the capped edge distance (both ``(n, H, W)``)."""
        dist = box3(dist).floor_()
        dist = equalize_hist(dist)
        dist = torch.round(correlate3x3(dist, self.emboss, "mirror")).clamp_(0, 255)
        return self.water_scale(l8, torch.round(box3(dist)), intensity)

    @staticmethod
    def water_scale(l8: torch.Tensor, dist: torch.Tensor, intensity: float) -> torch.Tensor:
        """``m = L8 * dist / max(L8 * dist) * intensity`` per sample (0 where the max is 0)."""
        m = l8 * dist
        mx = m.amax(dim=(1, 2), keepdim=True)
        m = torch.where(mx > 0, m / mx.clamp(min=1e-12), torch.zeros_like(m))
        return m * intensity

    def _corrupt(self, x, params, sev):
        n, _, h, w = x.shape
        noise_all = self.field(params, "noise", x, (n, 1, h, w))

        def one(xg: torch.Tensor, s: int, idx: torch.Tensor | None) -> torch.Tensor:
            # the whole group in one call (cpu_chunks = "stages"): the per-sample stages run in
            # chunks on the CPU workers, the distance transform once per group (its raster row loop
            # costs per call, not per image)
            _, _, _, thr, intensity, mud = self.level(s)
            noise = take(noise_all, idx)
            ng = xg.shape[0]
            step = self.sample_chunk(xg)
            out = torch.empty_like(xg)
            cv2 = cv2_module() if x.device.type == "cpu" else None
            if mud == 0 and cv2 is not None:
                color = torch.tensor(self.water, dtype=x.dtype).reshape(1, 3, 1, 1)

                def stage_cv2(i: int, j: int) -> None:
                    l8 = self.water_l8(self.liquid(noise[i:j], s)[:, 0])
                    dist = cv2_planes(lambda a, b: water_distance_cv2(cv2, a, b), l8.to(torch.uint8),
                                      out=torch.empty(l8.shape, dtype=torch.float32))
                    m = self.water_scale(l8, dist, intensity).to(x.dtype)[:, None]
                    torch.addcmul(xg[i:j], m, color, out=out[i:j])

                map_chunks(stage_cv2, ng, step)
                return out
            if mud == 0:
                color = torch.tensor(self.water, dtype=x.dtype, device=x.device).reshape(1, 3, 1, 1)
                l8 = torch.empty((ng, h, w), dtype=torch.float32, device=x.device)
                edges = torch.empty((ng, h, w), dtype=torch.bool, device=x.device)

                def stage_edges(i: int, j: int) -> None:
                    l8[i:j], edges[i:j] = self.water_edges(self.liquid(noise[i:j], s)[:, 0])

                map_chunks(stage_edges, ng, step)
                dist = distance_to_edges(edges, 20)  # one call: two halves on two threads were slower (GIL)

                def stage_mask(i: int, j: int) -> None:
                    m = self.water_finish(l8[i:j], dist[i:j], intensity).to(x.dtype)[:, None]
                    torch.addcmul(xg[i:j], m, color, out=out[i:j])

                map_chunks(stage_mask, ng, step)
                return out
            color = torch.tensor(self.mud, dtype=x.dtype, device=x.device).reshape(1, 3, 1, 1)

            def stage_mud(i: int, j: int) -> None:
                liquid = self.liquid(noise[i:j], s)[:, 0]
                m = gaussian_filter((liquid > thr).to(torch.float64)[:, None], intensity)
                m = torch.where(m < 0.8, torch.zeros_like(m), m).to(x.dtype)
                torch.addcmul(xg[i:j] * (1 - m), m, color, out=out[i:j])

            map_chunks(stage_mud, ng, step)
            return out

        return run_grouped(x, sev, one)
