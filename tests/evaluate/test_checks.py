"""The checks every task's evaluate runs before its first forward pass (medrobust.evaluate.checks) and
the provenance of a run (medrobust.evaluate.provenance)."""

from __future__ import annotations

import json

import pytest
import torch

from medrobust.evaluate.checks import (
    check_out_dir,
    check_runs,
    corrupted_manifest,
    missing_message,
    require_paths,
)
from medrobust.evaluate.provenance import corruption_source, describe_source, run_provenance


def test_missing_message_is_one_line_with_first_few_and_count():
    msg = missing_message("--corrupted-root /c", [f"/c/p{i}" for i in range(7)], "a\nb  of every case", total=20)
    assert "\n" not in msg
    assert msg.startswith("--corrupted-root /c: 7 of 20 expected paths missing (expected a b of every case): ")
    assert msg.endswith("/c/p0, /c/p1, /c/p2 ... and 4 more")


def test_require_paths(tmp_path):
    (tmp_path / "a").write_text("x")
    (tmp_path / "d").mkdir()
    assert require_paths([tmp_path / "a", tmp_path / "a"], what="w", expected="e") == 1  # duplicates once
    require_paths([tmp_path / "d"], what="w", expected="e", kind="dir")
    with pytest.raises(FileNotFoundError, match=r"^w: 1 of 2 expected paths missing \(expected e\): .*/b$"):
        require_paths([tmp_path / "a", tmp_path / "b"], what="w", expected="e")
    with pytest.raises(FileNotFoundError, match="1 of 1"):
        require_paths([tmp_path / "a"], what="w", expected="e", kind="dir")


def test_check_out_dir(tmp_path):
    assert check_out_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # nothing is created
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="--out .*file: exists and is not a folder"):
        check_out_dir(tmp_path / "file")
    with pytest.raises(FileExistsError, match="is a file"):
        check_out_dir(tmp_path / "file" / "report")


def test_check_runs_names_every_missing_file(tmp_path):
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    (tmp_path / "a" / "config.yaml").write_text("task: cardiac\n")
    (tmp_path / "a" / "best.pt").write_bytes(b"")
    (tmp_path / "b" / "config.yaml").write_text("task: cardiac\n")
    check_runs({"a": tmp_path / "a"})
    with pytest.raises(FileNotFoundError) as err:
        check_runs({"a": tmp_path / "a", "b": tmp_path / "b", "c": tmp_path / "c"})
    msg = str(err.value)
    assert msg.startswith("--run (3 runs): 3 of 6 expected paths missing (expected config.yaml and best.pt")
    for p in ("b/best.pt", "c/config.yaml", "c/best.pt"):
        assert p in msg


def test_run_provenance_reads_checkpoints_and_metrics(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"model": {}, "step": 40, "best_step": 40, "best_metric": 0.8}, run / "best.pt")
    torch.save({"model": {}, "step": 60, "best_step": 40, "best_metric": 0.8}, run / "last.pt")
    p = run_provenance(run, configured_steps=60)
    assert p == {"run_dir": str(run), "checkpoint": str(run / "best.pt"), "checkpoint_step": 40, "trained_steps": 60,
                 "configured_steps": 60, "best_metric": 0.8}
    # an exported model without a step: the step of best.pt; no last.pt: the last step in metrics.jsonl
    (run / "last.pt").unlink()
    torch.save({"format": "x", "state_dict": {}}, run / "model.pt")
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in (10, 20, 55)))
    p = run_provenance(run / "model.pt")
    assert p["checkpoint"] == str(run / "model.pt") and p["checkpoint_step"] == 40 and p["trained_steps"] == 55
    assert p["configured_steps"] is None


def test_corruption_source(tmp_path):
    fly = corruption_source(None, seed=3, seeding="f(seed, c, s)")
    assert fly == {"kind": "on the fly", "seed": 3, "seeding": "f(seed, c, s)"}
    assert describe_source(fly) == "generated on the fly (seed 3; generator per f(seed, c, s))"
    assert corrupted_manifest(tmp_path) is None
    files = corruption_source(tmp_path, seed=3, seeding="x")
    assert files["kind"] == "files" and files["seed"] is None and "seed unknown" in describe_source(files)
    (tmp_path / "manifest.json").write_text(json.dumps({"settings": {"seed": 7, "corruptions": ["a"]}}))
    files = corruption_source(tmp_path, seed=3, seeding="x")
    assert files["seed"] == 7 and describe_source(files) == (f"read from `--corrupted-root {tmp_path}` (written by "
                                                             "`medrobust corrupt` with seed 7)")
