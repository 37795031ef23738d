"""``medrobust benchmark`` end to end: on the fly == the same images written to a -C folder, resume,
one-line errors, DDP (2 gloo processes) == 1 process, the demo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medrobust.cli import main

CORR = "gaussian_noise,pixelate"
SEVS = "1,3"


def _photos(root: Path) -> Path:
    """A small ImageNet-layout set of real photographs (scikit-image), 3 classes x 2 images."""
    import skimage.data

    photos = {"astronaut": skimage.data.astronaut(), "chelsea": skimage.data.chelsea(), "coffee": skimage.data.coffee()}
    for name, img in photos.items():
        (root / name).mkdir(parents=True)
        h, w = img.shape[:2]
        for j in range(2):
            crop = img[j * h // 4: j * h // 4 + h // 2, j * w // 4: j * w // 4 + w // 2]
            Image.fromarray(crop).resize((90, 76)).save(root / name / f"{name}_{j}.JPEG", quality=95)
    return root


@pytest.fixture(scope="module")
def bench_data(tmp_path_factory):
    import torchvision
    from safetensors.torch import save_file

    tmp = tmp_path_factory.mktemp("bench")
    _photos(tmp / "val")
    torch.manual_seed(0)
    save_file(torchvision.models.resnet18(num_classes=3).state_dict(), str(tmp / "r18.safetensors"))
    return tmp


def _models(d: Path) -> list[str]:
    return ["--model", f"r18=torchvision:resnet18={d / 'r18.safetensors'}", "--model", f"timm:test_vit={d / 'vit.pt'}"]


def _run(args: list[str]) -> int:
    return main(["benchmark", *args, "--resize", "72", "--crop", "64", "--device", "cpu", "--workers", "0",
                 "--no-progress", "--batch-size", "4"])


def _cells(out: Path) -> dict:
    return json.loads((out / "cells.json").read_text())["cells"]


def test_on_the_fly_equals_the_same_images_in_a_c_folder(bench_data, tmp_path, capsys):
    from medrobust.cli.benchmark import run_benchmark_cli
    from medrobust.data.imagenet import open_source
    from medrobust.evaluate.benchmark import corrupt_images

    d = bench_data
    r18 = f"r18=torchvision:resnet18={d / 'r18.safetensors'}"
    out1 = tmp_path / "fly"
    assert _run(["--model", r18, "--data", str(d / "val"), "--out", str(out1), "--corruptions", CORR,
                 "--severities", SEVS]) == 0
    assert "r18" in capsys.readouterr().out
    for f in ("results.csv", "report.md", "report.json", "figures/accuracy_vs_severity.png",
              "figures/clean_vs_corrupted.png"):
        assert (out1 / f).is_file(), f

    # the same corrupted images written as lossless PNG in the ImageNet-C layout
    src = open_source(d / "val", resize=72, crop=64)
    items = [src.clean[i] for i in range(len(src.clean))]
    x = torch.stack([i["image"] for i in items]).float() / 255
    croot = tmp_path / "c"
    for c in CORR.split(","):
        for s in (1, 3):
            y = corrupt_images(x, [i["key"] for i in items], c, s, seed=0, table="cifar")
            for it, img in zip(items, y):
                p = croot / c / str(s) / (Path(it["key"]).with_suffix(".png"))
                p.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray((img * 255).round().byte().permute(1, 2, 0).numpy()).save(p)
    out2 = tmp_path / "fromdisk"
    kw = dict(corruptions=CORR, severities=SEVS, resize=72, crop=64, device="cpu", workers=0, progress=False, batch_size=4)
    run_benchmark_cli([r18], str(croot), str(out2), clean=str(d / "val"), **kw)
    assert _cells(out1) == _cells(out2)  # every count, the ECE histograms (confidence sums) included
    rows = (out1 / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 1 + len(CORR.split(","))
    assert rows == (out2 / "results.csv").read_text().splitlines()

    # kill-and-resume gives the same CSV
    out3 = tmp_path / "resumed"
    run_benchmark_cli([r18], str(d / "val"), str(out3), stop_after=2, **kw)
    assert len(_cells(out3)) == 2 and not (out3 / "results.csv").exists()
    run_benchmark_cli([r18], str(d / "val"), str(out3), **kw)
    assert (out3 / "results.csv").read_text() == (out1 / "results.csv").read_text()


@pytest.mark.slow
def test_several_models_own_normalisation_and_baseline(bench_data, tmp_path, capsys):
    import timm

    d = bench_data
    torch.save(timm.create_model("test_vit", pretrained=False, num_classes=3).state_dict(), d / "vit.pt")
    out = tmp_path / "two"
    assert _run([*_models(d), "--data", str(d / "val"), "--out", str(out), "--corruptions", CORR,
                 "--severities", SEVS, "--baseline", "r18"]) == 0
    assert "rel. robustness" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["r18"]["relative_robustness"] == 0
    assert report["summary"]["timm:test_vit"]["mce_vs_baseline"] is not None
    info = report["meta"]["model_info"]["timm:test_vit"]
    assert info["input_size"] == 160 and info["mean"] == [0.5, 0.5, 0.5]  # timm's pretrained_cfg
    assert report["meta"]["model_info"]["r18"]["mean"] == [0.485, 0.456, 0.406]
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * (1 + len(CORR.split(",")))


def test_bad_inputs_fail_in_one_line_naming_the_path(bench_data, tmp_path, capsys):
    d = bench_data
    val = str(d / "val")

    def err(args):
        assert _run(args) == 2
        msg = capsys.readouterr().err.strip()
        assert "\n" not in msg and "Traceback" not in msg, msg
        return msg

    assert "unknown model spec" in err(["--model", "foo:bar=x", "--data", val, "--out", str(tmp_path / "o")])
    assert "unknown torchvision architecture 'nonet'" in err(["--model", "torchvision:nonet=x.pt", "--data", val,
                                                               "--out", str(tmp_path / "o")])
    missing = tmp_path / "missing.safetensors"
    assert str(missing) in err(["--model", f"torchvision:resnet18={missing}", "--data", val, "--out", str(tmp_path / "o")])
    assert "no weights file" in err(["--model", "timm:resnet18", "--data", val, "--out", str(tmp_path / "o")])
    wrong = tmp_path / "wrong.pt"
    torch.save({"fc.weight": torch.zeros(3, 3)}, wrong)
    assert str(wrong) in err(["--model", f"torchvision:resnet18={wrong}", "--data", val, "--out", str(tmp_path / "o")])
    # a -C folder with a missing severity, a class folder mismatch against the clean set
    croot = tmp_path / "c"
    for s in (1, 2):
        for c in ("astronaut", "chelsea", "coffee"):
            (croot / "fog" / str(s) / c).mkdir(parents=True)
            Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(croot / "fog" / str(s) / c / "a.png")
    model = ["--model", f"torchvision:resnet18={d / 'r18.safetensors'}"]
    msg = err([*model, "--data", str(croot), "--out", str(tmp_path / "o"), "--severities", "1-3"])
    assert str(croot / "fog" / "3") in msg
    (croot / "fog" / "2" / "dog").mkdir()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(croot / "fog" / "2" / "dog" / "a.png")
    msg = err([*model, "--data", str(croot), "--clean", val, "--out", str(tmp_path / "o"), "--severities", "1-2"])
    assert str(croot / "fog" / "2") in msg and "dog" in msg
    assert "--corruptions" in err([*model, "--data", val, "--out", str(tmp_path / "o"), "--corruptions", "nope"])


# ----------------------------------------------------------------------------------------------- DDP
def _ddp_worker(rank: int, world: int, init: str, data: str, out: str, result: str) -> None:
    import torch.distributed as dist
    import torchvision

    from medrobust.data.imagenet import open_source
    from medrobust.evaluate.benchmark import BenchModel, run_benchmark

    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.manual_seed(0)
    model = BenchModel("r18", torchvision.models.resnet18(num_classes=3))
    src = open_source(data, resize=40, crop=32)
    done = run_benchmark([model], src, corruptions=["gaussian_noise", "glass_blur"], severities=[2], out_dir=out,
                         settings={}, batch_size=2, table="cifar", progress=False)
    if rank == 0:
        Path(result).write_text(json.dumps(done))
    if world > 1:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_gloo_processes_equal_one(bench_data, tmp_path):
    import torch.multiprocessing as mp

    val = str(bench_data / "val")
    _ddp_worker(0, 1, "", val, str(tmp_path / "one"), str(tmp_path / "one.json"))
    mp.spawn(_ddp_worker, args=(2, f"file://{tmp_path / 'rdzv'}", val, str(tmp_path / "two"), str(tmp_path / "two.json")),
             nprocs=2, join=True)
    one, two = json.loads((tmp_path / "one.json").read_text()), json.loads((tmp_path / "two.json").read_text())
    assert one == two and one["r18|clean|0"][0] == 6


def test_model_specs_parse():
    from medrobust.tasks.benchmark import parse_model_spec

    assert parse_model_spec("timm:resnet50=/w/r50.safetensors") == ("timm:resnet50", "timm", "resnet50=/w/r50.safetensors")
    assert parse_model_spec("r50=torchvision:resnet50=/w.pt") == ("r50", "torchvision", "resnet50=/w.pt")
    assert parse_model_spec("runs/digits_erm/") == ("digits_erm", "run", "runs/digits_erm/")
    assert parse_model_spec("erm=runs/x") == ("erm", "run", "runs/x")
    with pytest.raises(ValueError, match="unknown model spec"):
        parse_model_spec("hf:foo")


def test_demo_flags_reach_the_full_protocol_and_check_steps(tmp_path, capsys):
    from medrobust.cli import build_parser
    from medrobust.cli.benchmark import DEMO_MAX_IMAGES, DEMO_SEVERITIES, DEMO_STEPS

    args = build_parser().parse_args(["benchmark", "--demo"])
    assert (args.steps, args.severities, args.max_images) == (DEMO_STEPS, None, None)  # demo defaults apply
    assert (DEMO_STEPS, DEMO_SEVERITIES, DEMO_MAX_IMAGES) == (50, "1,3,5", 120)
    full = build_parser().parse_args(["benchmark", "--demo", "--steps", "100", "--severities", "1-5", "--max-images", "0"])
    assert (full.steps, full.severities, full.max_images) == (100, "1-5", 0)
    assert _run(["--demo", "--steps", "0", "--out", str(tmp_path / "d")]) == 2
    msg = capsys.readouterr().err.strip()
    assert "--steps" in msg and "\n" not in msg and not (tmp_path / "d" / "data").exists()


@pytest.mark.slow
def test_demo_runs_and_writes_both_reports(tmp_path):
    from medrobust.cli.benchmark import run_demo

    res = run_demo(tmp_path, device="cpu", progress=False, steps=20)
    mtime = (tmp_path / "runs" / "digits_erm" / "best.pt").stat().st_mtime_ns
    assert set(res) == {"digits", "photos"}
    digits = res["digits"]["summary"]
    assert set(digits) == {"erm", "randconv"} and digits["erm"]["relative_robustness"] == 0
    assert len(digits["erm"]["corruptions"]) == 15
    assert {int(s) for s in digits["erm"]["corruptions"]["fog"]} == {1, 3, 5}  # the demo's digits severities
    assert digits["erm"]["clean"]["n"] == 120  # DEMO_MAX_IMAGES of the 240 test images
    photos = res["photos"]["summary"]["photos"]
    assert "mce" in photos and photos["clean"]["n"] == 20  # ImageNet protocol: AlexNet-normalised
    assert {int(s) for s in photos["corruptions"]["fog"]} == {1, 2, 3, 4, 5}
    csv = (tmp_path / "digits" / "results.csv").read_text()
    run_demo(tmp_path, device="cpu", progress=False, steps=20)  # identical configs: models and cells reused
    assert (tmp_path / "digits" / "results.csv").read_text() == csv
    assert (tmp_path / "runs" / "digits_erm" / "best.pt").stat().st_mtime_ns == mtime
    for name in ("digits", "photos"):
        assert (tmp_path / name / "results.csv").is_file() and (tmp_path / name / "report.md").is_file()
