"""``ticketlab imp``: iterative magnitude pruning of deep nets on real or oracle data (Figures 11-12)."""

from __future__ import annotations

import inspect
import json
from typing import Optional

import typer

from ..config import ConfigError, bad_value, build
from ..store import DEFAULT_STORE
from .options import STORE_HELP, old_default_note, imp_folder, int_list, json_text, model_option, option, parse_seeds, with_options


def _rewind(text: str) -> tuple[int, str]:
    """--rewind: 'init', K or Kit (steps), Kep (epochs), as OpenLTH writes them."""
    t = text.strip().lower()
    if t == "init":
        return 0, "steps"
    unit = "epochs" if t.endswith("ep") else "steps"
    num = t[:-2] if t.endswith(("ep", "it")) else t
    try:
        k = int(num)
    except ValueError:
        k = -1
    if k < 0:
        raise bad_value("--rewind", "must be 'init', a step count K or Kit (K >= 0), or Kep for K epochs", text)
    return k, unit


def _widths(text: str) -> tuple[int, ...] | None:
    """--widths: hidden widths >= 1 joined by '-' (16-8); empty: unset (the model's default)."""
    if not text.strip():
        return None
    try:
        widths = tuple(int(w) for w in text.strip().split("-"))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise bad_value("--widths", "must be hidden widths >= 1 joined by '-', e.g. 16-8", text)
    return widths


CONTROLS = ("none", "reinit", "random_mask")


# Options generated from the config models (type, default, help written once, in deep/spec.py), in
# --help order; the rest are the grid, parsed forms and the command's own switches.
IMP_FIELDS = ("rounds", "rate", "output_rate", "scope", "rewind_optimizer", "init", "val_size", "params", "dtype")
TRAIN_FIELDS = ("epochs", "optimizer", "lr", "momentum", "weight_decay", "batch_size", "schedule", "gamma",
                "warmup_steps", "eval_every", "augment")


def _imp_options() -> list[inspect.Parameter]:
    from ..deep.spec import MODELS, IMPSpec, TrainSpec

    imp_opt = {n: model_option(IMPSpec, n) for n in IMP_FIELDS}
    train_opt = {n: model_option(TrainSpec, n) for n in TRAIN_FIELDS}
    return [
        option("model", str, "lenet5", f"network: {', '.join(MODELS)}"),
        option("data", str, "mnist5k", "data: mnist5k, digits, mnist:DIR, cifar10:DIR, oracle[:k=v,...]"),
        option("n_train", str, "1000,2000,3000,4000", "training-set sizes, comma-separated ('all': whole pool)"),
        *(imp_opt[n] for n in ("rounds", "rate", "output_rate", "scope")),
        option("rewind", str, "init", "reset survivors to init, or to the state after K steps (K, Kit) or K epochs "
                                       "(Kep); levels continue from there"),
        imp_opt["rewind_optimizer"],
        option("control", str, "none", "families, comma-separated: none (ticket), reinit (ticket mask, new init), "
                                        "random_mask (random mask, ticket's sparsity and init)"),
        *(imp_opt[n] for n in ("init", "val_size", "params")),
        *(train_opt[n] for n in ("epochs", "optimizer", "lr", "momentum", "weight_decay", "batch_size", "schedule")),
        option("milestones", str, "", "epochs where the 'step' schedule multiplies the lr by --gamma, e.g. 80,120"),
        *(train_opt[n] for n in ("gamma", "warmup_steps", "eval_every", "augment")),
        option("widths", str, "", "hidden widths of --model mlp, e.g. 16-8"),
        option("seeds", str, "0", "run seeds: comma-separated seeds or ranges, e.g. 0,1,2 or 0-4"),
        option("store", str, DEFAULT_STORE, STORE_HELP, "--store"),
        option("device", str, "cpu", "cpu, cuda, cuda:N or mps"),
        imp_opt["dtype"],
        option("threads", int, 0, "torch CPU threads (0: torch's default; 1 is fastest on a busy small CPU)"),
        option("plot", Optional[str], None, "also write the Figure 11 plots (PNG+PDF) into this directory"),
        option("as_json", bool, False, "print one JSON object (runs and summary) instead of a table", "--json"),
    ]


