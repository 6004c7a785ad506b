"""Finding the oracle learner's mask by pruning (Figures 7-10), on top of ``ticketlab.pruning``.

The learner has one weight W (d, K) per trial; trials are batched on a leading dimension, so
``pruning.prune(..., batched=True)`` ranks each trial's weights on their own. Scopes:
- 'global': the whole W ranked together (neurons may keep different numbers of inputs);
- 'neuron': every column ranked on its own, so all neurons keep the same r (an adapter: each
  column becomes its own named tensor and ``prune`` runs layer-wise over them).

Every mask here is nested in the one it starts from, and every random draw comes from the
trial's own PRUNE substream.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .. import engine, pruning
from ..config import SolverSpec, bad_value
from ..metrics import align, test_rmse_exact
from ..oracle import Problem, mask_recall_precision
from ..seeding import DENSE_START_DISTANCE, PRUNE, substream

__all__ = [
    "METHODS", "SCOPES", "check_choice", "run_agd", "prune_learner", "mask_quality", "IMPResult", "imp",
    "FoundMask", "trial_lambdas", "find_mask",
]

#: the pruning criteria a dense learner's mask is found by
METHODS = ("magnitude", "grasp", "grasp_abs", "random")
#: where the pruning ratio applies: over all of W, or per neuron
SCOPES = ("global", "neuron")


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    """``value`` if it is in ``allowed``, else ConfigError naming the parameter ``name`` and the choices."""
    if value not in allowed:
        raise bad_value(name, f"must be one of {', '.join(allowed)}", value)
    return value


def run_agd(problem: Problem, W0: torch.Tensor, solver: SolverSpec, iters: int | None = None,
            backend: str = "auto") -> torch.Tensor:
    """W after exactly ``iters`` AGD iterations (no early stop) on the problem's mask."""
    if iters is not None:
        if iters == 0:
            return W0.clone()
        # tol far below rounding: the relative-change rule cannot stop it early
        solver = solver.model_copy(update={"max_iter": int(iters), "tol": 1e-300})
    return engine.solve(problem.X, problem.y, problem.mask, W0, solver, backend=backend).W


