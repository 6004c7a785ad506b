"""Shared test fixtures."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """One torch thread for the test: these tensors are tiny, and on a busy small CPU extra intra-op
    threads only add synchronisation (measured 10-30x slower with two threads under load)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
