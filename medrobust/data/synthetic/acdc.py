"""A small synthetic cardiac cine-MRI cohort in the exact ACDC layout (see :mod:`medrobust.data.acdc`).

Each patient is a short-axis stack ``(X, Y, Z)`` of ED and ES frames drawn from a simple anatomical
model (all sizes in mm, so the pixel spacing only changes the sampling):

* LV blood pool (label 3, papillary muscles included as in ACDC), myocardial ring (label 2) and an RV
  crescent wrapped around one side of it (label 1, the thin RV free wall is background);
* half-ellipsoid long-axis profiles, so the cavities shrink from base (z = 0) to apex; the RV ends
  before the apex;
* ED cavities larger than ES with the myocardial area kept, so the wall is thicker at ES; the pathology
  group (NOR, MINF, DCM, HCM, RV) sets cavity size, wall thickness and ejection fractions;
* background: thorax soft tissue, chest wall (air, subcutaneous fat, muscle), lungs with small vessels,
  epicardial fat, descending aorta, spine, and the liver in apical slices;
* per-patient random position, size, orientation and shape irregularity.

Contrast (``domain``): ``"bssfp"`` mimics cine balanced SSFP (bright blood and fat, dark myocardium,
dark lungs); ``"shifted"`` keeps the same anatomy (same ``seed`` -> same geometry and labels) but
uses a T1-weighted-like mapping (blood darker than a mid-grey myocardium, very bright fat, a gamma
remap, blurrier edges, stronger bias and noise), a real domain shift for a bSSFP-trained model. Both
get a smooth multiplicative bias field, a fine texture field and Rician noise, and are stored as
int16 in roughly 0..900; labels are uint8. The affine is ``diag(spacing)``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medrobust.io import atomic_path, atomic_write_text

__all__ = ["DOMAINS", "SyntheticPatient", "make_synthetic_patient", "write_synthetic_acdc"]

DOMAINS: tuple[str, ...] = ("bssfp", "shifted")
_GROUPS = ("NOR", "MINF", "DCM", "HCM", "RV")

# group -> (LV cavity radius at base, ED, mm), (wall, mm), (LV EF), (RV size factor), (RV EF)
_GROUP_PARAMS: dict[str, dict[str, tuple[float, float]]] = {
    "NOR": {"r": (18.0, 23.0), "wall": (7.0, 9.0), "ef": (0.55, 0.68), "rv": (0.95, 1.10), "rv_ef": (0.45, 0.60)},
    "MINF": {"r": (21.0, 26.0), "wall": (6.5, 8.5), "ef": (0.25, 0.42), "rv": (0.90, 1.05), "rv_ef": (0.35, 0.50)},
    "DCM": {"r": (25.0, 29.0), "wall": (5.5, 7.0), "ef": (0.12, 0.30), "rv": (0.90, 1.10), "rv_ef": (0.25, 0.45)},
    "HCM": {"r": (14.0, 18.0), "wall": (12.0, 16.0), "ef": (0.65, 0.80), "rv": (0.85, 1.00), "rv_ef": (0.50, 0.65)},
    "RV": {"r": (17.0, 22.0), "wall": (7.0, 9.0), "ef": (0.50, 0.65), "rv": (1.35, 1.60), "rv_ef": (0.15, 0.35)},
}

# tissue intensities before gain/bias/noise (int16 scanner-like units)
_CONTRAST: dict[str, dict[str, float]] = {
    "bssfp": {
        "air": 0.0, "soft": 190.0, "muscle": 150.0, "fat": 540.0, "lung": 35.0, "vessel": 420.0,
        "liver": 230.0, "bone": 260.0, "blood": 620.0, "myo": 165.0, "aorta": 600.0,
    },
    "shifted": {
        "air": 0.0, "soft": 270.0, "muscle": 300.0, "fat": 720.0, "lung": 25.0, "vessel": 120.0,
        "liver": 400.0, "bone": 420.0, "blood": 130.0, "myo": 340.0, "aorta": 110.0,
    },
}
# edge softness (fraction of a pixel), noise sigma range, bias strength, gamma, texture amplitude
_ACQ: dict[str, dict[str, Any]] = {
    "bssfp": {"edge": 0.30, "sigma": (10.0, 18.0), "bias": 0.22, "gamma": 1.0, "texture": 0.04},
    "shifted": {"edge": 0.55, "sigma": (16.0, 26.0), "bias": 0.32, "gamma": 0.75, "texture": 0.06},
}


@dataclass
class SyntheticPatient:
    """In-memory synthetic patient: ``info`` (Info.cfg values), ``images``/``labels`` per frame key
    ("ED", "ES") as int16 / uint8 ``(X, Y, Z)``, ``affine`` 4x4 (``diag(spacing)``)."""

    id: str
    info: dict[str, Any]
    images: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    affine: np.ndarray


# --------------------------------------------------------------------------------------------
# geometry helpers (signed distances in mm, negative inside)
# --------------------------------------------------------------------------------------------


def _sd_circle(X: np.ndarray, Y: np.ndarray, cx: float, cy: float, r: float, wobble: np.ndarray | None = None) -> np.ndarray:
    dx, dy = X - cx, Y - cy
    rho = np.hypot(dx, dy)
    if wobble is not None:  # rows (k, amplitude, phase): r(phi) = r * (1 + sum a cos(k phi + p))
        phi = np.arctan2(dy, dx)
        mod = np.ones_like(rho)
        for k, a, p in wobble:
            mod += a * np.cos(k * phi + p)
        return rho - r * mod
    return rho - r


def _sd_ellipse(X: np.ndarray, Y: np.ndarray, cx: float, cy: float, a: float, b: float, angle: float) -> np.ndarray:
    """First-order signed distance to an ellipse with semi-axis ``a`` along ``angle`` and ``b`` across."""
    c, s = math.cos(angle), math.sin(angle)
    dx, dy = X - cx, Y - cy
    u, v = dx * c + dy * s, -dx * s + dy * c
    q = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    g = np.sqrt((u / a**2) ** 2 + (v / b**2) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(g > 1e-9, (q - 1.0) * q / np.maximum(g, 1e-12), -min(a, b))
    return d


def _soft(d: np.ndarray, tau: float) -> np.ndarray:
    """Partial-volume weight of a region with signed distance ``d`` (1 inside, 0 outside)."""
    return 0.5 * (1.0 - np.tanh(d / (2.0 * tau)))


def _waves(rng: np.random.Generator, X: np.ndarray, Y: np.ndarray, n: int, wavelength: tuple[float, float]) -> np.ndarray:
    """Smooth random field (sum of ``n`` plane waves), zero-mean, roughly unit std."""
    out = np.zeros_like(X)
    for _ in range(n):
        lam = rng.uniform(*wavelength)
        ang = rng.uniform(0, 2 * math.pi)
        ph = rng.uniform(0, 2 * math.pi)
        out += np.cos(2 * math.pi / lam * (X * math.cos(ang) + Y * math.sin(ang)) + ph)
    return out * math.sqrt(2.0 / n)


def _u(angle: float) -> tuple[float, float]:
    return math.cos(angle), math.sin(angle)


# --------------------------------------------------------------------------------------------
# anatomy
# --------------------------------------------------------------------------------------------


def _draw_anatomy(rng: np.random.Generator, group: str) -> dict[str, Any]:
    gp = _GROUP_PARAMS[group]
    A: dict[str, Any] = {"group": group}
    A["r_cav"] = rng.uniform(*gp["r"])
    A["wall"] = rng.uniform(*gp["wall"])
    A["ef"] = rng.uniform(*gp["ef"])
    A["rv_scale"] = rng.uniform(*gp["rv"])
    A["rv_ef"] = rng.uniform(*gp["rv_ef"])
    A["rv_depth"] = A["rv_scale"] * rng.uniform(13.0, 18.0)  # max RV cavity thickness at the base, mm
    A["rv_width"] = A["rv_scale"] ** 0.5 * rng.uniform(1.1, 1.3)  # RV half-width in units of the LV epi radius
    A["rv_back"] = rng.uniform(-0.45, -0.15)  # how far the RV wraps around (ellipse back edge / LV epi radius)
    A["theta"] = math.pi + rng.uniform(-0.6, 0.6)  # direction LV -> RV
    A["anterior"] = A["theta"] + math.pi / 2 + rng.uniform(-0.35, 0.35)
    A["shift"] = (rng.uniform(-9.0, 9.0), rng.uniform(-9.0, 9.0))  # heart complex centre vs FOV centre, mm
    A["es_shift"] = (rng.uniform(-1.5, 1.5), rng.uniform(-1.5, 1.5))
    A["u0"] = rng.uniform(0.1, 0.45)  # where the stack starts along the long axis
    A["L_cav"] = rng.uniform(1.0, 1.12)  # cavity length in units of the stack length
    A["L_epi_extra"] = rng.uniform(0.08, 0.14)
    A["L_rv"] = rng.uniform(0.72, 0.88)
    A["es_long"] = rng.uniform(0.86, 0.93)  # longitudinal shortening at ES
    A["wob_endo"] = [(k, rng.uniform(0.0, 0.04), rng.uniform(0, 2 * math.pi)) for k in (2, 3)]
    A["wob_epi"] = [(k, rng.uniform(0.0, 0.025), rng.uniform(0, 2 * math.pi)) for k in (2, 3)]
    if group == "MINF":  # thinned infarcted sector
        A["infarct"] = (A["theta"] + math.pi + rng.uniform(-1.2, 1.2), rng.uniform(0.35, 0.6))
    A["pm_angles"] = (A["theta"] + math.pi + rng.uniform(0.6, 1.1), A["theta"] + math.pi - rng.uniform(0.6, 1.1))
    A["pm_r"] = rng.uniform(0.10, 0.15)
    A["fat"] = (rng.uniform(1.5, 4.0), rng.uniform(0, 2 * math.pi), int(rng.integers(1, 4)))
    # surroundings (distances from the LV centre, mm)
    A["chest"] = rng.uniform(12.0, 40.0)  # gap from the LV epicardium to the body surface (anterior)
    A["subq_fat"] = rng.uniform(5.0, 12.0)
    A["chest_muscle"] = rng.uniform(6.0, 12.0)
    A["body_ax"] = (rng.uniform(100.0, 130.0), rng.uniform(150.0, 190.0))
    A["lung_l"] = (A["theta"] + math.pi + rng.uniform(-0.35, 0.35), rng.uniform(4.0, 14.0), rng.uniform(28.0, 40.0), rng.uniform(45.0, 65.0))
    A["lung_r"] = (A["theta"] + rng.uniform(-0.5, 0.5), rng.uniform(18.0, 35.0), rng.uniform(30.0, 45.0), rng.uniform(50.0, 70.0))
    A["aorta"] = (A["anterior"] + math.pi + rng.uniform(-0.7, 0.1), rng.uniform(10.0, 22.0), rng.uniform(9.0, 12.0))
    A["liver"] = (A["anterior"] + math.pi + rng.uniform(0.2, 0.9), rng.uniform(60.0, 90.0), rng.uniform(0.45, 0.7))
    A["vessels"] = [(rng.uniform(-80, 80), rng.uniform(-80, 80), rng.uniform(1.2, 2.6)) for _ in range(14)]
    return A


def _profile(h: float, length: float) -> float:
    """Half-ellipsoid radius factor at relative height ``h`` (0 = base) for a length ``length``."""
    t = h / length
    return math.sqrt(max(0.0, 1.0 - t * t))


def _render_slice(
    A: dict[str, Any],
    X: np.ndarray,
    Y: np.ndarray,
    h: float,
    phase: str,
    C: dict[str, float],
    tau: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one short-axis slice at relative height ``h``; returns (intensity float64, label uint8)."""
    es = phase == "ES"
    r_cav0, wall = A["r_cav"], A["wall"]
    r_epi0 = r_cav0 + wall
    myo_area = r_epi0**2 - r_cav0**2
    if es:
        r_cav0 = r_cav0 * math.sqrt(1.0 - A["ef"]) * 1.05
        r_epi0 = math.sqrt(r_cav0**2 + myo_area)
    long = A["es_long"] if es else 1.0
    L_cav = A["L_cav"] * long
    L_epi = L_cav + A["L_epi_extra"]
    L_rv = A["L_rv"] * long
    r_cav = r_cav0 * _profile(h, L_cav)
    r_epi = r_epi0 * _profile(h, L_epi)
    if r_cav < 2.5:
        r_cav = 0.0

    th = A["theta"]
    ut = _u(th)
    # the heart complex (LV + RV) is roughly centred at A["shift"]; the LV sits opposite the RV
    base_depth = A["rv_depth"]
    cx = A["shift"][0] - ut[0] * 0.45 * base_depth
    cy = A["shift"][1] - ut[1] * 0.45 * base_depth
    if es:
        cx, cy = cx + A["es_shift"][0], cy + A["es_shift"][1]

    C_blood_rv = C["blood"] * A["_rv_blood"]
    img = np.full(X.shape, C["soft"])
    lab = np.zeros(X.shape, dtype=np.uint8)

    def paint(d: np.ndarray, value: float | np.ndarray, within: np.ndarray | None = None) -> None:
        nonlocal img
        w = _soft(d, tau)
        if within is not None:
            w = w * within
        img = img + w * (value - img)

    # --- surroundings --------------------------------------------------------------------
    ua = _u(A["anterior"])
    # liver (apical slices, posterior-inferior), grows towards the apex
    l_ang, l_rad, l_start = A["liver"]
    if h > l_start - 0.25:
        gap = r_epi0 + 6.0 + 60.0 * max(0.0, l_start + 0.3 - h)
        ul = _u(l_ang)
        paint(_sd_circle(X, Y, cx + ul[0] * (gap + l_rad), cy + ul[1] * (gap + l_rad), l_rad), C["liver"])
    # lungs with a few small vessels
    lung_sd = []
    for (ang, gap, a, b), extra in ((A["lung_l"], 0.0), (A["lung_r"], A["rv_depth"])):
        u = _u(ang)
        dist = r_epi0 + extra + gap + a
        sd = _sd_ellipse(X, Y, cx + u[0] * dist, cy + u[1] * dist, a, b, ang)
        paint(sd, C["lung"])
        lung_sd.append(sd)
    in_lung = _soft(np.minimum(*lung_sd) + 2.0, tau)
    for vx, vy, vr in A["vessels"]:
        paint(_sd_circle(X, Y, cx + vx, cy + vy, vr), C["vessel"], within=in_lung)
    # descending aorta and the spine behind it
    a_ang, a_gap, a_r = A["aorta"]
    uo = _u(a_ang)
    ad = r_epi0 + a_gap + a_r
    paint(_sd_circle(X, Y, cx + uo[0] * (ad + a_r + 18.0), cy + uo[1] * (ad + a_r + 18.0), 16.0), C["bone"])
    paint(_sd_circle(X, Y, cx + uo[0] * ad, cy + uo[1] * ad, a_r), C["aorta"])
    # chest wall: body surface as a big ellipse whose nearest point is anterior of the heart
    A_ax, B_ax = A["body_ax"]
    surf = A["rv_width"] * r_epi0 * 0.9 + A["chest"]
    bx, by = cx + ua[0] * (surf - A_ax), cy + ua[1] * (surf - A_ax)
    body = _sd_ellipse(X, Y, bx, by, A_ax, B_ax, A["anterior"])
    shell = A["subq_fat"] + A["chest_muscle"]
    paint(-(body + shell), C["muscle"])  # region outside the inner chest-wall boundary
    paint(-(body + A["subq_fat"]), C["fat"])
    paint(-body, C["air"])

    # --- heart ---------------------------------------------------------------------------
    wob_epi = list(A["wob_epi"])
    sd_epi = _sd_circle(X, Y, cx, cy, max(r_epi, 0.5), wob_epi) if r_epi > 0 else np.full(X.shape, 1e3)
    if "infarct" in A and r_cav > 0:  # thin the wall over a sector by pulling the epicardium in
        ang, depth = A["infarct"]
        phi = np.arctan2(Y - cy, X - cx)
        sector = np.clip(np.cos(phi - ang) - 0.55, 0.0, None) / 0.45
        sd_epi = sd_epi + sector * depth * (r_epi - r_cav) * 0.8
    # RV: ellipse minus the LV epicardial disk
    f_rv = _profile(h, L_rv)
    sd_rv = None
    if f_rv > 0.2 and r_epi > 0:
        depth = A["rv_depth"] * f_rv * (math.sqrt(1.0 - A["rv_ef"]) if es else 1.0)
        half_w = A["rv_width"] * r_epi * (0.92 if es else 1.0)
        # ellipse from inside the LV (``back`` along theta) to ``depth`` beyond the epicardium, so
        # that what is left outside the LV is a crescent wrapping part of the way around it
        back = A["rv_back"] * r_epi
        a = 0.5 * (r_epi + depth - back)
        off = 0.5 * (r_epi + depth + back)
        sd_e = _sd_ellipse(X, Y, cx + ut[0] * off, cy + ut[1] * off, a, half_w, th)
        sd_rv = np.maximum(sd_e, -sd_epi)
        # epicardial fat around the heart outline, then the thin RV free wall
        outline = np.minimum(sd_epi, sd_e - 3.0)
    else:
        outline = sd_epi
    f_w, f_p, f_k = A["fat"]
    phi = np.arctan2(Y - cy, X - cx)
    fat_w = f_w * np.clip(0.35 + np.cos(f_k * (phi - f_p)), 0.0, None)
    paint(outline - fat_w, C["fat"])
    paint(outline, C["myo"])  # RV free wall + LV myocardium
    if sd_rv is not None:
        paint(sd_rv, C_blood_rv)
        lab[sd_rv < 0] = 1
    lab[sd_epi < 0] = 2
    if r_cav > 0:
        sd_cav = _sd_circle(X, Y, cx, cy, r_cav, A["wob_endo"])
        paint(sd_cav, C["blood"])
        lab[sd_cav < 0] = 3
        # papillary muscles (dark, labelled LV as in ACDC) in mid-ventricular slices
        if 0.2 < h < 0.8 and r_cav > 8.0:
            pr = A["pm_r"] * r_cav * (1.5 if es else 1.0)
            for ang in A["pm_angles"]:
                u = _u(ang)
                dd = r_cav - 0.9 * pr
                paint(_sd_circle(X, Y, cx + u[0] * dd, cy + u[1] * dd, pr), C["myo"], within=_soft(sd_cav, tau))
    return img, lab


