"""Every task's report (cardiac, classification + ``medrobust dfm``, driving, microscopy) is written by
the one writer, :func:`medrobust.evaluate.report.write_report`."""

from __future__ import annotations

import json

import numpy as np
import pytest

import medrobust.evaluate.report.writer as writer
from medrobust.tasks.cardiac import report as cardiac
from medrobust.tasks.classification import report as classification
from medrobust.tasks.driving import report as driving
from medrobust.tasks.microscopy import report as microscopy


def _cardiac(out):
    res = {"task": "cardiac", "run": "r", "models": {"m": {"clean": {"dice": {"RV": 0.5, "mean": 0.5}}}}}
    return cardiac.write_cardiac_report(out, res)


def _classification(out):
    from medrobust.tasks.classification.evaluate import summarise

    entry = {"clean": {"accuracy": 0.5, "n": 4}, "corruptions": {"fog": {"1": {"accuracy": 0.25, "n": 4}}}}
    entry["summary"] = summarise(entry, "none")
    res = {"task": "classification", "dataset": "digits", "run": "r", "models": {"m": entry},
           "protocol": {"corruptions": ["fog"], "severities": [1], "normalisation": "none"}}
    return classification.write_classification_report(out, res)


def _dfm(out):
    rows = [{"class": str(k), "tpr_kept": 0.5, "fpr_kept": 0.1, "tpr_removed": 0.2, "fpr_removed": 0.3,
             "shortcut_score": 0.05, "adcs": -0.1} for k in range(2)]
    maps = np.random.default_rng(0).random((2, 4, 4))
    report = classification.write_dfm_report(out, run_dir="run", split="test", patch=2, top=0.1, rows=rows, n_images=2,
                                             loss_maps=maps, dfms=maps > 0.5, class_names=["0", "1"])
    assert report["table"].splitlines()[2] == "| 0 | 0.50 | 0.10 | 0.20 | 0.30 | 0.05 | -0.10 |"
    return writer.report_files(out)


def _driving(out):
    from medrobust.data.driving import CLASS_NAMES
    from medrobust.tasks.driving.evaluate import summarize

    n = len(CLASS_NAMES)
    src = summarize(np.eye(n, dtype=np.int64) * 5, CLASS_NAMES, 1)
    res = {"task": "driving", "run": "r", "class_names": list(CLASS_NAMES), "domains": {},
           "models": {"m": {"source": src, "targets": {}, "corruptions": {}}},
           "references": {"Paper": {"cityscapes": 32.3}}}
    files = driving.write_driving_report(out, res)
    assert "| Paper | 32.30 |" in files["markdown"].read_text()  # published mIoU with two decimals
    return files


def _microscopy(out):
    per = {"psnr": 30.0, "ssim": 0.9, "n": 1, "per_plane": {"1": {"t": 0.5, "psnr": 30.0, "ssim": 0.9, "n": 1}}}
    res = {"task": "microscopy", "run": "r", "models": {"latent": {"checkpoint": "m.pt", "reference_sigma": 1.0}},
           "data": {"root": "d", "split": "test", "stacks": ["s"], "synthetic": True, "intensity": {"mode": "minmax"}},
           "positions": [0.0, 0.5, 1.0], "gaussian_sigmas": {"1": 1.0}, "synthesis": {"latent": per}, "deblur": {"latent": per},
           "linearity": {"latent": {"relative_deviation": 0.1, "step_cosine": 0.9}}, "references": {"note": "none found"}}
    files = microscopy.write_blur_report(out, res, [])
    assert files["markdown"].read_text().endswith("## Published reference\n\nnone found\n")
    return files


@pytest.mark.parametrize("module, write", [(cardiac, _cardiac), (classification, _classification),
                                           (classification, _dfm), (driving, _driving), (microscopy, _microscopy)],
                         ids=["cardiac", "classification", "dfm", "driving", "microscopy"])
def test_task_reports_use_the_one_writer(module, write, tmp_path, monkeypatch):
    assert module.write_report is writer.write_report
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs["title"])
        return writer.write_report(*args, **kwargs)

    monkeypatch.setattr(module, "write_report", spy)
    files = write(tmp_path / "rep")
    assert len(calls) == 1
    md = files["markdown"].read_text()
    assert md.startswith(f"# {calls[0]}\n\n") and md.endswith("\n") and not md.endswith("\n\n")
    json.loads(files["json"].read_text())
    assert not list((tmp_path / "rep").rglob(".*tmp*"))
