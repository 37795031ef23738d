"""``medrobust bench mri``: the MRI corruption cores against TorchIO and MONAI on the same real volumes.

Volumes: nibabel's bundled ``example4d.nii.gz`` (a real EPI scan, 128×96×24 per frame, 2 frames):
its first frame as a 3D volume and the whole 4D volume, normalised to [0, 1] (``[min, p99.8]``). Each
row is one corruption at severity 3 on one volume, per call (one volume, as the corrupted-set writer
runs it), on the CPU (or ``device``) for ours and the peers' own CPU paths:

* ours: :func:`~medrobust.augment.corruptions.mri.corrupt_mri` on ``(T, 1, Z, X, Y)`` (4D: frames as
  the batch; the writer's layout);
* TorchIO (when installed; ``pip install torchio``, else the column is empty and the note says so):
  ``RandomBiasField``, ``RandomSpike``, ``RandomGhosting``, ``RandomNoise`` (Gaussian, TorchIO has no
  Rician noise), ``RandomBlur``, ``RandomGamma``, ``RandomAnisotropy`` on ``(C, X, Y, Z)`` (4D: frames
  as channels);
* MONAI: ``RandBiasField``, ``GibbsNoise``, ``RandKSpaceSpikeNoise``, ``RandRicianNoise``,
  ``GaussianSmooth``, ``AdjustContrast``, ``RandSimulateLowResolution`` on the same layout.

The peers' transforms are the closest equivalents, not the same artifact (TorchIO's ghosting and spikes
act on the whole 3D k-space, ours per slice); ``speedup_vs_*`` is the peer's time over ours.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .common import timeit

__all__ = ["bench_mri"]


def _volumes(quick: bool) -> dict[str, np.ndarray]:
    import nibabel as nib

    data = nib.load(Path(nib.__file__).parent / "tests" / "data" / "example4d.nii.gz").get_fdata(dtype=np.float32)
    if quick:
        data = data[::2, ::2, ::2]
    lo, hi = float(data.min()), float(np.percentile(data, 99.8))
    data = np.clip((data - lo) / (hi - lo), 0, 1).astype(np.float32)
    return {"3d": data[..., 0], "4d": data}


def _torchio_peers() -> dict[str, Any] | None:
    try:
        import torchio as tio
    except ImportError:
        return None
    return {
        "bias_field": tio.RandomBiasField(coefficients=0.45, order=3),
        "kspace_spike": tio.RandomSpike(num_spikes=2, intensity=0.6),
        "motion_ghosting": tio.RandomGhosting(num_ghosts=(2, 4), intensity=0.6),
        "rician_noise": tio.RandomNoise(std=0.06),
        "gaussian_blur": tio.RandomBlur(std=1.2),
        "contrast_gamma": tio.RandomGamma(log_gamma=0.3),
        "resolution_loss": tio.RandomAnisotropy(axes=(0, 1), downsampling=3.0),
    }


def _monai_peers() -> dict[str, Any]:
    from monai.transforms import (
        AdjustContrast,
        GaussianSmooth,
        GibbsNoise,
        RandBiasField,
        RandKSpaceSpikeNoise,
        RandRicianNoise,
        RandSimulateLowResolution,
    )

    return {
        "bias_field": RandBiasField(degree=3, coeff_range=(0.2, 0.45), prob=1.0),
        "gibbs_ringing": GibbsNoise(alpha=0.5),
        "kspace_spike": RandKSpaceSpikeNoise(prob=1.0, intensity_range=(10, 12)),
        "rician_noise": RandRicianNoise(prob=1.0, std=0.06, relative=False),
        "gaussian_blur": GaussianSmooth(sigma=1.2),
        "contrast_gamma": AdjustContrast(gamma=1.35),
        "resolution_loss": RandSimulateLowResolution(prob=1.0, zoom_range=(1 / 3, 1 / 3)),
    }


def bench_mri(device: str = "cpu", repeats: int = 3, quick: bool = False) -> list[dict[str, Any]]:
    """Seconds per volume of each MRI corruption (severity 3): ours vs TorchIO vs MONAI, same volumes."""
    from ..augment.corruptions.mri import NAMES, corrupt_mri

    dev = torch.device(device)
    tio_peers = _torchio_peers()
    monai_peers = _monai_peers()
    rows: list[dict[str, Any]] = []
    for kind, vol in _volumes(quick).items():
        v4 = vol if vol.ndim == 4 else vol[..., None]  # (X, Y, Z, T)
        ours_in = torch.from_numpy(np.ascontiguousarray(v4.transpose(3, 2, 0, 1)))[:, None].to(dev)  # (T, 1, Z, X, Y)
        peer_in = torch.from_numpy(np.ascontiguousarray(v4.transpose(3, 0, 1, 2)))  # (T, X, Y, Z): frames as channels
        for name in NAMES:
            gen = torch.Generator().manual_seed(0)
            t_ours = timeit(lambda: corrupt_mri(ours_in, name, 3, generator=gen), dev, repeats=repeats)
            row: dict[str, Any] = {"input": f"{kind} {tuple(v4.shape)}", "method": name, "seconds": t_ours}
            if tio_peers is not None and name in tio_peers:
                import torchio as tio

                subject = tio.Subject(image=tio.ScalarImage(tensor=peer_in.clone(), affine=np.eye(4)))
                t = timeit(lambda: tio_peers[name](subject), torch.device("cpu"), repeats=repeats)
                row.update(torchio_s=t, speedup_vs_torchio=t / t_ours)
            if name in monai_peers:
                tr = monai_peers[name]
                t = timeit(lambda: tr(peer_in.clone()), torch.device("cpu"), repeats=repeats)
                row.update(monai_s=t, speedup_vs_monai=t / t_ours)
            rows.append(row)
    if tio_peers is None:
        rows.append({"input": "note", "method": "TorchIO not installed (pip install torchio): its column is empty",
                     "seconds": float("nan")})
    return rows
