"""Driving-scene semantic segmentation across domains (GTA5/Cityscapes -> BDD100K, Mapillary, SYNTHIA)."""

from ..base import Task
from .config import DomainConfig, DrivingConfig
from .evaluate import evaluate_driving, load_run
from .report import comparison_table, write_driving_report
from .train import (
           DrivingData,
           DrivingSegmenter,
           build_model,
           prepare_data,
           train_driving,
)

__all__ = ["TASK", "DrivingConfig", "DomainConfig", "DrivingData", "DrivingSegmenter", "prepare_data", "build_model",
           "train_driving", "load_run", "evaluate_driving", "comparison_table",
           "write_driving_report"]

TASK = Task(
    name="driving",
    summary="driving-scene segmentation across domains (embedded synthetic street scenes by default)",
    config=DrivingConfig,
    prepare_data=prepare_data,
    build_model=build_model,
    train=train_driving,
    load_run=load_run,
    evaluate=evaluate_driving,
    table=comparison_table,
)
