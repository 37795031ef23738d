import pytest
import torch

from medrobust.augment import FourierBasisNoise
from medrobust.config import ConfigError
from medrobust.tasks import load_config
from medrobust.train.afa import AFAAdapter, DualBatchNorm, adversarial_strengths, aux_bn, convert_dual_bn


def small_bn_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4))


def test_dual_bn_routes_statistics():
    net = convert_dual_bn(small_bn_net())
    dual = [m for m in net.modules() if isinstance(m, DualBatchNorm)]
    assert len(dual) == 1
    x = torch.rand(8, 3, 8, 8)
    net.train()
    net(x)
    main_mean = dual[0].main.running_mean.clone()
    aux_mean = dual[0].aux.running_mean.clone()
    with aux_bn(net):
        net(x + 5)
    assert torch.equal(dual[0].main.running_mean, main_mean), "aux pass must not touch main statistics"
    assert not torch.equal(dual[0].aux.running_mean, aux_mean)
    assert dual[0].route == "main"
    # state dict round trip keeps both
    keys = net.state_dict().keys()
    assert any("main.running_mean" in k for k in keys) and any("aux.running_mean" in k for k in keys)


def test_adversarial_step_increases_the_loss():
    net = small_bn_net().eval()
    x = torch.rand(16, 3, 16, 16)
    y = torch.randint(0, 4, (16,))
    core = FourierBasisNoise(mean_strength=2.0)
    params = core.sample_params(x, torch.Generator().manual_seed(0))
    crit = torch.nn.functional.cross_entropy
    before = float(crit(net(core.apply(x, params)), y).detach())
    adv = adversarial_strengths(net, crit, x, y, core, params, steps=3, step_size=2.0)
    after = float(crit(net(core.apply(x, adv)), y).detach())
    assert after > before
    assert (adv["strength"] >= 0).all()
    assert adversarial_strengths(net, crit, x, y, core, params, steps=0) is params


class TinyTask:
    image_key, label_key = "image", "label"

    def __init__(self):
        self.criterion = torch.nn.functional.cross_entropy
        self.augment = None


@pytest.mark.parametrize("mode", ["dual", "jsd"])
def test_afa_adapter_step(mode):
    net = convert_dual_bn(small_bn_net()).train()
    adapter = AFAAdapter(TinyTask(), FourierBasisNoise(), mode=mode, steps=1)
    batch = {"image": torch.rand(8, 3, 16, 16), "label": torch.randint(0, 4, (8,))}
    loss, logs = adapter.step(net, batch, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and "afa_strength" in logs
    dual = next(m for m in net.modules() if isinstance(m, DualBatchNorm))
    if mode == "dual":
        assert dual.aux.weight.grad is not None and dual.main.weight.grad is not None
    with pytest.raises(ValueError, match="afa.mode"):
        AFAAdapter(TinyTask(), mode="other")


def test_afa_config_validation():
    cfg = load_config(None, ["afa.steps=2"])
    assert cfg.afa.steps == 2 and cfg.afa.mode == "dual"
    with pytest.raises(ConfigError, match="either 'consistency' or 'afa'"):
        load_config(None, ["consistency.weight=1", "afa.mode=jsd"])


def test_cardiac_training_with_afa_and_dual_bn(tmp_path):
    from medrobust.tasks.cardiac import train_cardiac
    from medrobust.tasks.cardiac import load_run

    cfg = load_config(None, [f"output_dir={tmp_path}", "name=afa", "data.synthetic.n_train=4", "data.synthetic.n_test=1",
                             "data.synthetic.size=[48, 48]", "data.synthetic.n_slices=2", "data.spatial_size=[32, 32]",
                             "model.name=smp_unet", "train.batch_size=4", "train.steps=2", "afa.steps=1"])
    res = train_cardiac(cfg, progress=False)
    assert res.step == 2
    _, model = load_run(tmp_path / "afa", device=torch.device("cpu"))
    assert any(isinstance(m, DualBatchNorm) for m in model.modules())
