"""The trusted recipe: rewinding continues from step k, per-epoch checkpoints resume bit-identically,
init options, a validation split that does the selecting, the test set touched only at the end."""

import json
import os

import pytest
import torch

from ticketlab.deep import train as train_mod
from ticketlab.deep.data import Dataset
from ticketlab.deep.imp import IMPSpec, level_dir, run_dir, run_imp
from ticketlab.deep.models import build_model, init_model, prunable
from ticketlab.deep.train import TrainSpec, TrainState, rewound, train
from ticketlab.pruning import prune, random_scores

pytestmark = pytest.mark.usefixtures("one_thread")

DATA = "oracle:d=12,widths=10-6,r=4,pool=120,test=60"


def _toy(n=90, d=(1, 8, 8), seed=0, val=20):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n + val + 30, *d, generator=g)
    y = torch.randint(0, 10, (n + val + 30,), generator=g)
    return Dataset("toy", X[:n], y[:n], X[n + val:], y[n + val:], "classify", d, 10, {}, None, X[n:n + val],
                   y[n:n + val])


SPEC = TrainSpec(optimizer="adam", lr=3e-3, batch_size=16, epochs=3, schedule="step", milestones=(2,), gamma=0.5,
                 warmup_steps=4, eval_every=4)  # 6 steps per epoch, T = 18


