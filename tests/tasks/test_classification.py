"""Classification task: config validation, classifiers, the adapter's views and losses, training on
tiny CIFAR and PACS-layout fixtures with exact resume, and evaluation with per-domain accuracy and
CIFAR-10-C files."""

import json

import numpy as np
import pytest
import torch

import medrobust.augment as A
from medrobust.tasks.classification import (
    ClassificationAdapter,
    ClassificationConfig,
    prepare_data,
    train_classification,
)
from medrobust.config import ConfigError, ConsistencyConfig
from medrobust.tasks import TASKS, load_config
from medrobust.models.classifiers import DigitNet, create_classifier


def cfg_of(*overrides, task="digits"):
    return load_config(None, ["task=classification", f"data.dataset={task}", *overrides])


# -------------------------------------------------------------------------------------------- config
def test_task_registered_and_strict_config(capsys):
    assert TASKS["classification"].config is ClassificationConfig
    for dataset in ("cifar10", "cifar100", "digits", "pacs"):  # earlier task names read as data.dataset
        cfg = load_config(None, [f"task={dataset}", "data.root=/x", "data.target_domains=[sketch]"])
        assert isinstance(cfg, ClassificationConfig) and cfg.task == "classification" and cfg.data.dataset == dataset
        assert f"'task: {dataset}' is now 'task: classification', data.dataset: {dataset}" in capsys.readouterr().err
    cfg = cfg_of("model.name=digitnet", "augment.0={name: augmix, width: 2}")
    assert cfg.model.name == "digitnet" and cfg.augment[0]["width"] == 2
    with pytest.raises(ConfigError, match=r"unknown key 'train\.stepz'.*allowed keys: steps"):
        cfg_of("train.stepz=3")
    with pytest.raises(ConfigError, match=r"data\.image_sise"):
        cfg_of("data.image_sise=32")
    with pytest.raises(ConfigError, match="unknown classifier 'resnet7'"):
        cfg_of("model.name=resnet7")
    with pytest.raises(ConfigError, match=r"augment\[0\].*unknown key"):
        cfg_of("augment.0={name: augmix, widht: 2}")
    with pytest.raises(ConfigError, match="needs at least one augmentation core"):
        cfg_of("consistency={name: jsd}")
    with pytest.raises(ConfigError, match="needs a dataset root"):
        cfg_of(task="cifar10")
    with pytest.raises(ConfigError, match="target_domains"):
        cfg_of("data.root=/x", task="pacs")
    with pytest.raises(ConfigError, match="severities"):
        cfg_of("evaluate.severities=[0, 2]")


def test_recipes_load(tmp_path):
    from pathlib import Path

    import numpy as np

    from medrobust.augment.dfm import example_dfms

    repo = Path(__file__).resolve().parents[2]
    dfms = tmp_path / "dfms.npy"
    np.save(dfms, example_dfms(10, 32).numpy())
    recipes = sorted((repo / "configs" / "classification").glob("*/*.yaml"))
    assert len(recipes) >= 10
    for path in recipes:
        if True:
            # DFM-X recipes point at maps written by `medrobust dfm`; stand in a valid file
            sets = [f"augment.0.dfms={dfms}"] if "dfmx" in path.name else []
            if path.parent.name != "digits":  # CIFAR/PACS recipes: data.root: null, given with --set
                sets.append(f"data.root={tmp_path}")
            cfg = load_config(path, sets)
            assert isinstance(cfg, ClassificationConfig), path


# -------------------------------------------------------------------------------------------- models
def test_classifiers_shapes_stems_and_weights(tmp_path):
    x = torch.rand(2, 3, 32, 32)
    r = create_classifier("resnet18", 10)  # 32x32 default: CIFAR stem
    assert r.net.conv1.kernel_size == (3, 3) and r.net.conv1.stride == (1, 1)
    assert isinstance(r.net.maxpool, torch.nn.Identity) and r(x).shape == (2, 10)
    big = create_classifier("resnet18", 7, image_size=224)
    assert big.net.conv1.kernel_size == (7, 7) and isinstance(big.net.maxpool, torch.nn.MaxPool2d)
    d = create_classifier("digitnet", 10)
    assert isinstance(d.net, DigitNet) and d.net.classifier[0].in_features == 128 * 5 * 5 and d(x).shape == (2, 10)
    convs = [m for m in d.net.features if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.padding) for c in convs] == [(64, (5, 5), (0, 0)), (128, (5, 5), (0, 0))]
    assert create_classifier("digitnet", 10, image_size=28)(torch.rand(1, 3, 28, 28)).shape == (1, 10)
    t = create_classifier("timm:resnet10t", 5, in_channels=1)
    assert t(torch.rand(2, 1, 32, 32)).shape == (2, 5)
    with pytest.raises(ValueError, match="unknown classifier"):
        create_classifier("vgg", 10)
    with pytest.raises(ValueError, match="unknown timm model"):
        create_classifier("timm:not_a_model_xyz", 10)
    # a plain backbone state_dict (torchvision keys) and a medrobust checkpoint both load
    torch.save(d.net.state_dict(), tmp_path / "backbone.pt")
    torch.save({"model": d.state_dict()}, tmp_path / "ckpt.pt")
    for f in ("backbone.pt", "ckpt.pt"):
        e = create_classifier("digitnet", 10, weights=tmp_path / f)
        torch.testing.assert_close(e(x), d(x))
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        create_classifier("digitnet", 10, weights=tmp_path / "nope.pt")
    n = create_classifier("digitnet", 10, mean="cifar10")
    n.net.load_state_dict(d.net.state_dict())
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
    torch.testing.assert_close(n(x), d((x - mean) / std))
    with pytest.raises(ValueError, match="unknown normalisation"):
        create_classifier("digitnet", 10, mean="imagenette")


