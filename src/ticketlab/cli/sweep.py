"""`ticketlab sweep`, `plot`, `report`, `reproduce` and `export`: experiments over the store."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer

from ..app import (DEFAULT_STORE, build_report, list_store, paper, plot_experiment, reproduce_estimates,
                   reproduce_names, run_experiment, verdict_word)
from ..config import ConfigError
from .options import (CONFIRM_SECONDS, EXECUTORS, Device, Engine, Progress, Scale, Sets, Store, Trials, Yes,
                      check_choice, engine_chosen, json_text, old_default_note)


def _json_summary(exp, cfg, summary, counts) -> dict:
    slim = {k: v for k, v in summary.items() if k not in ("curves",)}
    return {"experiment": exp.name, "config_id": cfg.config_id(), "config": cfg.model_dump(mode="json"),
            "counts": counts, **slim}


def parse_bytes(text: str | None) -> int | None:
    """--memory-budget: bytes, or a size like 300K, 512M, 4G (a positive, finite amount)."""
    import math

    if text is None:
        return None
    units = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    bad = ConfigError(f"--memory-budget: must be a positive size in bytes, e.g. 300K, 512M, 4G (got {text!r})")
    try:
        value = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise bad from None
    if not math.isfinite(value) or value < 1:
        raise bad
    return int(value)


def _where(device: str) -> str:
    """What a time estimate is for: one GPU (the CUDA model) or this machine's cores."""
    return "on one GPU" if str(device).startswith("cuda") else "on this machine"


def confirm_run(yes: bool):
    """The ``confirm`` of ``app.run_experiment``: print the estimate; a run over CONFIRM_SECONDS asks
    first (without a terminal it needs --yes)."""

    def confirm(exp, cfg, seconds, fmt, dev="cpu", todo=None):
        where = _where(dev)
        asked = len(exp.cells(cfg)) * cfg.trials
        left = "" if todo is None or todo >= asked else f", {todo} of {asked} trials left to run"
        msg = (f"{exp.name} ({cfg.scale}): {len(exp.cells(cfg))} cells x {cfg.trials} trials{left}, estimated "
               f"{fmt(seconds)} {where} (rough: the cost model is good to about 2x)")
        typer.echo(msg, err=True)
        if seconds > CONFIRM_SECONDS and not yes:
            if not sys.stdin.isatty():
                raise ConfigError(f"not started: estimated {fmt(seconds)}, over {CONFIRM_SECONDS // 60} min, and "
                                  "there is no terminal to ask: pass --yes to run it")
            if not typer.confirm("This is a long run. Continue?", default=False, err=True):
                raise typer.Abort()

    return confirm


