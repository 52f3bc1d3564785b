"""Segmentation tests train tiny networks: on one thread, where a 4-scene U-Net step takes
about 10 ms of CPU, against 10-20 times that on two threads of a busy machine."""

import pytest


@pytest.fixture(autouse=True)
def one_torch_thread():
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
