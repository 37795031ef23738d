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