def make_synthetic_patient(
    number: int,
    *,
    group: str | None = None,
    domain: str = "bssfp",
    size: tuple[int, int] = (96, 96),
    n_slices: int = 6,
    seed: int = 0,
    spacing: tuple[float, float, float] = (1.5, 1.5, 10.0),
) -> SyntheticPatient:
    """Generate patient ``number`` (1..150) in memory; same ``seed``/``number`` -> same anatomy in
    every domain. ``group`` defaults to a seeded draw from the five ACDC groups."""
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
    if group is None:
        group = _GROUPS[int(np.random.default_rng([seed, number, 7]).integers(len(_GROUPS)))]
    if group not in _GROUPS:
        raise ValueError(f"group must be one of {_GROUPS}, got {group!r}")
    sx, sy, sz = (float(s) for s in spacing)
    nx, ny = (int(s) for s in size)
    if nx < 16 or ny < 16 or n_slices < 1 or min(sx, sy, sz) <= 0:
        raise ValueError(f"need size >= (16, 16), n_slices >= 1 and positive spacing, got {size}, {n_slices}, {spacing}")

    rng_a = np.random.default_rng([seed, number, 1])
    rng_n = np.random.default_rng([seed, number, 2, DOMAINS.index(domain)])
    A = _draw_anatomy(rng_a, group)
    A["_rv_blood"] = rng_a.uniform(0.9, 1.03)
    n_frames = int(rng_a.integers(20, 36))
    info = {
        "ED": 1,
        "ES": int(round(n_frames * rng_a.uniform(0.33, 0.45))),
        "Group": group,
        "Height": round(float(rng_a.uniform(150.0, 195.0)), 1),
        "NbFrame": n_frames,
        "Weight": round(float(rng_a.uniform(50.0, 110.0)), 1),
    }

    C = dict(_CONTRAST[domain])
    acq = _ACQ[domain]
    gain = rng_n.uniform(0.85, 1.15)
    tau = acq["edge"] * min(sx, sy)
    xs = (np.arange(nx) - (nx - 1) / 2.0) * sx
    ys = (np.arange(ny) - (ny - 1) / 2.0) * sy
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    # acquisition fields shared by ED and ES: bias (normalised coords in [-1, 1]), texture
    xn, yn = X / max(abs(xs).max(), 1e-6), Y / max(abs(ys).max(), 1e-6)
    beta = rng_n.uniform(-1.0, 1.0, size=5) * acq["bias"]
    bias2d = beta[0] * xn + beta[1] * yn + 0.5 * beta[2] * xn * yn + 0.5 * beta[3] * xn**2 + 0.5 * beta[4] * yn**2
    bias_z = rng_n.uniform(-0.04, 0.04)
    sigma = rng_n.uniform(*acq["sigma"])
    vmax = max(C.values())

    images: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    for phase in ("ED", "ES"):
        img = np.empty((nx, ny, n_slices), dtype=np.int16)
        lab = np.empty((nx, ny, n_slices), dtype=np.uint8)
        for z in range(n_slices):
            h = (z + A["u0"]) / n_slices
            I, L = _render_slice(A, X, Y, h, phase, C, tau)
            if acq["gamma"] != 1.0:
                I = vmax * np.power(np.clip(I, 0.0, None) / vmax, acq["gamma"])
            tex = 1.0 + acq["texture"] * _waves(rng_n, X, Y, 6, (6.0, 25.0))
            slice_gain = 1.0 + rng_n.uniform(-0.03, 0.03)
            I = I * tex * np.exp(bias2d + bias_z * (z - n_slices / 2)) * gain * slice_gain
            n1 = rng_n.standard_normal(I.shape) * sigma
            n2 = rng_n.standard_normal(I.shape) * sigma
            I = np.sqrt((I + n1) ** 2 + n2**2)  # Rician magnitude noise
            img[:, :, z] = np.clip(np.rint(I), 0, 32767).astype(np.int16)
            lab[:, :, z] = L
        images[phase] = img
        labels[phase] = lab
    affine = np.diag([sx, sy, sz, 1.0])
    return SyntheticPatient(id=f"patient{number:03d}", info=info, images=images, labels=labels, affine=affine)


