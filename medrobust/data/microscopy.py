"""Focal stacks: the same field imaged at several focal planes, plane 0 in focus.

On-disk layouts (8- or 16-bit, grey or RGB, PNG or TIFF):

* **multi-page TIFF**, one file per field: pages are the planes in order (``ROOT/<sample>.tif``);
  ImageJ hyperstacks ``ZYX``/``ZCYX`` and RGB pages (``QYXS``) are understood;
* **sample folders**: ``ROOT/<sample>/<plane>.png|tif`` where ``<plane>`` ends in the plane index
  (``0.png``, ``z03.tif``, ``plane_12.png``), 0 = in focus;
* **plane folders** (BBBC006 style): ``ROOT/z<plane>/<sample>.tif`` with the same file name in every
  plane folder (BBBC006's file names must be made equal across ``z*`` folders first, as its original
  code does by stripping the per-file hash).

Public API: :func:`read_stack` (one stack as ``(planes, H, W[, C])`` in the file's dtype),
:func:`discover_stacks`, :func:`read_image` / :func:`write_image` / :func:`write_stack`,
:class:`Intensity` (the [0, 1] mapping) and :class:`FocalStackPatches` (a Dataset of aligned random
patches across planes). Errors name the file and what was expected.

Plane order: plane 0 must be the in-focus plane and the last plane the most blurred one. Data
recorded the other way round (BBBC006: z16 in focus, z0 most blurred) is re-ordered by selecting
planes, e.g. ``data.planes: [16, 14, 12, 10, 8, 6, 4, 2, 0]``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..io import atomic_path

__all__ = [
    "IMAGE_SUFFIXES",
    "TIFF_SUFFIXES",
    "StackSource",
    "Intensity",
    "full_scale",
    "read_image",
    "read_stack",
    "read_plane_files",
    "plane_index",
    "list_plane_files",
    "discover_stacks",
    "load_stack",
    "split_stacks",
    "write_image",
    "write_stack",
    "FocalStackPatches",
    "fold_channels",
]

TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (".png", *TIFF_SUFFIXES)
_PLANE_DIR = re.compile(r"^z(\d+)$", re.IGNORECASE)
_TRAILING_INT = re.compile(r"(\d+)$")


# ------------------------------------------------------------------------------------------ reading
def _check_dtype(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{path}: unsupported pixel type {arr.dtype} (expected 8/16-bit integers or floats)")
    return arr


def _squeeze_channels(arr: np.ndarray, path: Path) -> np.ndarray:
    """``(..., H, W, C)``: drop a singleton channel axis and an alpha channel; C must be 1, 3 or 4."""
    if arr.shape[-1] == 1:
        return arr[..., 0]
    if arr.shape[-1] == 4:
        return arr[..., :3]
    if arr.shape[-1] != 3:
        raise ValueError(f"{path}: expected 1, 3 or 4 channels, got {arr.shape[-1]} (shape {arr.shape})")
    return arr


def read_image(path: str | Path) -> np.ndarray:
    """One plane as ``(H, W)`` or ``(H, W, 3)`` (RGB) in the file's dtype (PNG or single-page TIFF)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image not found")
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        arr, n_planes = _read_tiff(path)
        if n_planes:
            if arr.shape[0] != 1:
                raise ValueError(f"{path}: expected a single image, got {arr.shape[0]} pages (a focal stack)")
            arr = arr[0]
    elif suffix == ".png":
        import cv2

        arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if arr is None:
            raise ValueError(f"{path}: not a readable PNG image")
        if arr.ndim == 3:
            arr = _squeeze_channels(arr, path)
            if arr.ndim == 3:
                arr = np.ascontiguousarray(arr[..., ::-1])  # OpenCV's BGR -> RGB
    else:
        raise ValueError(f"{path}: unsupported image format {path.suffix!r} (expected {', '.join(IMAGE_SUFFIXES)})")
    if arr.ndim not in (2, 3):
        raise ValueError(f"{path}: expected a 2D grey or RGB image, got shape {arr.shape}")
    return _check_dtype(arr, path)


