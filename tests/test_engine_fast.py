"""The compiled CPU engine against the plain batched reference: same trajectories, same verdicts."""


import pytest
import torch

pytest.importorskip("numba")

from ticketlab.config import InitSpec, OracleSpec, SolverSpec, TrialSpec  # noqa: E402
from ticketlab.engine import cost, fast, reference  # noqa: E402
from ticketlab.init.starts import local_start  # noqa: E402
from ticketlab.oracle import make_problem  # noqa: E402
from ticketlab.trial import run_trials  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")


def _problem(d, K, r, N, seeds, layout="overlap", lam=0.3, dtype=torch.float64):
    pr = make_problem(OracleSpec(d=d, K=K, r=r, layout=layout), N, seeds, dtype=dtype)
    return pr, local_start(pr.W_star, pr.mask, lam, pr.seeds)


def _assert_same(a, b, rtol=1e-10):
    assert torch.equal(a.iterations, b.iterations)
    assert torch.equal(a.converged, b.converged)
    assert torch.equal(a.failed, b.failed)
    ok = ~a.failed
    err = (a.W[ok] - b.W[ok]).flatten(1).norm(dim=1) / a.W[ok].flatten(1).norm(dim=1)
    assert float(err.max()) < rtol
    assert torch.equal(torch.isnan(a.rate), torch.isnan(b.rate))
    fin = ~torch.isnan(a.rate)
    torch.testing.assert_close(b.rate[fin], a.rate[fin], rtol=1e-9, atol=0)
    if a.curve is not None:
        assert a.curve_iters == b.curve_iters
        assert torch.equal(torch.isnan(a.curve), torch.isnan(b.curve))
        fin = ~torch.isnan(a.curve)
        torch.testing.assert_close(b.curve[fin], a.curve[fin], rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize(
    "d, K, r, N, layout_name, beta, sampling, max_iter",
    [
        (12, 3, 10, 60, "overlap", 0.2, "full", 150),  # r close to d
        (16, 3, 2, 60, "random", 0.0, "full", 300),  # very sparse, plain GD; the stopping rule acts
        (15, 4, 4, 60, "groups:2,2", 0.5, "fresh", 150),  # block supports, fresh batches
        # union forward takes columns 8, 8, 4, 1 at a time (21), its backward 8, 8 then singles;
        # dense rows take samples 8 at a time, then the last 150 mod 8 = 6 one by one
        (40, 4, 21, 150, "overlap", 0.2, "full", 120),
    ],
)
def test_fast_matches_reference(d, K, r, N, layout_name, beta, sampling, max_iter):
    pr, W0 = _problem(d, K, r, N, [1, 2, 3], layout_name)
    solver = SolverSpec(beta=beta, max_iter=max_iter, tol=1e-5, sampling=sampling,
                        num_batches=3 if sampling == "fresh" else 1)
    kw = dict(W_target=pr.W_star, record_every=20)
    a = reference.solve(pr.X, pr.y, pr.mask, W0, solver, **kw)
    if max_iter == 300:  # the stopping rule is exercised: finished trials freeze, others go on
        assert a.converged.any()
    for forced in ("auto", "union", "dense"):
        b = fast.solve(pr.X, pr.y, pr.mask, W0, solver, threads=2, layout=forced, **kw)
        _assert_same(a, b)
        # pruned coordinates never move: exactly zero, as the start put them
        assert torch.all(b.W[pr.mask == 0] == 0)


def test_diverging_trial_among_good_ones():
    pr, W0 = _problem(10, 2, 5, 40, [4, 5, 6])
    pr.X[1] *= 8.0  # 64x the curvature: this trial's step is far too long
    solver = SolverSpec(max_iter=120, tol=1e-9)
    a = reference.solve(pr.X, pr.y, pr.mask, W0, solver)
    b = fast.solve(pr.X, pr.y, pr.mask, W0, solver, threads=2)
    assert b.failed.tolist() == [False, True, False]
    assert int(b.iterations[1]) < 120
    _assert_same(a, b)


def test_off_mask_start_weight_is_kept_as_reference_does():
    pr, W0 = _problem(10, 2, 3, 40, [7])
    W0 = W0 + 0.01 * (1 - pr.mask)  # weight off the mask: fixed, but still in the forward pass
    solver = SolverSpec(max_iter=60, tol=1e-12)
    a = reference.solve(pr.X, pr.y, pr.mask, W0, solver)
    b = fast.solve(pr.X, pr.y, pr.mask, W0, solver, threads=2)
    _assert_same(a, b)
    assert fast.layout(pr.mask, W0, 40) == ["dense"]
    assert torch.equal(b.W[pr.mask == 0], W0[pr.mask == 0])


def test_float32_runs_in_float32_and_tracks_float64():
    pr, W0 = _problem(12, 3, 5, 60, [8, 9])
    solver = SolverSpec(max_iter=200, tol=1e-30)
    a = fast.solve(pr.X, pr.y, pr.mask, W0, solver)
    p32 = pr.to(dtype=torch.float32)
    b = fast.solve(p32.X, p32.y, p32.mask, W0.float(), solver)
    assert b.W.dtype == torch.float32
    err = (b.W.double() - a.W).flatten(1).norm(dim=1) / a.W.flatten(1).norm(dim=1)
    assert float(err.max()) < 1e-4  # float32 rounding, amplified by at most the conditioning


def test_float32_verdicts_agree_with_float64():
    """Success (aligned relative error < 1e-4) is the same in float32 and float64 on small cells."""
    verdicts = {}
    for dtype in ("float64", "float32"):
        rows = []
        for N in (6, 60):  # below (8 unknowns) and above this cell's sample-complexity threshold
            spec = TrialSpec(oracle=OracleSpec(d=12, K=2, r=4), N=N, init=InitSpec(lam=0.3),
                             solver=SolverSpec(max_iter=1500), dtype=dtype)
            rows += run_trials(spec, [11, 12, 13, 14], backend="fast")
        verdicts[dtype] = [row["success"] for row in rows]
        if dtype == "float32":
            # float32 trials stop when their iterate stops changing in float32 (the 1e-8 rule is
            # below its resolution); the error they reach sits far below 1e-4
            assert all(row["relative_error"] < 1e-4 for row, ok in zip(rows, verdicts["float64"]) if ok)
    assert verdicts["float32"] == verdicts["float64"]
    assert any(verdicts["float64"]) and not all(verdicts["float64"])


def test_auto_layout_follows_the_cost_model_and_matches_the_reference():
    sparse, W0s = _problem(100, 5, 10, 80, [1])
    full, W0f = _problem(100, 2, 100, 80, [2, 3])  # every neuron keeps every input: u K = sum_j r_j
    assert fast.layout(sparse.mask, W0s, 80) == ["union"]
    assert fast.layout(full.mask, W0f, 80) == ["dense", "dense"]
    solver = SolverSpec(max_iter=200, tol=1e-6)
    _assert_same(reference.solve(full.X, full.y, full.mask, W0f, solver), fast.solve(full.X, full.y, full.mask, W0f, solver))


def test_float32_stops_like_the_reference():
    """In float32 the change is measured on the stored (rounded) iterate, as the reference does:
    once the iterate stops moving the rule stops the trial (it used to run on to max_iter)."""
    pr, W0 = _problem(12, 3, 4, 60, [5, 6, 7, 8], dtype=torch.float32)
    solver = SolverSpec(max_iter=4000, tol=1e-9)
    a = reference.solve(pr.X, pr.y, pr.mask, W0, solver)
    b = fast.solve(pr.X, pr.y, pr.mask, W0, solver)
    assert bool(a.converged.all()) and bool(b.converged.all())
    assert int(b.iterations.max()) < solver.max_iter
    # float32 rounding differs with the summation order: iteration counts agree to a few percent
    torch.testing.assert_close(b.iterations.double(), a.iterations.double(), rtol=0.1, atol=5)


def test_cost_model_prefers_union_for_sparse_and_dense_for_wide_overlap():
    """The model against cases computed by hand from the calibration in engine/cost.py (16 GFLOP/s
    rows, 8 GFLOP/s union, 10 ns a segment, 10 GB/s beyond a 2 MiB cache, float64). A change of the
    calibration must come with a new hand calculation here."""
    # Figure 3 scale: r = 10 per neuron, 100 weights over a union of 91 columns: dense rows would
    # multiply 910 weights, most of them pruned zeros
    assert cost.prefer_union(5000, 10, 100, 91, 8)
    # union: flops 5000*4*100/8e9 = 0.25 ms; data 5000*91*8 B = 3.64 MB > 2 MiB: 0.364 ms -> 0.364 ms
    assert cost.union_time(5000, 10, 100, 91, 8) == pytest.approx(3.64e-4)
    # rows: 5000 * (10 * 10 ns + 4 * 910 / 16e9 s) = 5000 * 327.5 ns = 1.6375 ms
    assert cost.layout_time(5000, 10, 910, 91, 8) == pytest.approx(1.6375e-3)
    # r = d: every neuron keeps every column; the dense rows kernel does the same flops faster
    assert not cost.prefer_union(5000, 10, 3000, 300, 8)
    t_sparse = cost.iteration_time(5000, 300, 10, 100)
    t_dense = cost.iteration_time(5000, 300, 10, 3000)
    assert t_sparse < t_dense
    # sparse (u = 100): union max(0.25 ms flops, 4 MB / 10 GB/s = 0.4 ms) = 0.4 ms < rows 1.75 ms
    assert t_sparse == pytest.approx(4e-4)
    # dense (u = 300): union 5000*4*3000/8e9 = 7.5 ms; rows 5000 * (100 + 750) ns = 4.25 ms
    assert t_dense == pytest.approx(4.25e-3)
    # 100 small trials (300 x 100, 240 kB: in cache) on 2 cores: union 300*4*250/8e9 = 37.5 us an
    # iteration, in cache 1.6x faster: 23.4375 us; 1000 iterations = 23.4375 ms a trial, 50 trials
    # per core -> 1.171875 s
    assert cost.estimate(300, 100, 5, 250, 1000, 100, cores=2) == pytest.approx(1.171875)
    # X 300 x 100 (240,000 B) + y (2,400 B) + mask, W* and four buffers of 100 x 5 (24,000 B)
    assert cost.bytes_per_trial(300, 100, 5) == 266_400
    # reference: 4*5000*300*10 / 2e9 = 30 ms (> 2*12 MB / 10 GB/s = 2.4 ms) + 1.5 ms / 20 trials
    # = 30.075 ms an iteration; 2400 iterations x 20 trials on one core = 1443.6 s
    assert cost.estimate(5000, 300, 10, 1300, 2400, 20, "reference") == pytest.approx(1443.6)


def test_cuda_estimate_is_per_batch_and_launch_bound_for_small_trials():
    # 100 small trials in one batch: the batch runs twice the typical iterations (its slowest trial)
    # at the per-iteration launch cost, whatever the flops: 2000 x 0.75 ms = 1.5 s (the flops,
    # 4*300*100*5*100 / 8e12 = 7.5 us an iteration, are far below the launch cost)
    one = cost.estimate(300, 100, 5, 250, 1000, 100, "cuda", batch=100)
    assert one == pytest.approx(1.5)
    # batches of 32: ceil(100 / 32) = 4 batches of 1.5 s
    assert cost.estimate(300, 100, 5, 250, 1000, 100, "cuda", batch=32) == pytest.approx(6.0)
    # large products are bound by the GPU's flop rate instead: 4*5000*500*10*128 / 8e12 = 1.6 ms an
    # iteration (> 0.75 ms), 2000 iterations -> 3.2 s
    big = cost.estimate(5000, 500, 10, 5000, 1000, 128, "cuda", batch=128)
    assert big == pytest.approx(3.2)
