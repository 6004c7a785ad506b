"""Pruning criteria and mask surgery, generic over named weight tensors and their 0/1 masks.

One implementation serves the one-hidden-layer oracle learner (a single weight ``W`` of shape
(d, K), or (B, d, K) for B independent trials with ``batched=True``) and multi-layer networks
(LeNet, ResNet: one entry per prunable weight).

Conventions shared by every function here:

- ``weights``, ``scores`` and ``masks`` are mappings ``name -> tensor`` with equal keys and shapes.
  Masks hold 0/1 in any dtype; 1 = kept.
- A *score* is an importance: high = keep. ``prune`` removes the lowest-scored kept weights.
  ``grasp_scores`` follows this convention too, so it returns the *negative* of Wang et al.'s
  S(-theta) = -theta (.) H g (GraSP removes the weights whose S is largest).
- ``prune`` only removes currently kept weights, so masks are nested across rounds, and it hits
  the requested count exactly: ties are broken by position (the earlier weight in the flattened,
  name-ordered concatenation is pruned first), so the result is deterministic.
- ``batched=True``: the leading dimension of every tensor indexes independent trials; counts,
  ranks and sparsities are per trial (row) and never mix trials.

Typical uses (run as a doctest):

>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> weights = {"fc1.weight": torch.randn(8, 6, generator=g), "fc2.weight": torch.randn(3, 8, generator=g)}
>>> masks = {k: torch.ones_like(w) for k, w in weights.items()}

An IMP round on a network: 20 % of the remaining weights, ranked globally, the output layer on its
own at 10 % (48 - round(9.6) and 24 - round(2.4) weights stay):

>>> masks = prune(magnitude_scores(weights), masks, 0.2, scope="global", overrides={"fc2.weight": 0.1})
>>> [int(m.sum()) for m in masks.values()]
[38, 22]

The one-shot oracle learner: B = 3 independent trials of W (d, K) = (5, 2), keep 40 % of each by
GraSP. The loss is the *sum* of the trials' losses (their Hessians are separate blocks):

>>> X, y = torch.randn(3, 50, 5, generator=g), torch.randn(3, 50, generator=g)
>>> W, M = torch.randn(3, 5, 2, generator=g), torch.ones(3, 5, 2)
>>> def risk(p):
...     return 0.5 * ((torch.tanh(X @ p["W"]).sum(-1) - y) ** 2).mean(-1).sum()
>>> s = grasp_scores({"W": W}, risk, masks={"W": M})
>>> M = prune(s, {"W": M}, 0.6, of="total", batched=True)["W"]
>>> M.sum((1, 2)).tolist()
[4.0, 4.0, 4.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch

from .config import Choice, Flag, Fraction, NonNegInt, Seed, bad_value, validated
from .config import Tensors as TensorMap
from .oracle import mask_recall_precision

__all__ = [
    "magnitude_scores", "random_scores", "hessian_gradient_product", "grasp_scores", "prune", "imp_loop",
    "sparsity", "mask_agreement", "apply_masks",
]

Tensors = Mapping[str, torch.Tensor]


# --------------------------------------------------------------------------- criteria


def magnitude_scores(weights: Tensors) -> dict[str, torch.Tensor]:
    """|w| for every weight (the IMP / one-shot magnitude criterion).

    >>> magnitude_scores({"W": torch.tensor([[1.0, -3.0], [0.5, -0.25]])})["W"].tolist()
    [[1.0, 3.0], [0.5, 0.25]]
    """
    return {k: w.detach().abs() for k, w in weights.items()}


@validated(weights=TensorMap, seed=Seed)
def random_scores(weights: Tensors, seed: int) -> dict[str, torch.Tensor]:
    """Uniform(0, 1) scores from a CPU ``torch.Generator`` seeded with ``seed``.

    Drawn in the mapping's order, in float64 on the CPU, then moved to each weight's device: the
    same seed gives the same scores (hence the same random mask) on every device.

    >>> w = {"a": torch.zeros(2, 3), "b": torch.zeros(4, dtype=torch.float32)}
    >>> s = random_scores(w, seed=7)
    >>> [(k, tuple(v.shape), v.dtype) for k, v in s.items()]
    [('a', (2, 3), torch.float64), ('b', (4,), torch.float64)]
    >>> all(torch.equal(s[k], random_scores(w, seed=7)[k]) for k in w), bool(((s["a"] >= 0) & (s["a"] < 1)).all())
    (True, True)
    """
    gen = torch.Generator().manual_seed(int(seed))
    return {k: torch.rand(w.shape, generator=gen, dtype=torch.float64).to(w.device) for k, w in weights.items()}


def hessian_gradient_product(params: Tensors, loss_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
                             masks: Tensors | None = None) -> dict[str, torch.Tensor]:
    """H g at theta (.) m, restricted to the kept coordinates, by double backward (see ``grasp_scores``)."""
    names = list(params)
    ms = {k: (masks[k] != 0).to(p.dtype) if masks is not None else torch.ones_like(p) for k, p in params.items()}
    theta = {k: (params[k].detach() * ms[k]).requires_grad_(True) for k in names}
    with torch.enable_grad():
        loss = loss_fn(theta)
        grads = torch.autograd.grad(loss, [theta[k] for k in names], create_graph=True, allow_unused=True)
        grads = [torch.zeros_like(theta[k]) if g is None else g for k, g in zip(names, grads)]
        # z = g . stopgrad(m (.) g), so dz/dtheta = H (m (.) g): the pruned problem's H g
        z = sum((g * (g.detach() * ms[k])).sum() for k, g in zip(names, grads))
        if not z.requires_grad:  # loss at most linear in theta: H = 0
            return {k: torch.zeros_like(theta[k]) for k in names}
        hg = torch.autograd.grad(z, [theta[k] for k in names], allow_unused=True)
    return {k: (torch.zeros_like(theta[k]) if h is None else h) * ms[k] for k, h in zip(names, hg)}


def grasp_scores(params: Tensors, loss_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
                 masks: Tensors | None = None) -> dict[str, torch.Tensor]:
    """GraSP keep-scores theta (.) H g (Wang, Zhang, Grosse 2020), by double backward.

    ``loss_fn(p)`` maps a dict of tensors like ``params`` to a scalar loss (for a module, wrap
    ``torch.func.functional_call``; for B batched trials, return the *sum* of their losses: the
    Hessian is block-diagonal across trials, so each trial's scores are its own). g = dL/dtheta and
    H g is the Hessian-gradient product, both by autograd, at theta (.) m with m the masks: pruned
    weights are fixed at zero, so g and H g are restricted to kept coordinates, and their scores
    are 0 (``prune`` never re-selects them anyway).

    Returns ``theta (.) H g``: high = keep. This is minus the paper's S(-theta) = -theta (.) H g,
    so pruning the lowest of these removes the weights GraSP removes (largest S).

    On a quadratic L = theta^T A theta / 2, g = A theta and H g = A A theta in closed form: with
    A = diag(2, 3) and theta = (1, 2), H g = (4, 18) and the scores are theta (.) H g = (4, 36):

    >>> A = torch.diag(torch.tensor([2.0, 3.0], dtype=torch.float64))
    >>> theta = {"w": torch.tensor([1.0, 2.0], dtype=torch.float64)}
    >>> grasp_scores(theta, lambda p: 0.5 * p["w"] @ A @ p["w"])["w"].tolist()
    [4.0, 36.0]

    A pruned weight is held at zero, so it drops out of g and H g, and its score is 0:

    >>> grasp_scores(theta, lambda p: 0.5 * p["w"] @ A @ p["w"], masks={"w": torch.tensor([1.0, 0.0])})["w"].tolist()
    [4.0, 0.0]
    """
    hg = hessian_gradient_product(params, loss_fn, masks)
    out = {}
    for k, p in params.items():
        m = (masks[k] != 0).to(p.dtype) if masks is not None else 1.0
        out[k] = p.detach() * m * hg[k]
    return out


# --------------------------------------------------------------------------- pruning


def _count(fraction: float, n_kept: int, n_total: int, of: str) -> int:
    """How many kept weights to remove so that the request is met exactly (round half up)."""
    if of == "kept":
        return int(math.floor(fraction * n_kept + 0.5))
    target_kept = n_total - int(math.floor(fraction * n_total + 0.5))
    return n_kept - target_kept


def _check_fraction(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise bad_value(f"prune {name}", "must be in [0, 1]", value)
    return value


@validated(scores=TensorMap, masks=TensorMap, fraction=Fraction, scope=Choice(("layerwise", "global")),
           of=Choice(("kept", "total")), overrides=Mapping[str, Fraction] | None, batched=Flag)
def prune(scores: Tensors, masks: Tensors, fraction: float, *, scope: str = "layerwise", of: str = "kept",
          overrides: Mapping[str, float] | None = None, batched: bool = False) -> dict[str, torch.Tensor]:
    """New nested masks with the lowest-scored kept weights removed.

    fraction: with ``of='kept'`` (IMP's rate) the share of the *currently kept* weights to remove;
        with ``of='total'`` the target sparsity (pruned share of all weights), which must not be
        below the current sparsity since masks only shrink.
    scope: 'layerwise' prunes every tensor to the fraction on its own; 'global' ranks all tensors
        not in ``overrides`` together (so layers end at different sparsities).
    overrides: name -> fraction for tensors pruned on their own at their own rate (e.g. the output
        layer at half the rate); ``0.0`` exempts a tensor.
    batched: the leading dimension indexes independent trials, pruned separately.

    Counts are exact (round half up of fraction * count); ties in score are broken by position
    (earlier pruned first). Returned masks have each input mask's dtype and device.
    """
    if scope not in ("layerwise", "global"):
        raise bad_value("prune scope", "must be 'layerwise' or 'global'", scope)
    if of not in ("kept", "total"):
        raise bad_value("prune of", "must be 'kept' or 'total'", of)
    fraction = _check_fraction("fraction", fraction)
    overrides = {k: _check_fraction(f"overrides[{k!r}]", v) for k, v in (overrides or {}).items()}
    unknown = set(overrides) - set(masks)
    if unknown:
        raise bad_value("prune overrides", f"must name masks among {sorted(masks)}", sorted(unknown))
    if set(scores) != set(masks):
        raise bad_value("prune scores", f"must have the names of the masks {sorted(masks)}", sorted(scores))
    for k in masks:
        if scores[k].shape != masks[k].shape:
            raise bad_value(f"prune scores[{k!r}]", f"must have the shape of its mask {tuple(masks[k].shape)}",
                            tuple(scores[k].shape))

    names = list(masks)
    if scope == "layerwise":
        groups = [([k], overrides.get(k, fraction)) for k in names]
    else:
        pooled = [k for k in names if k not in overrides]
        groups = [([k], overrides[k]) for k in names if k in overrides] + ([(pooled, fraction)] if pooled else [])
    out = {}
    for group, frac in groups:
        out.update(_prune_group(scores, masks, group, frac, of, batched))
    return {k: out[k] for k in names}


def _prune_group(scores, masks, group, frac, of, batched):
    rows = masks[group[0]].shape[0] if batched else 1
    flat_m = torch.cat([(masks[k] != 0).reshape(rows, -1) for k in group], dim=1)
    flat_s = torch.cat([scores[k].detach().reshape(rows, -1).to(torch.float64).cpu() for k in group], dim=1)
    flat_m = flat_m.cpu()
    if torch.isnan(flat_s[flat_m]).any():
        raise bad_value("prune scores", "must not be NaN at kept weights (NaN cannot be ranked)", group)
    new = flat_m.clone()
    total = flat_m.shape[1]
    for b in range(rows):
        kept = int(flat_m[b].sum())
        n = _count(frac, kept, total, of)
        if n < 0:
            raise bad_value("prune fraction", f"must not be below the current sparsity {1 - kept / total:.4f} of "
                            f"{group} with of='total' (masks only shrink)", frac)
        if n == 0:
            continue
        s = flat_s[b].masked_fill(~flat_m[b], math.inf)
        order = torch.sort(s, stable=True).indices  # stable: equal scores fall in position order
        new[b, order[:n]] = False
    out, start = {}, 0
    for k in group:
        size = masks[k][0].numel() if batched else masks[k].numel()
        out[k] = new[:, start:start + size].reshape(masks[k].shape).to(masks[k].dtype).to(masks[k].device)
        start += size
    return out


# --------------------------------------------------------------------------- the IMP loop


@validated(train_level=Callable, next_masks=Callable, rounds=NonNegInt)
def imp_loop(masks, train_level: Callable, next_masks: Callable, rounds: int) -> list:
    """Iterative magnitude pruning, the one loop every IMP in ticketlab runs.

    Level 0 trains on ``masks``; after level L < rounds, ``next_masks(L + 1, trained, masks)`` gives the
    masks of level L + 1 (prune the trained weights, or a control's rule). ``train_level(level, masks)``
    trains one level (from wherever its caller rewinds to, or reads a finished level back) and returns
    what ``next_masks`` needs. Returns every level's ``train_level`` result, levels 0..rounds.
    """
    if rounds < 0:
        raise bad_value("imp_loop rounds", "must be >= 0", rounds)
    out = []
    for level in range(rounds + 1):
        trained = train_level(level, masks)
        out.append(trained)
        if level < rounds:
            masks = next_masks(level + 1, trained, masks)
    return out


# --------------------------------------------------------------------------- bookkeeping


def sparsity(masks: Tensors) -> dict[str, float]:
    """Pruned share (0 = dense) of every mask, plus ``'overall'`` over all of them together."""
    out, pruned, total = {}, 0, 0
    for k, m in masks.items():
        p = int((m == 0).sum())
        out[k] = p / m.numel()
        pruned, total = pruned + p, total + m.numel()
    out["overall"] = pruned / total if total else 0.0
    return out


def mask_agreement(mask: Tensors | torch.Tensor, reference: Tensors | torch.Tensor) -> dict[str, float]:
    """How well a mask matches a reference (e.g. the oracle's), on positions as given (no alignment),
    pooled over all tensors of ``reference``.

    recall and precision are ``ticketlab.oracle.mask_recall_precision`` (the one definition) on the
    concatenated masks: recall = the paper's *mask accuracy* (share of true weights kept), precision
    = share of kept weights that are true (0 for an empty mask); agreement = share of positions where
    the two masks agree. For the oracle learner, permute neurons first (``mask_recall_precision``
    takes a permutation).
    """
    if isinstance(mask, torch.Tensor):
        mask, reference = {"_": mask}, {"_": reference}
    names = list(reference)
    if not names:
        return {"recall": float("nan"), "precision": float("nan"), "agreement": float("nan")}
    # one (1, n) matrix per side: mask_recall_precision sums over its last two dimensions
    a = torch.cat([(mask[k] != 0).reshape(-1).cpu() for k in names])[None]
    b = torch.cat([(reference[k] != 0).reshape(-1).cpu() for k in names])[None]
    recall, precision = mask_recall_precision(b, a)
    return {"recall": float(recall), "precision": float(precision), "agreement": float((a == b).double().mean())}


def apply_masks(weights: Tensors, masks: Tensors) -> None:
    """Zero the pruned entries of every weight in place."""
    with torch.no_grad():
        for k, m in masks.items():
            weights[k].mul_(m.to(device=weights[k].device, dtype=weights[k].dtype))