def _read_tiff(path: Path) -> tuple[np.ndarray, int]:
    """A TIFF as ``(H, W)``, ``(H, W, C)``, ``(P, H, W)`` or ``(P, H, W, C)`` (planes first), and the
    number of plane axes (0 or 1)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = list(tif.series)
            if not series:
                raise ValueError("no image data")
            if len(series) == 1:
                s = series[0]
                arr, axes = s.asarray(), s.axes
            else:  # pages written one by one: one series per page
                shapes = {tuple(s.shape) for s in series}
                if len(shapes) != 1:
                    desc = ", ".join(f"page {i}: {tuple(s.shape)}" for i, s in enumerate(series))
                    raise ValueError(f"pages of unequal size ({desc})")
                parts = [s.asarray() for s in series]
                if parts[0].ndim not in (2, 3):
                    raise ValueError(f"unsupported page shape {parts[0].shape}")
                arr = np.stack(parts)
                axes = "Q" + series[0].axes
    except tifffile.TiffFileError as err:
        raise ValueError(f"{path}: not a readable TIFF file ({err})") from None
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    except Exception as err:  # noqa: BLE001 - corrupt/unknown files: one clear error naming the file
        raise ValueError(f"{path}: not a readable TIFF file ({type(err).__name__}: {err})") from None
    axes = axes.upper()
    if axes.endswith("YXS"):
        lead, channels = axes[:-3], True
    elif axes.endswith("YX"):
        lead, channels = axes[:-2], False
    else:
        raise ValueError(f"{path}: unsupported TIFF axes {axes!r} with shape {arr.shape}")
    if not channels and len(lead) == 2 and "C" in lead:  # ImageJ ZCYX / CZYX hyperstack: channels last
        arr = np.moveaxis(arr, lead.index("C"), -1)
        lead, channels = lead.replace("C", ""), True
    if len(lead) > 1:
        raise ValueError(f"{path}: expected one plane axis, got TIFF axes {axes!r} with shape {arr.shape}")
    if channels:
        arr = _squeeze_channels(arr, path)
    return arr, len(lead)


def plane_index(path: str | Path) -> int | None:
    """The plane index a file name ends with (``0.png``, ``z03.tif``, ``plane_12.png``), else None."""
    m = _TRAILING_INT.search(Path(path).stem)
    return int(m.group(1)) if m else None


def _check_contiguous(indices: Sequence[int], where: Path) -> None:
    present = set(indices)
    missing = [i for i in range(max(present) + 1) if i not in present]
    if missing:
        raise ValueError(f"{where}: missing plane(s) {missing} (planes must be numbered 0..{max(present)}, 0 = in focus)")


def list_plane_files(folder: str | Path) -> list[Path]:
    """The plane images of a sample folder, ordered by plane index (0 first).

    Files must be ``.png``/``.tif``/``.tiff`` whose name ends in the plane index; other files and
    hidden files are ignored. Raises for duplicate or missing plane indices.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: stack folder not found")
    by_index: dict[int, Path] = {}
    for f in sorted(folder.iterdir()):
        if f.name.startswith(".") or not f.is_file() or f.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        idx = plane_index(f)
        if idx is None:
            raise ValueError(f"{f}: cannot tell the plane index (name plane images <plane>.png|tif, e.g. 0.png, z03.tif)")
        if idx in by_index:
            raise ValueError(f"{f}: plane {idx} given twice (also {by_index[idx].name})")
        by_index[idx] = f
    if not by_index:
        raise ValueError(f"{folder}: no plane images (<plane>.png|tif) in this folder")
    _check_contiguous(list(by_index), folder)
    return [by_index[i] for i in sorted(by_index)]


def read_plane_files(files: Sequence[str | Path], *, where: str | Path | None = None) -> np.ndarray:
    """Read plane images (in order) into one ``(P, H, W[, C])`` array; all must agree in size,
    channels and dtype (errors name the offending file)."""
    if not files:
        raise ValueError(f"{where or 'stack'}: no plane files")
    planes = []
    first: np.ndarray | None = None
    first_path: Path | None = None
    for f in files:
        img = read_image(f)
        if first is None:
            first, first_path = img, Path(f)
        elif img.shape != first.shape:
            raise ValueError(f"{f}: plane of shape {img.shape} differs from {first_path.name} {first.shape} (all planes of "
                             "a stack must have the same size and channels)")
        elif img.dtype != first.dtype:
            raise ValueError(f"{f}: pixel type {img.dtype} differs from {first_path.name} ({first.dtype})")
        planes.append(img)
    return np.stack(planes)


