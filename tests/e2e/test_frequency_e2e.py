"""Issue 5 end to end on the embedded digits: baseline -> `medrobust dfm` -> DFM-X and AFA training ->
evaluation, through the CLI."""

import json
from pathlib import Path

import numpy as np

from medrobust.cli import main

ROOT = Path(__file__).resolve().parents[2]
TINY = ["model.name=digitnet", "train.steps=6", "train.batch_size=16", "train.val_every=3", "train.ckpt_every=3",
        "evaluate.max_images=40", "evaluate.batch_size=64", "evaluate.corruptions=[contrast]", "evaluate.severities=[3]"]


def sets(*items):
    return [a for s in items for a in ("--set", s)]


def test_dfm_then_dfmx_and_afa(tmp_path, capsys):
    assert main(["train", "--config", str(ROOT / "configs/classification/digits/baseline.yaml"), "--no-progress",
                 *sets(f"output_dir={tmp_path}", "name=base", *TINY)]) == 0
    dfm_dir = tmp_path / "dfm"
    assert main(["dfm", "--checkpoint", str(tmp_path / "base"), "--out", str(dfm_dir), "--max-images", "60",
                 "--patch", "4", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "TPR kept" in printed
    dfms = np.load(dfm_dir / "dfms.npy")
    assert dfms.dtype == bool and dfms.shape == (10, 32, 32) and dfms[:, 16, 16].all()
    report = json.loads((dfm_dir / "report.json").read_text())
    assert len(report["classes"]) == 10 and (dfm_dir / "figures" / "dfms.png").stat().st_size > 3000
    assert main(["train", "--config", str(ROOT / "configs/classification/digits/baseline.yaml"), "--no-progress",
                 *sets(f"output_dir={tmp_path}", "name=dfmx", *TINY,
                       f"augment.0={{name: dfmx, dfms: {dfm_dir / 'dfms.npy'}, p: 0.3}}")]) == 0
    assert main(["train", "--config", str(ROOT / "configs/classification/digits/afa.yaml"), "--no-progress",
                 *sets(f"output_dir={tmp_path}", "name=afa", *TINY)]) == 0
    out = tmp_path / "report"
    assert main(["evaluate", "--run", f"baseline={tmp_path / 'base'}", "--run", f"dfmx={tmp_path / 'dfmx'}",
                 "--run", f"afa={tmp_path / 'afa'}", "--out", str(out), "--no-progress"]) == 0
    res = json.loads((out / "report.json").read_text())
    assert set(res["models"]) == {"baseline", "dfmx", "afa"}
    for m in res["models"].values():
        assert 0 <= m["clean"]["accuracy"] <= 1