# ------------------------------------------------------------------------------------------- adapter
def test_adapter_views_and_losses():
    model = create_classifier("digitnet", 10)
    batch = {"image": torch.rand(4, 3, 32, 32), "label": torch.tensor([0, 1, 2, 3])}
    g = torch.Generator().manual_seed(0)
    plain = ClassificationAdapter(None)
    assert plain.views(batch["image"], g)[0] is batch["image"]
    loss, logs = plain.step(model, batch, g)
    assert loss.ndim == 0 and set(logs) == {"task_loss", "train_acc"}
    rc = A.RandConv()
    cons = ClassificationAdapter(rc, consistency=ConsistencyConfig(weight=5.0, views=3))
    views = cons.views(batch["image"], g)
    assert len(views) == 3 and not torch.equal(views[0], views[1])
    loss, logs = cons.step(model, batch, g)
    assert logs["consistency_loss"] > 0 and float(loss.detach()) == pytest.approx(logs["task_loss"] + logs["consistency_loss"], rel=1e-5)
    loss.backward()
    am = ClassificationAdapter(A.AugMix(), consistency=ConsistencyConfig(name="jsd", weight=12.0, views=3, clean_first_view=True))
    views = am.views(batch["image"], g)
    assert views[0] is batch["image"] and len(views) == 3
    with pytest.raises(ValueError, match="needs at least one augmentation"):
        ClassificationAdapter(None, consistency=ConsistencyConfig())


