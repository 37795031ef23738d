"""Train a tiny baseline, finetune it with the shipped FMA+CA recipe (train.init_from + objective) and
evaluate both; the finetune's provenance names the source run."""

import json

import pytest

from medrobust.tasks import load_config
from medrobust.tasks.classification import train_classification
from medrobust.tasks.classification.evaluate import evaluate_classification

DATA = ["data.dataset=pacs", "data.target_domains=[b]", "data.source_domains=[a]", "data.test_fraction=0.25", "data.val_fraction=0.2",
        "train.batch_size=8", "train.val_every=2", "train.ckpt_every=2", "evaluate.max_images=16",
        "evaluate.corruptions=[gaussian_noise, fog]", "evaluate.severities=[3]", "evaluate.batch_size=32"]


@pytest.mark.slow  # ~80 s on the shared 2-core machine (training, evaluation, figures)
def test_finetune_fma_ca_from_a_baseline_and_evaluate(tmp_path, write_domains):
    root = write_domains(tmp_path / "data_root")
    common = [*DATA, f"data.root={root}", f"output_dir={tmp_path / 'runs'}"]
    base = load_config("classification/digits/baseline", [*common, "train.steps=4", "name=base"])
    train_classification(base, progress=False)
    ft = load_config("configs/digits/fma_ca.yaml",  # an earlier release's folder name still finds the recipe
                     [*common, "train.steps=4", "name=fma", f"train.init_from={tmp_path / 'runs' / 'base'}"])
    assert ft.objective.name == "fma" and ft.objective.distortion["name"] == "combined"
    result = train_classification(ft, progress=False)
    assert result.step == 4
    logged = [json.loads(line) for line in (tmp_path / "runs" / "fma" / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("objective_loss", 0) > 0 for r in logged)
    prov = json.loads((tmp_path / "runs" / "fma" / "init_from.json").read_text())
    assert prov["source"]["name"] == "base" and prov["checkpoint"].endswith("best.pt")
    res = evaluate_classification({"baseline": tmp_path / "runs" / "base", "fma_ca": tmp_path / "runs" / "fma"},
                                  out_dir=tmp_path / "report", progress=False)
    for name in ("baseline", "fma_ca"):
        m = res["models"][name]
        assert 0 <= m["clean"]["accuracy"] <= 1 and set(m["corruptions"]) == {"gaussian_noise", "fog"}
    assert (tmp_path / "report" / "report.md").is_file()


def test_cardiac_ca_recipes_finetune_the_baseline_on_one_mixture():
    # cardiac/{da_ca,st_ca,fma_ca}: the baseline's model, one CA mixture of 4 of the 8 MRI artifacts
    # (the other 4 held out for evaluation); DA augments, ST/FMA distort in the objective
    from medrobust.augment.corruptions.mri import NAMES

    base = load_config("cardiac/baseline")
    mixtures = {}
    for arm in ("da_ca", "st_ca", "fma_ca"):
        cfg = load_config(f"cardiac/{arm}")
        assert cfg.train.init_from == "runs/acdc_baseline" == f"runs/{base.name}"
        assert cfg.model == base.model and cfg.data == base.data
        spec = cfg.augment[0] if arm == "da_ca" else cfg.objective.distortion
        assert spec["name"] == "combined" and (arm == "da_ca") == (cfg.objective is None)
        mixtures[arm] = sorted(spec["members"])
    assert mixtures["da_ca"] == mixtures["st_ca"] == mixtures["fma_ca"]
    members = {m.removeprefix("mri_") for m in mixtures["da_ca"]}
    assert members < set(NAMES) and len(members) == 4
