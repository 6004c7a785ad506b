"""Pruning criteria and mask surgery against hand-built cases, brute force and finite differences."""

import math

import pytest
import torch

from ticketlab.config import ConfigError
from ticketlab.engine import risk
from ticketlab.pruning import (grasp_scores, hessian_gradient_product, magnitude_scores, mask_agreement, prune,
                               random_scores, sparsity)


def ones_like(d):
    return {k: torch.ones_like(v) for k, v in d.items()}


def test_magnitude_layerwise_hand_built():
    w = {"a": torch.tensor([[3.0, -1.0], [0.5, -4.0]]), "b": torch.tensor([1.0, -2.0, 0.1, 5.0])}
    m = prune(magnitude_scores(w), ones_like(w), 0.5)
    assert m["a"].tolist() == [[1, 0], [0, 1]]
    assert m["b"].tolist() == [0, 1, 0, 1]


def test_global_scope_and_output_override():
    w = {"a": torch.tensor([0.1, 0.2, 0.3, 0.4]), "b": torch.tensor([1.0, 2.0, 3.0, 4.0]),
         "out": torch.tensor([0.01, 0.02, 0.03, 0.04])}
    m = prune(magnitude_scores(w), ones_like(w), 0.5, scope="global")
    # globally the 6 smallest of 12: all of out, then the two smallest of a
    assert m["out"].sum() == 0 and m["a"].tolist() == [0, 0, 1, 1] and m["b"].tolist() == [1, 1, 1, 1]
    m = prune(magnitude_scores(w), ones_like(w), 0.5, scope="global", overrides={"out": 0.25})
    assert m["out"].tolist() == [0, 1, 1, 1]  # its own rate: 1 of 4
    assert m["a"].sum() == 0 and m["b"].sum() == 4  # 4 of the pooled 8
    m = prune(magnitude_scores(w), ones_like(w), 0.5, scope="global", overrides={"out": 0.0})
    assert m["out"].sum() == 4


def test_ties_broken_by_position_and_deterministic():
    s = {"x": torch.zeros(2, 3), "y": torch.zeros(3)}
    m = prune(s, ones_like(s), 0.5, scope="global")
    # 9 weights, round(4.5) = 5 pruned: the first five in name order x (row-major), then y
    assert m["x"].flatten().tolist() == [0, 0, 0, 0, 0, 1] and m["y"].tolist() == [1, 1, 1]


@pytest.mark.parametrize("scope", ["layerwise", "global"])
def test_nested_and_exact_counts_over_rounds(scope):
    shapes = {"l1": (30, 20), "l2": (17, 13), "out": (10, 7)}
    masks = {k: torch.ones(s) for k, s in shapes.items()}
    rate, out_rate = 0.2, 0.1
    expect = {k: math.prod(s) for k, s in shapes.items()}
    pooled = expect["l1"] + expect["l2"]
    for rnd in range(6):
        # scores redrawn every round, so only nesting keeps pruned weights out
        scores = random_scores(masks, seed=100 + rnd)
        new = prune(scores, masks, rate, scope=scope, overrides={"out": out_rate})
        for k in shapes:
            assert bool(((new[k] != 0) <= (masks[k] != 0)).all()), "masks must be nested"
        expect["out"] -= math.floor(out_rate * expect["out"] + 0.5)
        if scope == "layerwise":
            for k in ("l1", "l2"):
                expect[k] -= math.floor(rate * expect[k] + 0.5)
                assert int(new[k].sum()) == expect[k]
        else:
            pooled -= math.floor(rate * pooled + 0.5)
            assert int(new["l1"].sum() + new["l2"].sum()) == pooled
        assert int(new["out"].sum()) == expect["out"]
        masks = new
    sp = sparsity(masks)
    total = sum(math.prod(s) for s in shapes.values())
    assert sp["overall"] == pytest.approx(1 - sum(float(m.sum()) for m in masks.values()) / total)


