"""Procedural street scenes written in the public layouts of the driving datasets.

:func:`make_scene` draws a street scene (road with dashed lane marks and curbs, sidewalks,
buildings with windows, walls, fences, vegetation, terrain, sky, cars, trucks, buses, a tram,
people, riders on bicycles and motorcycles, poles with traffic signs and lights, litter bins, an ego
vehicle's bonnet) into an *internal* label map, then renders it in a domain style: colours,
textures, lighting, camera height, sensor noise and blur. :func:`encode_label` turns the internal
map into each dataset's own label encoding (Cityscapes label ids, GTA5 palette PNG ids, BDD100K
train ids, Mapillary Vistas v1.2 class indices — lane marks as ``marking--general``, curbs as
``construction--barrier--curb`` — and SYNTHIA's 16-bit class/instance PNG), and
:func:`write_synthetic_driving` writes scenes in the exact on-disk layout, so the real readers of
:mod:`medrobust.data.driving` and their label mappings are exercised with no downloads.

Styles (domains): ``source`` (overcast, muted, Cityscapes-like), ``bdd100k`` (dusk dash-cam: dark,
warm, noisy, blurred, vignetting), ``mapillary`` (sunny, saturated, colourful facades, hard
shadows, varied camera height), ``synthia`` (rendered: flat unusual colours, no noise, high
viewpoint). The geometry is shared; the shift is appearance, which is what RandConv-style
augmentation targets.

:func:`write_default_driving` writes the embedded default of the ``driving`` task: a source domain
(train + val) in the Cityscapes layout and three target domains in the BDD100K, Mapillary and
SYNTHIA layouts (defaults: 24 + 8 source images, 8 per target, 256×512; about 2 s).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..driving import (
    CITYSCAPES_ID_TO_TRAIN,
    CITYSCAPES_LABELS,
    DATASETS,
    MAPILLARY_TO_TRAIN,
    SYNTHIA_TO_TRAIN,
)

__all__ = [
    "STYLES",
    "DEFAULT_STYLE",
    "LANE",
    "EGO",
    "VOID",
    "STATIC",
    "CURB",
    "SyntheticScene",
    "make_scene",
    "encode_label",
    "write_synthetic_driving",
    "write_default_driving",
]

PathLike = str | os.PathLike[str]

# internal codes beyond the 19 train ids
LANE, EGO, VOID, STATIC, CURB = 19, 20, 21, 22, 23

#: default style of each layout when written on its own
DEFAULT_STYLE = {"cityscapes": "source", "gta5": "source", "bdd100k": "bdd100k", "mapillary": "mapillary",
                 "synthia": "synthia"}


@dataclass(frozen=True)
class Style:
    colors: dict[int, tuple[float, float, float]]
    sky: tuple[tuple[float, float, float], tuple[float, float, float]]
    horizon: tuple[float, float]
    jitter: float = 0.12  # per-instance colour jitter (fraction)
    texture: float = 0.10  # low-frequency texture amplitude
    grain: float = 4.0  # per-pixel noise std (0..255)
    brightness: float = 1.0
    contrast: float = 1.0
    gamma: float = 1.0
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    blur: float = 0.0
    shadows: bool = False
    vignette: float = 0.0
    ego: float = 0.0  # probability of an ego-vehicle bonnet
    window: tuple[float, float, float] = (60, 70, 80)
    building_palette: tuple[tuple[float, float, float], ...] = ()


_BASE = {
    0: (128, 128, 130), 1: (175, 170, 165), 2: (140, 135, 125), 3: (160, 150, 135), 4: (120, 110, 95),
    5: (110, 110, 110), 6: (40, 40, 40), 7: (200, 200, 60), 8: (70, 105, 45), 9: (120, 140, 80),
    11: (90, 60, 70), 12: (60, 70, 120), 13: (40, 60, 120), 14: (150, 150, 160), 15: (200, 170, 40),
    16: (170, 60, 50), 17: (30, 30, 40), 18: (120, 30, 40), LANE: (235, 235, 235), EGO: (30, 30, 35),
    STATIC: (60, 90, 60), CURB: (150, 150, 150), VOID: (100, 100, 100),
}

STYLES: dict[str, Style] = {
    "source": Style(colors=_BASE, sky=((165, 180, 200), (205, 210, 215)), horizon=(0.42, 0.5), ego=0.8,
                    building_palette=((140, 135, 125), (120, 115, 110), (165, 155, 140), (100, 100, 105))),
    "bdd100k": Style(
        colors={**_BASE, 0: (70, 65, 75), 1: (120, 100, 95), 8: (40, 60, 35), 9: (90, 85, 50), 13: (150, 20, 20),
                11: (40, 40, 50), LANE: (210, 190, 90)},
        sky=((40, 50, 100), (230, 140, 80)), horizon=(0.38, 0.5), jitter=0.25, texture=0.18, grain=12.0,
        brightness=0.7, contrast=0.85, gamma=1.25, tint=(1.15, 0.95, 0.75), blur=1.2, vignette=0.45, ego=0.9,
        window=(230, 190, 90), building_palette=((80, 70, 75), (60, 55, 65), (95, 80, 70))),
    "mapillary": Style(
        colors={**_BASE, 0: (95, 95, 105), 1: (215, 200, 180), 8: (60, 160, 50), 9: (160, 175, 70), 13: (210, 210, 215),
                5: (60, 70, 60), 11: (200, 80, 40)},
        sky=((40, 100, 210), (140, 190, 240)), horizon=(0.3, 0.55), jitter=0.3, texture=0.2, grain=5.0,
        brightness=1.1, contrast=1.25, gamma=0.9, shadows=True, ego=0.15, window=(150, 200, 230),
        building_palette=((170, 70, 50), (220, 200, 120), (235, 235, 230), (90, 120, 170), (200, 130, 90))),
    "synthia": Style(
        colors={**_BASE, 0: (115, 95, 80), 1: (180, 110, 110), 2: (110, 120, 150), 8: (110, 150, 60), 9: (170, 150, 90),
                13: (170, 40, 160), 11: (230, 200, 60), 5: (180, 180, 60), LANE: (250, 250, 120)},
        sky=((150, 200, 255), (255, 255, 255)), horizon=(0.28, 0.38), jitter=0.15, texture=0.03, grain=0.0,
        brightness=1.05, contrast=1.1, tint=(0.95, 1.0, 1.1), ego=0.0, window=(40, 40, 90),
        building_palette=((110, 120, 150), (150, 110, 130), (90, 140, 140))),
}

# per-class texture amplitude multipliers (road/vegetation/terrain are rough, sky smooth)
_TEXTURE = np.ones(256, dtype=np.float32)
_TEXTURE[[0, 1, CURB, LANE]] = 0.8
_TEXTURE[[8, 9]] = 2.5
_TEXTURE[10] = 0.3
_TEXTURE[[13, 14, 15, 16, 17, 18]] = 0.3


@dataclass
class SyntheticScene:
    """An image ``(H, W, 3)`` uint8 RGB, the internal label map ``(H, W)`` (train ids 0..18 plus
    :data:`LANE`, :data:`EGO`, :data:`VOID`, :data:`STATIC`, :data:`CURB`) and instance ids."""

    image: np.ndarray
    raw: np.ndarray
    instances: np.ndarray
    style: str = "source"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def train_ids(self) -> np.ndarray:
        """Train ids in the Cityscapes convention (lane marks are road, curbs sidewalk)."""
        return encode_train_ids(self.raw)


def encode_train_ids(raw: np.ndarray) -> np.ndarray:
    lut = np.full(256, 255, dtype=np.uint8)
    lut[:19] = np.arange(19)
    lut[LANE], lut[CURB] = 0, 1
    return lut[raw]


class _Canvas:
    def __init__(self, h: int, w: int) -> None:
        self.h, self.w = h, w
        self.raw = np.full((h, w), VOID, dtype=np.uint8)
        self.img = np.zeros((h, w, 3), dtype=np.float32)
        self.inst = np.zeros((h, w), dtype=np.uint16)
        self.n_inst = 0

    def poly(self, pts: Any, code: int, colour: Any, instance: bool = False) -> None:
        import cv2

        p = [np.round(np.asarray(pts, dtype=np.float64)).astype(np.int32)]
        cv2.fillPoly(self.raw, p, int(code))
        cv2.fillPoly(self.img, p, tuple(float(c) for c in colour))
        if instance:
            cv2.fillPoly(self.inst, p, int(self.n_inst))

    def rect(self, x0: float, y0: float, x1: float, y1: float, code: int, colour: Any, instance: bool = False) -> None:
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], code, colour, instance)

    def ellipse(self, cx: float, cy: float, ax: float, ay: float, code: int, colour: Any, instance: bool = False) -> None:
        import cv2

        c, a = (int(round(cx)), int(round(cy))), (max(1, int(round(ax))), max(1, int(round(ay))))
        cv2.ellipse(self.raw, c, a, 0, 0, 360, int(code), -1)
        cv2.ellipse(self.img, c, a, 0, 0, 360, tuple(float(v) for v in colour), -1)
        if instance:
            cv2.ellipse(self.inst, c, a, 0, 0, 360, int(self.n_inst), -1)

    def new_instance(self) -> None:
        self.n_inst += 1


def _jit(rng: np.random.Generator, colour: Any, amount: float) -> np.ndarray:
    c = np.asarray(colour, dtype=np.float32)
    return np.clip(c * (1 + amount * rng.uniform(-1, 1, 3)) + rng.uniform(-8, 8, 3), 0, 255)


def _lowfreq(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    import cv2

    small = rng.standard_normal((max(2, h // cell), max(2, w // cell))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def make_scene(seed: int | np.random.Generator, size: tuple[int, int] = (256, 512), style: str = "source") -> SyntheticScene:
    """Draw one street scene of ``size = (H, W)`` in ``style`` (one of :data:`STYLES`)."""
    import cv2

    if style not in STYLES:
        raise ValueError(f"style: unknown {style!r}; choose one of {sorted(STYLES)}")
    st = STYLES[style]
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    h, w = int(size[0]), int(size[1])
    if h < 32 or w < 32:
        raise ValueError(f"size: expected at least 32x32, got {size}")
    cv = _Canvas(h, w)
    col = st.colors
    hz = int(h * rng.uniform(*st.horizon))
    vx = w * rng.uniform(0.4, 0.6)

    # sky: vertical gradient
    t = np.linspace(0, 1, max(hz, 1), dtype=np.float32)[:, None, None]
    top, bottom = np.asarray(st.sky[0], np.float32), np.asarray(st.sky[1], np.float32)
    cv.raw[:hz] = 10
    cv.img[:hz] = (1 - t) * top + t * bottom

    # ground: terrain below the horizon, then sidewalks, curbs and the road (a trapezoid to the vanishing point)
    cv.rect(0, hz, w, h, 9, _jit(rng, col[9], st.jitter))
    road_l, road_r = w * rng.uniform(-0.25, 0.15), w * rng.uniform(0.85, 1.25)
    side_w = w * rng.uniform(0.25, 0.45)
    out_l, out_r = road_l - side_w, road_r + side_w

    def line_x(x_bottom: float, y: float) -> float:
        return vx + (x_bottom - vx) * (y - hz) / max(h - hz, 1)

    def line_y(x_bottom: float, x: float) -> float:  # y on the ray from the vanishing point to (x_bottom, h)
        if abs(x_bottom - vx) < 1e-6:
            return float(h)
        return hz + (h - hz) * (x - vx) / (x_bottom - vx)

    side_colour = _jit(rng, col[1], st.jitter)
    cv.poly([(vx - 1, hz), (road_l, h), (out_l, h)], 1, side_colour)
    cv.poly([(vx + 1, hz), (road_r, h), (out_r, h)], 1, side_colour)
    curb = w * 0.05
    cv.poly([(vx - 1, hz), (road_l, h), (road_l - curb, h)], CURB, _jit(rng, col[CURB], st.jitter))
    cv.poly([(vx + 1, hz), (road_r, h), (road_r + curb, h)], CURB, _jit(rng, col[CURB], st.jitter))
    cv.poly([(vx - 1, hz), (vx + 1, hz), (road_r, h), (road_l, h)], 0, _jit(rng, col[0], st.jitter))

    # lane marks: a dashed centre line, dashes longer towards the camera
    centre = (road_l + road_r) / 2
    lane_colour = _jit(rng, col[LANE], 0.05)
    s = 0.08
    while s < 1.0:
        s1 = min(1.0, s + 0.12 * s + 0.03)
        y0, y1 = hz + s * (h - hz), hz + s1 * (h - hz)
        hw0, hw1 = 0.006 * w * s + 0.5, 0.006 * w * s1 + 0.5
        x0, x1 = line_x(centre, y0), line_x(centre, y1)
        cv.poly([(x0 - hw0, y0), (x0 + hw0, y0), (x1 + hw1, y1), (x1 - hw1, y1)], LANE, lane_colour)
        s = s1 + 0.1 * s1 + 0.03

    # roadside: buildings (with occasional parks, walls and fences) whose bottoms follow the outer sidewalk edge
    palette = st.building_palette or (col[2],)
    for side in (-1, 1):
        x_out = out_l if side < 0 else out_r
        x = vx - 3 if side < 0 else vx + 3
        while (x > 0) if side < 0 else (x < w):
            bw = w * rng.uniform(0.06, 0.2) * (0.4 + abs(x - vx) / w)
            xa, xb = (x - bw, x) if side < 0 else (x, x + bw)
            ya, yb = line_y(x_out, xa), line_y(x_out, xb)
            top = hz - (h * rng.uniform(0.08, 0.45)) * (0.3 + abs(x - vx) / w)
            kind = rng.uniform()
            if kind < 0.15:  # a park: trees over terrain
                cv.poly([(xa, hz - 2), (xb, hz - 2), (xb, yb), (xa, ya)], 9, _jit(rng, col[9], st.jitter))
                for _ in range(2):
                    cx, r = rng.uniform(xa, xb), bw * rng.uniform(0.3, 0.6)
                    cv.ellipse(cx, min(ya, yb) - r * 0.6, r, r * 1.1, 8, _jit(rng, col[8], st.jitter))
            else:
                cv.poly([(xa, top), (xb, top), (xb, yb), (xa, ya)], 2, _jit(rng, palette[rng.integers(len(palette))], st.jitter))
                if kind > 0.8:  # a wall or fence in front of the facade
                    code = 3 if kind > 0.9 else 4
                    fh = (h - hz) * rng.uniform(0.05, 0.12) * (0.3 + abs(x - vx) / w)
                    cv.poly([(xa, ya - fh), (xb, yb - fh), (xb, yb), (xa, ya)], code, _jit(rng, col[code], st.jitter))
            x = xa if side < 0 else xb
        # street trees along the outer sidewalk edge
        for _ in range(int(rng.integers(0, 3))):
            ty = hz + (h - hz) * rng.uniform(0.05, 0.5)
            tx = line_x(x_out, ty) + side * w * 0.01
            r = (ty - hz) * rng.uniform(0.4, 0.8) + 3
            cv.rect(tx - r * 0.08, ty - r * 1.6, tx + r * 0.08, ty, 8, _jit(rng, (70, 50, 30), 0.1))
            cv.ellipse(tx, ty - r * 1.9, r, r * 0.9, 8, _jit(rng, col[8], st.jitter))

    # objects sorted far to near (depth parameter d in (0, 1], scale grows with d)
    objects: list[tuple[float, str, float]] = []
    for _ in range(int(rng.integers(2, 6))):
        objects.append((rng.uniform(0.1, 0.9), rng.choice(["car", "car", "car", "truck", "bus", "moto"]), rng.uniform(0.1, 0.9)))
    for _ in range(int(rng.integers(1, 6))):
        objects.append((rng.uniform(0.1, 0.85), rng.choice(["person", "person", "bike", "bin"]), float(rng.choice([-1, 1]))))
    for _ in range(int(rng.integers(1, 4))):
        objects.append((rng.uniform(0.05, 0.7), "pole", float(rng.choice([-1, 1]))))
    if rng.uniform() < 0.2:
        objects.append((0.02, "train", rng.uniform(0.3, 0.7)))
    objects.sort(key=lambda o: o[0])
    for d, kind, where in objects:
        y = hz + d * (h - hz)
        sc = d * (h - hz) / h  # object scale relative to image height
        cv.new_instance()
        if kind in ("car", "truck", "bus", "moto", "train"):
            xl, xr = line_x(road_l, y), line_x(road_r, y)
            cx = xl + where * (xr - xl)
            if kind == "moto":
                _rider(cv, rng, st, cx, y, sc * h, 17)
                continue
            bw = {"car": 0.9, "truck": 1.1, "bus": 1.25, "train": 2.5}[kind] * sc * h
            bh = {"car": 0.55, "truck": 1.0, "bus": 1.05, "train": 0.9}[kind] * bw * (0.5 if kind == "train" else 1)
            code = {"car": 13, "truck": 14, "bus": 15, "train": 16}[kind]
            body = _jit(rng, col[code], st.jitter * 2)
            if kind == "car":
                cv.poly([(cx - bw / 2, y - bh * 0.5), (cx - bw * 0.35, y - bh), (cx + bw * 0.35, y - bh),
                         (cx + bw / 2, y - bh * 0.5), (cx + bw / 2, y), (cx - bw / 2, y)], code, body, True)
                cv.rect(cx - bw * 0.3, y - bh * 0.9, cx + bw * 0.3, y - bh * 0.6, code, body * 0.4 + 20, True)
            else:
                cv.rect(cx - bw / 2, y - bh, cx + bw / 2, y, code, body, True)
                for k in range(3 if kind != "truck" else 1):
                    wx = cx - bw / 2 + bw * (0.1 + 0.3 * k)
                    cv.rect(wx, y - bh * 0.85, wx + bw * 0.22, y - bh * 0.55, code, body * 0.4 + 20, True)
            for ox in (-0.33, 0.33):
                cv.ellipse(cx + ox * bw, y, bw * 0.09, bw * 0.09, code, (20, 20, 20), True)
        else:
            x_side = road_l - curb if where < 0 else road_r + curb
            x_far = out_l if where < 0 else out_r
            x0, x1 = line_x(x_side, y), line_x(x_far, y)
            cx = x0 + rng.uniform(0.1, 0.9) * (x1 - x0)
            ph = sc * h
            if kind == "person":
                _person(cv, rng, st, cx, y, ph, 11)
            elif kind == "bike":
                _rider(cv, rng, st, cx, y, ph, 18)
            elif kind == "bin":
                cv.rect(cx - ph * 0.12, y - ph * 0.35, cx + ph * 0.12, y, STATIC, _jit(rng, col[STATIC], st.jitter), True)
            else:  # pole with a sign or a traffic light
                pw = max(1.0, ph * 0.03)
                top = y - ph * 1.8
                cv.rect(cx - pw, top, cx + pw, y, 5, _jit(rng, col[5], st.jitter), True)
                if rng.uniform() < 0.5:
                    r = ph * 0.16
                    if rng.uniform() < 0.5:
                        cv.ellipse(cx, top + r, r, r, 7, _jit(rng, col[7], st.jitter), True)
                    else:
                        cv.rect(cx - r, top, cx + r, top + 1.4 * r, 7, _jit(rng, col[7], st.jitter), True)
                else:
                    bw_, bh_ = ph * 0.12, ph * 0.38
                    cv.rect(cx - bw_, top, cx + bw_, top + bh_, 6, _jit(rng, col[6], 0.1), True)
                    lit = rng.integers(3)
                    for k, lamp in enumerate(((230, 40, 30), (240, 180, 30), (40, 220, 80))):
                        c = lamp if k == lit else (60, 60, 60)
                        cv.ellipse(cx, top + bh_ * (0.2 + 0.3 * k), bw_ * 0.6, bw_ * 0.6, 6, c, True)

    if rng.uniform() < st.ego:  # ego vehicle bonnet (ignored by every encoding)
        eh = h * rng.uniform(0.06, 0.1)
        pts = [(0, h), (0, h - eh * 0.6), (w * 0.2, h - eh), (w * 0.8, h - eh), (w, h - eh * 0.6), (w, h)]
        cv.poly(pts, EGO, _jit(rng, col[EGO], 0.1))

    # appearance: textures, windows, shadows, lighting, noise, blur
    img = cv.img
    amp = st.texture * _TEXTURE[cv.raw]
    img *= (1 + amp * _lowfreq(rng, h, w, 8))[..., None]
    img *= (1 + 0.5 * amp * _lowfreq(rng, h, w, 2))[..., None]
    yy, xx = np.mgrid[0:h, 0:w]
    px, py = max(4, int(w * rng.uniform(0.02, 0.035))), max(4, int(h * rng.uniform(0.04, 0.06)))
    win = (cv.raw == 2) & ((xx % px) < px * 0.55) & ((yy % py) < py * 0.5)
    img[win] = 0.35 * img[win] + 0.65 * np.asarray(st.window, np.float32)
    if st.shadows:
        for _ in range(int(rng.integers(1, 3))):
            xs = rng.uniform(-0.2, 1.0) * w
            sw = rng.uniform(0.1, 0.35) * w
            pts = np.array([(xs, hz), (xs + sw * 0.3, hz), (xs + sw * 2, h), (xs + sw, h)], np.int32)
            mask = np.zeros((h, w), np.uint8)
            cv2.fillPoly(mask, [pts], 1)
            ground = (mask > 0) & (yy > hz)
            img[ground] *= 0.55
    img = (img / 255.0) * st.brightness
    img = np.clip((img - 0.5) * st.contrast + 0.5, 0, 1) ** st.gamma
    img = img * np.asarray(st.tint, np.float32)
    if st.vignette:
        r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
        img *= (1 - st.vignette * np.clip(r2 / 2, 0, 1))[..., None]
    img = img * 255.0
    if st.grain:
        img += rng.normal(0, st.grain, img.shape).astype(np.float32)
    if st.blur:
        img = cv2.GaussianBlur(img, (0, 0), st.blur)
    image = np.clip(img, 0, 255).astype(np.uint8)
    return SyntheticScene(image=image, raw=cv.raw, instances=cv.inst, style=style, meta={"horizon": hz})


def _person(cv: _Canvas, rng: np.random.Generator, st: Style, cx: float, y: float, ph: float, code: int) -> None:
    shirt = _jit(rng, st.colors[code], st.jitter * 2)
    legs = _jit(rng, (50, 50, 60), 0.3)
    cv.rect(cx - ph * 0.1, y - ph * 0.45, cx - ph * 0.01, y, code, legs, True)
    cv.rect(cx + ph * 0.01, y - ph * 0.45, cx + ph * 0.1, y, code, legs, True)
    cv.rect(cx - ph * 0.13, y - ph * 0.85, cx + ph * 0.13, y - ph * 0.42, code, shirt, True)
    cv.ellipse(cx, y - ph * 0.93, ph * 0.08, ph * 0.09, code, _jit(rng, (200, 160, 130), 0.2), True)


def _rider(cv: _Canvas, rng: np.random.Generator, st: Style, cx: float, y: float, ph: float, vehicle: int) -> None:
    """A rider (train id 12) on a bicycle (18) or motorcycle (17)."""
    vc = _jit(rng, st.colors[vehicle], st.jitter * 2)
    r = ph * 0.18
    for ox in (-0.3, 0.3):
        cv.ellipse(cx + ox * ph, y - r, r, r, vehicle, (25, 25, 25), True)
    cv.poly([(cx - 0.3 * ph, y - r), (cx, y - 2.2 * r), (cx + 0.3 * ph, y - r), (cx, y - 1.2 * r)], vehicle, vc, True)
    if vehicle == 17:
        cv.rect(cx - 0.2 * ph, y - 2.4 * r, cx + 0.15 * ph, y - 1.4 * r, vehicle, vc, True)
    shirt = _jit(rng, st.colors[12], st.jitter * 2)
    cv.rect(cx - ph * 0.1, y - ph * 1.0, cx + ph * 0.1, y - 2.0 * r, 12, shirt, True)
    cv.ellipse(cx, y - ph * 1.08, ph * 0.08, ph * 0.09, 12, _jit(rng, (200, 160, 130), 0.2), True)


# ------------------------------------------------------------------------------------------ encodings
def _inverse(mapping: dict[int, int], preferred: dict[int, int] | None = None) -> dict[int, int]:
    inv: dict[int, int] = {}
    for raw, tid in sorted(mapping.items()):
        inv.setdefault(tid, raw)
    inv.update(preferred or {})
    return inv


def _encoding_lut(dataset: str) -> np.ndarray:
    """Internal code -> the raw value written in ``dataset``'s label file."""
    lut = np.zeros(256, dtype=np.int64)
    if dataset in ("cityscapes", "gta5"):
        inv = _inverse(CITYSCAPES_ID_TO_TRAIN)
        extra = {LANE: 7, EGO: 1, VOID: 0, STATIC: 4, CURB: 8}
    elif dataset == "bdd100k":
        inv = {t: t for t in range(19)}
        extra = {LANE: 0, EGO: 255, VOID: 255, STATIC: 255, CURB: 1}
    elif dataset == "mapillary":
        inv = _inverse(MAPILLARY_TO_TRAIN, {0: 13, 1: 15, 5: 45, 12: 20})
        extra = {LANE: 24, EGO: 64, VOID: 65, STATIC: 51, CURB: 2}
    elif dataset == "synthia":
        inv = _inverse(SYNTHIA_TO_TRAIN)
        extra = {LANE: 22, EGO: 0, VOID: 0, STATIC: 0, CURB: 4}
    else:
        raise ValueError(f"layout: unknown {dataset!r}; choose one of {list(DATASETS)}")
    for k, v in {**inv, **extra}.items():
        lut[k] = v
    return lut