def read_stack(path: str | Path) -> np.ndarray:
    """Read one focal stack as ``(planes, H, W)`` or ``(planes, H, W, C)`` in the file's dtype.

    ``path`` is a multi-page TIFF (pages = planes) or a folder of plane images ``<plane>.png|tif``.
    Plane 0 is the in-focus plane. A stack needs at least 2 planes.
    """
    path = Path(path)
    if path.is_dir():
        stack = read_plane_files(list_plane_files(path), where=path)
    elif path.is_file():
        if path.suffix.lower() not in TIFF_SUFFIXES:
            raise ValueError(f"{path}: a focal stack is a multi-page TIFF or a folder of plane images, got {path.suffix!r}")
        stack, n_planes = _read_tiff(path)
        if not n_planes:
            raise ValueError(f"{path}: a single image, not a focal stack (expected several pages)")
        stack = _check_dtype(stack, path)
    else:
        raise FileNotFoundError(f"{path}: focal stack not found")
    if stack.shape[0] < 2:
        raise ValueError(f"{path}: a focal stack needs at least 2 planes, got {stack.shape[0]}")
    return stack


# ------------------------------------------------------------------------------------------ datasets
@dataclass(frozen=True)
class StackSource:
    """Where one stack lives: a multi-page TIFF or sample folder (``path``), or explicit plane files."""

    name: str
    path: Path
    files: tuple[Path, ...] | None = None

    def read(self) -> np.ndarray:
        if self.files is not None:
            return read_plane_files(self.files, where=self.path)
        return read_stack(self.path)


def _plane_folder_sources(root: Path, dirs: list[Path]) -> list[StackSource]:
    idx = {int(_PLANE_DIR.match(d.name).group(1)): d for d in dirs}  # type: ignore[union-attr]
    _check_contiguous(list(idx), root)
    planes = [idx[i] for i in sorted(idx)]
    names: dict[str, dict[int, Path]] = {}
    for i, d in enumerate(planes):
        for f in sorted(d.iterdir()):
            if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES:
                names.setdefault(f.stem, {})[i] = f
    out = []
    for name in sorted(names):
        files = names[name]
        if len(files) != len(planes):
            missing = [planes[i] / f"{name}{next(iter(files.values())).suffix}" for i in range(len(planes)) if i not in files]
            raise ValueError(f"{missing[0]}: missing (sample {name!r} lacks plane(s) "
                             f"{[i for i in range(len(planes)) if i not in files]})")
        out.append(StackSource(name, root, tuple(files[i] for i in range(len(planes)))))
    return out


