"""IMP end to end on the deep oracle (seconds): nesting, exact sparsity, rewinding, resume, controls, store."""

import json
import math
import os
import re

import pytest
import torch

from ticketlab import __version__
from ticketlab.config import ConfigError
from ticketlab.deep.data import load_data
from ticketlab.deep.imp import (IMPSpec, _load_state, finished_levels, level_dir, load_level, prepare_data, run_dir,
                                run_imp)
from ticketlab.deep.train import TrainSpec, evaluate, rewound, train

DATA = "oracle:d=12,widths=10-6,r=4,pool=120,test=60"


pytestmark = pytest.mark.usefixtures("one_thread")


def spec(**kw):
    base = dict(model="mlp", data=DATA, widths=(10, 6), n_train=100, seed=1, rounds=3, rate=0.3, output_rate=0.1,
                train=TrainSpec(epochs=2, lr=0.02, batch_size=25))
    base.update(kw)
    return IMPSpec(**base)


def masks_of(rdir, level):
    return torch.load(os.path.join(level_dir(rdir, level), "mask.pt"))


def test_imp_levels_nested_sparsity_rewind_and_store(tmp_path):
    s = spec(rewind=3)
    res = run_imp(s, str(tmp_path))
    rdir = run_dir(str(tmp_path), s)
    assert rdir.endswith(os.path.join("imp", "mlp-oracle-n100-seed1")) and finished_levels(rdir) == [0, 1, 2, 3]
    cfg = json.load(open(os.path.join(rdir, "config.json")))
    assert cfg["ticketlab_version"] == __version__ and cfg["device"] == "cpu" and cfg["dtype"] == "float32"
    assert cfg["spec"]["rewind"] == 3 and cfg["spec"]["train"]["epochs"] == 2

    sizes = {"net.0.weight": 120, "net.2.weight": 60, "net.4.weight": 6}
    kept = dict(sizes)
    for level in range(4):
        m = masks_of(rdir, level)
        for k, n in kept.items():
            assert int(m[k].sum()) == n, (level, k)
            assert res[level]["kept"][k] == n
            assert res[level]["sparsity"][k] == pytest.approx(1 - n / sizes[k])
        if level:
            prev = masks_of(rdir, level - 1)
            assert all(bool((m[k] <= prev[k]).all()) for k in m), "masks must be nested"
            # pruned = the smallest-magnitude kept weights of the previous level's trained weights
            w = torch.load(os.path.join(level_dir(rdir, level - 1), "weights.pt"))
            k = "net.0.weight"
            removed = prev[k] & ~m[k]
            assert w[k][removed].abs().max() <= w[k][m[k]].abs().min()
        w = torch.load(os.path.join(level_dir(rdir, level), "weights.pt"))
        assert all(bool((w[k][~m[k]] == 0).all()) for k in m)
        rate = {"net.0.weight": 0.3, "net.2.weight": 0.3, "net.4.weight": 0.1}
        kept = {k: n - math.floor(rate[k] * n + 0.5) for k, n in kept.items()}
    assert res[3]["pruning_ratio_percent"] == pytest.approx(100 * (1 - sum(res[3]["kept"].values()) / 186))
    assert "teacher_mask" in res[3] and 0 <= res[3]["teacher_mask"]["recall"] <= 1

    # rewinding: level 2 = train from the stored step-3 state on m_2, for T - 3 steps, exactly
    rewind = _load_state(os.path.join(rdir, "rewind.pt"))
    assert rewind.step == 3 and res[2]["start_step"] == 3 and res[2]["steps"] == res[0]["steps"] - 3
    data = prepare_data(s, load_data(DATA))
    model, _, metrics = load_level(rdir, 2)
    retrained = train(model, masks_of(rdir, 2), data, s.train, s.seed, start=rewound(rewind))
    stored = torch.load(os.path.join(level_dir(rdir, 2), "weights.pt"))
    for k, v in model.state_dict().items():
        assert torch.equal(v, stored[k]), k
    assert retrained.test_error == metrics["test_error"]
    init = torch.load(os.path.join(rdir, "init.pt"))
    assert not torch.equal(rewind.model["net.0.weight"], init["net.0.weight"])
    # a checkpoint is a plain module reproducing its stored test error
    model3, masks3, m3 = load_level(rdir, 3)
    ev = evaluate(model3, data.x_test, data.y_test, "regress", "cpu", torch.float32)
    assert ev["error"] == pytest.approx(m3["test_error"], rel=1e-6)


