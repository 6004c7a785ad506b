"""`ticketlab sensitivity`: one experiment's claims across the choices the paper leaves unstated."""

from __future__ import annotations

from pathlib import Path

import typer

from ..app import DEFAULT_STORE, sensitivity_study, verdict_word
from .options import Device, Engine, Progress, Scale, Sets, Store, Trials, Yes, engine_chosen, json_text
from .sweep import confirm_run


def register(app: typer.Typer) -> None:
    @app.command()
    def sensitivity(
        experiment: str = typer.Argument(..., help="fig2..fig10, landscape or init"),
        vary: list[str] = typer.Option([], "--vary", help="NAME=V1,V2: a config field (a bare solver field names "
                                                          "it: step_convention=K,K2; a grid value in brackets: "
                                                          "N=[50,100],[150,200]) or batches=full,fresh:T "
                                                          "(solver.sampling and solver.num_batches); repeatable, "
                                                          "the variants are every combination"),
        scale: Scale = "quick",
        trials: Trials = None,
        set_: Sets = [],
        store: Store = Path(DEFAULT_STORE),
        run: bool = typer.Option(False, "--run", help="first run, into the store, the trials each variant lacks "
                                                      "(with --device, --engine, --yes, --progress)"),
        device: Device = "cpu",
        engine: Engine = "auto",
        yes: Yes = False,
        progress: Progress = True,
        as_json: bool = typer.Option(False, "--json", help="print the study as one JSON object"),
    ) -> int:
        """Judge an experiment's claims under each combination of unstated choices, e.g. `ticketlab
        sensitivity fig4 --scale paper --vary step_convention=K,K2 --vary batches=full,fresh:8`: per variant,
        trials done of asked and each claim's verdict and check line, from the store (--run first runs what
        it lacks)."""
        from ..device import check_device_syntax
        from ..experiments import available
        from ..sensitivity import format_table
        from .options import check_choice

        check_choice("EXPERIMENT", experiment, available())
        check_choice("--scale", scale, ("quick", "paper"))
        check_device_syntax(device)
        from .. import engine as engines

        engines.check_engine(engine)
        if trials is not None and trials < 1:
            from ..config import ConfigError

            raise ConfigError(f"--trials: must be >= 1 (got {trials})")
        with engine_chosen(engine):
            study = sensitivity_study(experiment, list(vary), scale=scale, trials=trials, sets=list(set_),
                                      store=store, run=run, device=device, progress=progress and not as_json,
                                      confirm=confirm_run(yes))
        if as_json:
            typer.echo(json_text(study))
            return 0
        typer.echo(f"{experiment} sensitivity from {store} (starting from the {scale} preset): "
                   f"{len(study['variants'])} variant(s)")
        typer.echo(format_table(study["variants"], verdict_word))
        return 0
