"""Figure 3: linear convergence, and the rate against sparsity for AGD and GD (N=5000, d=300, K=10,
eta=0.5, beta=0.2). The paper's rate grows from about 0.972 to 0.994 as r~^-1/2 falls from 0.2 to
0.085, near-linearly, and GD is slightly slower at every point."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import Field, model_validator

from .. import plotting
from ..analysis import linear_fit
from ..config import InitSpec, OracleSpec, SolverSpec, TrialSpec
from .base import AGDConfig, Cell, Design, Experiment, problem_group


class Fig3Config(AGDConfig):
    d: Annotated[int, Field(ge=2)] = 300
    K: Annotated[int, Field(ge=1)] = 10
    N: Annotated[int, Field(ge=1)] = 5000
    r: Annotated[tuple[int, ...], Field(min_length=1, description="kept weights per neuron (all equal)")] = \
        (10, 40, 70, 100, 130)
    beta: Annotated[tuple[Annotated[float, Field(ge=0, lt=1)], ...],
                    Field(min_length=1, description="momentum values, one cell each (0 is GD); solver.beta is "
                                                    "not used")] = (0.2, 0.0)
    lam: Annotated[float, Field(gt=0, description="local start distance (not stated)")] = 0.2
    solver: Annotated[SolverSpec, Field(description="Algorithm 1's settings; tol below the paper's 1e-8 so that the "
                                                    "error itself gets under 1e-6 (the 1e-8 rule stops near "
                                                    "tol / (1 - rate), about 2e-6 here)")] = SolverSpec(tol=1e-10)
    record_every: Annotated[int, Field(ge=1, description="error curve resolution (iterations)")] = 10
    design: Design = "independent"

    @model_validator(mode="after")
    def _beta_is_the_grid(self):
        if self.solver.beta != SolverSpec().beta:
            raise ValueError("fig3 runs every momentum of its beta grid: set beta (e.g. beta=0.2,0), not solver.beta")
        return self


class Fig3(Experiment):
    name = "fig3"
    title = "Figure 3: convergence rate against sparsity, AGD and GD"
    Config = Fig3Config

    def presets(self):
        return {"quick": dict(d=100, N=2000, trials=6, r=(10, 30, 60)), "paper": dict(trials=20)}

    def cells(self, cfg):
        out = []
        for r in cfg.r:
            oracle = OracleSpec(d=cfg.d, K=cfg.K, r=r, layout="overlap")
            for b in cfg.beta:
                solver = SolverSpec(**{**cfg.solver.model_dump(), "beta": b})
                spec = TrialSpec(oracle=oracle, N=cfg.N, solver=solver, init=InitSpec(lam=cfg.lam),
                                 record_every=cfg.record_every, dtype=cfg.dtype)
                group = problem_group(spec) if cfg.design == "common" else None
                out.append(Cell({"r": r, "beta": b}, spec, group=group))
        return out

    def summarize(self, cfg, df):
        rates, curves = [], []
        for (r, b), sub in df.groupby(["r", "beta"]):
            rate = sub["rate"].astype(float)
            hit = []
            for c in sub["curve"]:
                arr = np.array([np.nan if v is None else v for v in c], dtype=float)
                idx = np.nonzero(arr < 1e-6)[0]
                hit.append(idx[0] * cfg.record_every if len(idx) else np.nan)
            mean_log = np.nanmean(np.log10(np.array([[np.nan if v is None else v for v in c] for c in sub["curve"]],
                                                      dtype=float)), axis=0)
            rates.append({"r": int(r), "r_tilde": float(sub["r_tilde"].mean()), "beta": float(b),
                          "mean": float(rate.mean()), "std": float(rate.std(ddof=0)),
                          "iterations": float(sub["iterations"].mean()),
                          "iterations_to_1e-6": None if np.all(np.isnan(hit)) else float(np.nanmean(hit)),
                          "success_rate": float(sub["success"].mean()), "trials": int(len(sub))})
            curves.append({"r": int(r), "beta": float(b), "log10_error": [None if not np.isfinite(v) else float(v)
                                                                          for v in mean_log]})
        fits = {}
        for b in sorted({x["beta"] for x in rates}):
            pts = [x for x in rates if x["beta"] == b]
            fits[str(b)] = linear_fit([x["r_tilde"] ** -0.5 for x in pts], [x["mean"] for x in pts])
        return {"rates": rates, "curves": curves, "fits": fits, "trials": int(len(df))}

    def plot(self, cfg, df, summary, out_dir: Path):
        fig, (ax1, ax2) = plotting.plt.subplots(1, 2, figsize=(8.6, 3.4), constrained_layout=True)
        agd = max(cfg.beta)
        for c in summary["curves"]:
            if c["beta"] != agd:
                continue
            y = np.array([np.nan if v is None else v for v in c["log10_error"]], dtype=float)
            ax1.plot(np.arange(len(y)) * cfg.record_every, y, label=f"r = {c['r']}")
        ax1.set_xlabel("iteration")
        ax1.set_ylabel("log10 relative error")
        ax1.set_title(f"(a) AGD, beta = {agd}")
        ax1.legend(fontsize=7)
        for b in sorted({x["beta"] for x in summary["rates"]}, reverse=True):
            pts = sorted((x for x in summary["rates"] if x["beta"] == b), key=lambda x: x["r_tilde"])
            plotting.band(ax2, [x["r_tilde"] ** -0.5 for x in pts], [x["mean"] for x in pts],
                          [x["std"] for x in pts], label=("GD" if b == 0 else "AGD") + f" (beta={b})")
        ax2.set_xlabel(r"$\tilde r^{-1/2}$")
        ax2.set_ylabel("convergence rate")
        ax2.set_title("(b) rate vs sparsity")
        ax2.legend(fontsize=7)
        return plotting.save(fig, out_dir, "fig3")

    def claims(self, cfg, summary, paper):
        rates = summary["rates"]
        betas = sorted({x["beta"] for x in rates})
        out = []
        agd_b = max(betas)
        fit = summary["fits"].get(str(agd_b), {})
        agd_text = ", ".join("{:.4f} (r~={:.0f})".format(x["mean"], x["r_tilde"]) for x in rates if x["beta"] == agd_b)
        out.append({
            "claim": "At fixed N the rate improves (gets smaller) as the network is pruned: rate near-linear "
                     "in r~^-1/2",
            "paper": "AGD 0.972 at r~^-1/2=0.2 -> 0.994 at 0.085",
            "ours": "n/a" if fit.get("a") is None else
            f"AGD rates {agd_text}; "
            f"slope {fit['a']:.3f}, R^2 = {fit['r2']:.3f}",
            "verdict": None if fit.get("a") is None else bool(fit["a"] < 0),
        })
        if 0.0 in betas and agd_b > 0:
            pairs = {}
            for x in rates:
                pairs.setdefault(x["r"], {})[x["beta"]] = x["mean"]
            faster = [p[agd_b] < p[0.0] for p in pairs.values() if 0.0 in p and agd_b in p]
            out.append({
                "claim": "AGD (beta > 0) converges faster than GD (beta = 0) at every sparsity",
                "paper": "GD slightly slower at every point (0.975 -> 0.995)",
                "ours": f"AGD faster at {sum(faster)} of {len(faster)} sparsity levels",
                "verdict": bool(faster) and all(faster),
            })
        its = [x for x in rates if x["beta"] == agd_b and x["iterations_to_1e-6"] is not None]
        if its:
            ref = paper.get("fig3a_iterations_to_1e-6", {})
            out.append({
                "claim": "Iterations to reach relative error 1e-6 grow with r",
                "paper": ", ".join(f"{k}: {v}" for k, v in ref.items()),
                "ours": ", ".join(f"r={x['r']}: {x['iterations_to_1e-6']:.0f}" for x in its),
                "verdict": bool(np.all(np.diff([x["iterations_to_1e-6"] for x in
                                                 sorted(its, key=lambda x: x["r"])]) >= 0)),
            })
        return out

    def notes(self, cfg):
        return [f"Step convention '{cfg.step_convention}' (step = eta * K); see docs/step-size.md for what the "
                "literal convention gives.", f"Local start at lambda = {cfg.lam} (not stated in the paper).",
                f"Stopping rule {cfg.tol:g} (not 1e-8) so the curves reach below 1e-6 as in the paper's Figure 3a; "
                "the rate is fitted to the step norms and does not depend on it."]


EXPERIMENT = Fig3()