def discover_stacks(root: str | Path, layout: str = "auto") -> list[StackSource]:
    """List the focal stacks under ``root`` (sorted by name).

    ``layout``: ``"tiff"`` (``ROOT/*.tif``), ``"sample_folders"`` (``ROOT/<sample>/<plane>.*``),
    ``"plane_folders"`` (``ROOT/z<plane>/<sample>.*``) or ``"auto"``: plane folders when every
    sub-folder is named ``z<number>``, else multi-page TIFFs and sample folders together.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: data root not found")
    if layout not in ("auto", "tiff", "sample_folders", "plane_folders"):
        raise ValueError(f"layout: expected auto, tiff, sample_folders or plane_folders, got {layout!r}")
    entries = [e for e in sorted(root.iterdir()) if not e.name.startswith(".")]
    dirs = [e for e in entries if e.is_dir()]
    tiffs = [e for e in entries if e.is_file() and e.suffix.lower() in TIFF_SUFFIXES]
    is_planes = bool(dirs) and all(_PLANE_DIR.match(d.name) for d in dirs)
    if layout == "plane_folders" or (layout == "auto" and is_planes):
        if not is_planes:
            raise ValueError(f"{root}: layout plane_folders expects only z<plane> sub-folders, got {[d.name for d in dirs]}")
        out = _plane_folder_sources(root, dirs)
    else:
        out = []
        if layout in ("auto", "tiff"):
            out += [StackSource(t.stem, t) for t in tiffs]
        if layout in ("auto", "sample_folders"):
            out += [StackSource(d.name, d) for d in dirs]
    if not out:
        raise FileNotFoundError(f"{root}: no focal stacks found (expected multi-page TIFFs, <sample>/<plane>.png|tif "
                                "folders or z<plane>/<sample>.tif folders)")
    names = [s.name for s in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{root}: stack name(s) {dup} appear twice (e.g. a TIFF and a folder of the same name)")
    return sorted(out, key=lambda s: s.name)


def load_stack(source: StackSource | str | Path | np.ndarray, planes: Sequence[int] | None = None) -> np.ndarray:
    """Read a stack and select/re-order its planes (``planes`` indices; None: all)."""
    if isinstance(source, np.ndarray):
        arr, where = source, "array"
    elif isinstance(source, StackSource):
        arr, where = source.read(), str(source.files[0].parent if source.files else source.path)
        if source.files is not None:
            where = f"{source.path} (sample {source.name})"
    else:
        arr, where = read_stack(source), str(source)
    if planes is None:
        return arr
    bad = [p for p in planes if not 0 <= p < arr.shape[0]]
    if bad:
        raise ValueError(f"{where}: data.planes {list(planes)} asks for plane(s) {bad}, but the stack has {arr.shape[0]} planes")
    return arr[list(planes)]


def split_stacks(sources: Sequence[Any], fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0) -> dict[str, list[Any]]:
    """Seeded split of stacks into train/val/test by ``fractions`` (at least one training stack;
    with fewer than 3 stacks every split is the whole set)."""
    items = list(sources)
    if not items:
        raise ValueError("no stacks to split")
    if len(items) < 3:
        return {"train": items, "val": items, "test": items}
    perm = np.random.default_rng(seed).permutation(len(items))
    n_val = max(1, int(round(fractions[1] * len(items)))) if fractions[1] > 0 else 0
    n_test = max(1, int(round(fractions[2] * len(items)))) if fractions[2] > 0 else 0
    n_train = max(1, len(items) - n_val - n_test)
    order = [items[i] for i in perm]
    out = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
    out["val"] = out["val"] or out["train"][:1]
    out["test"] = out["test"] or out["val"]
    return out


# --------------------------------------------------------------------------------------- intensities
def full_scale(dtype: np.dtype | type) -> float:
    """Full-scale value of a pixel type: 255 (uint8), 65535 (uint16), 1.0 for floats."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        return float(np.iinfo(dtype).max)
    if np.issubdtype(dtype, np.floating):
        return 1.0
    raise ValueError(f"unsupported pixel type {dtype}")


