"""Cardiac MRI segmentation (ACDC layout or the embedded cohort): robust training, ACDC-C evaluation."""

from ...corrupt import corrupt_acdc
from ..base import Task
from .config import CardiacConfig
from .evaluate import evaluate_cardiac, load_run
from .report import comparison_table, write_cardiac_report
from .train import (
           CLASS_NAMES,
           NUM_CLASSES,
           CardiacData,
           build_model,
           prepare_data,
           train_cardiac,
)

__all__ = ["TASK", "CardiacConfig", "CardiacData", "prepare_data", "build_model", "train_cardiac", "load_run",
           "evaluate_cardiac", "comparison_table", "write_cardiac_report", "NUM_CLASSES", "CLASS_NAMES"]

TASK = Task(
    name="cardiac",
    summary="cardiac MRI segmentation (ACDC layout; embedded synthetic cohort by default)",
    config=CardiacConfig,
    prepare_data=prepare_data,
    build_model=build_model,
    train=train_cardiac,
    load_run=load_run,
    evaluate=evaluate_cardiac,
    table=comparison_table,
    corrupt=corrupt_acdc,
)
