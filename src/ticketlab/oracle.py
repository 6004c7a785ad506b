"""The pruned one-hidden-layer ReLU oracle: supports, weights, masks, data and noise.

Everything random here is drawn from a ``torch.Generator`` seeded with the trial's own seed, on the
CPU, so a trial's numbers do not depend on the batch it ran in, on the device, or on the worker.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import Count, Device, DType, Instance, OracleSpec, Seed, Seeds, Tensor, bad_value, validated
from .population import output_rms
from .seeding import DATA, substream

__all__ = [
    "Problem", "forward", "draw_r", "draw_supports", "support_mask", "superset_mask", "draw_trial",
    "make_problem", "r_tilde", "mask_recall_precision", "mask_accuracy", "pruning_ratio",
]


@dataclass
class Problem:
    """A batch of B independent oracle-learner trials with equal shapes.

    X (B, N, d), y (B, N), W_star (B, d, K), oracle_mask and mask (B, d, K) as 0/1 in X's dtype,
    sigma (B,) the absolute noise std. ``seeds`` identifies each trial.
    """

    X: torch.Tensor
    y: torch.Tensor
    W_star: torch.Tensor
    oracle_mask: torch.Tensor
    mask: torch.Tensor
    sigma: torch.Tensor
    seeds: list[int]

    @property
    def batch(self) -> int:
        return self.X.shape[0]

    def to(self, device=None, dtype=None) -> "Problem":
        def f(t):
            return t.to(device=device, dtype=dtype)

        return Problem(f(self.X), f(self.y), f(self.W_star), f(self.oracle_mask), f(self.mask),
                       f(self.sigma), self.seeds)

    def select(self, idx) -> "Problem":
        idx = torch.as_tensor(idx, dtype=torch.long)
        return Problem(self.X[idx], self.y[idx], self.W_star[idx], self.oracle_mask[idx],
                       self.mask[idx], self.sigma[idx], [self.seeds[i] for i in idx.tolist()])


def forward(X: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """g(x; W) = (1/K) sum_j relu(w_j . x) for a batch: X (B, N, d), W (B, d, K) -> (B, N)."""
    return torch.relu(X @ W).mean(dim=-1)


def draw_r(spec: OracleSpec, gen: torch.Generator) -> list[int]:
    """Per-neuron support sizes; with r_spread s, r_j is uniform on the integers of [(1-s)r, (1+s)r]."""
    out = []
    for r in spec.r_values():
        lo, hi = max(1, int(round(r * (1 - spec.r_spread)))), int(round(r * (1 + spec.r_spread)))
        out.append(int(torch.randint(lo, hi + 1, (1,), generator=gen)) if hi > lo else lo)
    return out


def _anchored_supports(coords: torch.Tensor, rs: list[int], gen: torch.Generator) -> list[torch.Tensor]:
    """Random supports inside ``coords`` that all share one random anchor: pairwise intersecting."""
    perm = coords[torch.randperm(len(coords), generator=gen)]
    anchor, rest = perm[:1], perm[1:]
    out = []
    for r in rs:
        pick = rest[torch.randperm(len(rest), generator=gen)[: r - 1]]
        out.append(torch.cat([anchor, pick]))
    return out


def _intersecting_supports(coords: torch.Tensor, rs: list[int], gen: torch.Generator) -> list[torch.Tensor]:
    """Uniform random supports, repaired until every pair intersects (the paper's "almost overlapped").

    For r_j large against d, independent draws already intersect and nothing changes; for small r_j,
    a disjoint pair (j, k) gets one of k's coordinates replaced by one of j's. A repair can break
    another pair, so this repeats; if it has not settled after many rounds (tiny r, many neurons),
    every support falls back to sharing one anchor coordinate.
    """
    sets = [coords[torch.randperm(len(coords), generator=gen)[:r]].clone() for r in rs]
    K = len(sets)
    for _ in range(20 * K * K):
        bad = [(j, k) for j in range(K) for k in range(j + 1, K)
               if not bool(torch.isin(sets[j], sets[k]).any())]
        if not bad:
            return sets
        j, k = bad[int(torch.randint(len(bad), (1,), generator=gen))]
        src = sets[j][int(torch.randint(len(sets[j]), (1,), generator=gen))]
        sets[k][int(torch.randint(len(sets[k]), (1,), generator=gen))] = src
    return _anchored_supports(coords, rs, gen)


def draw_supports(spec: OracleSpec, rs: list[int], gen: torch.Generator) -> list[torch.Tensor]:
    """Each oracle neuron's support (indices of its kept inputs), r_j of them, for the spec's layout."""
    d = spec.d
    if spec.layout == "random":
        return [torch.randperm(d, generator=gen)[:r] for r in rs]
    if spec.layout == "disjoint":
        perm = torch.randperm(d, generator=gen)
        bounds = [0, *torch.tensor(rs).cumsum(0).tolist()]
        return [perm[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    if spec.layout == "overlap":
        return _intersecting_supports(torch.arange(d), rs, gen)
    # groups: disjoint blocks of coordinates; neurons of a group overlap inside their block.
    groups = spec.groups()
    perm = torch.randperm(d, generator=gen)
    block = d // len(groups)
    out, j = [], 0
    for g, size in enumerate(groups):
        out += _intersecting_supports(perm[g * block:(g + 1) * block], rs[j:j + size], gen)
        j += size
    return out


def support_mask(supports: list[torch.Tensor], d: int) -> torch.Tensor:
    """The (d, K) float64 0/1 mask with column j set on ``supports[j]``."""
    M = torch.zeros(d, len(supports), dtype=torch.float64)
    for j, s in enumerate(supports):
        M[s, j] = 1.0
    return M


def superset_mask(M: torch.Tensor, extra: int, gen: torch.Generator) -> torch.Tensor:
    """An accurate learner mask: M plus ``extra`` random kept inputs per neuron."""
    M = M.clone()
    for j in range(M.shape[1]):
        free = torch.nonzero(M[:, j] == 0).flatten()
        M[free[torch.randperm(len(free), generator=gen)[:extra]], j] = 1.0
    return M


def _check_masks(fn: str, spec: OracleSpec, learner_mask, oracle_mask) -> None:
    """A given learner or oracle mask must be (d, K): else a ConfigError naming ``fn``'s parameter."""
    for name, m in (("learner_mask", learner_mask), ("oracle_mask", oracle_mask)):
        if m is not None and tuple(m.shape) != (spec.d, spec.K):
            raise bad_value(f"{fn} {name}", f"must have shape (d, K) = ({spec.d}, {spec.K})", tuple(m.shape))


@validated(spec=Instance(OracleSpec), N=Count, seed=Seed, learner_mask=Tensor | None, oracle_mask=Tensor | None)
def draw_trial(spec: OracleSpec, N: int, seed: int, learner_mask: torch.Tensor | None = None,
               oracle_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """One trial on the CPU in float64: (X, y, W*, M*, M, sigma). ``oracle_mask`` (d, K) replaces
    the drawn supports (the weights on it, the learner's extra inputs and the data are still drawn)."""
    _check_masks("draw_trial", spec, learner_mask, oracle_mask)
    gen = torch.Generator().manual_seed(substream(seed, DATA))
    rs = draw_r(spec, gen)
    supports = draw_supports(spec, rs, gen)
    if oracle_mask is None:
        M_star = support_mask(supports, spec.d)
    else:
        M_star = (oracle_mask != 0).double()
    W_star = (torch.rand(spec.d, spec.K, generator=gen, dtype=torch.float64) - 0.5) * M_star
    M = superset_mask(M_star, spec.extra, gen) if learner_mask is None else learner_mask.double()
    X = torch.randn(N, spec.d, generator=gen, dtype=torch.float64)
    sigma = spec.noise * output_rms(W_star)
    y = forward(X[None], W_star[None])[0] + sigma * torch.randn(N, generator=gen, dtype=torch.float64)
    return X, y, W_star, M_star, M, sigma


@validated(spec=Instance(OracleSpec), N=Count, seeds=Seeds, device=Device, dtype=DType, learner_mask=Tensor | None,
           oracle_mask=Tensor | None)
def make_problem(spec: OracleSpec, N: int, seeds: list[int], *, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float64,
                 learner_mask: torch.Tensor | None = None, oracle_mask: torch.Tensor | None = None) -> Problem:
    """A batch of trials, one per seed, drawn independently and stacked. ``oracle_mask`` (d, K): your
    own oracle supports (0/1); ``learner_mask`` (d, K): the learner's mask (default: the oracle's
    plus ``spec.extra`` random inputs per neuron).

    Two trials, d = 20 inputs, K = 3 neurons of r = 4 kept inputs each, N = 50 samples; the learner
    keeps 2 more inputs per neuron than the oracle, and its mask contains the oracle's:

    >>> from ticketlab.config import OracleSpec
    >>> p = make_problem(OracleSpec(d=20, K=3, r=4, extra=2), 50, seeds=[0, 1])
    >>> p.X.shape, p.y.shape, p.W_star.shape, p.X.dtype
    (torch.Size([2, 50, 20]), torch.Size([2, 50]), torch.Size([2, 20, 3]), torch.float64)
    >>> p.oracle_mask.sum(1).tolist(), p.mask.sum(1).tolist()
    ([[4.0, 4.0, 4.0], [4.0, 4.0, 4.0]], [[6.0, 6.0, 6.0], [6.0, 6.0, 6.0]])
    >>> bool((p.mask >= p.oracle_mask).all()), bool((p.W_star * (1 - p.oracle_mask) == 0).all())
    (True, True)
    >>> bool((make_problem(OracleSpec(d=20, K=3, r=4, extra=2), 50, seeds=[1]).X[0] == p.X[1]).all())
    True
    """
    _check_masks("make_problem", spec, learner_mask, oracle_mask)
    parts = [draw_trial(spec, N, s, learner_mask, oracle_mask) for s in seeds]
    X, y, W, Ms, M, sig = (torch.stack([p[i] if torch.is_tensor(p[i]) else torch.tensor(p[i])
                                        for p in parts]) for i in range(6))
    return Problem(X, y, W, Ms, M, sig.double(), list(seeds)).to(device=device, dtype=dtype)


def r_tilde(mask: torch.Tensor) -> torch.Tensor:
    """Effective sparsity (the paper's Eq. 5) of masks (..., d, K):
    (1/(8K^4)) (sum_{j,k} (1 + delta_jk) sqrt(r_j + r_k))^2, delta_jk = 1 if supports j, k intersect."""
    m = (mask != 0).to(torch.float64)
    K = m.shape[-1]
    r = m.sum(-2)
    delta = ((m.transpose(-1, -2) @ m) > 0).to(torch.float64)
    s = ((1 + delta) * torch.sqrt(r[..., :, None] + r[..., None, :])).sum((-1, -2))
    return s**2 / (8 * K**4)


def mask_recall_precision(oracle_mask: torch.Tensor, mask: torch.Tensor,
                          perm: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Recall ||M* (.) M||_0 / ||M*||_0 (the paper's mask accuracy) and precision ||M* (.) M||_0 / ||M||_0
    (0 for an empty mask), batched over leading dimensions, after permuting the learner's neurons by
    ``perm`` if given (perm[..., k] = learner neuron matched to oracle neuron k)."""
    if perm is not None:
        mask = torch.gather(mask, -1, perm[..., None, :].expand_as(mask))
    both = ((oracle_mask != 0) & (mask != 0)).sum((-1, -2)).double()
    kept = (mask != 0).sum((-1, -2)).double()
    return both / (oracle_mask != 0).sum((-1, -2)).double(), both / kept.clamp_min(1)


def mask_accuracy(oracle_mask: torch.Tensor, mask: torch.Tensor, perm: torch.Tensor | None = None) -> torch.Tensor:
    """The recall of ``mask_recall_precision``: the share of the oracle's weights the mask keeps."""
    return mask_recall_precision(oracle_mask, mask, perm)[0]


def pruning_ratio(mask: torch.Tensor) -> torch.Tensor:
    """(1 - r_ave / d): the fraction of pruned input weights."""
    d = mask.shape[-2]
    return 1 - (mask != 0).sum(-2).to(torch.float64).mean(-1) / d