# --------------------------------------------------------------------------------- tiny training runs
def _write_cifar(root, n_train=12, n_test=20):
    import pickle

    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def batch(n):
        labels = [i % 10 for i in range(n)]
        img = rng.integers(0, 60, (n, 3, 32, 32), dtype=np.uint8)
        for i, y in enumerate(labels):  # class = which 3x3 block is bright: learnable in a few steps
            img[i, :, (y // 3) * 10 : (y // 3) * 10 + 10, (y % 3) * 10 : (y % 3) * 10 + 10] = 230
        return {b"data": img.reshape(n, 3072), b"labels": labels}

    for k in range(1, 6):
        with open(base / f"data_batch_{k}", "wb") as f:
            pickle.dump(batch(n_train), f, protocol=2)
    with open(base / "test_batch", "wb") as f:
        pickle.dump(batch(n_test), f, protocol=2)
    return root


CIFAR_TINY = ["model.name=digitnet", "train.steps=4", "train.batch_size=8", "train.val_every=2", "train.ckpt_every=2",
              "train.lr=0.001", "data.val_fraction=0.2", "evaluate.batch_size=16"]


def test_cifar_training_resumes_exactly(tmp_path):
    root = _write_cifar(tmp_path / "c10")
    common = [f"data.root={root}", f"output_dir={tmp_path}", *CIFAR_TINY,
              "augment.0={name: randconv, mixing: true}", "consistency={name: kl_to_mean, weight: 10, views: 2}"]
    full = train_classification(cfg_of("name=full", *common, task="cifar10"), progress=False)
    assert full.step == 4 and 0 <= full.best_metric <= 1
    part = cfg_of("name=part", *common, task="cifar10")
    train_classification(part, progress=False, stop_after=2)
    resumed = train_classification(part, resume=True, progress=False)
    assert resumed.step == 4
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    rows = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert any("val_acc" in r for r in rows) and any("consistency_loss" in r for r in rows)
    data = prepare_data(part)
    assert len(data.train) == 48 and len(data.val) == 12 and len(data.test) == 20 and data.classes[0] == "0"


def test_pacs_layout_train_and_evaluate_with_cifar_c_files(tmp_path):
    from PIL import Image

    from medrobust.tasks.classification.evaluate import evaluate_classification
    from medrobust.tasks.classification.report import comparison_table

    root = tmp_path / "PACS"
    rng = np.random.default_rng(0)
    for d, domain in enumerate(("art_painting", "cartoon", "photo", "sketch")):
        for c, cls in enumerate(("dog", "guitar", "house")):
            for i in range(6):
                img = rng.integers(0, 40, (40, 40, 3), dtype=np.uint8) + np.uint8(30 * d)
                img[:, c * 13 : c * 13 + 13] = 220
                (root / domain / cls).mkdir(parents=True, exist_ok=True)
                Image.fromarray(img).save(root / domain / cls / f"{i}.png")
    over = [f"data.root={root}", "data.target_domains=[sketch, cartoon]", f"output_dir={tmp_path}", "name=pacs",
            "model.name=digitnet", "train.steps=4", "train.batch_size=8", "train.val_every=2",
            "data.test_fraction=0.25", "data.val_fraction=0.2", "evaluate.corruptions=[]"]
    cfg = cfg_of(*over, task="pacs")
    train_classification(cfg, progress=False)
    data = prepare_data(cfg)
    assert set(data.domains) == {"sketch", "cartoon"} and len(data.domains["sketch"]) == 18
    assert {r.domain for r in data.train.records} == {"art_painting", "photo"}
    res = evaluate_classification({"m": tmp_path / "pacs"}, out_dir=tmp_path / "rep", progress=False)
    m = res["models"]["m"]
    assert set(m["domains"]) == {"sketch", "cartoon"} and m["domains"]["sketch"]["n"] == 18
    assert 0 <= m["summary"]["mean_domain_accuracy"] <= 1 and "Worst domain" in comparison_table(res)
    assert (tmp_path / "rep" / "figures" / "domain_bars.png").is_file()

    # CIFAR-10-C-style files (32x32) are read from --corrupted-root, blocks per severity
    c_root = tmp_path / "C"
    c_root.mkdir()
    imgs = np.stack([data.test.image_uint8(i) for i in range(len(data.test))])
    n = len(imgs)
    np.save(c_root / "labels.npy", np.tile(data.test.labels.astype(np.uint8), 5))
    np.save(c_root / "fog.npy", np.concatenate([imgs] * 5))
    res = evaluate_classification({"m": tmp_path / "pacs"}, out_dir=tmp_path / "rep2", corrupted_root=c_root,
                                  overrides=["evaluate.corruptions=[fog]", "evaluate.severities=[1, 4]"], progress=False)
    m = res["models"]["m"]
    assert set(m["corruptions"]["fog"]) == {"1", "4"} and m["corruptions"]["fog"]["4"]["n"] == n
    # identical images in the file: identical accuracy to clean
    assert m["corruptions"]["fog"]["1"]["accuracy"] == pytest.approx(m["clean"]["accuracy"])
    assert res["protocol"]["corruption_source"].startswith("files under")
    with pytest.raises(FileNotFoundError, match="snow"):
        evaluate_classification({"m": tmp_path / "pacs"}, out_dir=tmp_path / "rep3", corrupted_root=c_root,
                                overrides=["evaluate.corruptions=[snow]"], progress=False)


def test_summary_metrics_imagenet_normalisation():
    from medrobust.tasks.classification.evaluate import ALEXNET_CLEAN_ERROR, ALEXNET_ERRORS, summarise

    # a model exactly as bad as AlexNet everywhere has CE = relative CE = 1
    entry = {"clean": {"accuracy": 1 - ALEXNET_CLEAN_ERROR},
             "corruptions": {c: {str(s): {"accuracy": 1 - e[s - 1]} for s in range(1, 6)} for c, e in ALEXNET_ERRORS.items()}}
    s = summarise(entry, "imagenet")
    assert s["mCE"] == pytest.approx(1.0) and s["relative_mCE"] == pytest.approx(1.0) and s["mCE_corruptions"] == 15
    assert ALEXNET_ERRORS["gaussian_noise"] and np.mean(ALEXNET_ERRORS["gaussian_noise"]) == pytest.approx(0.886428)
    half = {"clean": {"accuracy": 0.9}, "corruptions": {"fog": {"1": {"accuracy": 0.8}, "2": {"accuracy": 0.6}}}}
    s = summarise(half, "imagenet")
    assert s["ce"]["fog"] == pytest.approx((0.2 + 0.4) / (0.67474 + 0.7605))
    assert s["relative_ce"]["fog"] == pytest.approx((0.1 + 0.3) / (0.67474 + 0.7605 - 2 * ALEXNET_CLEAN_ERROR))
    s = summarise(half, "none")
    assert "mCE" not in s and s["mean_corruption_error"] == pytest.approx(0.3)
    assert s["relative_mean_corruption_error"] == pytest.approx(0.2)