def encode_label(scene: SyntheticScene, dataset: str) -> np.ndarray:
    """The label array as ``dataset`` stores it: ``(H, W)`` uint8 for cityscapes/gta5/bdd100k/mapillary,
    ``(H, W, 3)`` uint16 (class, instance, 0) in the file's channel order for synthia."""
    raw = _encoding_lut(dataset)[scene.raw]
    if dataset == "synthia":
        out = np.zeros((*raw.shape, 3), dtype=np.uint16)
        out[..., 0] = raw
        out[..., 1] = scene.instances
        return out
    return raw.astype(np.uint8)


def _cityscapes_palette() -> list[int]:
    pal = [0] * 768
    for lid, _, _, rgb in CITYSCAPES_LABELS:
        pal[3 * lid : 3 * lid + 3] = list(rgb)
    return pal


def _save_png_indexed(path: Path, ids: np.ndarray, palette: list[int] | None) -> None:
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(ids, dtype=np.uint8))
    if palette is not None:
        im.putpalette(palette)  # mode L -> P: the pixel values stay the indices
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def _save_rgb(path: Path, rgb: np.ndarray, quality: int = 92) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]), params):
        raise OSError(f"{path}: could not write the image")


def _write_one(root: Path, dataset: str, split: str, index: int, scene: SyntheticScene, colour_labels: bool) -> str:
    import cv2

    label = encode_label(scene, dataset)
    if dataset == "cityscapes":
        city = ("synthtown", "synthville")[index % 2]
        stem = f"{city}_{index // 2:06d}_000019"
        _save_rgb(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", scene.image)
        _save_png_indexed(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", label, None)
        return stem
    if dataset == "gta5":
        stem = f"{index + 1:05d}"
        _save_rgb(root / "images" / f"{stem}.png", scene.image)
        if colour_labels:
            pal = np.asarray(_cityscapes_palette(), dtype=np.uint8).reshape(256, 3)
            from PIL import Image

            (root / "labels").mkdir(parents=True, exist_ok=True)
            Image.fromarray(pal[label]).save(root / "labels" / f"{stem}.png")
        else:
            _save_png_indexed(root / "labels" / f"{stem}.png", label, _cityscapes_palette())
        return stem
    if dataset == "bdd100k":
        stem = f"{index:08x}-synth{index:04d}"
        _save_rgb(root / "images" / "10k" / split / f"{stem}.jpg", scene.image)
        _save_png_indexed(root / "labels" / "sem_seg" / "masks" / split / f"{stem}.png", label, None)
        return stem
    if dataset == "mapillary":
        stem = f"synth{index:06d}_{split[:2]}"
        _save_rgb(root / split / "images" / f"{stem}.jpg", scene.image)
        rng = np.random.default_rng(66)
        _save_png_indexed(root / split / "labels" / f"{stem}.png", label, rng.integers(0, 256, 768).tolist())
        return stem
    stem = f"{index:07d}"  # synthia
    _save_rgb(root / "RGB" / f"{stem}.png", scene.image)
    path = root / "GT" / "LABELS" / f"{stem}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(label[..., ::-1])):  # file order -> OpenCV's BGR
        raise OSError(f"{path}: could not write the label")
    return stem


def write_synthetic_driving(
    root: PathLike,
    dataset: str,
    *,
    split: str | None = None,
    n: int = 8,
    size: tuple[int, int] = (256, 512),
    style: str | None = None,
    seed: int = 0,
    start_index: int = 0,
    colour_labels: bool = False,
) -> Path:
    """Write ``n`` scenes into ``root`` in ``dataset``'s exact layout and label encoding.

    ``split`` defaults to the dataset's validation split; for the list-based layouts (gta5, synthia)
    the names are appended to ``ROOT/<split>.txt``. ``style`` defaults to :data:`DEFAULT_STYLE`.
    ``colour_labels`` writes GTA5 labels as RGB colours instead of palette indices.
    """
    from ..driving import default_split

    if dataset not in DATASETS:
        raise ValueError(f"dataset: unknown {dataset!r}; choose one of {list(DATASETS)}")
    root = Path(root)
    split = split or default_split(dataset, "val")
    style = style or DEFAULT_STYLE[dataset]
    names = []
    for i in range(start_index, start_index + n):
        scene = make_scene(np.random.default_rng([seed, i, sum(map(ord, style))]), size, style)
        names.append(_write_one(root, dataset, split, i, scene, colour_labels))
    if dataset in ("gta5", "synthia"):
        lst = root / f"{split}.txt"
        with open(lst, "a", encoding="utf-8") as f:
            f.write("".join(f"{n_}.png\n" for n_ in names))
    return root


def write_default_driving(
    base: PathLike,
    *,
    n_train: int = 24,
    n_val: int = 8,
    n_target: int = 8,
    size: tuple[int, int] = (256, 512),
    seed: int = 0,
    source: str = "cityscapes",
    targets: tuple[str, ...] = ("bdd100k", "mapillary", "synthia"),
) -> dict[str, Path]:
    """The embedded default of the driving task under ``base``: ``{"source": root, <target>: root}``.

    The source domain (style ``source``, ``n_train`` + ``n_val`` scenes) is written in ``source``'s
    layout with its train and val splits; each target domain (its own style) in its layout, val split.
    """
    from ..driving import default_split

    base = Path(base)
    roots = {"source": base / f"source_{source}"}
    write_synthetic_driving(roots["source"], source, split=default_split(source, "train"), n=n_train, size=size,
                            style="source", seed=seed)
    write_synthetic_driving(roots["source"], source, split=default_split(source, "val"), n=n_val, size=size,
                            style="source", seed=seed, start_index=n_train)
    for k, t in enumerate(targets):
        roots[t] = base / f"target_{t}"
        write_synthetic_driving(roots[t], t, n=n_target, size=size, style=DEFAULT_STYLE[t],
                                seed=seed + 1000 * (k + 1))
    return roots