def test_target_sparsity_of_total():
    w = {"a": torch.randn(40, 25, generator=torch.Generator().manual_seed(0))}
    m = prune(magnitude_scores(w), ones_like(w), 0.37, of="total")
    assert int(m["a"].sum()) == 1000 - 370
    kept = w["a"].abs()[m["a"].bool()]
    assert kept.min() >= w["a"].abs()[~m["a"].bool()].max()  # the largest survive
    m2 = prune(magnitude_scores(w), m, 0.5, of="total")
    assert int(m2["a"].sum()) == 500 and bool((m2["a"] <= m["a"]).all())
    with pytest.raises(ConfigError, match="below the current"):
        prune(magnitude_scores(w), m2, 0.3, of="total")


def test_batched_equals_per_trial():
    g = torch.Generator().manual_seed(1)
    W = torch.randn(5, 12, 4, generator=g)
    M = (torch.rand(5, 12, 4, generator=g) > 0.3).double()
    out = prune(magnitude_scores({"W": W}), {"W": M}, 0.4, batched=True)["W"]
    for b in range(5):
        ref = prune(magnitude_scores({"W": W[b]}), {"W": M[b]}, 0.4)["W"]
        assert torch.equal(out[b], ref)
    assert out.dtype == M.dtype


def test_random_scores_seeded():
    w = {"a": torch.zeros(4, 5), "b": torch.zeros(3)}
    s1, s2, s3 = random_scores(w, 7), random_scores(w, 7), random_scores(w, 8)
    assert all(torch.equal(s1[k], s2[k]) for k in w)
    assert not torch.equal(s1["a"], s3["a"])


def test_bad_input():
    w = {"a": torch.ones(3)}
    with pytest.raises(ConfigError, match="fraction"):
        prune(w, w, 1.5)
    with pytest.raises(ConfigError, match="scope"):
        prune(w, w, 0.5, scope="per-neuron")
    with pytest.raises(ConfigError, match="overrides"):
        prune(w, w, 0.5, overrides={"nope": 0.1})
    with pytest.raises(ConfigError, match="NaN"):
        prune({"a": torch.tensor([1.0, float("nan"), 2.0])}, w, 0.5)


def test_sparsity_and_agreement_hand_built():
    m = {"a": torch.tensor([1, 0, 1, 0]), "b": torch.tensor([0, 0, 0, 1, 1, 1])}
    ref = {"a": torch.tensor([1, 1, 0, 0]), "b": torch.tensor([0, 0, 0, 1, 1, 0])}
    sp = sparsity(m)
    assert sp["a"] == 0.5 and sp["b"] == 0.5 and sp["overall"] == 0.5
    ag = mask_agreement(m, ref)
    assert ag["recall"] == pytest.approx(3 / 4)  # true kept: a0, b3, b4 of 4 reference ones
    assert ag["precision"] == pytest.approx(3 / 5)
    assert ag["agreement"] == pytest.approx(7 / 10)


# --------------------------------------------------------------------------- GraSP


def _mlp_loss(X, y):
    def loss(p):
        return 0.5 * ((torch.tanh(X @ p["w1"]) @ p["w2"] - y) ** 2).mean()
    return loss


def _fd_hg(loss, params, masks, eps=1e-5):
    """Central differences of the (masked) gradient along the masked gradient."""
    def grad_at(p):
        q = {k: v.clone().requires_grad_(True) for k, v in p.items()}
        gs = torch.autograd.grad(loss(q), list(q.values()))
        return {k: g * masks[k] for k, g in zip(q, gs)}
    base = {k: v * masks[k] for k, v in params.items()}
    g = grad_at(base)
    plus = grad_at({k: base[k] + eps * g[k] for k in base})
    minus = grad_at({k: base[k] - eps * g[k] for k in base})
    return {k: (plus[k] - minus[k]) / (2 * eps) for k in base}