def imp(**o):
    """Run IMP for every training-set size, seed and family, level by level across the grid (a finished
    level is never recomputed; an unfinished one resumes from its last epoch)."""
    import torch

    from ..deep.fig11 import plot_fig11, run_grid, summarize_fig11
    from ..deep.spec import IMPSpec, TrainSpec
    from ..device import resolve_device

    if o["widths"] and o["model"] != "mlp":
        raise ConfigError(f"--widths: must be given only with --model mlp (got --model {o['model']} --widths "
                          f"{o['widths']}); drop --widths or use --model mlp")
    sizes = int_list(o["n_train"], "--n-train", allow_all=True)
    seed_list = parse_seeds(o["seeds"])
    controls = [c.strip() for c in o["control"].split(",") if c.strip()]
    bad = [c for c in controls if c not in CONTROLS]
    if bad or not controls:
        raise bad_value("--control", f"must be comma-separated families from {', '.join(CONTROLS)}", o["control"])
    k, unit = _rewind(o["rewind"])
    milestones = tuple(int_list(o["milestones"], "--milestones")) if o["milestones"] else ()
    tspec = build(TrainSpec, True, **{n: o[n] for n in TRAIN_FIELDS}, milestones=milestones)
    widths = _widths(o["widths"])
    base = dict(model=o["model"], data=o["data"], **{n: o[n] for n in IMP_FIELDS}, rewind=k, rewind_unit=unit,
                train=tspec, widths=widths)
    for c in controls:  # validate every spec before any work
        for s in seed_list:
            for n in sizes:
                build(IMPSpec, True, **base, control=c, n_train=n, seed=s)
    note = old_default_note("imp", o["store"])
    if note:
        typer.echo(note, err=True)
    store, device, threads, plot, as_json = imp_folder(o["store"]), o["device"], o["threads"], o["plot"], o["as_json"]
    if threads < 0:
        raise bad_value("--threads", "must be >= 0", threads)
    resolve_device(device, o["dtype"])
    if threads:
        torch.set_num_threads(threads)
    runs = run_grid(base, sizes, seed_list, store, device=device, progress=not as_json, controls=controls)
    summary = summarize_fig11(store)
    paths = plot_fig11(store, plot) if plot else []
    if as_json:
        typer.echo(json_text({"runs": runs, "summary": summary, "plots": paths}))
        return
    for fam in summary["families"]:
        typer.echo(f"family {fam['label']}  (test error at the early-stopping iteration, {fam['error_unit']}, "
                   "mean ± std over seeds)")
        for n, pts in fam["curves"].items():
            cells = "  ".join(f"{p['pruning_ratio_percent']:.0f}%: {p['mean']:.3g}±{p['std']:.2g}" for p in pts)
            typer.echo(f"  N={n}: {cells}")
    for p in paths:
        typer.echo(f"wrote {p}")


def imp_summary(
    store: str = typer.Option(DEFAULT_STORE, "--store", help=STORE_HELP),
    out: str = typer.Option(..., help="the compact result file to write (JSON)"),
    plot: Optional[str] = typer.Option(None, help="also write the figures (PNG+PDF) into this directory"),
    scale: str = typer.Option("paper", help="scale label written into the notes: quick or paper"),
):
    """Turn an IMP store into one compact JSON file (summary, claims per labelled family, notes from what
    ran, provenance) that a report renders without recomputing; safe to run while the runs go on."""
    from ..deep.fig11 import plot_fig11, write_summary

    if scale not in ("quick", "paper"):
        raise bad_value("--scale", "must be 'quick' or 'paper'", scale)
    store = imp_folder(store)
    result = write_summary(store, out, scale=scale)
    paths = plot_fig11(store, plot, summary=result["summary"]) if plot else []
    n = sum(r["levels_finished"] for r in result["runs"].values())
    typer.echo(f"wrote {out}: {len(result['runs'])} runs, {n} finished levels, {len(result['claims'])} claims, "
               f"{len(result['frankle_carbin'])} Frankle & Carbin checks")
    for p in paths:
        typer.echo(f"wrote {p}")


def register(app: typer.Typer) -> None:
    app.command("imp")(with_options(imp, _imp_options()))
    app.command("imp-summary")(imp_summary)
