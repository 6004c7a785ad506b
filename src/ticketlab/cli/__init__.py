"""The ticketlab command line: one typer app; each command group lives in its own module."""

from __future__ import annotations

import importlib
import re
import sys

import typer

from ..config import ConfigError


def _no_placeholder_for_flags(params: list) -> list:
    """A flag (--json, --version, --help) takes no value, so its --help line shows no placeholder: typer's rich
    help writes the type, '<bool>', for every option unless it has a metavar; a flag gets an empty one."""
    for p in params:
        if (getattr(p, "is_flag", False) or getattr(p, "count", False)) and p.metavar is None:
            p.metavar = ""
    return params


class _Command(typer.core.TyperCommand):
    """Every ticketlab command: flags shown without a value placeholder in --help."""

    def get_params(self, ctx):
        return _no_placeholder_for_flags(super().get_params(ctx))


class _Group(typer.core.TyperGroup):
    """The ticketlab group: flags shown without a value placeholder in --help."""

    def get_params(self, ctx):
        return _no_placeholder_for_flags(super().get_params(ctx))


app = typer.Typer(
    cls=_Group,
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
COMMAND_MODULES = ["train", "sweep", "landscape", "init_study", "imp", "sensitivity"]


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name and err.name.startswith(f"{__name__}.{name}"):
                continue  # command module not present in this build
            raise
        module.register(app)
    for info in app.registered_commands:  # every command's help shows flags without a placeholder
        if info.cls in (None, typer.core.TyperCommand):
            info.cls = _Command


_register_all()


from .._interrupt import MESSAGE as INTERRUPTED
from .._interrupt import hit as _interrupt_hit
from .._interrupt import mark_reported as _mark_reported


def _say_interrupted() -> None:
    typer.echo(INTERRUPTED, err=True)
    _mark_reported()


def _one_line(text) -> str:
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _error(text) -> int:
    typer.echo(f"error: {_one_line(text)}", err=True)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Console entry point: every user error is one line on stderr and exit status 2; Ctrl-C is one line
    and exit status 130 (wherever it lands: in an import, a solve, a store write)."""
    try:
        rv = app(args=argv, standalone_mode=False)
    except Exception as err:
        if _interrupt_hit():  # a Ctrl-C that a library turned into another error: still the interrupt
            _say_interrupted()
            return 130
        return _handle(err, sys.argv[1:] if argv is None else argv)
    except (KeyboardInterrupt, BaseException) as err:
        if isinstance(err, KeyboardInterrupt) or _interrupt_hit():
            _say_interrupted()
            return 130
        raise
    if rv == 130:  # typer turns Ctrl-C into exit status 130 and returns it
        _say_interrupted()
    return rv if isinstance(rv, int) else 0


def _options_differing_in_case(err: Exception) -> list[str]:
    """For click's 'no such option' error, the command's options that differ from the one given only by
    case (--k for --K, --n for --N): the options keep the case of the paper's symbols."""
    name, ctx = getattr(err, "option_name", None), getattr(err, "ctx", None)
    if type(err).__name__ != "NoSuchOption" or not name or ctx is None:
        return []
    options = [o for p in ctx.command.get_params(ctx) for o in (*p.opts, *p.secondary_opts)]
    return [o for o in dict.fromkeys(options) if o != name and o.lower() == name.lower()]


def _given(argv, opts) -> str | None:
    """The text given on the command line for the option named ``opts`` (the last one, as click keeps)."""
    argv, found = list(argv), None
    for i, tok in enumerate(argv):
        for opt in opts:
            if tok == opt and i + 1 < len(argv):
                found = argv[i + 1]
            elif tok.startswith(opt + "="):
                found = tok[len(opt) + 1:]
    return found


_NOT_ONE_OF = re.compile(r"^(?:Value )?(?P<got>.+?) is not one of (?P<choices>.+?)\.?$")
_NOT_A = re.compile(r"^(?:Value )?(?P<got>.+?) is not a valid (?P<kind>.+?)\.?$")


def _bad_parameter(err, argv) -> str:
    """click's 'Invalid value for ...' (a value typer could not convert) in the project's wording,
    'FLAG: must be ... (got X)'."""
    from ..config import reword

    param = err.param
    name = param.opts[0] if getattr(param, "opts", None) and param.param_type_name == "option" else \
        (param.human_readable_name or param.name or "value")
    msg = reword(str(err.message).strip())
    got = _given(argv, [*param.opts, *getattr(param, "secondary_opts", [])]) if param.param_type_name == "option" \
        else None
    m = _NOT_ONE_OF.match(msg) or _NOT_A.match(msg)
    if m and "choices" in m.groupdict():
        msg, got = f"must be one of {m['choices']}", got if got is not None else m["got"].strip("'")
    elif m:
        msg, got = f"must be a valid {m['kind']}", got if got is not None else m["got"].strip("'")
    if msg.startswith("must be a valid ") and "," in msg:  # 'must be a valid integer, unable to parse string as an integer'
        msg = msg.split(",")[0]
    msg = msg.rstrip(".")
    return f"{name}: {msg}" + (f" (got {got!r})" if got is not None and "(got" not in msg else "")


def _handle(err: Exception, argv=()) -> int:
    import sqlite3

    try:
        raise err
    except ConfigError as err:
        return _error(err)
    except (typer.Abort, KeyboardInterrupt):
        _say_interrupted()
        return 130
    except MemoryError:
        return _error("out of memory: lower --chunk-size or --memory-budget, or the grid's N, d or trials")
    except sqlite3.Error as err:
        return _error(f"the result store failed: {err}")
    except OSError as err:
        where = f"{err.filename}: " if getattr(err, "filename", None) else ""
        return _error(f"{where}{err.strerror or err}")
    except ImportError as err:
        if "partially initialized" in str(err):  # an import cut short by Ctrl-C
            _say_interrupted()
            return 130
        raise
    except Exception as err:  # click's usage errors (typer vendors click) carry their own exit code
        if type(err).__name__ == "Abort":  # click turns Ctrl-C into Abort
            _say_interrupted()
            return 130
        if type(err).__name__ == "NoArgsIsHelpError" and hasattr(err, "show"):
            err.show()
            return err.exit_code
        same_but_case = _options_differing_in_case(err)
        if same_but_case:
            typer.echo(f"error: no such option {err.option_name} (did you mean {' or '.join(same_but_case)}?)",
                       err=True)
            return getattr(err, "exit_code", 2)
        if type(err).__name__ == "BadParameter" and getattr(err, "param", None) is not None:
            return _error(_bad_parameter(err, argv))
        if hasattr(err, "format_message") and hasattr(err, "exit_code"):
            name = getattr(getattr(err, "ctx", None), "command_path", "ticketlab")
            typer.echo(f"error: {_one_line(err.format_message())} (see `{name} --help`)", err=True)
            return err.exit_code
        if type(err).__name__ == "Exit" and hasattr(err, "exit_code"):
            return err.exit_code
        raise


if __name__ == "__main__":
    sys.exit(main())