def _balanced_groups(rng: np.random.Generator, n: int) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        out.extend(_GROUPS[i] for i in rng.permutation(len(_GROUPS)))
    return out[:n]


def _save_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))


def write_synthetic_acdc(
    root: str | os.PathLike[str],
    n_train: int = 8,
    n_test: int = 2,
    domain: str = "bssfp",
    size: tuple[int, int] = (96, 96),
    n_slices: int = 6,
    seed: int = 0,
    spacing: tuple[float, float, float] = (1.5, 1.5, 10.0),
) -> Path:
    """Write a synthetic cohort in the ACDC layout and return ``root``.

    ``root/training/patient001..`` (``n_train`` <= 100) and ``root/testing/patient101..``
    (``n_test`` <= 50), each with ``Info.cfg`` (ED, ES, Group, Height, NbFrame, Weight; groups
    balanced over NOR/MINF/DCM/HCM/RV within each subset) and ``patientXXX_frameYY.nii.gz`` plus
    ``_gt`` for the ED and ES frames (int16 images ``(X, Y, Z) = (*size, n_slices)``, uint8 labels,
    affine ``diag(spacing)``). No ``_4d`` file is written. Deterministic given ``seed``; the same
    seed gives the same anatomy in both domains. Files are written atomically; existing files of the
    same names are replaced, other files are left alone.
    """
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
    if not (0 <= n_train <= 100 and 0 <= n_test <= 50 and n_train + n_test > 0):
        raise ValueError(f"need 0 <= n_train <= 100, 0 <= n_test <= 50 and at least one patient, got {n_train}, {n_test}")
    if len(tuple(size)) != 2 or len(tuple(spacing)) != 3:
        raise ValueError(f"size must be (X, Y) and spacing (sx, sy, sz), got {size}, {spacing}")
    root = Path(root)
    jobs = [("training", i, g) for i, g in zip(range(1, n_train + 1), _balanced_groups(np.random.default_rng([seed, 0, 1]), n_train))]
    jobs += [("testing", 100 + i, g) for i, g in zip(range(1, n_test + 1), _balanced_groups(np.random.default_rng([seed, 0, 2]), n_test))]
    for subset, number, group in jobs:
        p = make_synthetic_patient(number, group=group, domain=domain, size=size, n_slices=n_slices, seed=seed, spacing=spacing)
        folder = root / subset / p.id
        folder.mkdir(parents=True, exist_ok=True)
        info = p.info
        atomic_write_text(
            folder / "Info.cfg",
            "".join(f"{k}: {info[k]}\n" for k in ("ED", "ES", "Group", "Height", "NbFrame", "Weight")),
        )
        for phase in ("ED", "ES"):
            stem = f"{p.id}_frame{int(info[phase]):02d}"
            _save_nifti(folder / f"{stem}.nii.gz", p.images[phase], p.affine)
            _save_nifti(folder / f"{stem}_gt.nii.gz", p.labels[phase], p.affine)
    return root
