"""Microscopy defocus task: train the linear-latent autoencoder, evaluate synthesis and deblurring.

* :class:`BlurConfig` (``task: microscopy``; ``microscopy_blur`` in earlier releases) — data (focal stacks or the embedded default),
  model widths, loss weights, training and evaluation settings;
* :func:`train_blur` — the shared step-based loop (:func:`medrobust.train.loop.fit`) with aligned
  random patches of all planes; validation PSNR of the synthesised intermediate planes picks
  ``best.pt``; a self-contained ``model.pt`` is exported at the end;
* :func:`evaluate_blur` — PSNR, SSIM, detail kept (Laplacian-variance ratio) and the residual's
  Nyquist peak of synthesised planes against the real planes of test stacks (real images listed in
  ``data.holdout`` never enter training: reported on their own), next to baselines computed in the
  same run (pixel interpolation; the best-fitting Gaussian and disk blur, fitted on the test stacks
  themselves — optimistic; the true PSF of the embedded stacks), plus deblurring by latent
  extrapolation against pixel extrapolation, the unchanged input, and Richardson–Lucy / Wiener
  (scikit-image) with the true and with an estimated PSF; ``report.md``/``report.json`` and figures;
* ``medrobust bench blur`` (:mod:`medrobust.bench.blur`) — synthesis throughput at 512×512 and
  training step times.

* ``experiment: segment`` (:mod:`.segment`) — a U-Net segmenting cytoplasm and nuclei of synthetic
  fields trained with blur augmentation (none, ``defocus_psf``, ``latent_blur``), scored on held-out
  fields defocused by the physical model at each plane.

Metrics are computed per channel on images normalised to [0, 1] with the model's intensity mapping
(min–max of each stack by default), so PSNR uses a data range of 1.
"""

from ..base import Task
from .config import DEFAULT_WIDTHS, BlurConfig
from .data import BlurData, build_model, prepare_data
from .evaluate import evaluate_blur, evaluate_blur_runs, load_run
from .report import blur_table
from .segment import (
    evaluate_microscopy_runs,
    evaluate_segment,
    load_microscopy_run,
    microscopy_table,
    train_microscopy,
    train_segment,
)
from .train import train_blur

__all__ = ["DEFAULT_WIDTHS", "TASK", "BlurConfig", "BlurData", "blur_table", "build_model", "evaluate_blur",
           "evaluate_blur_runs", "evaluate_segment", "load_run", "prepare_data", "train_blur", "train_segment"]

TASK = Task(
    name="microscopy",
    summary="microscopy defocus blur synthesis and removal (embedded focal stacks by default), and blur "
            "augmentation for a downstream segmentation (experiment: segment)",
    config=BlurConfig,
    prepare_data=prepare_data,
    build_model=build_model,
    train=train_microscopy,
    load_run=load_microscopy_run,
    evaluate=evaluate_microscopy_runs,
    table=microscopy_table,
)