def register(app: typer.Typer) -> None:
    @app.command(help="Run one experiment of the paper as a resumable sweep into the result store. "
                      "EXPERIMENT is fig2..fig11, landscape or init. Finished trials are never recomputed: "
                      "rerunning the same command resumes.")
    def sweep(
        experiment: str = typer.Argument(..., help="fig2, fig3, fig4, fig5, fig6, fig7, fig8, fig9, fig10, fig11, landscape, init"),
        scale: Scale = "quick",
        trials: Trials = None,
        store: Store = Path(DEFAULT_STORE),
        device: Device = "cpu",
        set_: Sets = [],
        seed: int = typer.Option(None, help="base seed (default 0); trial seeds derive from it, the cell and the "
                                            "trial index"),
        dtype: str = typer.Option(None, help="float64 (default: the 1e-8 stopping rule needs it) or float32"),
        config_file: Path = typer.Option(None, "--config", help="a config file of fields (JSON, TOML or YAML), "
                                                                 "applied before --set"),
        show_config: bool = typer.Option(False, "--show-config", help="print the validated config as JSON and "
                                                                      "exit (nothing runs)"),
        executor: str = typer.Option("local", help="local (this process) or dask (a LocalCluster of --workers)"),
        engine: Engine = "auto",
        scheduler: str = typer.Option(None, help="address of an existing Dask scheduler, e.g. tcp://host:8786"),
        workers: int = typer.Option(2, help="worker processes for --executor dask"),
        connect_timeout: float = typer.Option(5.0, "--connect-timeout",
                                              help="seconds to wait for --scheduler before giving up"),
        chunk_size: int = typer.Option(None, "--chunk-size", help="max trials per batch (default 32)"),
        memory_budget: str = typer.Option(None, "--memory-budget", help="max trial data per batch, e.g. 2G"),
        yes: Yes = False,
        progress: Progress = True,
        as_json: bool = typer.Option(False, "--json", help="print the summary as one JSON object"),
    ) -> int:
        if show_config:
            from ..app import load_config_file, make_config
            from ..experiments import get_experiment

            exp = get_experiment(experiment)
            cfg = make_config(exp, scale, trials, list(set_), seed, dtype,
                              file_values=load_config_file(config_file) if config_file else None)
            typer.echo(json.dumps({"experiment": exp.name, "config_id": cfg.config_id(),
                                   "config": cfg.model_dump(mode="json")}, indent=1))
            return 0

        confirm = confirm_run(yes)

        from .. import engine as engines

        check_choice("--executor", executor, EXECUTORS)
        engines.check_engine(engine)
        if workers < 1:
            raise ConfigError(f"--workers: must be >= 1 (got {workers})")
        if not (connect_timeout > 0 and connect_timeout < float("inf")):
            raise ConfigError(f"--connect-timeout: must be a positive, finite number of seconds (got {connect_timeout})")
        if chunk_size is not None and chunk_size < 1:
            raise ConfigError(f"--chunk-size: must be a positive integer (got {chunk_size})")
        t0 = time.perf_counter()
        with engine_chosen(engine):
            exp, cfg, summary, counts = run_experiment(
                experiment, scale=scale, trials=trials, sets=set_, store=store, device=device, executor=executor,
                scheduler=scheduler, workers=workers, chunk_size=chunk_size,
                memory_budget=parse_bytes(memory_budget), progress=progress and not as_json, seed=seed,
                dtype=dtype, confirm=confirm, connect_timeout=connect_timeout, config_file=config_file)
        counts["wall_time"] = time.perf_counter() - t0
        if as_json:
            typer.echo(json_text(_json_summary(exp, cfg, summary, counts)))
            return 0
        typer.echo(f"{exp.title}: {counts['ran']} trials run, {counts['skipped']} already stored, "
                   f"{counts['wall_time']:.1f} s -> {store}")
        for c in exp.claims(cfg, summary, paper()):
            typer.echo(f"- {c['claim']}: {c['ours']} [{verdict_word(c['verdict'])}]")
        return 0

    @app.command(help="Draw an experiment's figure (PNG and PDF) from what the store holds.")
    def plot(
        experiment: str = typer.Argument(..., help="fig2..fig11, landscape or init"),
        store: Store = Path(DEFAULT_STORE),
        out: Path = typer.Option(Path("figures"), help="output folder"),
        config: str = typer.Option(None, "--config", help="the config id (or its first characters) to draw, as "
                                                          "`ticketlab ls` lists them (default: the largest complete)"),
        scale: str = typer.Option(None, help="draw the largest complete config at this scale (quick, paper, custom)"),
        as_json: bool = typer.Option(False, "--json", help="print the written paths as JSON"),
    ) -> int:
        if scale is not None:
            check_choice("--scale", scale, ("quick", "paper", "custom"))
        paths = plot_experiment(experiment, store, out, config_id=config, scale=scale)
        if as_json:
            typer.echo(json.dumps({"experiment": experiment, "files": [str(p) for p in paths]}))
        else:
            for p in paths:
                typer.echo(str(p))
        return 0

    @app.command("ls", help="List what a store holds: experiment, config id, scale, trials done of asked, "
                            "complete or not, when it last ran.")
    def ls(
        store: Store = Path(DEFAULT_STORE),
        as_json: bool = typer.Option(False, "--json", help="print the rows as JSON"),
    ) -> int:
        rows = list_store(store)
        if as_json:
            typer.echo(json.dumps([{k: v for k, v in r.items() if k != "config"} for r in rows]))
            return 0
        if not rows:
            typer.echo(f"{store}: no experiment recorded")
            return 0
        typer.echo(f"{'experiment':<10} {'config':<12} {'scale':<7} {'trials':>13}  {'status':<10} last run")
        for r in rows:
            done = "-" if r["done"] is None else f"{r['done']}/{r['asked']}"
            status = "complete" if r["complete"] else "INCOMPLETE"
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created"]))
            typer.echo(f"{r['experiment']:<10} {r['config_id'][:12]:<12} {r['scale']:<7} {done:>13}  {status:<10} {when}")
        return 0

    @app.command(help="Write the HTML + Markdown report (every figure in the store, the paper's numbers "
                      "beside ours, a verdict per claim).")
    def report(
        store: Store = Path(DEFAULT_STORE),
        out: Path = typer.Option(Path("report"), help="output folder for report.html, report.md, figures/"),
        as_json: bool = typer.Option(False, "--json", help="print paths and verdicts as JSON"),
    ) -> int:
        res = build_report(store, out)
        if as_json:
            typer.echo(json_text({"html": res["html"], "markdown": res["markdown"],
                                  "claims": [{**c, "experiment": s["name"]} for s in res["sections"]
                                             for c in s.get("claims", [])]}))
        else:
            typer.echo(res["html"])
        return 0

    @app.command(help="Run every experiment at a scale, then write the report and print where it is.")
    def reproduce(
        scale: str = typer.Option("quick", help="quick (about 10 minutes on a 2-core laptop) or paper"),
        store: Store = Path(DEFAULT_STORE),
        out: Path = typer.Option(Path("results/report"), help="report folder"),
        device: Device = "cpu",
        engine: Engine = "auto",
        only: str = typer.Option(None, help="comma-separated subset, e.g. fig3,fig4"),
        yes: bool = typer.Option(False, "--yes", "-y", help="run the paper scale without asking"),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="show progress bars"),
        as_json: bool = typer.Option(False, "--json", help="print timings and paths as JSON"),
    ) -> int:
        note = old_default_note("reproduce", store)
        if note:
            typer.echo(note, err=True)
        # every sweep it runs on this engine (its estimate included), recorded in each row's provenance
        with engine_chosen(engine):
            names = reproduce_names(only)
            if scale != "quick":
                from ..sweep import fmt_duration

                estimates = reproduce_estimates(names, scale, device, store)  # a resume: only what the store lacks
                for name, est in estimates.items():
                    typer.echo(f"{name}: estimated {fmt_duration(est)} {_where(device)}", err=True)
                typer.echo(f"total: about {fmt_duration(sum(estimates.values()))} (a GPU or a Dask cluster shortens "
                           "this: see docs/performance.md and docs/cluster.md)", err=True)
                if not yes:
                    if not sys.stdin.isatty() or not typer.confirm("Run all of it?", default=False, err=True):
                        raise ConfigError("not started: pass --yes to run the paper scale, or --only a subset")
            timings = {}
            for name in names:
                t0 = time.perf_counter()
                run_experiment(name, scale=scale, store=store, device=device, progress=progress)
                timings[name] = time.perf_counter() - t0
                if not as_json:
                    typer.echo(f"{name}: {timings[name]:.1f} s", err=True)
        res = build_report(store, out)
        if as_json:
            typer.echo(json_text({"report": res["html"], "markdown": res["markdown"], "timings": timings}))
        else:
            typer.echo(f"report: {res['html']}")
        return 0

    @app.command(help="Export the store's trials to CSV or Parquet (by the file extension).")
    def export(
        out: Path = typer.Argument(..., help="output file, .csv or .parquet"),
        store: Store = Path(DEFAULT_STORE),
        experiment: str = typer.Option(None, help="only this experiment"),
        force: bool = typer.Option(False, "--force", help="overwrite OUT if it exists"),
    ) -> int:
        from ..experiments import available
        from ..store import Store
        from ..store import export as do_export

        if out.suffix not in (".csv", ".parquet"):
            raise ConfigError(f"OUT: must end in .csv or .parquet (got {str(out)!r})")
        if experiment is not None:
            check_choice("--experiment", experiment, available())
        from ..store import is_store

        if not is_store(store):
            raise ConfigError(f"--store: must be an existing store file or folder of packed tables (got {str(store)!r})")
        with Store(store) as st:
            n = st.count(experiment)
        if n == 0:
            raise ConfigError(f"--store {str(store)!r}: holds no trials{' of ' + experiment if experiment else ''}; "
                              "nothing to export")
        typer.echo(str(do_export(store, out, experiment, force=force)))
        return 0

    @app.command(help="Pack a store into a folder that can be committed to git: one Parquet table per "
                      "experiment (every trial row, with its result and provenance; zstd), configs.json and "
                      "MANIFEST.json (row counts, sha256s, code version, commit, date, machine). report, plot "
                      "and ls read the folder as --store.")
    def pack(
        out: Path = typer.Argument(..., help="output folder (created; other files in it are left alone)"),
        store: Store = Path(DEFAULT_STORE),
        force: bool = typer.Option(False, "--force", help="replace the packed tables already in OUT"),
        as_json: bool = typer.Option(False, "--json", help="print the manifest as JSON"),
    ) -> int:
        from ..store import pack as do_pack

        manifest = do_pack(store, out, force=force)
        if as_json:
            typer.echo(json.dumps(manifest))
            return 0
        size = sum(f["bytes"] for f in manifest["files"].values())
        for name, f in manifest["files"].items():
            typer.echo(f"{out / name}: {f['rows']} rows, {f['bytes'] / 1e6:.2f} MB")
        typer.echo(f"packed {manifest['rows']} trials of {len(manifest['experiments'])} experiment(s) into {out} "
                   f"({size / 1e6:.2f} MB); read it with `ticketlab report --store {out}`")
        return 0

    @app.command(help="Unpack a folder of packed tables (ticketlab pack) into a new SQLite store (--store, which "
                      "must not exist yet), to resume or extend its sweeps; pack it again afterwards.")
    def unpack(
        folder: Path = typer.Argument(..., help="a folder written by `ticketlab pack`"),
        store: Store = Path(DEFAULT_STORE),
    ) -> int:
        from ..store import check_store_path
        from ..store import unpack as do_unpack
        from ..tables import is_tables

        if not is_tables(folder):
            raise ConfigError(f"FOLDER: must be a folder written by `ticketlab pack` (with MANIFEST.json) "
                              f"(got {str(folder)!r})")
        if store.exists():
            raise ConfigError(f"--store: must be a new file to unpack into (got {str(store)!r}, which exists)")
        store.parent.mkdir(parents=True, exist_ok=True)
        check_store_path(store)
        do_unpack(folder, store)
        typer.echo(f"unpacked {folder} into {store}; resume with `ticketlab sweep FIG --store {store}`, then "
                   f"`ticketlab pack {folder} --store {store} --force`")
        return 0