def _equal_states(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("k", [0, 5, 6, 11])  # inside an epoch, at an epoch boundary, after a milestone
def test_rewind_continues_from_step_k_like_an_uninterrupted_run(k):
    data = _toy()
    plain = init_model("lenet300", 1, in_shape=(1, 8, 8))
    full = train(plain, {}, data, SPEC, seed=3, rewind_step=k)
    st = full.rewind_state
    assert st.step == k
    # the rewind checkpoint equals the state of a run stopped after k steps (a run of k steps, the same recipe)
    short = init_model("lenet300", 1, in_shape=(1, 8, 8))
    ref = train(short, {}, data, SPEC, seed=3, rewind_step=k)
    _equal_states(st.model, ref.rewind_state.model)
    # a level rewound to k with the all-ones mask continues exactly as the plain run did: same T - k steps,
    # same schedule position and data order, same optimizer moments -> the same final weights, bit for bit
    level = init_model("lenet300", 99, in_shape=(1, 8, 8))  # other weights: all must come from the state
    ones = {n: torch.ones_like(w) for n, w in prunable(level).items()}
    res = train(level, ones, data, SPEC, seed=3, start=rewound(st))
    assert res.start_step == k and res.steps == 18 - k
    _equal_states(level.state_dict(), plain.state_dict())
    whole = slice(1 if k % 6 else 0, None)  # a level rewound inside an epoch logs that epoch's loss in part
    assert [h["train_loss"] for h in res.history][whole] == [h["train_loss"] for h in full.history][k // 6:][whole]


def test_first_step_after_rewind_equals_step_k_plus_1():
    data = _toy()
    k = 5
    plain = init_model("lenet300", 1, in_shape=(1, 8, 8))
    full = train(plain, {}, data, SPEC, seed=3, rewind_step=k + 1)
    m = init_model("lenet300", 1, in_shape=(1, 8, 8))
    at_k = train(m, {}, data, SPEC, seed=3, rewind_step=k).rewind_state
    one_more = SPEC.model_copy(update={"epochs": 3})
    level = init_model("lenet300", 7, in_shape=(1, 8, 8))
    ones = {n: torch.ones_like(w) for n, w in prunable(level).items()}
    snaps = []
    train(level, ones, data, one_more, seed=3, start=rewound(at_k),
          on_rewind=lambda s: snaps.append(s), rewind_step=k + 1)
    _equal_states(snaps[0].model, full.rewind_state.model)


def test_rewind_onto_a_mask_zeroes_pruned_moments_and_fresh_optimizer_option():
    data = _toy()
    m = init_model("lenet300", 1, in_shape=(1, 8, 8))
    st = train(m, {}, data, SPEC, seed=3, rewind_step=7).rewind_state
    w = prunable(m)
    masks = prune(random_scores(w, 0), {n: torch.ones_like(v) for n, v in w.items()}, 0.5)
    level = init_model("lenet300", 1, in_shape=(1, 8, 8))
    res = train(level, masks, data, SPEC, seed=3, start=rewound(st))
    params = dict(level.named_parameters())
    for n, mk in masks.items():
        assert bool((params[n][mk == 0] == 0).all())
        for buf in res.optimizer.state[params[n]].values():
            if buf.shape == mk.shape:
                assert bool((buf[mk == 0] == 0).all())
    assert rewound(st, optimizer=False).optimizer is None and rewound(st).optimizer is not None


def test_epoch_checkpoint_resumes_bit_identically():
    data = _toy()
    a = init_model("lenet300", 1, in_shape=(1, 8, 8))
    states = []
    full = train(a, {}, data, SPEC, seed=3, on_epoch=lambda s: states.append(s))
    assert [s.step for s in states] == [6, 12]
    st = TrainState.from_dict(torch.load(_roundtrip(states[0].to_dict()), weights_only=False))
    b = init_model("lenet300", 5, in_shape=(1, 8, 8))
    res = train(b, {}, data, SPEC, seed=3, start=st)
    _equal_states(a.state_dict(), b.state_dict())
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(res.history) == strip(full.history) and res.evals == full.evals
    assert res.early_stop == full.early_stop


def _roundtrip(obj, _n=[0]):
    import tempfile

    _n[0] += 1
    path = os.path.join(tempfile.mkdtemp(), f"s{_n[0]}.pt")
    torch.save(obj, path)
    return path


def _spec(**kw):
    base = dict(model="mlp", data=DATA, widths=(10, 6), n_train=100, seed=1, rounds=2, rate=0.3, output_rate=0.1,
                rewind=1, rewind_unit="epochs", train=TrainSpec(epochs=3, lr=0.02, batch_size=25))
    base.update(kw)
    return IMPSpec(**base)


def test_killed_level_resumes_mid_level_bit_identically(tmp_path, monkeypatch):
    s = _spec()
    run_imp(s, str(tmp_path / "a"))
    real = train_mod.train
    calls = {"n": 0}

    def dying(*args, on_epoch=None, **kw):  # die after level 1's first epoch checkpoint
        def cb(state):
            on_epoch(state)
            calls["n"] += 1
            if calls["n"] == 3:  # level 0 writes 2 checkpoints, then level 1's first
                raise KeyboardInterrupt
        return real(*args, on_epoch=cb, **kw)

    import ticketlab.deep.imp as imp_mod
    monkeypatch.setattr(imp_mod, "train", dying)
    with pytest.raises(KeyboardInterrupt):
        run_imp(s, str(tmp_path / "b"))
    rb = run_dir(str(tmp_path / "b"), s)
    assert os.path.isfile(os.path.join(level_dir(rb, 1), "checkpoint.pt"))
    monkeypatch.setattr(imp_mod, "train", real)
    res = run_imp(s, str(tmp_path / "b"))
    assert res[1]["resumed_from_step"] == 8  # 4 steps per epoch: rewound at 4, checkpointed after epoch 2
    ra = run_dir(str(tmp_path / "a"), s)
    for lv in range(3):
        for f in ("weights.pt", "mask.pt"):
            _equal_states(torch.load(os.path.join(level_dir(ra, lv), f)), torch.load(os.path.join(level_dir(rb, lv), f)))
        ma, mb = (json.load(open(os.path.join(level_dir(r, lv), "metrics.json"))) for r in (ra, rb))
        for key in ("test_error", "early_stop", "evals", "kept", "start_step"):
            assert ma[key] == mb[key], (lv, key)
        assert not os.path.exists(os.path.join(level_dir(rb, lv), "checkpoint.pt"))
    assert res[1]["start_step"] == 4 and res[1]["steps"] == 8  # rewound 1 epoch: trains T - k = 12 - 4


def test_kaiming_normal_init_and_pytorch_default():
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    kn = init_model("lenet300", 4, "kaiming_normal")
    pt = init_model("lenet300", 4, "pytorch")
    assert torch.equal(torch.rand(1), before)  # global RNG untouched
    w = kn.net[1].weight.detach()  # fan_in 784: N(0, 2/784)
    assert abs(float(w.std()) / (2 / 784) ** 0.5 - 1) < 0.01 and abs(float(w.mean())) < 3 * (2 / 784) ** 0.5 / 480
    bound = 1 / 784 ** 0.5  # PyTorch's default: kaiming_uniform(a=sqrt 5) -> U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert float(pt.net[1].weight.detach().abs().max()) <= bound and float(pt.net[1].weight.detach().std()) < 0.7 * float(w.std())
    torch.manual_seed(4)
    _equal_states(pt.state_dict(), build_model("lenet300").state_dict())
    assert torch.equal(kn.net[1].bias, pt.net[1].bias)  # biases keep PyTorch's init
    assert IMPSpec(model="lenet5", data="mnist5k").init == "kaiming_normal"


def test_validation_split_selects_and_test_set_only_at_the_end(monkeypatch):
    from ticketlab.deep.data import load_data
    from ticketlab.deep.imp import prepare_data

    pool = load_data(DATA)
    a, b = prepare_data(_spec(seed=1, n_train=50), pool), prepare_data(_spec(seed=2, n_train=100), pool)
    assert torch.equal(a.x_val, b.x_val) and len(a.x_val) == 12  # one split for every seed and N
    rows = lambda x: {tuple(r.tolist()) for r in x.flatten(1)}  # noqa: E731
    assert not rows(a.x_val) & rows(a.x_train) and not rows(b.x_val) & rows(b.x_train)
    assert rows(prepare_data(_spec(seed=2, n_train=50), pool).x_train) <= rows(b.x_train)  # nested in N
    seen = []
    real = train_mod.evaluate

    def spy(model, x, y, *args, **kw):
        seen.append("test" if x is data.x_test else "val" if x is data.x_val else "other")
        return real(model, x, y, *args, **kw)

    data = _toy()
    monkeypatch.setattr(train_mod, "evaluate", spy)
    res = train(init_model("lenet300", 1, in_shape=(1, 8, 8)), {}, data, SPEC, seed=3)
    n_val = len(res.evals)
    assert seen[:n_val] == ["val"] * n_val and set(seen[n_val:]) == {"test"} and 1 <= len(seen) - n_val <= 2
    best = min(res.evals, key=lambda e: e["val_loss"])
    assert res.early_stop["step"] == best["step"] and res.early_stop["val_loss"] == best["val_loss"]
    assert [e["step"] for e in res.evals] == [0, 4, 6, 8, 12, 16, 18]
