"""Image classification robustness (CIFAR-10/100 and -C, PACS-style domain folders, the embedded digits)."""

from ...corrupt import corrupt_cifar
from ..base import Task
from .config import DATASETS, ClassificationConfig
from .evaluate import evaluate_classification, load_run
from .report import comparison_table, write_classification_report
from .train import (
           ClassificationAdapter,
           ClassificationData,
           build_model,
           prepare_data,
           train_classification,
)

__all__ = ["TASK", "DATASETS", "ClassificationConfig", "ClassificationData", "ClassificationAdapter", "prepare_data",
           "build_model", "train_classification", "load_run", "evaluate_classification", "comparison_table",
           "write_classification_report"]

TASK = Task(
    name="classification",
    summary="image classification (data.dataset: cifar10, cifar100, digits (embedded default), pacs)",
    config=ClassificationConfig,
    prepare_data=prepare_data,
    build_model=build_model,
    train=train_classification,
    load_run=load_run,
    evaluate=evaluate_classification,
    table=comparison_table,
    corrupt=corrupt_cifar,
)
