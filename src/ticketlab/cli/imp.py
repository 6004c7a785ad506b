"""``ticketlab imp``: iterative magnitude pruning of deep nets on real or oracle data (Figures 11-12)."""

from __future__ import annotations

import json
from typing import Optional

import typer

from ..config import ConfigError, build
from .options import int_list


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
        raise ConfigError(f"invalid --rewind {text!r}: 'init', a step count K or Kit (>= 0), or Kep for K epochs")
    return k, unit


CONTROLS = ("none", "reinit", "random_mask")


def imp(
    model: str = typer.Option("lenet5", help="network: lenet300, lenet5, resnet20, resnet50, mlp"),
    data: str = typer.Option("mnist5k", help="data: mnist5k, digits, mnist:DIR, cifar10:DIR, oracle[:k=v,...]"),
    n_train: str = typer.Option("1000,2000,3000,4000", help="training-set sizes, comma-separated ('all': whole pool)"),
    rounds: int = typer.Option(10, help="pruning rounds after the dense level 0 (>= 0)"),
    rate: float = typer.Option(0.2, help="share of remaining weights pruned per round, in (0, 1)"),
    output_rate: Optional[float] = typer.Option(None, help="own per-round rate of the output layer (default: --rate)"),
    scope: str = typer.Option("layerwise", help="magnitude ranking per layer (layerwise) or over all layers (global)"),
    rewind: str = typer.Option("init", help="reset survivors to init, or to the state after K steps (K, Kit) or "
                                            "K epochs (Kep); levels continue from there"),
    rewind_optimizer: bool = typer.Option(True, help="carry the optimizer moments of the rewind step (pruned "
                                                     "entries zeroed); --no-rewind-optimizer: a fresh optimizer"),
    control: str = typer.Option("none", help="families, comma-separated: none (ticket), reinit (ticket mask, new "
                                             "init), random_mask (random mask, ticket's sparsity and init)"),
    init: str = typer.Option("kaiming_normal", help="weight init: kaiming_normal (OpenLTH) or pytorch (default init)"),
    val_size: Optional[int] = typer.Option(None, help="validation items held out of the training pool (default: "
                                                      "5000 of >= 50000, else 10%)"),
    params: Optional[str] = typer.Option(None, help="weights to prune: module types or name globs, comma-separated "
                                                    "(default: every Linear/Conv2d weight)"),
    epochs: int = typer.Option(10, help="training epochs per level (>= 1)"),
    optimizer: str = typer.Option("sgd", help="sgd (with momentum) or adam"),
    lr: float = typer.Option(0.05, help="learning rate (> 0, finite)"),
    momentum: float = typer.Option(0.9, help="SGD momentum in [0, 1)"),
    weight_decay: float = typer.Option(0.0, help="weight decay (>= 0)"),
    batch_size: int = typer.Option(64, help="mini-batch size (>= 1)"),
    schedule: str = typer.Option("constant", help="lr schedule: constant, cosine, step"),
    milestones: str = typer.Option("", help="epochs where the 'step' schedule multiplies the lr by --gamma, e.g. 80,120"),
    gamma: float = typer.Option(0.1, help="factor of the 'step' schedule at each milestone, in (0, 1]"),
    warmup_steps: int = typer.Option(0, help="linear lr warm-up over this many steps (>= 0)"),
    eval_every: int = typer.Option(0, help="validation every this many steps (0: at epoch ends only)"),
    augment: bool = typer.Option(False, help="random crop + flip (CIFAR)"),
    widths: str = typer.Option("", help="hidden widths of --model mlp, e.g. 16-8"),
    seeds: str = typer.Option("0", help="run seeds, comma-separated, e.g. 0,1,2"),
    store: str = typer.Option("results", help="store directory (runs go under STORE/imp/)"),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N or mps"),
    dtype: str = typer.Option("float32", help="float32 or float64"),
    threads: int = typer.Option(0, help="torch CPU threads (0: torch's default; 1 is fastest on a busy small CPU)"),
    plot: Optional[str] = typer.Option(None, help="also write the Figure 11 plots (PNG+PDF) into this directory"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object (runs and summary) instead of a table"),
):
    """Run IMP for every training-set size, seed and family, level by level across the grid (a finished
    level is never recomputed; an unfinished one resumes from its last epoch)."""
    import torch

    from ..deep.fig11 import plot_fig11, run_grid, summarize_fig11
    from ..deep.imp import IMPSpec
    from ..device import resolve_device
    from ..deep.train import TrainSpec

    sizes = int_list(n_train, "--n-train", allow_all=True)
    seed_list = int_list(seeds, "--seeds")
    controls = [c.strip() for c in control.split(",") if c.strip()]
    bad = [c for c in controls if c not in CONTROLS]
    if bad or not controls:
        raise ConfigError(f"invalid --control {control!r}: comma-separated families from {', '.join(CONTROLS)}")
    k, unit = _rewind(rewind)
    tspec = build(TrainSpec, True, optimizer=optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay,
                  batch_size=batch_size, epochs=epochs, schedule=schedule, gamma=gamma, warmup_steps=warmup_steps,
                  eval_every=eval_every,
                  milestones=tuple(int_list(milestones, "--milestones")) if milestones else (), augment=augment)
    base = dict(model=model, data=data, rounds=rounds, rate=rate, output_rate=output_rate, scope=scope,
                rewind=k, rewind_unit=unit, rewind_optimizer=rewind_optimizer, init=init, val_size=val_size,
                params=params, dtype=dtype, train=tspec,
                widths=tuple(int_list(widths.replace("-", ","), "--widths")) if widths else None)
    for c in controls:  # validate every spec before any work
        for s in seed_list:
            for n in sizes:
                build(IMPSpec, True, **base, control=c, n_train=n, seed=s)
    if threads < 0:
        raise ConfigError(f"invalid --threads {threads}: must be >= 0")
    resolve_device(device, dtype)
    if threads:
        torch.set_num_threads(threads)
    runs = run_grid(base, sizes, seed_list, store, device=device, progress=not as_json, controls=controls)
    summary = summarize_fig11(store)
    paths = plot_fig11(store, plot) if plot else []
    if as_json:
        typer.echo(json.dumps({"runs": runs, "summary": summary, "plots": paths}))
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
    store: str = typer.Option(..., help="IMP store folder (runs under STORE/imp/)"),
    out: str = typer.Option(..., help="the compact result file to write (JSON)"),
    plot: Optional[str] = typer.Option(None, help="also write the figures (PNG+PDF) into this directory"),
    scale: str = typer.Option("paper", help="scale label written into the notes: quick or paper"),
):
    """Turn an IMP store into one compact JSON file (summary, claims per labelled family, notes from what
    ran, provenance) that a report renders without recomputing; safe to run while the runs go on."""
    from ..deep.fig11 import plot_fig11, write_summary

    if scale not in ("quick", "paper"):
        raise ConfigError(f"invalid --scale {scale!r}: quick or paper")
    result = write_summary(store, out, scale=scale)
    paths = plot_fig11(store, plot, summary=result["summary"]) if plot else []
    n = sum(r["levels_finished"] for r in result["runs"].values())
    typer.echo(f"wrote {out}: {len(result['runs'])} runs, {n} finished levels, {len(result['claims'])} claims")
    for p in paths:
        typer.echo(f"wrote {p}")


def register(app: typer.Typer) -> None:
    app.command("imp")(imp)
    app.command("imp-summary")(imp_summary)
