"""`ticketlab train`: one oracle-learner experiment (one or more seeds) and its summary."""

from __future__ import annotations

import json
import math
import time

import typer

from ..config import ConfigError, InitSpec, SolverSpec, TrialSpec, build, parse_init
from ..provenance import provenance
from .options import (Dim, Extra, Kept, Layout, Neurons, Noise, RSpread, check_choice, check_seed, json_text,
                      oracle_from_options)

SUMMARY_KEYS = ["relative_error", "iterations", "converged", "rate", "test_rmse", "r_tilde",
                "init_relative_error", "mask_accuracy", "pruning_ratio"]


def trial_spec_from_options(d, K, r, N, layout, r_spread, noise, extra, init, eta, beta, step_convention,
                            max_iter, tol, sampling, num_batches, test_error, n_test, record_every, dtype) -> TrialSpec:
    oracle = oracle_from_options(d, K, r, layout, r_spread, noise, extra)
    solver = build(SolverSpec, True, eta=eta, beta=beta, step_convention=step_convention, max_iter=max_iter,
                   tol=tol, sampling=sampling, num_batches=num_batches)
    init_spec: InitSpec = parse_init(init)
    return build(TrialSpec, True, oracle=oracle, N=N, solver=solver, init=init_spec, test_error=test_error, n_test=n_test,
                 record_every=record_every, dtype=dtype)


def _mean(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    if not vals:
        return None
    return sum(vals) / len(vals)  # for booleans: the fraction that are True


def register(app: typer.Typer) -> None:
    @app.command(help="Train a masked learner on data from a pruned oracle (Algorithm 1) and report how well it "
                      "recovered the oracle. Example: ticketlab train --d 100 --K 5 --r 20 --N 400 "
                      "--init local:0.3 --eta 0.5 --beta 0.2 --seed 1")
    def train(
        d: Dim = 100,
        K: Neurons = 5,
        r: Kept = "20",
        N: int = typer.Option(400, "--N", help="training samples N (>= 1)"),
        layout: Layout = "overlap",
        r_spread: RSpread = 0.0,
        noise: Noise = 0.0,
        extra: Extra = 0,
        init: str = typer.Option("local:0.3", help="start: local:LAMBDA (W* plus a perturbation of relative size "
                                                   "LAMBDA on the mask), random, or from data alone: tensor, moments, "
                                                   "moments0, dense (docs/tensor-init.md)"),
        eta: float = typer.Option(0.5, help="step size eta (> 0)"),
        beta: float = typer.Option(0.2, help="momentum beta in [0, 1); 0 is plain gradient descent"),
        step_convention: str = typer.Option("K", "--step-convention",
                                            help="step = eta * 1 (literal), eta * K (K, default) or eta * K^2 (K2); "
                                                 "see docs/step-size.md"),
        max_iter: int = typer.Option(10_000, "--max-iter", help="iteration cap (>= 1)"),
        tol: float = typer.Option(1e-8, help="stop when ||W_t+1 - W_t|| / ||W_t|| < tol"),
        sampling: str = typer.Option("full", help="full: all samples every iteration; fresh: a new disjoint batch "
                                                  "per iteration (the analysed algorithm)"),
        num_batches: int = typer.Option(1, "--num-batches", help="number of disjoint batches T for --sampling fresh"),
        test_error: str = typer.Option("exact", "--test-error", help="exact (closed-form population risk) or sampled"),
        n_test: int = typer.Option(100_000, "--n-test", help="fresh samples for --test-error sampled"),
        record_every: int = typer.Option(0, "--record-every", help="record the error curve every k iterations (0: off)"),
        seed: int = typer.Option(0, help="seed of the first trial; trial i uses seed + i"),
        trials: int = typer.Option(1, help="number of independent trials (seeds seed .. seed+trials-1), batched"),
        device: str = typer.Option("cpu", help="cpu, cuda or cuda:N"),
        dtype: str = typer.Option("float64", help="float64 (default; the 1e-8 rule needs it) or float32"),
        backend: str = typer.Option("auto", help="engine: auto, reference (batched torch) or fast (compiled, CPU)"),
        as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of the summary"),
    ) -> int:
        if trials < 1:
            raise ConfigError(f"--trials: must be >= 1 (got {trials})")
        check_seed(seed)
        check_choice("--backend", backend, ("auto", "reference", "fast"))
        spec = trial_spec_from_options(d, K, r, N, layout, r_spread, noise, extra, init, eta, beta, step_convention,
                                       max_iter, tol, sampling, num_batches, test_error, n_test, record_every, dtype)
        from ..device import resolve_device
        from ..sweep import available_memory, bytes_per_trial, fmt_bytes

        dev = resolve_device(device)
        need, have = bytes_per_trial(spec) * trials, available_memory(dev)
        if have is not None and need > have:
            raise ConfigError(f"--trials/--N/--d: {trials} trial(s) need about {fmt_bytes(need)}, more than the "
                              f"available memory ({fmt_bytes(have)}); lower --trials, --N or --d")
        from .. import engine

        engine.resolve("cpu" if dev == "cpu" else "cuda", backend)  # a missing engine is an error here
        from ..trial import run_trials

        t0 = time.perf_counter()
        rows = run_trials(spec, list(range(seed, seed + trials)), device=dev, backend=backend)
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

        typer.echo(f"trials            {trials} (seeds {seed}..{seed + trials - 1}), device {dev}, {spec.dtype}")
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