def _scores(method: str, problem: Problem, W: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if method == "magnitude":
        return pruning.magnitude_scores({"W": W})["W"]
    if method == "random":
        # one seeded draw per trial, so a trial's mask does not depend on its batch
        return torch.stack([pruning.random_scores({"W": W[b]}, substream(s, PRUNE))["W"]
                            for b, s in enumerate(problem.seeds)])
    if method == "grasp":
        X, y = problem.X, problem.y

        def loss(p):  # sum over trials: the Hessian is block-diagonal, each trial scores on its own
            return engine.risk(X, y, p["W"]).sum()

        return pruning.grasp_scores({"W": W}, loss, masks={"W": mask})["W"]
    if method == "grasp_abs":
        # |theta (.) H g|: on this model the signed GraSP score ranks the oracle's weights no better
        # than chance near W* (docs/inaccurate-masks.md); its magnitude does
        return _scores("grasp", problem, W, mask).abs()
    raise bad_value("method", f"must be one of {', '.join(METHODS)}", method)


def prune_learner(method: str, problem: Problem, W: torch.Tensor, mask: torch.Tensor, fraction: float, *,
                  of: str = "total", scope: str = "global") -> torch.Tensor:
    """A new mask (B, d, K), nested in ``mask``, with ``fraction`` pruned by ``method``'s scores at W.

    of='total': the target pruning ratio of W; of='kept': the share of the kept weights to remove
    (an IMP round).
    """
    check_choice("scope", scope, SCOPES)
    s = _scores(method, problem, W, mask)
    if scope == "global":
        return pruning.prune({"W": s}, {"W": mask}, fraction, scope="global", of=of, batched=True)["W"]
    K = W.shape[-1]
    cols = {f"w{j}": s[..., j] for j in range(K)}
    mcols = {f"w{j}": mask[..., j] for j in range(K)}
    out = pruning.prune(cols, mcols, fraction, scope="layerwise", of=of, batched=True)
    return torch.stack([out[f"w{j}"] for j in range(K)], dim=-1)


def mask_quality(problem: Problem, mask: torch.Tensor, W: torch.Tensor) -> dict[str, torch.Tensor]:
    """Accuracy (= recall) and precision of ``mask`` against the oracle mask, after aligning the
    learner's neurons to the oracle's by the weights W (optimal assignment)."""
    acc, precision = mask_recall_precision(problem.oracle_mask, mask, align(W, problem.W_star))
    return {"accuracy": acc, "precision": precision}


@dataclass
class IMPResult:
    """Per round of ``imp``: the (nested) masks, the trained weights, their exact test RMSE (B,) and the
    iterations run."""

    masks: list[torch.Tensor]  # round 0 = the starting mask, then one per round (nested)
    weights: list[torch.Tensor]  # the trained W of every round
    test_rmse: list[torch.Tensor]  # exact test RMSE of every round's W, (B,) each
    iterations: list[torch.Tensor]


def imp(problem: Problem, W0: torch.Tensor, solver: SolverSpec, *, rate: float, rounds: int,
        rewind_iter: int = 0, scope: str = "global", backend: str = "auto") -> IMPResult:
    """Iterative magnitude pruning on the oracle learner.

    Train on the current mask; prune ``rate`` of the kept weights by magnitude of the trained W;
    rewind to the weights of iteration ``rewind_iter`` of the first (dense) training (0: W0) on the
    new mask; repeat ``rounds`` times. Round 0 is the unpruned training.
    """
    W_rewind = W0 if rewind_iter == 0 else run_agd(problem, W0, solver, rewind_iter, backend)
    out = IMPResult([], [], [], [])

    def train_level(level, mask):
        res = engine.solve(problem.X, problem.y, mask, W_rewind * mask, solver, backend=backend)
        out.masks.append(mask)
        out.weights.append(res.W)
        out.test_rmse.append(test_rmse_exact(res.W, problem.W_star))
        out.iterations.append(res.iterations)
        return res.W

    def next_masks(level, W, mask):
        return prune_learner("magnitude", replace(problem, mask=mask), W, mask, rate, of="kept", scope=scope)

    pruning.imp_loop(problem.mask.clone(), train_level, next_masks, rounds)
    return out


@dataclass
class FoundMask:
    """A learner mask found by pruning a dense learner, per trial: the problem on that mask, the start of
    the pruned training, the dense weights it was found at, lambda, and the mask's accuracy and precision."""

    problem: Problem  # the trials with the found learner mask
    W0: torch.Tensor  # the start of the pruned training, on the mask
    W_pre: torch.Tensor  # the dense learner's weights the mask was found at
    lam: torch.Tensor  # each trial's dense-start distance
    accuracy: torch.Tensor  # of the found mask, aligned by W_pre
    precision: torch.Tensor


def trial_lambdas(seeds: list[int], lam_min: float, lam_max: float) -> torch.Tensor:
    """Each trial's dense-start distance, uniform on [lam_min, lam_max] from its own seed."""
    out = []
    for s in seeds:
        u = float(torch.rand(1, generator=torch.Generator().manual_seed(substream(s, DENSE_START_DISTANCE)),
                             dtype=torch.float64))
        out.append(lam_min + (lam_max - lam_min) * u)
    return torch.tensor(out, dtype=torch.float64)


def find_mask(oracle, N: int, seeds: list[int], *, ratio: float, method: str, pre_iters: int,
              lam_min: float, lam_max: float, solver: SolverSpec, scope: str = "global",
              restart: str = "rewind", device="cpu", dtype=torch.float64, backend: str = "auto") -> FoundMask:
    """The Figures 7-9 pipeline: a dense learner starts at a local point (distance drawn per trial),
    runs ``pre_iters`` AGD iterations on all N samples, is pruned to ``ratio`` by ``method``, and
    the pruned training starts at W0 (.) M ('rewind') or W_pre (.) M ('continue')."""
    from ..init import local_start
    from ..oracle import make_problem

    check_choice("restart", restart, ("rewind", "continue"))
    ones = torch.ones(oracle.d, oracle.K, dtype=torch.float64)
    P = make_problem(oracle, N, seeds, device=device, dtype=dtype, learner_mask=ones)
    lam = trial_lambdas(seeds, lam_min, lam_max)
    W0 = torch.cat([local_start(P.W_star[b:b + 1], P.mask[b:b + 1], float(lam[b]), [s])
                    for b, s in enumerate(seeds)])
    W_pre = run_agd(P, W0, solver, pre_iters, backend)
    M = prune_learner(method, P, W_pre, P.mask, ratio, of="total", scope=scope)
    q = mask_quality(P, M, W_pre)
    start = (W0 if restart == "rewind" else W_pre) * M
    return FoundMask(replace(P, mask=M), start, W_pre, lam, q["accuracy"], q["precision"])