@dataclass(frozen=True)
class Intensity:
    """How raw pixels are mapped to the model's [0, 1].

    * ``stack``: min–max of each stack (all planes together, so blur keeps its contrast); at inference
      the min–max of the input image (with its reference, when given);
    * ``dataset``: one fixed range ``[lo, hi]`` in fractions of the pixel type's full scale (min and
      max over the training stacks) — for homogeneous data sets;
    * ``dtype``: ``x / full_scale`` (255 for 8-bit, 65535 for 16-bit).

    Outputs are mapped back with the same range and rounded to the input's dtype, so their units and
    bit depth are those of the input.
    """

    mode: str = "stack"
    lo: float = 0.0
    hi: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in ("stack", "dataset", "dtype"):
            raise ValueError(f"intensity: expected 'stack', 'dataset' or 'dtype', got {self.mode!r}")
        if not self.hi > self.lo:
            raise ValueError(f"intensity range: expected hi > lo, got [{self.lo}, {self.hi}]")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Intensity:
        return cls(str(d.get("mode", "stack")), float(d.get("lo", 0.0)), float(d.get("hi", 1.0)))

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "lo": self.lo, "hi": self.hi}

    @classmethod
    def fit(cls, mode: str, stacks: Sequence[np.ndarray]) -> Intensity:
        """``dataset`` mode: min/max over ``stacks`` in fractions of their full scale; others as given."""
        if mode != "dataset":
            return cls(mode)
        lo = min(float(s.min()) / full_scale(s.dtype) for s in stacks)
        hi = max(float(s.max()) / full_scale(s.dtype) for s in stacks)
        return cls(mode, lo, hi if hi > lo else lo + 1e-6)

    def range_of(self, *arrays: np.ndarray) -> tuple[float, float]:
        """``(lo, hi)`` in raw units for an image/stack (several arrays: their joint range)."""
        scale = full_scale(arrays[0].dtype)
        if self.mode == "stack":
            lo = min(float(a.min()) for a in arrays)
            hi = max(float(a.max()) for a in arrays)
        elif self.mode == "dataset":
            lo, hi = self.lo * scale, self.hi * scale
        else:
            lo, hi = 0.0, scale
        if hi <= lo:
            hi = lo + (1.0 if np.issubdtype(arrays[0].dtype, np.integer) else 1e-6)
        return lo, hi

    @staticmethod
    def normalize(arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
        """Raw pixels -> float32 in [0, 1] (clipped)."""
        return np.clip((arr.astype(np.float32) - np.float32(lo)) / np.float32(hi - lo), 0.0, 1.0)

    @staticmethod
    def denormalize(y: np.ndarray, lo: float, hi: float, dtype: np.dtype | type) -> np.ndarray:
        """[0, 1] floats -> raw pixels of ``dtype`` (rounded and clipped for integer types)."""
        out = np.asarray(y, dtype=np.float64) * (hi - lo) + lo
        dtype = np.dtype(dtype)
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            return np.clip(np.rint(out), info.min, info.max).astype(dtype)
        return out.astype(dtype)


def to_planes_tensor(arr: np.ndarray) -> torch.Tensor:
    """``(P, H, W[, C])`` -> ``(P, C, H, W)`` (no copy of the values' type)."""
    t = torch.from_numpy(np.ascontiguousarray(arr))
    return t.unsqueeze(1) if arr.ndim == 3 else t.permute(0, 3, 1, 2)


class FocalStackPatches(Dataset):
    """Aligned random square patches of focal stacks: the same crop (and flip/rotation) of every plane.

    Item ``i`` comes from stack ``i // patches_per_stack`` and is ``{"planes": (P, C, s, s) float32 in
    [0, 1], "stack": int}``.

    Args:
        stacks: arrays ``(P, H, W[, C])`` or :class:`StackSource` entries (read once when ``cache``).
        patch_size: patch side ``s`` (every stack must be at least this large).
        patches_per_stack: items per stack (the data set's length is ``len(stacks) * patches_per_stack``).
        planes: plane indices to use, in-focus first (None: all).
        intensity: the [0, 1] mapping (:class:`Intensity`).
        flips: random flips and 90° rotations (dihedral group), identical for all planes.
        seed: with a seed, item ``i`` is a fixed function of ``(seed, i)`` (validation/test patches);
            with None the draws come from NumPy's global RNG, which the shared training loop seeds per
            sample and step (:class:`medrobust.train.loop.SeededDataset`), so patches differ by epoch.
        cache: keep the stacks in memory (else read on every item).
    """

    def __init__(self, stacks: Sequence[np.ndarray | StackSource], *, patch_size: int, patches_per_stack: int = 16,
                 planes: Sequence[int] | None = None, intensity: Intensity = Intensity(), flips: bool = True,
                 seed: int | None = None, cache: bool = True) -> None:
        if not stacks:
            raise ValueError("FocalStackPatches: no stacks")
        if patch_size < 1 or patches_per_stack < 1:
            raise ValueError(f"patch_size and patches_per_stack must be >= 1, got {patch_size}, {patches_per_stack}")
        self.sources = list(stacks)
        self.patch_size, self.patches_per_stack = int(patch_size), int(patches_per_stack)
        self.planes = list(planes) if planes is not None else None
        self.intensity, self.flips, self.seed, self.cache = intensity, bool(flips), seed, bool(cache)
        self._arrays: list[np.ndarray | None] = [None] * len(self.sources)
        self._ranges: list[tuple[float, float] | None] = [None] * len(self.sources)
        if cache:
            n_planes = None
            for i in range(len(self.sources)):
                arr = self._stack(i)
                if n_planes is not None and arr.shape[0] != n_planes:
                    raise ValueError(f"{self._name(i)}: {arr.shape[0]} planes, but the first stack has {n_planes} "
                                     "(select the same planes with data.planes)")
                n_planes = arr.shape[0]

    def _name(self, i: int) -> str:
        s = self.sources[i]
        return s.name if isinstance(s, StackSource) else f"stack {i}"

    def _stack(self, i: int) -> np.ndarray:
        arr = self._arrays[i]
        if arr is None:
            arr = load_stack(self.sources[i], self.planes)
            if arr.shape[0] < 2:
                raise ValueError(f"{self._name(i)}: a focal stack needs at least 2 planes")
            h, w = arr.shape[1:3]
            if h < self.patch_size or w < self.patch_size:
                raise ValueError(f"{self._name(i)}: stack is {h}x{w}, smaller than the patch size {self.patch_size}")
            self._ranges[i] = self.intensity.range_of(arr)
            if self.cache:
                self._arrays[i] = arr
        return arr

    def stack_range(self, i: int) -> tuple[float, float]:
        """Raw-unit ``(lo, hi)`` used to normalise stack ``i``."""
        self._stack(i)
        return self._ranges[i]  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self.sources) * self.patches_per_stack

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        si = index // self.patches_per_stack
        arr = self._stack(si)
        lo, hi = self.stack_range(si)
        rng = np.random.default_rng([self.seed, index]) if self.seed is not None else np.random
        h, w = arr.shape[1:3]
        s = self.patch_size
        y = int(rng.integers(0, h - s + 1)) if self.seed is not None else int(rng.randint(0, h - s + 1))
        x = int(rng.integers(0, w - s + 1)) if self.seed is not None else int(rng.randint(0, w - s + 1))
        patch = Intensity.normalize(arr[:, y : y + s, x : x + s], lo, hi)
        t = to_planes_tensor(patch)  # (P, C, s, s)
        if self.flips:
            k = int(rng.integers(0, 8)) if self.seed is not None else int(rng.randint(0, 8))
            if k & 4:
                t = t.flip(-1)
            t = torch.rot90(t, k & 3, dims=(-2, -1))
        return {"planes": t.contiguous(), "stack": si}


