"""Figure 7: training on inaccurate masks found by GraSP. Oracle K=5, d=100, r*_j=20; a dense learner
runs 20 AGD iterations, is pruned to 40/50/60/70 %, and the pruned learner is trained on N=200
samples. Test RMSE (log) against mask accuracy: the paper sees it fall as accuracy rises and, at
equal accuracy, as the pruning ratio rises."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field, model_validator

from .. import plotting
from .. import verdicts as vd
from ..analysis import spearman
from ..config import InitSpec, OracleSpec, SolverSpec, TrialSpec
from ..device import DTYPES
from ..trial import run_trials
from . import masks as mk
from .base import AGDConfig, Cell, Experiment

__all__ = ["FoundMaskConfig", "found_mask_rows", "notes_common", "Fig7Config", "log_fit", "Fig7", "EXPERIMENT"]


class FoundMaskConfig(AGDConfig):
    """The oracle, the dense learner and the mask finder shared by Figures 7-9."""

    d: Annotated[int, Field(ge=2, description="input dimension")] = 100
    K: Annotated[int, Field(ge=1, description="neurons")] = 5
    r: Annotated[int, Field(ge=1, description="oracle non-zeros per neuron r*_j")] = 20
    noise: Annotated[float, Field(ge=0, description="sigma / E_y (not stated for Figures 7-9)")] = 0.0
    N: Annotated[int, Field(ge=1, description="training samples")] = 200
    pruning: Annotated[tuple[float, ...], Field(min_length=1, description="target pruning ratios in [0, 1)")] = \
        (0.4, 0.5, 0.6, 0.7)
    method: Literal["grasp_abs", "grasp", "magnitude", "random"] = "grasp_abs"
    scope: Literal["global", "neuron"] = "global"
    pre_iters: Annotated[int, Field(ge=0, description="dense AGD iterations before pruning")] = 20
    lam_min: Annotated[float, Field(gt=0, description="dense start distance, drawn per trial from "
                                                      "U[lam_min, lam_max] (not stated)")] = 0.2
    lam_max: Annotated[float, Field(gt=0)] = 1.0
    restart: Literal["rewind", "continue"] = "rewind"
    test_error: Literal["exact", "sampled"] = "sampled"
    n_test: Annotated[int, Field(ge=1, description="fresh oracle samples for test_error='sampled'")] = 100_000

    @model_validator(mode="after")
    def _ranges(self):
        if self.lam_max < self.lam_min:
            raise ValueError(f"lam_max: must be >= lam_min = {self.lam_min} (got {self.lam_max})")
        if self.r > self.d:
            raise ValueError(f"r: must be <= d = {self.d} (got {self.r})")
        bad = [p for p in self.pruning if not 0 <= p < 1]
        if bad:
            raise ValueError(f"pruning: must be ratios in [0, 1) (got {bad})")
        return self

    def oracle(self) -> OracleSpec:
        return OracleSpec(d=self.d, K=self.K, r=self.r, layout="overlap", noise=self.noise)

    def spec(self, N: int, record_every: int = 0) -> TrialSpec:
        return TrialSpec(oracle=self.oracle(), N=N, solver=self.solver,
                         init=InitSpec(kind="local", lam=(self.lam_min + self.lam_max) / 2),
                         test_error=self.test_error, n_test=self.n_test, record_every=record_every,
                         dtype=self.dtype)

    def finder(self) -> dict:
        """What defines the found mask beyond the TrialSpec (part of every cell's seed key)."""
        return {"method": self.method, "scope": self.scope, "pre_iters": self.pre_iters, "lam_min": self.lam_min,
                "lam_max": self.lam_max, "restart": self.restart}


def found_mask_rows(cfg: FoundMaskConfig, cell: Cell, seeds: list[int], device: str) -> tuple[list[dict], mk.FoundMask]:
    """Find each trial's mask, train the pruned learner, and add the mask's quality to run_trials' rows."""
    ratio = cell.params["pruning"]
    fm = mk.find_mask(cfg.oracle(), cell.spec.N, seeds, ratio=ratio, method=cfg.method, pre_iters=cfg.pre_iters,
                      lam_min=cfg.lam_min, lam_max=cfg.lam_max, solver=cfg.solver, scope=cfg.scope,
                      restart=cfg.restart, device=device, dtype=DTYPES[cfg.dtype])
    rows = run_trials(cell.spec, seeds, device=device, problem=fm.problem, W0=fm.W0)
    for b, row in enumerate(rows):
        row.update(found_accuracy=float(fm.accuracy[b]), precision=float(fm.precision[b]), lam=float(fm.lam[b]),
                   pruned_zero=bool(torch.all(fm.W0[b][fm.problem.mask[b] == 0] == 0)))
    return rows, fm


def notes_common(cfg: FoundMaskConfig) -> list[str]:
    """The report's notes shared by Figures 7-9: the dense learner, the pruning, the restart, the noise
    and the test error of ``cfg``."""
    return [
        f"Dense learner: local start at a distance lambda ~ U[{cfg.lam_min}, {cfg.lam_max}] per trial "
        f"(not stated; the spread gives the range of mask accuracies the paper bins), {cfg.pre_iters} AGD "
        f"iterations on all N samples, then pruned by '{cfg.method}' ({cfg.scope} over W).",
        "'grasp_abs' ranks by |theta (.) H g|: the signed GraSP keep-score theta (.) H g ranks the oracle's "
        "weights about as well as chance near W* on this model (mask accuracy ~0.5 at 40-70 % pruning), so "
        "it cannot produce the paper's accuracies of 0.7-1.0 (docs/inaccurate-masks.md); method='grasp' "
        "runs the signed score.",
        f"Pruned training restarts from {'W0 (.) M (rewind)' if cfg.restart == 'rewind' else 'W_pre (.) M'}; "
        f"noise sigma/E_y = {cfg.noise} (not stated).",
        "Test error: " + (f"RMSE on {cfg.n_test} fresh oracle samples" if cfg.test_error == "sampled"
                          else "exact population RMSE (closed form)")
        + "; mask accuracy after aligning the trained learner's neurons to the oracle's.",
    ]


class Fig7Config(FoundMaskConfig):
    """Figure 7's settings: the mask finder's, plus how trials are binned by mask accuracy."""

    bin_width: Annotated[float, Field(gt=0, le=1, description="mask accuracy bin width")] = 0.025
    acc_min: Annotated[float, Field(ge=0, le=1, description="lowest accuracy shown")] = 0.7
    min_bin_trials: Annotated[int, Field(ge=1, description="bins with fewer trials are dropped")] = 10


def log_fit(df: pd.DataFrame) -> dict:
    """log10 test RMSE = c0 + c_acc accuracy + c_prune pruning, least squares over all trials."""
    ok = df["test_rmse"].astype(float) > 0
    sub = df[ok]
    if len(sub) < 4 or sub["pruning"].nunique() < 2:
        return {"c_acc": None, "c_prune": None, "n": int(len(sub))}
    A = np.stack([np.ones(len(sub)), sub["mask_accuracy"].astype(float), sub["pruning"].astype(float)], 1)
    y = np.log10(sub["test_rmse"].astype(float).to_numpy())
    c, *_ = np.linalg.lstsq(A, y, rcond=None)
    se = [None, None, None]
    if len(sub) > 3:  # ordinary least-squares standard errors of the coefficients
        s2 = float(((y - A @ c) ** 2).sum()) / (len(sub) - 3)
        cov = s2 * np.linalg.pinv(A.T @ A)
        se = [float(np.sqrt(max(v, 0.0))) for v in np.diag(cov)]
    return {"c0": float(c[0]), "c_acc": float(c[1]), "c_prune": float(c[2]), "n": int(len(sub)),
            "c_acc_se": se[1], "c_prune_se": se[2]}


class Fig7(Experiment):
    """Figure 7: test RMSE against the accuracy of found masks, one curve per pruning ratio."""

    name = "fig7"
    title = "Figure 7: test error against the accuracy of GraSP masks"
    Config = Fig7Config
    workload = "found_mask"  # what a trial costs (sweep.trial_workload)
    typical_iterations = {"paper": 8950}  # paper: the mean of the paper-scale run (benchmarks/cost_model.py)
    capped_share = 0.75  # of the paper-scale run's solves, at max_iter = 10,000 (sweep.typical_iterations)

    def presets(self):
        return {"quick": dict(trials=24, solver=dict(max_iter=2000), test_error="exact", min_bin_trials=3, bin_width=0.05),
                "paper": dict(trials=1000)}

    def cells(self, cfg):
        return [Cell({"pruning": p}, cfg.spec(cfg.N), extra=cfg.finder()) for p in cfg.pruning]

    def run_cell(self, cfg, cell, seeds, device):
        return found_mask_rows(cfg, cell, seeds, device)[0]

    def summarize(self, cfg, df):
        df = df.copy()
        w = cfg.bin_width
        df["bin"] = np.floor(df["mask_accuracy"].astype(float) / w + 1e-9) * w
        bins = []
        for (p, b), sub in df.groupby(["pruning", "bin"]):
            if b + w <= cfg.acc_min + 1e-12 or len(sub) < cfg.min_bin_trials:
                continue
            t = sub["test_rmse"].astype(float)
            bins.append({"pruning": float(p), "accuracy": float(b + w / 2), "trials": int(len(sub)),
                         "median": float(t.median()), "q25": float(t.quantile(0.25)),
                         "q75": float(t.quantile(0.75))})
        per = []
        for p, sub in df.groupby("pruning"):
            per.append({"pruning": float(p), "trials": int(len(sub)),
                        "accuracy_median": float(sub["mask_accuracy"].median()),
                        "precision_median": float(sub["precision"].median()),
                        "test_median": float(sub["test_rmse"].median()),
                        "spearman_acc_test": spearman(sub["mask_accuracy"], np.log(sub["test_rmse"].astype(float)))})
        return {"bins": bins, "per_ratio": per, "fit": log_fit(df), "trials": int(len(df))}

    @plotting.styled
    def plot(self, cfg, df, summary, out_dir: Path):
        fig, ax = plotting.new_figure(5.0, 3.6)
        for p in sorted({b["pruning"] for b in summary["bins"]}):
            pts = sorted((b for b in summary["bins"] if b["pruning"] == p), key=lambda b: b["accuracy"])
            plotting.band(ax, [b["accuracy"] for b in pts], [b["median"] for b in pts], [b["q75"] for b in pts],
                          lower=[b["q25"] for b in pts], band_label="interquartile range", label=f"{p:.0%} pruned")
        plotting.log_axis(ax, "y")
        ax.set_xlabel("mask accuracy")
        ax.set_ylabel("test RMSE (median per bin)")
        plotting.trials_title(ax, f"{cfg.method} masks, N={cfg.N} (bins with >= {cfg.min_bin_trials} trials)",
                              summary["trials"], len(self.cells(cfg)) * cfg.trials)
        return plotting.save(fig, out_dir, "fig7")

    def claims(self, cfg, summary, paper):
        """Both of the paper's directions, each on its coefficient of log10 test RMSE = c0 + c_acc accuracy
        + c_prune pruning with a 95% interval (the paper gives no numbers to compare)."""
        fit = summary["fit"]
        n = max((x["trials"] for x in summary["per_ratio"]), default=None)
        rho = ", ".join(f"{x['pruning']:.0%}: {x['spearman_acc_test']:.2f}" for x in summary["per_ratio"]
                        if x["spearman_acc_test"] is not None)
        out = []
        for key, claim, paper_text, what in (
                ("c_acc", "Test error falls as the mask accuracy rises",
                 "test RMSE falls steadily from accuracy 0.7 to 1.0 at every pruning ratio",
                 "log10 RMSE slope per unit accuracy"),
                ("c_prune", "At equal mask accuracy, test error falls as the pruning ratio rises",
                 "curves ordered 40% > 50% > 60% > 70% at every accuracy",
                 "log10 RMSE slope per unit pruning ratio at fixed accuracy")):
            if fit.get(key) is None:
                out.append(vd.undecided("no fit", "fewer than 4 trials or a single pruning ratio").claim(
                    claim, paper_text, "n/a"))
                continue
            est = vd.Estimate.from_se(fit[key], fit.get(key + "_se"), n, fmt=".2f")
            v = vd.judge(est, None, None, vd.trend_of(est, -1, None), what=what)
            out.append(v.claim(claim, paper_text, f"{what} {est.text()}"
                               + (f"; Spearman(acc, log RMSE) per ratio {rho}" if key == "c_acc" and rho else "")))
        return out

    def notes(self, cfg):
        out = notes_common(cfg)
        out.append(f"Bins of width {cfg.bin_width} in mask accuracy; bins with < {cfg.min_bin_trials} trials dropped"
                   + (" (the paper drops < 10; the quick preset has too few trials for that)"
                      if cfg.min_bin_trials < 10 else "") + ".")
        if cfg.scale == "quick":
            out.append("Quick scale: most trials stop at max_iter before the stopping rule; measured, both trends "
                       "show, but test RMSE stays at 0.1-0.2 (docs/inaccurate-masks.md).")
        return out


#: the registered experiment (``experiments.get_experiment('fig7')``)
EXPERIMENT = Fig7()
