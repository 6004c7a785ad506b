"""The shared-problem engine (many weight matrices on one X) against the reference, member by member."""

import pytest
import torch

pytest.importorskip("numba")

from ticketlab.config import OracleSpec, SolverSpec  # noqa: E402
from ticketlab.engine import reference, shared  # noqa: E402
from ticketlab.init.starts import local_start  # noqa: E402
from ticketlab.oracle import make_problem  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _group(d, K, r, N, seeds, lams, dtype=torch.float64):
    pr = make_problem(OracleSpec(d=d, K=K, r=r, layout="overlap"), N, seeds, dtype=dtype)
    W0 = torch.stack([torch.stack([local_start(pr.W_star[g:g + 1], pr.mask[g:g + 1], lam, [pr.seeds[g]])[0]
                                   for lam in lams]) for g in range(len(seeds))])
    return pr, W0


def _alone(pr, Y, W0, g, m, solver, beta, record_every):
    s = SolverSpec(**{**solver.model_dump(), "beta": beta})
    return reference.solve(pr.X[g:g + 1], Y[g:g + 1, m], pr.mask[g:g + 1], W0[g, m:m + 1], s,
                           W_target=pr.W_star[g:g + 1], record_every=record_every)


def _assert_member_equal(a, res, m, rtol=1e-10):
    assert int(a.iterations[0]) == int(res.iterations[m])
    assert bool(a.converged[0]) == bool(res.converged[m])
    assert bool(a.failed[0]) == bool(res.failed[m])
    if not bool(a.failed[0]):
        assert float((a.W[0] - res.W[m]).norm() / a.W[0].norm()) < rtol
        if torch.isfinite(a.rate[0]):
            assert float(res.rate[m]) == pytest.approx(float(a.rate[0]), rel=1e-9)
    if a.curve is not None:
        fin = torch.isfinite(a.curve[0])
        assert torch.equal(fin, torch.isfinite(res.curve[m]))
        torch.testing.assert_close(res.curve[m][fin], a.curve[0][fin], rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("layout", ["union", "dense", "auto"])
@pytest.mark.parametrize("sampling", ["full", "fresh"])
def test_members_equal_solving_each_alone(layout, sampling):
    # four start distances and momenta on one problem; with tol 1e-6 members stop at different
    # iterations, so the frozen ones leave the products while the others go on. r = 7: columns four
    # at a time, then three singly; N = 150: a block of 128 samples and one of 22 (50 with T = 3)
    lams, betas = [0.05, 0.3, 0.6, 1.5], [0.2, 0.0, 0.5, 0.2]
    pr, W0 = _group(30, 3, 7, 150, [1, 2], lams)
    Y = pr.y[:, None].expand(-1, len(lams), -1).clone()
    Y[:, 2] += 0.01 * torch.randn(Y[:, 2].shape, generator=torch.Generator().manual_seed(0), dtype=Y.dtype)
    solver = SolverSpec(max_iter=1200, tol=1e-6, sampling=sampling, num_batches=3 if sampling == "fresh" else 1)
    res = shared.solve(pr.X, Y, pr.mask, W0, solver, betas, W_target=pr.W_star, record_every=25, layout=layout)
    iters = set()
    for g in range(2):
        for m in range(len(lams)):
            a = _alone(pr, Y, W0, g, m, solver, betas[m], 25)
            _assert_member_equal(a, res[g], m)
            iters.add(int(a.iterations[0]))
        assert torch.all(res[g].W[:, pr.mask[g] == 0] == 0)  # pruned weights never move
    assert len(iters) > 2 and min(iters) < 1200  # the stopping rule acted, at different iterations


def test_a_diverging_member_does_not_stop_the_others():
    lams = [0.1, 0.2, 0.3]
    pr, W0 = _group(12, 2, 5, 60, [3], lams)
    Y = pr.y[:, None].expand(-1, 3, -1).contiguous()
    Y[:, 1] *= 1e3  # its iterates must grow past diverge_factor (10) times its start: failed
    solver = SolverSpec(max_iter=200, tol=1e-12, diverge_factor=10.0)
    betas = [0.2, 0.2, 0.0]
    res = shared.solve(pr.X, Y, pr.mask, W0, solver, betas)
    refs = [_alone(pr, Y, W0, 0, m, solver, betas[m], 0) for m in range(3)]
    assert [bool(r.failed[0]) for r in refs] == [False, True, False]
    for m in range(3):
        _assert_member_equal(refs[m], res[0], m)
    assert int(res[0].iterations[1]) < 200


def test_float32_members_match_float32_reference():
    lams = [0.1, 0.4]
    pr, W0 = _group(30, 3, 8, 120, [5], lams, dtype=torch.float32)
    Y = pr.y[:, None].expand(-1, 2, -1).contiguous()
    solver = SolverSpec(max_iter=3000, tol=1e-8)
    res = shared.solve(pr.X, Y, pr.mask, W0, solver)
    for m in range(2):
        a = _alone(pr, Y, W0, 0, m, solver, solver.beta, 0)
        assert bool(a.converged[0]) and bool(res[0].converged[m])  # float32 stops where its iterate stops moving
        # float32 rounding differs with the order of the sums: the same stop within a few iterations
        assert abs(int(a.iterations[0]) - int(res[0].iterations[m])) <= max(5, int(0.02 * int(a.iterations[0])))
        assert float((a.W[0] - res[0].W[m]).norm() / a.W[0].norm()) < 1e-5


def test_refuses_what_it_cannot_solve():
    pr, W0 = _group(10, 2, 3, 40, [7], [0.2, 0.3])
    Y = pr.y[:, None].expand(-1, 2, -1)
    off = W0 + 0.01 * (1 - pr.mask)[:, None]
    assert not shared.supports(pr.mask[0], off[0])
    with pytest.raises(ValueError, match="0/1 mask"):
        shared.solve(pr.X, Y, pr.mask, off, SolverSpec(max_iter=5))
    with pytest.raises(ValueError, match="one momentum per member"):
        shared.solve(pr.X, Y, pr.mask, W0, SolverSpec(max_iter=5), [0.1])


def test_cost_model_of_the_shared_path_by_hand():
    from ticketlab.engine import cost

    # N=5000, K=10, sum_j r_j = 2000, u = 500, float64, 10 members: union 4*5000*2000 / 16e9 = 2.5 ms,
    # dense 4*5000*500*10 / 20e9 = 5 ms, plus the 20 MB stream (above the cache) shared by 10: 0.2 ms each
    union, dense = cost.shared_time(5000, 10, 2000, 500, 8, 10)
    assert union == pytest.approx(2.5e-3 + 0.2e-3) and dense == pytest.approx(5e-3 + 0.2e-3)
    assert cost.prefer_union_shared(5000, 10, 2000, 500, 8, 10)
    assert not cost.prefer_union_shared(5000, 10, 5000, 500, 8, 10)  # supports cover the union: BLAS
    # 100 trials of 1000 iterations on 2 cores, a member of a group of 10: 50 x 1000 x 2.7 ms
    assert cost.estimate(5000, 500, 10, 2000, 1000, 100, cores=2, members=10) == pytest.approx(50 * 2.7)
