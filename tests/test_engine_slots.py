"""The slot engine (device-side stopping, trials flowing through shared slots) against the reference:
iteration counts, verdicts, weights, rates and curves, whatever the slots, the block, the order of
the trials or the other work sharing the slots."""

import threading

import pytest
import torch

from ticketlab import engine
from ticketlab.config import ConfigError, OracleSpec, SolverSpec
from ticketlab.engine import reference, slots
from ticketlab.init.starts import local_start
from ticketlab.oracle import make_problem

pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(B=24, d=20, K=3, r=5, N=150, dtype=torch.float64, seed0=0, far=2.5):
    """B trials whose starts run from 5 % to ``far`` relative distance: near ones converge, far ones
    stall at the cap or (with a large step) diverge."""
    pr = make_problem(OracleSpec(d=d, K=K, r=r, extra=2), N, list(range(seed0, seed0 + B)), dtype=dtype)
    lams = torch.linspace(0.05, far, B).tolist()
    W0 = torch.cat([local_start(pr.W_star[b:b + 1], pr.mask[b:b + 1], lams[b], [pr.seeds[b]]) for b in range(B)])
    return pr, W0


def _same(a, b, rtol=1e-12):
    assert torch.equal(a.iterations, b.iterations)
    assert torch.equal(a.converged, b.converged)
    assert torch.equal(a.failed, b.failed)
    ok = ~a.failed
    torch.testing.assert_close(b.W[ok], a.W[ok], rtol=rtol, atol=1e-14)
    assert torch.equal(torch.isfinite(a.rate), torch.isfinite(b.rate))
    fin = torch.isfinite(a.rate)
    torch.testing.assert_close(b.rate[fin], a.rate[fin], rtol=1e-9, atol=0)
    if a.curve is not None:
        assert b.curve_iters == a.curve_iters
        assert torch.equal(torch.isfinite(a.curve), torch.isfinite(b.curve))
        f = torch.isfinite(a.curve)
        torch.testing.assert_close(b.curve[f], a.curve[f], rtol=1e-10, atol=1e-14)


SOLVERS = {
    "agd": SolverSpec(max_iter=600, tol=1e-8, beta=0.5),
    "gd-capped": SolverSpec(max_iter=150, tol=1e-12, beta=0.0),
    "diverging": SolverSpec(max_iter=400, tol=1e-8, eta=8.0, beta=0.9, diverge_factor=1e3),
    "fresh": SolverSpec(max_iter=500, tol=1e-9, sampling="fresh", num_batches=3, beta=0.3),
}


@pytest.mark.parametrize("name", list(SOLVERS))
def test_matches_reference_with_refills(name):
    """Fewer slots than trials (every slot is refilled), a block that is not a multiple of T."""
    pr, W0 = _batch()
    s = SOLVERS[name]
    a = reference.solve(pr.X, pr.y, pr.mask, W0, s, W_target=pr.W_star, record_every=25)
    b = slots.solve(pr.X, pr.y, pr.mask, W0, s, W_target=pr.W_star, record_every=25, slots=8, block=10)
    _same(a, b)
    if name == "diverging":  # the case is what it says: the rules that end a trial all fire
        assert a.failed.any() and a.converged.any()
    if name == "gd-capped":
        assert (a.iterations == s.max_iter).any()


def test_float32_and_no_curve():
    pr, W0 = _batch(dtype=torch.float32)
    s = SOLVERS["agd"]
    a = reference.solve(pr.X, pr.y, pr.mask, W0, s)
    b = slots.solve(pr.X, pr.y, pr.mask, W0, s, slots=16, block=7)
    assert b.curve is None and b.curve_iters == []
    _same(a, b, rtol=1e-6)