def test_resume_and_never_recompute(tmp_path):
    s = spec(rounds=2)
    first = run_imp(s, str(tmp_path))
    rdir = run_dir(str(tmp_path), s)
    stamp = {lv: os.path.getmtime(os.path.join(level_dir(rdir, lv), "metrics.json")) for lv in range(3)}
    # interrupt: level 2 unfinished (no metrics.json) -> only level 2 is recomputed, to the same numbers
    os.remove(os.path.join(level_dir(rdir, 2), "metrics.json"))
    again = run_imp(s, str(tmp_path))
    for lv in (0, 1):
        assert os.path.getmtime(os.path.join(level_dir(rdir, lv), "metrics.json")) == stamp[lv]
    assert again[2]["test_error"] == first[2]["test_error"]
    assert again[2]["kept"] == first[2]["kept"]
    # more rounds extend the same run
    more = run_imp(s.model_copy(update={"rounds": 3}), str(tmp_path))
    assert len(more) == 4 and finished_levels(rdir) == [0, 1, 2, 3]
    assert os.path.getmtime(os.path.join(level_dir(rdir, 0), "metrics.json")) == stamp[0]
    with pytest.raises(ConfigError, match="rate: stored 0.3 vs now 0.5"):
        run_imp(s.model_copy(update={"rate": 0.5}), str(tmp_path))


def test_controls(tmp_path):
    store = str(tmp_path)
    reinit = run_imp(spec(rounds=2, control="reinit"), store)
    rnd = run_imp(spec(rounds=2, control="random_mask"), store)
    ticket_dir = run_dir(store, spec(rounds=2))
    assert finished_levels(ticket_dir) == [0, 1, 2]  # the ticket ran first
    rdir_re = run_dir(store, spec(control="reinit"))
    rdir_rm = run_dir(store, spec(control="random_mask"))
    assert rdir_re.endswith("-reinit") and rdir_rm.endswith("-random_mask")
    t2, re2, rm2 = masks_of(ticket_dir, 2), masks_of(rdir_re, 2), masks_of(rdir_rm, 2)
    assert all(torch.equal(t2[k], re2[k]) for k in t2)
    assert all(int(t2[k].sum()) == int(rm2[k].sum()) for k in t2)  # same per-layer sparsity
    assert not torch.equal(t2["net.0.weight"], rm2["net.0.weight"])
    assert reinit[2]["kept"] == rnd[2]["kept"]
    # reinit starts level 2 from a fresh init: retraining from the ticket init must differ
    assert not torch.equal(torch.load(os.path.join(level_dir(rdir_re, 2), "weights.pt"))["net.0.weight"],
                           torch.load(os.path.join(level_dir(ticket_dir, 2), "weights.pt"))["net.0.weight"])


def test_global_scope_exact_and_bad_settings(tmp_path):
    s = spec(rounds=2, scope="global", output_rate=None, rate=0.25)
    res = run_imp(s, str(tmp_path))
    total = 186
    kept = total
    for r in res:
        assert sum(r["kept"].values()) == kept
        kept -= math.floor(0.25 * kept + 0.5)
    with pytest.raises(ConfigError, match="rewind: must be within .*got '1000 "):
        run_imp(spec(rewind=1000), str(tmp_path / "x"))
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"--device: must be a device of this machine \(got 'cuda'\)"):
            run_imp(spec(), str(tmp_path / "y"), device="cuda")
    with pytest.raises(Exception, match="must be one of"):
        IMPSpec(model="vgg", data=DATA)


def test_deep_seed_streams_keep_the_numbers_stored_runs_were_made_with():
    # golden values from the inline offsets these streams replaced (substream(substream(s, START), 1000 + L),
    # substream(substream(s, PRUNE), L), substream(teacher, 100 + DATA / TEST)): stored runs keep their meaning
    from ticketlab.seeding import ORACLE_TEST, ORACLE_TRAIN, random_mask_seed, reinit_seed, substream

    assert [reinit_seed(0, 1), reinit_seed(1, 12)] == [5359272992331080759, 4864340886694881452]
    assert [random_mask_seed(0, 1), random_mask_seed(1, 12)] == [4086898151799546456, 5318095319270670843]
    assert [substream(2, ORACLE_TRAIN), substream(2, ORACLE_TEST)] == [479906194084751534, 3613143602745888116]


def test_resolve_device_one_rule_for_every_command(monkeypatch):
    from ticketlab.device import resolve_device

    assert resolve_device("cpu") == "cpu"
    for bad in ("tpu", "cuda:x", "cuda:", "CPU", "mps:0"):
        with pytest.raises(ConfigError, match=rf"--device: must be 'cpu', 'cuda', 'cuda:N' or 'mps' \(got '{re.escape(bad)}'\)"):
            resolve_device(bad)
    # a machine with one GPU and MPS, simulated: the index and the dtype are checked here
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("cuda:0") == "cuda:0" and resolve_device("cuda") == "cuda"
    with pytest.raises(ConfigError, match=r"--device: must be cuda:0 .. cuda:0 \(got 'cuda:1'\); only 1 CUDA device"):
        resolve_device("cuda:1")
    assert resolve_device("mps", "float32") == "mps"
    with pytest.raises(ConfigError, match=r"--device: must support the dtype float64 \(got 'mps'\); MPS has no float64"):
        resolve_device("mps", "float64")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    for dev in ("cuda", "mps"):
        with pytest.raises(ConfigError, match=rf"--device: must be a device of this machine \(got '{dev}'\); .* not available on this machine"):
            resolve_device(dev)
