"""Microscopy defocus: a linear-latent autoencoder that synthesises (and removes) defocus blur."""

from ..base import Task
from .config import DEFAULT_WIDTHS, BlurConfig
from .data import BlurData, build_model, prepare_data
from .evaluate import evaluate_blur, evaluate_blur_runs, load_run
from .report import blur_table
from .train import train_blur

__all__ = ["TASK", "BlurConfig", "BlurData", "DEFAULT_WIDTHS", "prepare_data", "build_model", "train_blur", "load_run",
           "evaluate_blur", "evaluate_blur_runs", "blur_table"]

TASK = Task(
    name="microscopy",
    summary="microscopy defocus blur synthesis and removal (embedded focal stacks by default)",
    config=BlurConfig,
    prepare_data=prepare_data,
    build_model=build_model,
    train=train_blur,
    load_run=load_run,
    evaluate=evaluate_blur_runs,
    table=blur_table,
)