def test_grasp_matches_finite_difference_hessian_gradient_product():
    gen = torch.Generator().manual_seed(3)
    X = torch.randn(50, 6, generator=gen, dtype=torch.float64)
    y = torch.randn(50, 2, generator=gen, dtype=torch.float64)
    p = {"w1": torch.randn(6, 5, generator=gen, dtype=torch.float64),
         "w2": torch.randn(5, 2, generator=gen, dtype=torch.float64)}
    masks = {k: (torch.rand(v.shape, generator=gen) > 0.4).double() for k, v in p.items()}
    loss = _mlp_loss(X, y)
    for mk in (None, masks):
        ms = mk or ones_like(p)
        fd = _fd_hg(loss, p, ms)
        hg = hessian_gradient_product(p, loss, mk)
        s = grasp_scores(p, loss, mk)
        for k in p:
            assert torch.allclose(hg[k], fd[k], rtol=1e-6, atol=1e-9)
            assert torch.allclose(s[k], p[k] * ms[k] * fd[k], rtol=1e-6, atol=1e-9)
            assert bool((s[k][ms[k] == 0] == 0).all())


def test_grasp_quadratic_closed_form():
    gen = torch.Generator().manual_seed(4)
    B = torch.randn(7, 7, generator=gen, dtype=torch.float64)
    A = B @ B.T
    th = torch.randn(7, generator=gen, dtype=torch.float64)
    s = grasp_scores({"t": th}, lambda p: 0.5 * p["t"] @ A @ p["t"])["t"]
    assert torch.allclose(s, th * (A @ (A @ th)))  # g = A th, H g = A A th


def test_grasp_batched_oracle_learner_is_per_trial():
    """The oracle learner's use: W (B, d, K), loss = sum of per-trial risks -> each trial's own scores."""
    gen = torch.Generator().manual_seed(5)
    X = torch.randn(3, 40, 8, generator=gen, dtype=torch.float64)
    Wt = torch.randn(3, 8, 3, generator=gen, dtype=torch.float64)
    y = torch.relu(X @ Wt).mean(-1)
    W = Wt + 0.3 * torch.randn(3, 8, 3, generator=gen, dtype=torch.float64)
    M = (torch.rand(3, 8, 3, generator=gen) > 0.3).double()
    batched = grasp_scores({"W": W}, lambda p: risk(X, y, p["W"]).sum(), {"W": M})["W"]
    for b in range(3):
        one = grasp_scores({"W": W[b]}, lambda p: risk(X[b:b + 1], y[b:b + 1], p["W"][None]).sum(), {"W": M[b]})["W"]
        assert torch.allclose(batched[b], one, rtol=1e-10, atol=1e-14)
    new = prune({"W": batched}, {"W": M}, 0.5, batched=True)["W"]
    assert torch.equal(new.sum((1, 2)), M.sum((1, 2)) - torch.floor(0.5 * M.sum((1, 2)) + 0.5))


def test_agreement_is_the_oracle_recall_precision_pooled_over_tensors():
    from ticketlab.oracle import mask_recall_precision

    g = torch.Generator().manual_seed(3)
    m = {"conv": torch.rand(4, 3, 2, 2, generator=g) < 0.5, "fc": torch.rand(5, 7, generator=g) < 0.3}
    ref = {"conv": torch.rand(4, 3, 2, 2, generator=g) < 0.4, "fc": torch.rand(5, 7, generator=g) < 0.6}
    # brute force over every position of every tensor
    pos = [(k, i) for k in ref for i in range(ref[k].numel())]
    kept = {p for p in pos if bool(m[p[0]].reshape(-1)[p[1]])}
    true = {p for p in pos if bool(ref[p[0]].reshape(-1)[p[1]])}
    ag = mask_agreement(m, ref)
    assert ag["recall"] == pytest.approx(len(kept & true) / len(true))
    assert ag["precision"] == pytest.approx(len(kept & true) / len(kept))
    assert ag["agreement"] == pytest.approx(sum((p in kept) == (p in true) for p in pos) / len(pos))
    # a single (d, K) mask: the same numbers as the oracle learner's function
    r, p = mask_recall_precision(ref["fc"], m["fc"])
    one = mask_agreement(m["fc"], ref["fc"])
    assert (one["recall"], one["precision"]) == (float(r), float(p))
    # an empty mask keeps nothing true: recall 0 and precision 0 (the oracle's convention), no NaN
    empty = mask_agreement({k: torch.zeros_like(v) for k, v in m.items()}, ref)
    assert empty["recall"] == 0 and empty["precision"] == 0