def fold_channels(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Collate patches for a single-channel model: every channel of every item becomes its own
    grey stack, ``(sum C_i, P, 1, s, s)`` (grey and RGB stacks can be mixed)."""
    planes = [it["planes"][:, c : c + 1] for it in items for c in range(it["planes"].shape[1])]
    return {"planes": torch.stack(planes)}


# ------------------------------------------------------------------------------------------ writing
def write_image(path: str | Path, img: np.ndarray) -> Path:
    """Write one plane ``(H, W)`` or ``(H, W, 3)`` as PNG or TIFF (by suffix), dtype kept, atomically.

    PNG holds 8- and 16-bit integers; TIFF any supported dtype.
    """
    path = Path(path)
    img = np.asarray(img)
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[-1] != 3):
        raise ValueError(f"{path}: expected an (H, W) or (H, W, 3) image, got shape {img.shape}")
    suffix = path.suffix.lower()
    if suffix == ".png":
        if img.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"{path}: PNG holds 8- or 16-bit integers, got {img.dtype} (write a .tif)")
        import cv2

        out = np.ascontiguousarray(img[..., ::-1]) if img.ndim == 3 else img
        with atomic_path(path) as tmp:
            if not cv2.imwrite(str(tmp), out):
                raise ValueError(f"{path}: could not write PNG")
    elif suffix in TIFF_SUFFIXES:
        import tifffile

        with atomic_path(path) as tmp:
            tifffile.imwrite(tmp, img, photometric="rgb" if img.ndim == 3 else "minisblack", compression="zlib")
    else:
        raise ValueError(f"{path}: unsupported image format {path.suffix!r} (expected {', '.join(IMAGE_SUFFIXES)})")
    return path


def write_stack(path: str | Path, stack: np.ndarray, *, suffix: str = ".png") -> Path:
    """Write ``(P, H, W[, C])``: a multi-page TIFF when ``path`` ends in .tif/.tiff, else a sample folder
    of ``<plane><suffix>`` files. Atomic per file."""
    path = Path(path)
    stack = np.asarray(stack)
    if stack.ndim not in (3, 4) or (stack.ndim == 4 and stack.shape[-1] != 3):
        raise ValueError(f"{path}: expected a stack (P, H, W) or (P, H, W, 3), got shape {stack.shape}")
    if path.suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        with atomic_path(path) as tmp:
            tifffile.imwrite(tmp, stack, photometric="rgb" if stack.ndim == 4 else "minisblack", compression="zlib")
        return path
    path.mkdir(parents=True, exist_ok=True)
    for k, plane in enumerate(stack):
        write_image(path / f"{k}{suffix}", plane)
    return path
