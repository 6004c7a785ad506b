"""Figure 8: convergence on inaccurate masks. As Figure 7, keeping trials whose mask accuracy lies in
[0.85, 0.90]: iterations needed to reach an error of 1e-2 .. 1e-6. The paper: at 1e-6 about 1300
(40 % pruned), 1180 (50 %), 1040 (60 %), 820 (70 %) - more pruning, fewer iterations.

What "error" is here: an inaccurate mask cannot express W*, so the test error against the oracle
has a floor far above 1e-6 (Figure 7). The paper's curve must therefore measure convergence to the
limit W_hat of the pruned training; we record ||W_t - W_hat||_F / ||W_hat||_F every
``record_every`` iterations. Two runs of the same deterministic solve: the first finds W_hat (at a
tight tol), the second asks the engine for the weight-error curve against it. Near W_hat the
function-space distance sqrt(E(g(x;W_t) - g(x;W_hat))^2) is within constant factors of this
weight distance, so both give the same rate and iteration counts that differ by a bounded offset."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import Field

from .. import engine, plotting
from .. import verdicts as vd
from ..analysis import median_ci
from ..config import SolverSpec
from ..device import DTYPES
from ..metrics import aligned_relative_error, test_rmse_exact, test_rmse_sampled
from ..oracle import mask_accuracy
from . import masks as mk
from .base import Cell, Experiment
from .fig7 import FoundMaskConfig, notes_common

__all__ = ["Fig8Config", "first_below", "Fig8", "EXPERIMENT"]


class Fig8Config(FoundMaskConfig):
    """Figure 8's settings: the mask finder's, the error levels to reach and the accuracy window kept."""

    solver: Annotated[SolverSpec, Field(description="Algorithm 1's settings; a tight tol so that W_hat is meaningful "
                                                    "below 1e-6")] = SolverSpec(tol=1e-12)
    levels: Annotated[tuple[float, ...], Field(min_length=1, description="error levels to reach")] = \
        (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
    acc_low: Annotated[float, Field(ge=0, le=1, description="keep trials with mask accuracy >= acc_low")] = 0.85
    acc_high: Annotated[float, Field(ge=0, le=1, description="... and <= acc_high")] = 0.90
    record_every: Annotated[int, Field(ge=1, description="curve resolution (iterations)")] = 10


def _reached(ratio: dict, level: float) -> int:
    """How many kept trials of one pruning ratio (a summary row) reached ``level`` within max_iter (a
    trial whose limit did not converge counts as not reached: there is no limit to measure against)."""
    return next(x["reached"] for x in ratio["levels"] if x["level"] == level)


def first_below(curve: np.ndarray, level: float, every: int) -> int | None:
    """The first iteration at which ``curve`` (recorded every ``every`` iterations) is below ``level``;
    None if it never is."""
    idx = np.nonzero(curve < level)[0]
    return int(idx[0] * every) if len(idx) else None


class Fig8(Experiment):
    """Figure 8: iterations to reach each error level on masks of accuracy in [acc_low, acc_high]."""

    name = "fig8"
    title = "Figure 8: iterations to converge on inaccurate GraSP masks"
    Config = Fig8Config
    workload = "found_mask"  # what a trial costs (sweep.trial_workload)
    typical_iterations = {"quick": 3000, "paper": 9860}  # quick: the mean of the quick sweep; paper: of the paper-scale run (benchmarks/cost_model.py)
    capped_share = 0.9  # of the paper-scale run's solves, at max_iter = 10,000 (sweep.typical_iterations)

    def presets(self):
        return {"quick": dict(trials=8, pruning=(0.4, 0.6), solver=dict(max_iter=3000, tol=1e-10), test_error="exact",
                              acc_low=0.7, acc_high=0.95, levels=(1e-2, 1e-3, 1e-4)),
                "paper": dict(trials=1000)}

    def cells(self, cfg):
        # what the rows hold depends on the levels and the curve resolution too
        extra = {**cfg.finder(), "levels": list(cfg.levels), "record_every": cfg.record_every}
        return [Cell({"pruning": p}, cfg.spec(cfg.N), extra=extra) for p in cfg.pruning]

    def run_cell(self, cfg, cell, seeds, device):
        fm = mk.find_mask(cfg.oracle(), cell.spec.N, seeds, ratio=cell.params["pruning"], method=cfg.method,
                          pre_iters=cfg.pre_iters, lam_min=cfg.lam_min, lam_max=cfg.lam_max, solver=cfg.solver,
                          scope=cfg.scope, restart=cfg.restart, device=device,
                          dtype=DTYPES[cfg.dtype])
        P, solver = fm.problem, cfg.solver
        first = engine.solve(P.X, P.y, P.mask, fm.W0, solver)
        res = engine.solve(P.X, P.y, P.mask, fm.W0, solver, W_target=first.W, record_every=cfg.record_every)
        W = res.W.double()
        rel, perm = aligned_relative_error(W, P.W_star)
        acc = mask_accuracy(P.oracle_mask, P.mask, perm)
        test = test_rmse_exact(W, P.W_star) if cfg.test_error == "exact" else \
            test_rmse_sampled(W, P.W_star, P.seeds, cfg.n_test)
        rows = []
        for b in range(len(seeds)):
            c = res.curve[b].cpu().numpy()
            rows.append({"seed": int(seeds[b]), "mask_accuracy": float(acc[b]), "found_accuracy": float(fm.accuracy[b]),
                         "precision": float(fm.precision[b]), "lam": float(fm.lam[b]),
                         "iterations": int(res.iterations[b]), "converged": bool(res.converged[b]),
                         "failed": bool(res.failed[b]), "rate": float(res.rate[b]),
                         "test_rmse": float(test[b]), "relative_error": float(rel[b]),
                         "limit_converged": bool(first.converged[b]),
                         # a limit that did not converge is just the last iterate: no levels to count
                         "iters_to": [first_below(c, lv, cfg.record_every) if bool(first.converged[b]) else None
                                      for lv in cfg.levels]})
        return rows

    def summarize(self, cfg, df):
        sel = df[(df["mask_accuracy"] >= cfg.acc_low) & (df["mask_accuracy"] <= cfg.acc_high)]
        out = []
        for p, sub in sel.groupby("pruning"):
            its = np.array([[np.nan if v is None else v for v in row] for row in sub["iters_to"]], dtype=float)
            per_level = []
            for i, lv in enumerate(cfg.levels):
                col = np.where(np.isfinite(its[:, i]), its[:, i], np.inf)  # not reached: censored at +inf
                med = float(np.quantile(col, 0.5, method="inverted_cdf")) if len(col) else np.inf
                _, lo, hi = median_ci(col)
                per_level.append({"level": lv, "reached": int(np.isfinite(col).sum()),
                                  "median": med if np.isfinite(med) else None, "ci_low": lo, "ci_high": hi})
            out.append({"pruning": float(p), "trials": int(len(sub)), "rate_median": float(sub["rate"].median()),
                        "levels": per_level})
        return {"ratios": out, "kept": int(len(sel)), "trials": int(len(df))}

    @plotting.styled
    def plot(self, cfg, df, summary, out_dir: Path):
        fig, ax = plotting.new_figure(5.0, 3.6)
        colors = {}
        for r in summary["ratios"]:
            pts = [(lv["level"], lv["median"]) for lv in r["levels"] if lv["median"] is not None]
            if pts:
                line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", ms=3,
                                label=f"{r['pruning']:.0%} pruned ({r['trials']} trials)")
                colors[round(100 * r["pruning"])] = line.get_color()
        ref = plotting.paper_values().get("fig8_iterations_to_test_error_1e-6", {})
        for i, (k, v) in enumerate(ref.items()):
            plotting.paper_points(ax, [1e-6], [v], mfc=colors.get(int(k.rstrip("%")), "gold"),
                                  label="paper: iterations to $10^{-6}$ (colour = pruning)" if i == 0 else "_nolegend_")
        if not colors:  # no median to draw: say how many of the kept trials got how far
            deepest = min(cfg.levels)
            counts = ", ".join(f"{r['pruning']:.0%}: {_reached(r, deepest)}/{r['trials']}" for r in summary["ratios"])
            head = ("fewer than half the kept trials reached a level at every pruning ratio\n"
                    f"kept trials whose limit converged and that reached {deepest:g} within max_iter:\n{counts}\n"
                    if summary["kept"] else "no trial's mask accuracy fell in the window\n")
            ax.text(0.5, 0.6, head +
                    f"({summary['kept']} of {summary['trials']} trials kept: mask accuracy in range)",
                    transform=ax.transAxes, ha="center", va="center", fontsize=8, color="tab:red",
                    bbox=dict(fc="white", ec="none", alpha=0.9))
        plotting.log_axis(ax, "x")
        ax.set_xlim(2 * max(cfg.levels), 0.5 * min(min(cfg.levels), 1e-6))  # our levels and the paper's 1e-6,
        ax.legend(loc="lower left")                                         # decreasing to the right
        ax.set_xlabel(r"error level reached (relative distance to the limit $\hat W$)")
        ax.set_ylabel("iterations (median over trials)")
        plotting.trials_title(ax, f"Mask accuracy in [{cfg.acc_low}, {cfg.acc_high}]", summary["trials"],
                              len(self.cells(cfg)) * cfg.trials)
        return plotting.save(fig, out_dir, "fig8")

    def claims(self, cfg, summary, paper):
        """More pruning, fewer iterations to the deepest level (the extremes' median intervals disjoint; any
        pair disjoint in the reverse order counts against it, vd.pruning_order), withheld for the cap; and
        the iterations to 1e-6 at each pruning ratio against the paper's, withheld
        where >= 5% of that ratio's kept trials never reached the level within max_iter (capped)."""
        ref = paper.get("fig8_iterations_to_test_error_1e-6", {})
        tol = paper.get("tolerances", {}).get("fig8_iterations_to_test_error_1e-6", {"relative": 0.1})
        deepest = min(cfg.levels)
        ests, capped = {}, {}
        for r in summary["ratios"]:
            lv = [x for x in r["levels"] if x["level"] == deepest][0]
            hi = lv.get("ci_high")
            ests[r["pruning"]] = vd.Estimate(lv["median"], lv.get("ci_low"), math.inf if hi == math.inf else hi,
                                             r["trials"], fmt=".0f")
            capped[r["pruning"]] = vd.capped_reason(r["trials"] - lv["reached"], r["trials"],
                                                    f"at {r['pruning']:.0%} pruning (never reached {deepest:g})")
        text = ", ".join(f"{p:.0%}: {e.text()}" for p, e in ests.items()) or "no trials in the window"
        if ests:  # what the censored medians hide: how many got there, and how fast each ratio contracts
            text += ("; limit converged and reached within max_iter: " + ", ".join(
                f"{r['pruning']:.0%}: {_reached(r, deepest)} of {r['trials']}" for r in summary["ratios"])
                + "; median linear rate: " + ", ".join(
                f"{r['pruning']:.0%}: {r['rate_median']:.5f}" for r in summary["ratios"]))
        trend = vd.pruning_order(ests, "median", few="fewer than 2 pruning ratios with trials",
                                 no_interval="too few trials for a median interval at an extreme ratio")
        # withheld for the cap whatever the order: a trial whose limit did not converge is recorded as never
        # reaching the level, though it may have reached it (of the limit it was heading to) long before
        # max_iter, so the capped trials are not all above the observed ones
        withheld = [next((c for c in capped.values() if c), None)]
        out = [vd.judge(vd.Estimate(None, n=max((e.n for e in ests.values()), default=None)), None, None, trend,
                        what="", withheld=withheld).claim(
            f"More pruning needs fewer iterations (to reach {deepest:g})",
            "to 1e-6: " + ", ".join(f"{k}: {v}" for k, v in ref.items()),
            f"median iterations to {deepest:g} (distance to the limit) [95% interval]: {text}")]
        setting = vd.setting_reason(
            {"d": cfg.d, "K": cfg.K, "r": cfg.r, "N": cfg.N, "accuracy window": [cfg.acc_low, cfg.acc_high],
             "deepest level": deepest},
            {"d": 100, "K": 5, "r": 20, "N": 200, "accuracy window": [0.85, 0.9], "deepest level": 1e-6},
            "ticketlab sweep fig8 --scale paper")
        out += vd.at_pruning_ratios(ref, ests, {q: [capped[q], setting] for q in ests}, tol,
                                    vd.point_trend(trend, "fewer iterations with more pruning"),
                                    claim="At {key} pruning, about {pv} iterations reach 1e-6",
                                    what="median iterations at {key}", missing="no cell at {key} pruning",
                                    command="ticketlab sweep fig8 --scale paper")
        return out

    def notes(self, cfg):
        out = notes_common(cfg)
        out.append(f"Trials kept: mask accuracy in [{cfg.acc_low}, {cfg.acc_high}]"
                   + (" (wider than the paper's [0.85, 0.90]: the quick preset has too few trials)"
                      if (cfg.acc_low, cfg.acc_high) != (0.85, 0.9) else "") + ".")
        out.append("The error whose levels are counted is ||W_t - W_hat|| / ||W_hat|| with W_hat the limit of the "
                   "pruned training (the test error itself floors far above 1e-6 on an inaccurate mask). The "
                   "median counts a trial that never reaches a level (or whose limit did not converge) as +inf, so "
                   "it is reported only when at least half the kept trials reach the level within max_iter.")
        if cfg.scale == "quick":
            out.append("Quick scale: the trend does not show - most trials on these GraSP masks do not converge "
                       "within max_iter (at paper settings and 10,000 iterations, 0 of 16 at 70 % pruning did), so "
                       "the claim is usually undecided; on near-accurate masks the ordering holds "
                       "(docs/inaccurate-masks.md).")
        return out


#: the registered experiment (``experiments.get_experiment('fig8')``)
EXPERIMENT = Fig8()
