"""`ticketlab train`: one oracle-learner experiment (one or more seeds) and its summary."""

from __future__ import annotations

import inspect
import math
import time
from typing import Optional

import typer

from ..config import ConfigError, InitSpec, SolverSpec, TrialSpec, build, parse_init
from ..provenance import provenance
from .options import (ENGINE_HELP, ORACLE_FIELDS, SEED_HELP, SEEDS_HELP, check_choice, json_text, model_option,
                      option, oracle_from_options, oracle_options, seeds_of, with_options)

SUMMARY_KEYS = ["relative_error", "iterations", "converged", "rate", "test_rmse", "r_tilde",
                "init_relative_error", "mask_accuracy", "pruning_ratio"]

# Options generated from the config models (name, type, default and help written once, in config.py:
# OracleSpec, TrialSpec, SolverSpec, InitSpec), in --help order; the rest are parsed forms (--r, --init)
# and the command's own switches. Only d, K, r and N, which the models require, get their default here.
SOLVER_FIELDS = ("eta", "beta", "step_convention", "max_iter", "tol", "sampling", "num_batches")
TRIAL_FIELDS = ("test_error", "n_test", "record_every")
DEFAULTS = {"d": 100, "K": 5, "r": "20", "N": 400}


def _init_default() -> str:
    init = InitSpec()
    return f"{init.kind}:{init.lam:g}"


def _train_options() -> list[inspect.Parameter]:
    return [
        *oracle_options(DEFAULTS["d"], DEFAULTS["K"], DEFAULTS["r"],
                        after_r=[model_option(TrialSpec, "N", default=DEFAULTS["N"])]),
        option("init", str, _init_default(), "start: KIND, or local:LAM for a local start at distance LAM. "
               + InitSpec.model_fields["kind"].description),
        *(model_option(SolverSpec, n) for n in SOLVER_FIELDS),
        *(model_option(TrialSpec, n) for n in TRIAL_FIELDS),
        option("seed", Optional[int], None, SEED_HELP),
        option("trials", Optional[int], None, "number of independent trials, batched (default 1)"),
        option("seeds", Optional[str], None, SEEDS_HELP),
        option("device", str, "cpu", "cpu, cuda or cuda:N"),
        model_option(TrialSpec, "dtype"),
        option("backend", str, "auto", ENGINE_HELP.replace("; stored with each row", ""), "--engine", "--backend"),
        option("as_json", bool, False, "print one JSON object instead of the summary", "--json"),
    ]


def trial_spec_from_options(o: dict) -> TrialSpec:
    """The TrialSpec of train's options (every model checks its own fields, flags named)."""
    oracle = oracle_from_options(*(o[n] for n in ORACLE_FIELDS))
    solver = build(SolverSpec, True, **{n: o[n] for n in SOLVER_FIELDS})
    init_spec: InitSpec = parse_init(o["init"])
    return build(TrialSpec, True, oracle=oracle, N=o["N"], solver=solver, init=init_spec,
                 **{n: o[n] for n in TRIAL_FIELDS}, dtype=o["dtype"])


def _mean(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    if not vals:
        return None
    return sum(vals) / len(vals)  # for booleans: the fraction that are True


def _seeds_text(seeds: list[int]) -> str:
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}..{seeds[-1]}"
    return ",".join(map(str, seeds))


def register(app: typer.Typer) -> None:
    def train(**o) -> int:
        device, backend, as_json = o["device"], o["backend"], o["as_json"]
        seeds = seeds_of(o["seed"], o["trials"], o["seeds"])
        trials = len(seeds)
        from .. import engine

        check_choice("--engine", backend, engine.ENGINES)
        spec = trial_spec_from_options(o)
        from ..device import resolve_device
        from ..sweep import available_memory, bytes_per_trial, fmt_bytes

        dev = resolve_device(device)
        need, have = bytes_per_trial(spec) * trials, available_memory(dev)
        if have is not None and need > have:
            raise ConfigError(f"--trials/--N/--d: {trials} trial(s) need about {fmt_bytes(need)}, more than the "
                              f"available memory ({fmt_bytes(have)}); lower --trials, --N or --d")
        engine.resolve("cpu" if dev == "cpu" else "cuda", backend)  # a missing engine is an error here
        from ..trial import run_trials

        t0 = time.perf_counter()
        rows = run_trials(spec, seeds, device=dev, backend=backend)
        wall = time.perf_counter() - t0
        summary = {k: _mean(rows, k) for k in SUMMARY_KEYS}
        summary["converged"] = all(r["converged"] for r in rows) if trials == 1 else _mean(rows, "converged")
        summary["iterations"] = rows[0]["iterations"] if trials == 1 else _mean(rows, "iterations")
        summary["success_rate"] = _mean(rows, "success")
        summary["failed"] = sum(r["failed"] for r in rows)
        summary["wall_time"] = wall
        if as_json:
            out = {**summary, "trials": rows, "config": spec.model_dump(mode="json"),
                   "seeds": [r["seed"] for r in rows],
                   "provenance": {**provenance(dev, spec.dtype),
                                  "engine": ",".join(sorted(engine.used())) or "none"}}
            typer.echo(json_text(out))
            return 0

        def fmt(v, f="{:.3e}"):
            return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f.format(v)

        typer.echo(f"trials            {trials} (seeds {_seeds_text(seeds)}), device {dev}, {spec.dtype}")
        typer.echo(f"r~ (Eq. 5)        {fmt(summary['r_tilde'], '{:.2f}')}   pruning ratio "
                   f"{fmt(summary['pruning_ratio'], '{:.1%}')}   mask accuracy {fmt(summary['mask_accuracy'], '{:.3f}')}")
        typer.echo(f"start error       {fmt(summary['init_relative_error'])}  ({spec.init.kind})")
        typer.echo(f"relative error    {fmt(summary['relative_error'])}  (aligned; success if < 1e-4: "
                   f"{fmt(summary['success_rate'], '{:.0%}')})")
        conv = summary["converged"]
        conv_text = ("yes" if conv else "no") if isinstance(conv, bool) else f"{conv:.0%}"
        typer.echo(f"iterations        {fmt(summary['iterations'], '{:.0f}')}   converged {conv_text}   "
                   f"failed {summary['failed']}")
        typer.echo(f"rate              {fmt(summary['rate'], '{:.5f}')}  (per iteration, fitted)")
        typer.echo(f"test RMSE         {fmt(summary['test_rmse'])}  ({spec.test_error})")
        typer.echo(f"wall time         {wall:.2f} s")
        return 0

    app.command(help="Train a masked learner on data from a pruned oracle (Algorithm 1) and report how well it "
                     "recovered the oracle. Example: ticketlab train --d 100 --K 5 --r 20 --N 400 "
                     "--init local:0.3 --eta 0.5 --beta 0.2 --seed 1")(with_options(train, _train_options()))
