"""Root pytest configuration: it reaches the doctests of src/ticketlab (collected with --doctest-modules),
which tests/conftest.py does not."""

import importlib.util

import pytest
import torch

# --doctest-modules imports every module of src/ticketlab. The numba engines need the optional 'fast'
# extra: where numba is missing they cannot import, so they are left out of the doctest collection
# (they hold no doctests; tests/ covers them and skips without numba).
collect_ignore = []
if importlib.util.find_spec("numba") is None:
    collect_ignore += ["src/ticketlab/engine/fast.py", "src/ticketlab/engine/shared.py"]


@pytest.fixture(autouse=True)
def _doctests_on_one_thread(request):
    """Doctests run on one torch thread: their tensors are tiny, and on a busy small CPU extra intra-op
    threads only add synchronisation (the engine.solve example: 0.05 s on one thread, 0.7-2 s on two)."""
    if not isinstance(request.node, pytest.DoctestItem):
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