def test_independent_of_slots_block_and_order():
    """A trial's numbers do not depend on the slot it ran in, the block, or who ran beside it."""
    pr, W0 = _batch(B=20)
    s = SOLVERS["agd"]
    base = slots.solve(pr.X, pr.y, pr.mask, W0, s, W_target=pr.W_star, record_every=20, slots=64, block=64)
    perm = torch.randperm(20, generator=torch.Generator().manual_seed(3))
    other = slots.solve(pr.X[perm], pr.y[perm], pr.mask[perm], W0[perm], s, W_target=pr.W_star[perm],
                        record_every=20, slots=8, block=5)
    inv = torch.argsort(perm)
    for f in ("iterations", "converged", "failed"):
        assert torch.equal(getattr(other, f)[inv], getattr(base, f))
    torch.testing.assert_close(other.W[inv], base.W, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(other.curve[inv], base.curve, rtol=1e-10, atol=1e-14, equal_nan=True)


def test_one_iteration_cap():
    """max_iter below the block: every trial stops at the cap, mid-block, unconverged."""
    pr, W0 = _batch(B=3)
    s = SolverSpec(max_iter=1, tol=1e-12)
    a = reference.solve(pr.X, pr.y, pr.mask, W0, s)
    b = slots.solve(pr.X, pr.y, pr.mask, W0, s, block=16)
    assert b.iterations.tolist() == [1, 1, 1] and not b.converged.any()
    _same(a, b)


def test_server_pools_many_threads():
    """Threads submit solves of different shapes and solvers at once: each gets its own numbers."""
    jobs = [(_batch(B=6, N=N, seed0=10 * i), SOLVERS[name]) for i, (N, name) in
            enumerate([(150, "agd"), (150, "agd"), (90, "gd-capped"), (150, "fresh"), (150, "diverging")])]
    server = slots.SlotServer(slots=8, block=9)
    out = [None] * len(jobs)

    def run(i):
        (pr, W0), s = jobs[i]
        with slots.serving(server):
            out[i] = engine.solve(pr.X, pr.y, pr.mask, W0, s, W_target=pr.W_star, record_every=30, backend="slots")
        assert engine.used() == {"slots"}

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    server.close()
    for i, ((pr, W0), s) in enumerate(jobs):
        _same(reference.solve(pr.X, pr.y, pr.mask, W0, s, W_target=pr.W_star, record_every=30), out[i])
        assert out[i].engine == "slots"


def test_aborted_server_fails_its_callers():
    pr, W0 = _batch(B=4)
    server = slots.SlotServer(slots=8, block=1)
    errors = []
    long_run = SolverSpec(max_iter=10**7, tol=1e-300)  # would run for hours

    def run():
        with slots.serving(server):
            try:
                slots.solve(pr.X, pr.y, pr.mask, W0, long_run)
            except RuntimeError as err:
                errors.append(err)

    t = threading.Thread(target=run)
    t.start()
    for _ in range(3000):  # until the trials are in the slots
        if server._sched.busy():
            break
        threading.Event().wait(0.01)
    assert server._sched.busy()
    server.abort()
    t.join(timeout=30)
    assert not t.is_alive() and len(errors) == 1 and "stopped" in str(errors[0])
    server.close()
    with pytest.raises(RuntimeError, match="closed"), slots.serving(server):
        slots.solve(pr.X, pr.y, pr.mask, W0, SolverSpec(max_iter=5))


@pytest.mark.parametrize("kwargs, field", [({"block": 0}, "solve block"), ({"slots": -1}, "solve slots"),
                                           ({"slots": 2.5}, "solve slots")])
def test_bad_sizes_name_the_parameter(kwargs, field):
    pr, W0 = _batch(B=2)
    with pytest.raises(ConfigError, match=f"^{field}: must be a positive integer"):
        slots.solve(pr.X, pr.y, pr.mask, W0, SolverSpec(max_iter=5), **kwargs)


def test_bad_shapes_name_the_parameter():
    pr, W0 = _batch(B=2)
    with pytest.raises(ConfigError, match=r"^solve W0: must have shape \(2, 20, 3\)"):
        slots.solve(pr.X, pr.y, pr.mask, W0[:, :5], SolverSpec(max_iter=5))


def test_engine_choice_is_per_thread():
    """A thread's choose does not leak into others; a thread that never chose follows the main thread."""
    seen = {}

    def chooser():
        engine.choose("slots")
        seen["chooser"] = engine.chosen()

    def follower():
        seen["follower"] = engine.chosen()

    previous = engine.choose("reference")
    try:
        for fn in (chooser, follower):
            t = threading.Thread(target=fn)
            t.start()
            t.join()
        assert seen == {"chooser": "slots", "follower": "reference"}
        assert engine.chosen() == "reference"
    finally:
        engine.choose(previous)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device (none here)")
def test_cuda_graphs_match_eager_and_reference():
    pr, W0 = _batch(B=40)
    dev = torch.device("cuda")
    X, y, M, W0c, Wt = (t.to(dev) for t in (pr.X, pr.y, pr.mask, W0, pr.W_star))
    for s in (SOLVERS["agd"], SOLVERS["diverging"], SOLVERS["fresh"]):
        a = reference.solve(X, y, M, W0c, s, W_target=Wt, record_every=25)
        g = slots.solve(X, y, M, W0c, s, W_target=Wt, record_every=25, slots=16, block=12, graphs=True)
        e = slots.solve(X, y, M, W0c, s, W_target=Wt, record_every=25, slots=16, block=12, graphs=False)
        _same(e, g, rtol=1e-12)
        _same(a, g, rtol=1e-9)


# --- a sweep on the slots: the tasks of many cells share them (executors.PooledExecutor) ----------
TINY = ["d=24", "K=2", "r_tilde=4,8", "N=8,16,32,64,96", "max_iter=1500"]


def _rows(db):
    import json
    import sqlite3

    with sqlite3.connect(db) as c:
        return {tid: (json.loads(res), json.loads(prov)) for tid, res, prov in
                c.execute("SELECT trial_id, result, provenance FROM trials")}


def test_pooled_sweep_equals_the_reference_sweep(tmp_path):
    from ticketlab.app import make_config
    from ticketlab.experiments import get_experiment
    from ticketlab.store import Store
    from ticketlab.sweep import run_sweep

    exp = get_experiment("fig4")
    cfg = make_config(exp, "quick", 3, TINY)
    for choice in ("reference", "slots"):
        with Store(tmp_path / f"{choice}.db") as st:
            counts = run_sweep("fig4", cfg, st, progress=False, engine=choice, chunk_size=2)
        assert counts["ran"] == len(exp.cells(cfg)) * 3
    ref, pooled = _rows(tmp_path / "reference.db"), _rows(tmp_path / "slots.db")
    assert ref.keys() == pooled.keys()
    assert {(p["engine"], p["engine_choice"]) for _, p in pooled.values()} == {("slots", "slots")}
    for tid, (a, _) in ref.items():
        b = pooled[tid][0]
        assert {k: a[k] for k in ("iterations", "converged", "failed", "success")} == \
               {k: b[k] for k in ("iterations", "converged", "failed", "success")}
        assert b["relative_error"] == pytest.approx(a["relative_error"], rel=1e-10, abs=1e-15)


def test_interrupted_pooled_sweep_resumes(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    db = tmp_path / "k.db"
    cmd = [sys.executable, "-m", "ticketlab", "sweep", "fig4", "--store", str(db), "--chunk-size", "1",
           "--no-progress", "--engine", "slots", "--trials", "6", *[a for s in TINY for a in ("--set", s)]]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    end = time.time() + 120
    while time.time() < end and (not db.exists() or len(_safe_rows(db)) < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert proc.returncode == 130, proc.stderr.read().decode()
    partial = len(_safe_rows(db))
    assert 3 <= partial < 60
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = _rows(db)
    assert len(rows) == 60 and {p["engine"] for _, p in rows.values()} == {"slots"}


def _safe_rows(db):
    import sqlite3

    try:
        with sqlite3.connect(db, timeout=1) as c:
            return c.execute("SELECT trial_id FROM trials").fetchall()
    except sqlite3.OperationalError:
        return []
