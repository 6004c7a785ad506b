"""`ticketlab sensitivity`: one experiment's claims across the choices the paper leaves unstated."""

from __future__ import annotations

from pathlib import Path

import typer

from ..app import DEFAULT_STORE, sensitivity_study, verdict_word
from .options import json_text
from .sweep import confirm_run


def register(app: typer.Typer) -> None:
    @app.command(help="Judge an experiment's claims under each combination of unstated choices, e.g. "
                      "`ticketlab sensitivity fig4 --scale paper --vary step_convention=K,K2 --vary "
                      "batches=full,fresh:8`: per variant, trials done of asked and each claim's verdict and "
                      "check line, from the store (--run first runs what it lacks).")
    def sensitivity(
        experiment: str = typer.Argument(..., help="fig2..fig10, landscape or init"),
        vary: list[str] = typer.Option([], "--vary", help="NAME=V1,V2: a config field (a bare solver field names "
                                                          "it: step_convention=K,K2; a grid value in brackets: "
                                                          "N=[50,100],[150,200]) or batches=full,fresh:T "
                                                          "(solver.sampling and solver.num_batches); repeatable, "
                                                          "the variants are every combination"),
        scale: str = typer.Option("quick", help="the preset the variants start from: quick or paper"),
        trials: int = typer.Option(None, help="trials per cell (default: the scale's)"),
        set_: list[str] = typer.Option([], "--set", help="override a config field of every variant: FIELD=VALUE"),
        store: Path = typer.Option(Path(DEFAULT_STORE), help="result store: an SQLite file, or a folder of packed "
                                                             "tables (read-only)"),
        run: bool = typer.Option(False, "--run", help="first run, into the store, the trials each variant lacks"),
        device: str = typer.Option("cpu", help="cpu, cuda or cuda:N (for --run)"),
        yes: bool = typer.Option(False, "--yes", "-y", help="with --run: run without asking when the estimate is "
                                                            "long (required without a terminal)"),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="show progress bars (with --run)"),
        as_json: bool = typer.Option(False, "--json", help="print the study as one JSON object"),
    ) -> int:
        from ..device import check_device_syntax
        from ..experiments import available
        from ..sensitivity import format_table
        from .options import check_choice

        check_choice("EXPERIMENT", experiment, available())
        check_choice("--scale", scale, ("quick", "paper"))
        check_device_syntax(device)
        if trials is not None and trials < 1:
            from ..config import ConfigError

            raise ConfigError(f"--trials: must be >= 1 (got {trials})")
        study = sensitivity_study(experiment, list(vary), scale=scale, trials=trials, sets=list(set_), store=store,
                                  run=run, device=device, progress=progress and not as_json,
                                  confirm=confirm_run(yes))
        if as_json:
            typer.echo(json_text(study))
            return 0
        typer.echo(f"{experiment} sensitivity from {store} (starting from the {scale} preset): "
                   f"{len(study['variants'])} variant(s)")
        typer.echo(format_table(study["variants"], verdict_word))
        return 0
