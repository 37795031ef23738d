"""Tests for medrobust.evaluate.report: tables, formatters, references section and the one writer."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from medrobust.evaluate.report import (
    DASH,
    Section,
    finite,
    fmt_mm,
    fmt_num,
    fmt_pct,
    format_table,
    nan_mean,
    new_figure,
    references_heading,
    references_markdown,
    render_markdown,
    sanitize,
    save_figure,
    write_report,
)


def test_format_table():
    t = format_table([{"a": 1, "b": 0.12345}, {"a": "x|y", "b": None}, {"a": float("nan")}], ["a", "b"])
    lines = t.strip().splitlines()
    assert lines[0] == "| a | b |" and lines[1] == "|---|---|"
    assert lines[2] == "| 1 | 0.12 |"
    assert lines[3] == "| x\\|y | – |"
    assert lines[4] == "| – | – |"
    assert t.endswith(" |\n")
    with pytest.raises(ValueError, match="columns"):
        format_table([], [])


def test_format_table_sequence_rows():
    # rows may be cell sequences (duplicate column names are fine then); short rows are padded
    assert format_table([["x", "1.5"], ["y"]], ["A", "A"]) == "| A | A |\n|---|---|\n| x | 1.5 |\n| y | – |\n"
    with pytest.raises(ValueError, match="3 cells"):
        format_table([[1, 2, 3]], ["a", "b"])
    with pytest.raises(ValueError, match="dicts or sequences"):
        format_table(["abc"], ["a"])


def test_number_formatters():
    assert DASH == "–"
    assert fmt_pct(0.91234) == "91.23" and fmt_pct(1) == "100.00" and fmt_pct(0.5, 1) == "50.0"
    assert fmt_mm(4.126) == "4.13" and fmt_num(3.14159, 3) == "3.142" and fmt_num(np.float32(2)) == "2.00"
    for missing in (None, float("nan"), float("inf"), "x", True):
        assert fmt_pct(missing) == DASH and fmt_mm(missing) == DASH and finite(missing) is None
    assert finite("0.5") == 0.5
    assert nan_mean([1, None, float("nan"), 3]) == 2.0 and nan_mean([None]) is None and nan_mean([]) is None


def test_sanitize_is_strict_json():
    import torch
    from pathlib import Path

    obj = {1: float("nan"), "a": (np.float32(0.5), np.arange(2)), "p": Path("/x"), "t": torch.tensor([1.0, float("inf")])}
    out = sanitize(obj)
    assert out == {"1": None, "a": [0.5, [0, 1]], "p": "/x", "t": [1.0, None]}
    json.dumps(out, allow_nan=False)


def test_references_markdown_both_styles():
    refs = {"Paper A": {"cityscapes": 32.3, "bdd": None, "dice": {"RV": 92.8}}, "B": {"cityscapes": 7}, "note": "text"}
    as_given = references_markdown(refs)
    # "bdd" has a value in no row: no always-empty column
    assert "| Reference | cityscapes | dice.RV |" in as_given
    assert "| Paper A | 32.3 | 92.8 |" in as_given and "| B | 7 | – |" in as_given
    assert '```json\n{\n  "note": "text"\n}\n```\n' in as_given
    two = references_markdown(refs, decimals=2)  # the driving protocol's published mIoU carry two decimals
    assert "| Paper A | 32.30 | 92.80 |" in two and "| B | 7 | – |" in two
    refs["B"]["bdd"] = 30.1
    assert "| Reference | cityscapes | bdd | dice.RV |" in references_markdown(refs)
    assert references_markdown([1, 2]) == "```json\n[\n  1,\n  2\n]\n```\n"
    assert references_heading() == "References (published numbers, as reported)"
    assert references_heading("not produced here") == "References (published numbers, as reported; not produced here)"


def test_render_markdown_layout():
    md = render_markdown("T", [Section(None, ["lead  \nline two", ""]), Section("A", "| a |\n|---|\n"),
                                Section("B"), Section("b1", ["x", "y\nz"], level=3)])
    assert md == "# T\n\nlead  \nline two\n\n## A\n\n| a |\n|---|\n\n## B\n\n### b1\n\nx\n\ny\nz\n"


def test_write_report_files_sections_figures_and_json(tmp_path):
    fig = new_figure((2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    outside = save_figure(fig, tmp_path / "elsewhere" / "curve.png")
    assert outside.is_file()
    results = {"task": "t", "score": float("nan"), "arr": np.array([1.5])}
    out = tmp_path / "rep"
    paths = write_report(out, title="My report", sections=[Section(None, "lead"), Section("Numbers", format_table([{"a": 1}], ["a"]))],
                         results=results, figures={"drawn": fig, "copied": outside, "skipped": None},
                         references={"Paper": {"x": 1.25}}, files_key="files")
    assert list(paths) == ["json", "markdown", "drawn", "copied"]
    assert paths["drawn"] == out / "figures" / "drawn.png" and paths["copied"] == out / "figures" / "curve.png"
    assert all(p.is_file() for p in paths.values())
    assert not list(out.rglob(".*tmp*"))  # atomic writes leave no temporary files
    md = paths["markdown"].read_text()
    assert md == ("# My report\n\nlead\n\n## Numbers\n\n| a |\n|---|\n| 1 |\n\n"
                  "## References (published numbers, as reported)\n\n| Reference | x |\n|---|---|\n| Paper | 1.25 |\n\n"
                  "## Figures\n\n![drawn](figures/drawn.png)\n\n![copied](figures/curve.png)\n")
    text = paths["json"].read_text()
    assert "NaN" not in text and text.endswith("}\n")
    saved = json.loads(text)
    assert saved["score"] is None and saved["arr"] == [1.5]
    assert saved["files"] == {k: str(v) for k, v in paths.items()} == results["files"]


def test_write_report_without_figure_heading_or_figures(tmp_path):
    paths = write_report(tmp_path / "a", title="T", sections=[], results={}, figures={"alt text": None})
    assert paths["markdown"].read_text() == "# T\n"
    assert (tmp_path / "a" / "figures").is_dir()  # figures/ exists when figures are given
    png = save_figure(new_figure((1, 1)), tmp_path / "b" / "figures" / "m.png")
    paths = write_report(tmp_path / "b", title="T", sections=[Section(None, "x")], results={"k": 1},
                         figures={"a map": png}, figures_heading=None)
    assert paths["markdown"].read_text() == "# T\n\nx\n\n![a map](figures/m.png)\n"
    assert "figures" not in json.loads(paths["json"].read_text())
    paths = write_report(tmp_path / "c", title="T", sections=[], results={})
    assert not (tmp_path / "c" / "figures").exists() and set(paths) == {"json", "markdown"}


def test_write_report_is_atomic(tmp_path):
    out = tmp_path / "rep"
    write_report(out, title="first", sections=[Section("S", "ok")], results={"v": 1})
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(TypeError, match="not JSON serialisable"):
        write_report(out, title="second", sections=[Section("S", "new")], results={"v": object()})
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # old report intact
    assert not list(out.rglob(".*tmp*"))


def test_write_report_errors(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        write_report(tmp_path, title="T", sections=[], results={}, figures={"json": new_figure((1, 1))})
    with pytest.raises(ValueError, match="existing image"):
        write_report(tmp_path, title="T", sections=[], results={}, figures={"f": tmp_path / "missing.png"})


def test_save_figure_creates_folder_and_is_png(tmp_path):
    fig = new_figure((2, 1))
    fig.add_subplot().imshow(np.random.default_rng(0).random((4, 8)))
    p = save_figure(fig, tmp_path / "deep" / "er" / "f.png", tight=False)
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image as mpimg

    assert mpimg.imread(p).shape[:2] == (100, 200)  # not cropped: 2 x 1 inches at 100 dpi
    assert not math.isnan(float(mpimg.imread(p).mean()))


def test_references_with_citations_and_protocol_note():
    from medrobust.evaluate.report import protocol_note

    refs = {"RandConv": {"avg": 74.84, "citation": "Xu et al., ICLR 2021", "source": "as listed in X"},
            "ERM": {"avg": 52.0}}
    md = references_markdown(refs, note="Protocol differs: real vs embedded.")
    assert "| Reference | avg | Citation |" in md and "| RandConv | 74.84 | [1] |" in md and "| ERM | 52.0 | – |" in md
    assert "1. **RandConv**: Xu et al., ICLR 2021; source: as listed in X\n" in md
    assert md.endswith("*Protocol differs: real vs embedded.*\n")
    proto = {"protocol_difference": {"references": "MNIST -> SVHN", "embedded_default": "sklearn digits"}}
    assert protocol_note(proto, embedded=False) is None and protocol_note({}, embedded=True) is None
    note = protocol_note(proto, embedded=True)
    assert note.startswith("Protocol differs: the published numbers were measured on MNIST -> SVHN; this report "
                           "evaluated the embedded default, sklearn digits.")


def test_sources_section_and_runs_table():
    from medrobust.evaluate.report import non_empty_columns, runs_table, sources_section

    models = {"a": {"provenance": {"run_dir": "/r/a", "checkpoint": "/r/a/best.pt", "checkpoint_step": 20,
                                   "trained_steps": 30, "configured_steps": 30}},
              "b": {"provenance": {"run_dir": "/r/b", "checkpoint": "/x/model.pt", "checkpoint_step": None,
                                   "trained_steps": None, "configured_steps": 5}}}
    t = runs_table(models)
    assert t.splitlines()[0] == "| Model | Run folder | Checkpoint | Checkpoint step | Trained steps | Configured steps |"
    assert "| a | `/r/a` | best.pt | 20 | 30 | 30 |" in t and "| b | `/r/b` | /x/model.pt | – | – | 5 |" in t
    assert runs_table({"m": {"clean": {}}}) is None
    sec = sources_section(models, ["Test set: 8 cases.", ""])
    assert sec.blocks()[:2] == ["## Where the numbers come from", "- Test set: 8 cases."] and sec.blocks()[2] == t
    rows = [{"Model": "a", "x": "–", "y": 1, "z": None}, {"Model": "b", "x": float("nan"), "y": None, "z": ""}]
    assert non_empty_columns(rows, ["Model", "x", "y", "z"]) == ["Model", "y"]
