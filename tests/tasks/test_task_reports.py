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


# ------------------------------------------------------------------------- protocols and references
PROTOCOLS = [("medrobust.tasks.cardiac", "acdc"), ("medrobust.tasks.classification", "cifar10c"),
             ("medrobust.tasks.classification", "digits"), ("medrobust.tasks.classification", "pacs"),
             ("medrobust.tasks.driving", "gta5_to_real"), ("medrobust.tasks.microscopy", "focal_stacks")]


@pytest.mark.parametrize("package, name", PROTOCOLS, ids=[n for _, n in PROTOCOLS])
def test_every_reference_has_its_citation(package, name):
    from medrobust.tasks.base import read_protocol

    proto = read_protocol(package, name)
    refs = proto.get("references") or {}
    assert refs
    rows = {k: v for k, v in refs.items() if isinstance(v, dict)}
    for k, v in rows.items():
        assert isinstance(v.get("citation"), str) and v["citation"].strip(), f"{name}: {k} has no citation"
    if not rows:  # a protocol without published numbers still cites the method
        assert refs.get("citation")
    # protocols with an embedded default say how the references' protocol differs from it
    if name in ("acdc", "digits", "gta5_to_real", "focal_stacks"):
        diff = proto.get("protocol_difference") or {}
        assert diff.get("references") and diff.get("embedded_default")


# ------------------------------------------------------------------------------- axis labels
def _check_axis_labels(fig) -> None:
    """Every panel that plots data has an x and a y label, its own or one of its column (x) / row (y)."""
    axes = [ax for ax in fig.axes if ax.get_visible()]
    data = [ax for ax in axes if ax.lines or ax.patches or ax.collections]
    assert data
    for ax in data:
        spec = ax.get_subplotspec()
        col = [a for a in axes if a.get_subplotspec().colspan == spec.colspan]
        row = [a for a in axes if a.get_subplotspec().rowspan == spec.rowspan]
        assert ax.get_xlabel() or any(a.get_xlabel() for a in col), f"no x label on {ax.get_title()!r}"
        assert ax.get_ylabel() or any(a.get_ylabel() for a in row), f"no y label on {ax.get_title()!r}"


def _capture(monkeypatch, figs, *modules):
    def save(fig, path, *a, **k):
        figs.append(fig)
        return writer.save_figure(fig, path, *a, **k)

    for module in modules:
        monkeypatch.setattr(module, "save_figure", save)


def test_every_chart_has_axis_labels(tmp_path, monkeypatch):
    from medrobust.data.driving import CLASS_NAMES
    from medrobust.tasks.classification.evaluate import summarise
    from medrobust.tasks.driving.evaluate import summarize

    figs: list = []
    _capture(monkeypatch, figs, cardiac, classification, driving)
    s = {"dice": {"RV": 0.5, "mean": 0.5}}
    cres = {"models": {"m": {"clean": s, "corruptions": {c: {"1": s, "3": s} for c in ("a", "b", "c", "d", "e")}}}}
    cardiac.plot_dice_vs_severity(cres, tmp_path / "c.png")

    entry = {"clean": {"accuracy": 0.5, "n": 4}, "corruptions": {c: {"1": {"accuracy": 0.25, "n": 4}} for c in "abcde"},
             "domains": {"x": {"accuracy": 0.3, "n": 4}}}
    entry["summary"] = summarise(entry, "none")
    kres = {"models": {"m": entry}}
    classification._plot_accuracy_vs_severity(kres, tmp_path / "a.png")
    classification._plot_bars(kres, "corruptions", tmp_path / "b.png", "mean accuracy (%)", True)
    classification._plot_bars(kres, "domains", tmp_path / "d.png", "accuracy (%)", True)

    n = len(CLASS_NAMES)
    src = summarize(np.eye(n, dtype=np.int64) * 5, CLASS_NAMES, 1)
    dres = {"class_names": list(CLASS_NAMES), "models": {"m": {"source": src, "targets": {"t": src},
                                                                "corruptions": {c: {"1": src, "3": src} for c in "abcdefg"}}}}
    driving.plot_class_iou(dres, tmp_path / "i.png")
    driving.plot_miou_vs_severity(dres, tmp_path / "s.png")
    assert len(figs) == 6
    for fig in figs:
        _check_axis_labels(fig)


def test_comparison_tables_have_no_always_empty_columns():
    from medrobust.tasks.classification.evaluate import summarise

    entry = {"clean": {"accuracy": 0.5, "n": 4}, "corruptions": {"fog": {"1": {"accuracy": 0.25, "n": 4}}}}
    entry["summary"] = summarise(entry, "none")
    table = classification.comparison_table({"models": {"m": entry}, "protocol": {"normalisation": "none"}})
    header = table.splitlines()[0]
    assert "Target domains" not in header and "Worst domain" not in header  # CIFAR-like: no target domains
    assert "Mean corr. acc (%)" in header
    t = cardiac.comparison_table({"models": {"m": {"clean": {"dice": {"RV": 0.5, "mean": 0.5}}}}})
    assert t.splitlines()[0] == "| Model | Clean Dice (%) |"
