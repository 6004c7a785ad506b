"""The activation-pattern counter of benchmarks.structure, on cases with a known answer."""

import torch

from benchmarks.structure import _activation_run
from ticketlab.config import OracleSpec, SolverSpec
from ticketlab.oracle import make_problem


def _problem():
    return make_problem(OracleSpec(d=12, K=3, r=5, layout="overlap"), 40, [1, 2])


def test_start_at_the_truth_never_changes_pattern():
    p = _problem()  # noiseless: W* is a stationary point, the iterate never moves
    same, last = _activation_run(p.X, p.y, p.mask, p.W_star.clone(), SolverSpec(), 30)
    assert same.tolist() == [30, 30] and last.tolist() == [0, 0]


def test_far_start_changes_pattern_and_counts_agree_with_direct_check():
    p = _problem()
    torch.manual_seed(0)
    W0 = (torch.rand_like(p.W_star) - 0.5) * p.mask
    solver = SolverSpec(eta=0.5, beta=0.0)
    same, last = _activation_run(p.X, p.y, p.mask, W0, solver, 20)
    # brute force: recompute every iterate with the reference gradient and compare patterns
    from ticketlab.engine.reference import gradient
    W, pats = W0.clone(), [(p.X @ W0) > 0]
    for _ in range(20):
        W = W - solver.eta * 3 * gradient(p.X, p.y, W) * p.mask
        pats.append((p.X @ W) > 0)
    changed = torch.stack([(a != b).flatten(1).any(1) for a, b in zip(pats[:-1], pats[1:])])  # (20, B)
    assert same.tolist() == (~changed).sum(0).tolist()
    assert bool(changed.any())
    exp_last = [max([t + 1 for t in range(20) if changed[t, b]], default=0) for b in range(2)]
    assert last.tolist() == exp_last
