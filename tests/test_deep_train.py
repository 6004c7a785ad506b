"""Models and masked training: shapes, seeded init, pruned weights and their optimizer state stay zero."""

import math

import pytest
import torch

from ticketlab.config import ConfigError
from ticketlab.deep.data import Dataset
from ticketlab.deep.models import build_model, init_model, output_layer, prunable
from ticketlab.deep.train import ORDER, TrainSpec, train
from ticketlab.pruning import prune, random_scores
from ticketlab.seeding import substream


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name,shape,n_prunable", [
    ("lenet300", (1, 28, 28), 3), ("lenet5", (1, 28, 28), 5), ("lenet5", (1, 8, 8), 5),
    ("resnet20", (3, 32, 32), 22), pytest.param("resnet50", (3, 32, 32), 54, marks=pytest.mark.slow)])
def test_model_shapes(name, shape, n_prunable):
    m = build_model(name, in_shape=shape)
    m.eval()
    assert m(torch.zeros(2, *shape)).shape == (2, 10)
    names = list(prunable(m))
    # resnet20: 19 convs + 2 projection shortcuts + fc; resnet50: 49 convs + 4 projections + fc
    assert len(names) == n_prunable and output_layer(m) == names[-1]
    assert prunable(m)[names[-1]].shape[0] == 10


def test_lenet5_classic_sizes_and_bad_input():
    m = build_model("lenet5")
    assert prunable(m)["classifier.0.weight"].shape == (120, 400)  # 16 x 5 x 5 features on 28x28
    with pytest.raises(ConfigError, match="lenet5"):
        build_model("lenet5", in_shape=(64,))
    with pytest.raises(ConfigError, match="model: must be one of"):
        build_model("vgg")


def test_init_seeded_and_global_rng_untouched():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a, b, c = init_model("lenet300", 5), init_model("lenet300", 5), init_model("lenet300", 6)
    assert torch.equal(torch.rand(3), before)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.net[1].weight, c.net[1].weight)


def _toy(n=96, d=(1, 8, 8), classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, *d, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return Dataset("toy", X, y, X[:32], y[:32], "classify", d, classes)


def _half_masks(model, seed=0):
    w = prunable(model)
    return prune(random_scores(w, seed), {k: torch.ones_like(v) for k, v in w.items()}, 0.5)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_pruned_weights_and_optimizer_state_stay_zero(opt):
    data = _toy()
    model = init_model("lenet5", 0, in_shape=(1, 8, 8))
    masks = _half_masks(model)
    spec = TrainSpec(optimizer=opt, lr=0.05 if opt == "sgd" else 1e-2, weight_decay=1e-3, epochs=2, batch_size=16)
    res = train(model, masks, data, spec, seed=0)
    params = prunable(model)
    for k, m in masks.items():
        off = m == 0
        assert bool((params[k][off] == 0).all()), k
        state = res.optimizer.state[params[k]]
        bufs = [state["momentum_buffer"]] if opt == "sgd" else [state["exp_avg"], state["exp_avg_sq"]]
        for buf in bufs:
            assert bool((buf[off] == 0).all()), f"{k}: optimizer state of pruned weights must stay zero"
            assert bool((buf[~off] != 0).any())
        assert bool((params[k][~off] != 0).all())
    assert len(res.history) == 2 and res.steps == 2 * math.ceil(96 / 16)


def test_rewind_state_equals_independent_k_steps():
    """theta_k from train() equals k plain SGD steps on the same batches (independent loop)."""
    data = _toy(n=80)
    spec = TrainSpec(lr=0.05, momentum=0.9, batch_size=16, epochs=2)
    k = 7  # crosses the epoch boundary (5 steps per epoch)
    model = init_model("lenet300", 1, in_shape=(1, 8, 8))
    ref = init_model("lenet300", 1, in_shape=(1, 8, 8))
    res = train(model, {}, data, spec, seed=3, rewind_step=k)
    opt = torch.optim.SGD(ref.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(substream(3, ORDER))
    step = 0
    while step < k:
        perm = torch.randperm(80, generator=g)
        for i in range(5):
            if step == k:
                break
            idx = perm[i * 16:(i + 1) * 16]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(ref(data.x_train[idx]), data.y_train[idx]).backward()
            opt.step()
            step += 1
    for name, v in ref.state_dict().items():
        assert torch.equal(res.rewind_state.model[name], v), name


def test_regression_error_is_relative_rmse():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, 5, generator=g)
    y = X[:, :1] * 2.0
    data = Dataset("lin", X, y, X, y, "regress", (5,), 1)
    model = build_model("mlp", in_shape=(5,), num_classes=1, widths=(4,))
    res = train(model, {}, data, TrainSpec(epochs=1, lr=1e-3, batch_size=64, momentum=0.0), seed=0)
    with torch.no_grad():
        expect = float(((model(X) - y).norm() / y.norm()))
    assert res.test_error == pytest.approx(expect, rel=1e-5)


def test_schedules():
    from ticketlab.deep.train import lr_at
    cos = TrainSpec(lr=1.0, schedule="cosine", epochs=2)
    assert lr_at(cos, 0, 10) == 1.0 and lr_at(cos, 10, 10) == pytest.approx(0.5) and lr_at(cos, 20, 10) == 0
    st = TrainSpec(lr=1.0, schedule="step", milestones=(1, 2), gamma=0.1, epochs=3, warmup_steps=4)
    assert lr_at(st, 0, 10) == pytest.approx(0.25) and lr_at(st, 15, 10) == pytest.approx(0.1)
    assert lr_at(st, 25, 10) == pytest.approx(0.01)
