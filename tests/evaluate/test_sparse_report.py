"""The sparse-training section of every report: from each evaluated run's ``sparse.json`` (method,
target and realised density, per-layer densities, connections moved) into report.md and report.json."""

import json

import pytest
import torch
from torch import nn

from medrobust.evaluate.report import (
    SPARSE_HEADING,
    sparse_record,
    sparse_runs,
    write_report,
)
from medrobust.train.sparse import SparseMasks, make_updater

HANDMADE = {
    "method": "rigl", "grow": "gradient", "sparsity": 0.3, "distribution": "erk", "density": 0.700123,
    "layers": {"0.weight": {"shape": [8, 1, 3, 3], "nonzero": 72, "numel": 72, "density": 1.0, "dense": True},
               "3.weight": {"shape": [10, 128], "nonzero": 890, "numel": 1280, "density": 0.695312, "dense": False}},
    "updates": [{"step": 5, "fraction": 0.3, "moved": {"3.weight": 267}, "moved_total": 267, "density": 0.700123},
                {"step": 10, "skipped": "non-finite gradients"},
                {"step": 15, "fraction": 0.15, "moved": {"3.weight": 133}, "moved_total": 133, "density": 0.700123}],
}


def _models(tmp_path):
    (tmp_path / "sp").mkdir()
    (tmp_path / "dense").mkdir()
    (tmp_path / "sp" / "sparse.json").write_text(json.dumps(HANDMADE))
    return {"dense": {"provenance": {"run_dir": str(tmp_path / "dense")}},
            "rigl": {"provenance": {"run_dir": str(tmp_path / "sp")}},
            "rigl+tent": {"provenance": {"run_dir": str(tmp_path / "sp")}},  # a test-time variant of the same run
            "exported": {"checkpoint": "x.pt"}}


def test_record_counts_applied_updates_and_moved_connections():
    rec = sparse_record(HANDMADE, models=["m"], run_dir="r")
    assert rec["method"] == "rigl" and rec["target_density"] == pytest.approx(0.7) and rec["density"] == 0.700123
    assert rec["n_updates"] == 2 and rec["n_skipped"] == 1 and rec["moved_total"] == 400
    assert rec["last_update"] == {"step": 15, "fraction": 0.15, "moved_total": 133} and len(rec["updates"]) == 3
    with pytest.raises(ValueError, match="'density' and 'layers'"):
        sparse_record({"method": "set"})


def test_every_report_gets_the_section_and_the_json(tmp_path):
    models = _models(tmp_path)
    runs = sparse_runs(models)
    assert len(runs) == 1 and runs[0]["models"] == ["rigl", "rigl+tent"] and runs[0]["run_dir"] == str(tmp_path / "sp")
    results = {"task": "any", "models": models}
    files = write_report(tmp_path / "report", title="T", sections=[], results=results)
    md = files["markdown"].read_text()
    assert f"## {SPARSE_HEADING}" in md
    assert "| rigl, rigl+tent | rigl | gradient | erk | 0.7000 | 0.7001 | 2 | 400 | 15: 133 |" in md
    assert "| `0.weight` | 8x1x3x3 | 1.0000 (dense) |" in md and "| `3.weight` | 10x128 | 0.6953 |" in md
    assert "skipped on non-finite AMP steps" in md
    saved = json.loads(files["json"].read_text())
    assert saved["sparse"] == json.loads(json.dumps(runs)) and saved["sparse"][0]["layers"]["3.weight"]["nonzero"] == 890
    # no sparse run: no section, no key (existing reports unchanged)
    plain = {"models": {"dense": models["dense"]}}
    files = write_report(tmp_path / "plain", title="T", sections=[], results=plain)
    assert SPARSE_HEADING not in files["markdown"].read_text() and "sparse" not in json.loads(files["json"].read_text())


def test_unreadable_sparse_json_is_a_note_not_a_crash(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "sparse.json").write_text("{not json")
    results = {"models": {"b": {"provenance": {"run_dir": str(tmp_path / "bad")}}}}
    md = write_report(tmp_path / "r", title="T", sections=[], results=results)["markdown"].read_text()
    assert "*b: `sparse.json` unreadable (" in md and "error" in results["sparse"][0]


def test_record_reads_the_updaters_real_summary():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    masks = SparseMasks(model, 0.5, distribution="uniform")
    upd = make_updater("set", masks, update_every=2, drop_fraction=0.3, end=1.0, total_steps=6)
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    for step in range(6):  # plain SGD by hand (a torch.optim's first step costs seconds of lazy imports)
        model.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.1 * p.grad
        upd.step(step, None)
    rec = sparse_record(json.loads(json.dumps(upd.summary())))
    assert rec["target_density"] == 0.5 and rec["n_updates"] == len(upd.history) > 0
    assert rec["moved_total"] == sum(u["moved_total"] for u in upd.history) > 0
    assert rec["layers"]["3.weight"]["density"] == pytest.approx(0.5, abs=1 / 144)


@pytest.mark.slow
def test_digits_sparse_run_evaluated_end_to_end(tmp_path):
    from medrobust.tasks import load_config
    from medrobust.tasks.classification import train_classification
    from medrobust.tasks.classification.evaluate import evaluate_classification

    tiny = [f"output_dir={tmp_path}", "name=set", "model.name=digitnet", "data.image_size=16", "data.max_train=64",
            "train.steps=6", "train.batch_size=16", "train.val_every=6", "train.ckpt_every=6", "train.device=cpu",
            "train.sparse={method: set, sparsity: 0.5, update_every: 2}", "evaluate.max_images=16",
            "evaluate.corruptions=[contrast]", "evaluate.severities=[1]", "evaluate.domains=false"]
    train_classification(load_config("classification/digits/baseline", tiny), progress=False)
    res = evaluate_classification({"set": tmp_path / "set"}, out_dir=tmp_path / "report", progress=False)
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    rec = saved["sparse"][0]
    on_disk = json.loads((tmp_path / "set" / "sparse.json").read_text())
    assert rec["models"] == ["set"] and rec["method"] == "set" and rec["target_density"] == 0.5
    assert rec["density"] == on_disk["density"] and abs(rec["density"] - 0.5) < 0.01
    assert rec["n_updates"] == len(on_disk["updates"]) > 0 and rec["moved_total"] > 0
    assert res["sparse"][0]["moved_total"] == rec["moved_total"], "the returned results hold it too"
    md = (tmp_path / "report" / "report.md").read_text()
    assert f"## {SPARSE_HEADING}" in md and "Per-layer density:" in md
    assert md.index(f"## {SPARSE_HEADING}") > md.index("## Comparison")
