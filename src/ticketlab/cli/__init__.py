"""The ticketlab command line: one typer app; each command group lives in its own module."""

from __future__ import annotations

import importlib
import sys

import typer

from ..config import ConfigError

app = typer.Typer(
    name="ticketlab",
    help="Why lottery tickets win: oracle-learner experiments on pruned ReLU networks, sweeps, plots and reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"ticketlab {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                       help="print the version and exit")) -> None:
    """ticketlab: run, sweep, plot and report the experiments of 'Why Lottery Ticket Wins?' (NeurIPS 2021)."""


# Each module defines register(app). Optional ones (extra dependencies) are skipped if they fail to import.
COMMAND_MODULES = ["train", "sweep", "landscape", "init_study", "imp"]


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name and err.name.startswith(f"{__name__}.{name}"):
                continue  # command module not present in this build
            raise
        module.register(app)


_register_all()


def main(argv: list[str] | None = None) -> int:
    """Console entry point: user errors become one clear message and exit status 2."""
    try:
        rv = app(args=argv, standalone_mode=False)
    except ConfigError as err:
        typer.echo(f"error: {err}", err=True)
        return 2
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("interrupted: finished trials are saved; rerun the same command to resume", err=True)
        return 130
    except Exception as err:  # click's usage errors (typer vendors click) carry their own exit code
        if type(err).__name__ == "Abort":  # click turns Ctrl-C into Abort
            typer.echo("interrupted: finished trials are saved; rerun the same command to resume", err=True)
            return 130
        if hasattr(err, "show") and hasattr(err, "exit_code"):
            err.show()
            return err.exit_code
        if type(err).__name__ == "Exit" and hasattr(err, "exit_code"):
            return err.exit_code
        raise
    if rv == 130:  # typer turns Ctrl-C into exit status 130 and returns it
        typer.echo("interrupted: finished trials are saved; rerun the same command to resume", err=True)
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
