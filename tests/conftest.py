import os

import pytest
import torch

# keep the suite predictable on the 2-core CI machine
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


def cuda_available() -> bool:
    return torch.cuda.is_available()


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _write_domains(root, n=8):
    """A tiny ROOT/<domain>/<class>/<i>.png set (domains a and b, classes c0 and c1), 32x32 RGB."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for d, domain in enumerate(("a", "b")):
        for c, cls in enumerate(("c0", "c1")):
            (root / domain / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8) + np.uint8(40 * d)
                img[:, c * 16 : c * 16 + 16] = 220
                Image.fromarray(img).save(root / domain / cls / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def write_domains():
    """``write_domains(root, n=8)`` writes a two-domain, two-class PNG folder set and returns ``root``."""
    return _write_domains


def _refuse_forward_passes(mp, module):
    """Patch ``module.load_run`` (with the MonkeyPatch ``mp``) so every model it loads raises on its
    first forward pass: an evaluation that checks its inputs first never gets there."""
    real = module.load_run

    def refuse(*args):
        raise AssertionError("a forward pass ran before the inputs were checked")

    def load_run(path, **kw):
        cfg, model = real(path, **kw)
        model.register_forward_pre_hook(refuse)
        return cfg, model

    mp.setattr(module, "load_run", load_run)
    return module


@pytest.fixture(scope="session")
def refuse_forward_passes():
    """``refuse_forward_passes(monkeypatch, module)``: see :func:`_refuse_forward_passes`."""
    return _refuse_forward_passes
