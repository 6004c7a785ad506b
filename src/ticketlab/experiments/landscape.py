"""The landscape sweep: Theorem 1 measured directly. Over a grid of r~ (and N), the extreme Hessian
eigenvalues on the mask at W* and the convex radius (largest rho where every sampled point's Hessian
is positive definite), next to Figure 2's estimate of the radius from AGD success."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import AfterValidator, Field

from .. import plotting
from .. import verdicts as vd
from ..analysis import linear_fit
from ..config import OracleSpec, TrialSpec
from .base import Cell, Experiment, ExperimentConfig

__all__ = ["LandscapeConfig", "Landscape", "EXPERIMENT"]


def _radius_grid(values: tuple[float, ...]) -> tuple[float, ...]:
    from ..landscape.study import RADIUS_GRID_RULE, radius_values

    if radius_values(values) is None:
        raise ValueError(RADIUS_GRID_RULE)
    return values


class LandscapeConfig(ExperimentConfig):
    """The landscape sweep's settings: the (r, N) grid and the radii rho at which points around W* are
    sampled."""

    d: Annotated[int, Field(ge=2)] = 100
    K: Annotated[int, Field(ge=1)] = 5
    r: Annotated[tuple[int, ...], Field(min_length=1, description="kept weights per neuron (grid)")] = (5, 10, 20, 40)
    N: Annotated[tuple[int, ...], Field(min_length=1, description="sample sizes (grid)")] = (500, 2000)
    radius_grid: Annotated[tuple[float, ...], Field(min_length=1, description="relative radii rho (> 0)"),
                           AfterValidator(_radius_grid)] = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8)
    points: Annotated[int, Field(ge=1, description="random points per radius")] = 8
    hessian: Literal["smoothed", "generalized"] = "smoothed"
    bandwidth: Annotated[float, Field(gt=0, description="kink smoothing width h (smoothed Hessian)")] = 0.05

    choice_grids = frozenset({"radius_grid"})  # the radii measure the landscape; r and N are the problems


class Landscape(Experiment):
    """The landscape sweep: extreme Hessian eigenvalues at W* and the convex radius per (r~, N) cell."""

    name = "landscape"
    title = "Theorem 1 measured: Hessian on the mask and the convex radius"
    Config = LandscapeConfig
    workload = "landscape"  # what a trial costs (sweep.trial_workload)

    def presets(self):
        return {"quick": dict(trials=2, r=(5, 10, 20, 40), N=(500, 2000), points=4),
                "paper": dict(trials=20, d=500, K=10, r=(100, 144, 196, 256, 324, 400), N=(5000,), points=16)}

    def cells(self, cfg):
        out = []
        for r in cfg.r:
            oracle = OracleSpec(d=cfg.d, K=cfg.K, r=r, layout="overlap")
            for n in cfg.N:
                out.append(Cell({"r": r, "N": n}, TrialSpec(oracle=oracle, N=n, dtype=cfg.dtype),
                                extra={"radius_grid": list(cfg.radius_grid), "points": cfg.points,
                                       "hessian": cfg.hessian, "bandwidth": cfg.bandwidth}))
        return out

    def run_cell(self, cfg, cell, seeds, device):
        from ..landscape import analyze_trials
        from ..device import DTYPES

        return analyze_trials(cell.spec.oracle, cell.spec.N, seeds, cfg.radius_grid, cfg.points,
                              hessian=cfg.hessian, bandwidth=cfg.bandwidth, population=True, both=False,
                              device=device, dtype=DTYPES[cfg.dtype])

    def summarize(self, cfg, df):
        grid = sorted(cfg.radius_grid)

        def next_value(rho):  # a radius is the largest grid value with every point PD: the truth lies below the next
            return next((g for g in grid if g > rho + 1e-12), grid[-1])

        rows = []
        for (r, n), sub in df.groupby(["r", "N"]):
            rows.append({"r": int(r), "N": int(n), "r_tilde": float(sub["r_tilde"].mean()),
                         "convex_radius": float(sub["convex_radius"].mean()),
                         "convex_radius_upper": float(np.mean([next_value(x) for x in sub["convex_radius"]])),
                         "below_grid": int((sub["convex_radius"] < grid[0]).sum()),
                         "convex_radius_std": float(sub["convex_radius"].std(ddof=0)),
                         "censored": bool(sub["convex_radius_censored"].any()),
                         "censored_trials": int(sub["convex_radius_censored"].astype(bool).sum()),
                         "lambda_min_scaled": float(sub["lambda_min_scaled_at_star"].mean()),
                         "lambda_max_scaled": float(sub["lambda_max_scaled_at_star"].mean()),
                         "lambda_min_scaled_population": float(sub["lambda_min_scaled_population"].mean()),
                         "trials": int(len(sub))})
        fits = {}
        for n in sorted({x["N"] for x in rows}):
            pts = [x for x in rows if x["N"] == n]
            fits[str(n)] = linear_fit([np.sqrt(x["r_tilde"]) for x in pts], [x["convex_radius"] for x in pts])
        return {"cells": rows, "fits": fits, "trials": int(len(df))}

    @plotting.styled
    def plot(self, cfg, df, summary, out_dir: Path):
        fig, (a1, a2) = plotting.new_figure(9.2, 3.6, ncols=2)
        first, labelled = min(x["N"] for x in summary["cells"]), set()
        for n in sorted({x["N"] for x in summary["cells"]}):
            pts = sorted((x for x in summary["cells"] if x["N"] == n), key=lambda x: x["r_tilde"])
            xs = [np.sqrt(x["r_tilde"]) for x in pts]
            # the radius is the largest grid value at which every sampled point is PD: the truth lies between
            # it and the next grid value, so the band spans that bracket (averaged over trials)
            line = plotting.band(a1, xs, [x["convex_radius"] for x in pts],
                                 [x["convex_radius_upper"] for x in pts],
                                 lower=[x["convex_radius"] for x in pts], label=f"N = {n}",
                                 band_label="up to the next grid value (the radius lies in between)")
            color = line.get_color()
            if min(x["trials"] for x in pts) > 1:
                a1.errorbar(xs, [x["convex_radius"] for x in pts], yerr=[x["convex_radius_std"] for x in pts],
                            fmt="none", ecolor=color, elinewidth=0.8, capsize=2,
                            label="bars: ±1 std over trials" if n == first else "_nolegend_")
            for key, marker, y, text in (
                    ("below_grid", "v", lambda x: 0.0, f"radius below the grid's {min(cfg.radius_grid):g} (PD at W*)"),
                    ("censored_trials", "^", lambda x: x["convex_radius"],
                     f"radius at the grid's end {max(cfg.radius_grid):g} (a lower bound)")):
                hit = [(xv, y(x)) for xv, x in zip(xs, pts) if x.get(key)]
                if hit:  # each kind of marker in the legend once
                    a1.plot([h[0] for h in hit], [h[1] for h in hit], marker, ms=6, mfc="white", color=color, ls="none",
                            label="_nolegend_" if key in labelled else text)
                    labelled.add(key)
            a2.plot(xs, [x["lambda_min_scaled"] for x in pts], "o-", ms=3, color=color, label=f"N = {n}")
        # the paper's Figure 2 radius (AGD success, another quantity) where our grid is the paper's own
        ref = plotting.paper_values().get("fig2_radius_at_sqrt_r_tilde", {})
        pts_ref = sorted((float(k), v) for k, v in ref.items() if not k.startswith("_"))
        if pts_ref and (cfg.d, cfg.K) == (500, 10) and 5000 in cfg.N:
            plotting.paper_points(a1, [p[0] for p in pts_ref], [p[1] for p in pts_ref],
                                  label="paper Fig. 2: 50% radius of AGD success")
        pop_at: dict = {}  # one population value per sparsity (its cells differ only in N)
        for x in summary["cells"]:
            pop_at.setdefault(x["r"], []).append(
                (np.sqrt(x["r_tilde"]), x["lambda_min_scaled_population"]))
        pop = sorted((float(np.mean([p[0] for p in v])), float(np.mean([p[1] for p in v]))) for v in pop_at.values())
        a2.plot([p[0] for p in pop], [p[1] for p in pop], "k--", lw=1, label=r"$N = \infty$ (closed form)")
        a1.set_xlabel(r"$\sqrt{\tilde r}$")
        a1.set_ylabel("convex radius (relative to $\\|W^*\\|_F$)")
        plotting.trials_title(a1, f"Convex radius ({cfg.hessian} Hessian)", int(len(df)),
                              len(self.cells(cfg)) * cfg.trials)
        a1.legend()
        a2.set_xlabel(r"$\sqrt{\tilde r}$")
        a2.set_ylabel(r"$\lambda_{min} K^2$ at $W^*$")
        a2.set_title("Smallest Hessian eigenvalue at $W^*$")
        a2.legend()
        return plotting.save(fig, out_dir, "landscape")

    def claims(self, cfg, summary, paper):
        """Per N, the radius falls linearly in sqrt(r~) (slope < 0 and R^2 >= 0.9: a poor line is only a
        trend); more samples enlarge the radius at every r (ties decide nothing). A radius censored at the
        grid's last value is a lower bound, like a trial at the iteration cap: >= 5% of them withholds."""
        cells = summary["cells"]

        def censored(sel, where):
            k, t = sum(x.get("censored_trials", 0) for x in sel), sum(x["trials"] for x in sel)
            return vd.capped_reason(k, t, where, what="had a radius censored at the grid's last value",
                                    fix="extend radius_grid beyond its last value")

        def half(x):
            return vd.t95(x["trials"] - 1) * x["convex_radius_std"] / np.sqrt(x["trials"]) if x["trials"] > 1 else None

        out = []
        for n, fit in summary["fits"].items():
            pts = sorted((x for x in cells if x["N"] == int(n)), key=lambda x: x["r_tilde"])
            shape, shape_text = vd.linear_shape(fit)
            slope = vd.fit_slope(fit, pts[0]["trials"] if pts else None, xs=[np.sqrt(x["r_tilde"]) for x in pts],
                                 point_half_widths=[half(x) for x in pts])
            v = vd.judge(slope, None, None, vd.trend_of(slope, -1, None, shape, shape_text),
                         what="radius slope per unit sqrt(r~)", withheld=[censored(pts, f"at N = {n}")])
            out.append(v.claim(f"The convex region shrinks linearly as the network gets denser (N = {n}): "
                               "radius ~ 1 - sqrt(r~/N)",
                               "Theorem 1 (measured indirectly by AGD success in Figure 2)",
                               "n/a" if fit["a"] is None else f"radius slope {slope.text()}, {shape_text}"))
        by_r = {}
        for x in cells:
            by_r.setdefault(x["r"], {})[x["N"]] = x
        trends = []
        for r, v in sorted(by_r.items()):
            if len(v) < 2:
                continue
            a, b = v[min(v)], v[max(v)]
            se = np.sqrt(a["convex_radius_std"] ** 2 / a["trials"] + b["convex_radius_std"] ** 2 / b["trials"]) \
                if min(a["trials"], b["trials"]) > 1 else None
            trends.append(vd.trend_of(vd.Estimate.from_se(b["convex_radius"] - a["convex_radius"], se, a["trials"]),
                                      +1, f"r={r}"))
        if trends:
            holds = [t.holds for t in trends]
            overall = False if False in holds else True if all(holds) else None
            needed = [t.needed for t in trends if t.holds is None]
            tr = vd.Trend(overall, "radius(largest N) - radius(smallest N): " + "; ".join(
                t.text.replace(" (should be > 0)", "") for t in trends) + " (each should be > 0; a tie is unresolved)",
                needed=max(needed) if overall is None and needed and None not in needed else None)
            v = vd.judge(vd.Estimate(None, n=cells[0]["trials"]), None, None, tr, what="",
                         withheld=[censored(cells, "in the sweep")])
            out.append(v.claim("More samples enlarge the convex region at every r~",
                               "Theorem 1: radius Theta(1) - Theta(sqrt(r~/N))",
                               f"larger at the largest N (95% interval above 0) for {sum(h is True for h in holds)} "
                               f"of {len(holds)} r values"))
        return out

    def notes(self, cfg):
        return [f"Positive definiteness is judged on the {cfg.hessian} Hessian (h = {cfg.bandwidth}); the "
                "almost-everywhere Hessian J^T J / N is PSD everywhere and cannot bound a radius (docs/landscape.md).",
                f"{cfg.points} random points per radius on the mask; a radius equal to the grid's last value is "
                "censored (a lower bound)."]


#: the registered experiment (``experiments.get_experiment('landscape')``)
EXPERIMENT = Landscape()
