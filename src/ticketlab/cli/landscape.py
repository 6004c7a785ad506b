"""`ticketlab landscape`: the Hessian on the mask around W* and the convex radius (Theorem 1)."""

from __future__ import annotations

import inspect
from typing import Optional

import typer

from ..config import ConfigError
from .options import (ORACLE_FIELDS, SEED_HELP, SEEDS_HELP, json_text, model_option, option, oracle_from_options,
                      oracle_options, seeds_of, with_options)

RADIUS_GRID = "0.02,0.05,0.1,0.2,0.3,0.5"


def parse_grid(text: str) -> list[float]:
    from ..landscape import check_radius_grid

    return check_radius_grid(text, "--radius-grid")


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.4g}"


def _print_table(row: dict) -> None:
    K = row["K"]
    typer.echo(f"seed {row['seed']}: d={row['d']} K={K} N={row['N']} kept p={row['p']} r~={row['r_tilde']:.3g} "
               f"eigensolver={row['method']} hessian={row['hessian']} (bandwidth {row['bandwidth']:g})")
    pop = "lambda_min_population" in row
    typer.echo(f"  at W*: lambda_min={_fmt(row['lambda_min_at_star'])} "
               f"(x K^2 = {_fmt(row['lambda_min_scaled_at_star'])})"
               f"  lambda_max={_fmt(row['lambda_max_at_star'])} (x K = {_fmt(row['lambda_max_scaled_at_star'])})")
    if pop:
        typer.echo(f"  N=inf:  lambda_min={_fmt(row['lambda_min_population'])} "
                   f"(x K^2 = {_fmt(row['lambda_min_scaled_population'])})  lambda_max="
                   f"{_fmt(row['lambda_max_population'])} (x K = {_fmt(row['lambda_max_scaled_population'])})")
    head = f"  {'rho':>6} {'frac PD':>8} {'min lam_min':>12} {'x K^2':>9} {'med lam_min':>12} {'max lam_max':>12}"
    has_pop = any("fraction_pd_population" in t for t in row["radius_table"])
    has_gen = row["bandwidth"] > 0 and any("lambda_min_generalized" in t for t in row["radius_table"])
    typer.echo(head + (f" {'gen lam_min':>12}" if has_gen else "") + (f" {'frac PD N=inf':>14}" if has_pop else ""))
    for t in row["radius_table"]:
        line = (f"  {t['rho']:>6.3g} {t['fraction_pd']:>8.3g} {t['lambda_min']:>12.4g} {t['lambda_min_scaled']:>9.3g} "
                f"{t['lambda_min_median']:>12.4g} {t['lambda_max']:>12.4g}")
        if has_gen:
            line += f" {t['lambda_min_generalized']:>12.4g}"
        if has_pop:
            line += f" {t.get('fraction_pd_population', float('nan')):>14.3g}"
        typer.echo(line)
    cens = " (every radius passed: a lower bound)" if row["convex_radius_censored"] else ""
    pop_r = row.get("convex_radius_population")
    pop_cens = " (a lower bound)" if pop_r is not None and pop_r == row["radius_table"][-1]["rho"] else ""
    typer.echo(f"  convex radius: {row['convex_radius']:g}{cens}"
               + (f"; N=inf: {_fmt(pop_r)}{pop_cens}" if has_pop else ""))


def _landscape_options() -> list[inspect.Parameter]:
    from ..config import TrialSpec

    return [
        *oracle_options(100, 5, "20", after_r=[model_option(TrialSpec, "N", default=1000)]),
        option("radius_grid", str, RADIUS_GRID, "relative radii rho (comma-separated, > 0): points W* + rho "
               "||W*||_F D, D a unit Gaussian direction on the mask", "--radius-grid"),
        option("points", int, 8, "random points per radius (>= 1); the same directions at every radius"),
        option("hessian", str, "smoothed", "Hessian away from W*: smoothed (a.e. Hessian plus the ReLU kink "
               "curvature at --bandwidth; default) or generalized (the a.e. Gauss-Newton Hessian, PSD everywhere)"),
        option("bandwidth", float, 0.05, "kink smoothing width h in units of w_j.x/|w_j| (0 < h <= 1)"),
        option("dense_max", int, 1500, "largest number of kept weights for the dense eigensolver; above it, "
               "Lanczos on Hessian-vector products (>= 0)", "--dense-max"),
        option("population", bool, True, "also report the exact N=infinity (population) Hessian values",
               "--population/--no-population"),
        option("compare", bool, True, "with --hessian smoothed, also evaluate the generalized Hessian at every "
               "point (column 'gen lam_min'); --no-compare halves the cost", "--compare/--no-compare"),
        option("seed", Optional[int], None, SEED_HELP + " (same data as train)"),
        option("trials", Optional[int], None, "independent trials (>= 1; default 1)"),
        option("seeds", Optional[str], None, SEEDS_HELP),
        option("device", str, "cpu", "cpu, cuda or cuda:N"),
        option("json_out", bool, False, "print one JSON object instead of tables", "--json"),
    ]


#: analyze_trials' parameters that the CLI names otherwise (the rest: --name with '-' for '_')
FLAG_OF = {"both": "--compare", "seeds": "--seed/--seeds", "oracle_spec": "--d/--K/--r/--layout"}


def landscape(**o) -> None:
    from ..device import resolve_device
    from ..landscape import analyze_trials

    seeds = seeds_of(o["seed"], o["trials"], o["seeds"])
    trials = len(seeds)
    oracle = oracle_from_options(*(o[n] for n in ORACLE_FIELDS))
    try:
        rows = analyze_trials(oracle, o["N"], seeds, parse_grid(o["radius_grid"]), o["points"], hessian=o["hessian"],
                              bandwidth=o["bandwidth"], dense_max=o["dense_max"], population=o["population"],
                              both=o["compare"], device=resolve_device(o["device"]))
    except ConfigError as err:  # the function names its parameters; the user typed flags
        raise err.renamed("analyze_trials", lambda param: FLAG_OF.get(param, "--" + param.replace("_", "-"))) from None
    if o["json_out"]:
        out = dict(rows[0]) if trials == 1 else {"trials": rows}
        if trials > 1:
            for key in ("lambda_min_at_star", "lambda_max_at_star", "convex_radius"):
                out[key] = sum(row[key] for row in rows) / trials
        typer.echo(json_text(out))
        return
    for row in rows:
        _print_table(row)


def register(app: typer.Typer) -> None:
    app.command(help="Measure Theorem 1: extreme eigenvalues of the empirical-risk Hessian on the learner's mask "
                     "at W* and at random points at relative radius rho around it, the convex radius (largest rho "
                     "where every sampled point's Hessian is positive definite), lambda_min*K^2, lambda_max*K, and "
                     "the exact N=infinity values. See docs/landscape.md. Example: ticketlab landscape --d 50 --K 5 "
                     "--r 10 --N 1000 --points 8 --seed 1")(with_options(landscape, _landscape_options()))
