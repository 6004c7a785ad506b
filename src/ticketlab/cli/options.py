"""Command-line pieces several commands share: list and seed parsing, options generated from the config
models, and the one declaration of each option several commands take (--store, --engine, --device, ...)."""

from __future__ import annotations

import contextlib
import inspect
import json
import typing
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..config import ConfigError, OracleSpec, bad_value, build


def int_list(text: str, flag: str, allow_all: bool = False) -> list:
    """'1000,2000' -> [1000, 2000]; with allow_all, 'all' stands for None. Names the flag when wrong."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if allow_all and part == "all":
            out.append(None)
            continue
        try:
            out.append(int(part))
        except ValueError:
            rule = "must be comma-separated integers" + (" or 'all'" if allow_all else "") + ", e.g. 1000,2000"
            raise bad_value(flag, rule, text) from None
    if not out:
        raise bad_value(flag, "must give at least one value", text)
    return out


def parse_r(text: str) -> int | tuple[int, ...]:
    """--r: one integer for every neuron, or one per neuron."""
    values = int_list(text, "--r")
    return values[0] if len(values) == 1 else tuple(values)


#: the oracle's fields, in --help order; train and landscape generate their options from OracleSpec
ORACLE_FIELDS = ("d", "K", "r", "layout", "r_spread", "noise", "extra")


def oracle_options(d: int, K: int, r: str, after_r=()) -> list[inspect.Parameter]:
    """The oracle's options, generated from OracleSpec (help and optional defaults written there); ``d``,
    ``K``, ``r``: the command's defaults of the fields OracleSpec requires; ``after_r``: options shown
    between --r and the rest (a command's --N)."""
    opts = {n: model_option(OracleSpec, n) for n in ORACLE_FIELDS if n not in ("d", "K", "r")}
    return [model_option(OracleSpec, "d", default=d), model_option(OracleSpec, "K", default=K),
            model_option(OracleSpec, "r", default=r, kind=str), *after_r,
            *(opts[n] for n in ORACLE_FIELDS if n in opts)]


def oracle_from_options(d, K, r, layout, r_spread, noise, extra) -> OracleSpec:
    """The OracleSpec of the oracle options (--r parsed: one integer, or K comma-separated)."""
    return build(OracleSpec, True, d=d, K=K, r=parse_r(r), layout=layout, r_spread=r_spread, noise=noise,
                 extra=extra)


def model_option(model_cls, name: str, *, default=..., kind=None, help: str | None = None,
                 **option) -> inspect.Parameter:
    """The typer option ``--NAME`` of field ``name`` of a config model, its type, default and help text taken
    from the model (written once there; the flag keeps the field's case: --N, --K). A Literal becomes a
    string the model checks (so a bad value is refused with the flag named and the allowed values listed).
    ``default``: the command's own default of a field the model requires (d, K, r, N); ``kind``: the type
    of a parsed command-line form (r as '20' or '20,18,...'); ``help``: text put before the model's;
    ``option`` adds typer.Option arguments."""
    field = model_cls.model_fields[name]
    if kind is None:
        kind = field.annotation
        optional = type(None) in typing.get_args(kind)
        if optional:
            (kind,) = [a for a in typing.get_args(kind) if a is not type(None)]
        if typing.get_origin(kind) is typing.Literal:
            kind = str
        kind = typing.Optional[kind] if optional else kind
    text = f"{help} {field.description}" if help else field.description
    decls = option.pop("decls", None) or ("--" + name.replace("_", "-"),)
    if kind is bool and len(decls) == 1:
        decls = (f"{decls[0]}/--no-{decls[0][2:]}",)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind,
                             default=typer.Option(field.default if default is ... else default, *decls,
                                                  help=text, **option))


def option(name: str, kind, default, help: str, *decls: str) -> inspect.Parameter:
    """A typer option that no config model holds (a parsed form, a command's own switch)."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind,
                             default=typer.Option(default, *decls, help=help))


def with_options(func, params: list[inspect.Parameter]):
    """``func(**options)`` as a typer command whose options are ``params`` (in this order)."""
    func.__signature__ = inspect.Signature(params)
    return func


# --- one convention per concept across commands (README, 'Command-line conventions') ------------------

MAX_SEEDS = 1_000_000


def parse_seeds(text: str, flag: str = "--seeds") -> list[int]:
    """--seeds: seeds >= 0, comma-separated, each one a seed or an inclusive range A-B: '0,1,2', '0-4',
    '0-2,7'. The same syntax in every command that runs several seeds; a repeated seed is refused.

    >>> parse_seeds("0-2,7")
    [0, 1, 2, 7]
    """
    rule = "must be seeds >= 0, comma-separated, each a seed or a range A-B, e.g. 0,1,2 or 0-4"
    out: list[int] = []
    for part in (p.strip() for p in str(text).split(",")):
        lo, dash, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi if dash else lo)
        except ValueError:
            raise ConfigError(f"{flag}: {rule} (got {text!r})") from None
        if a < 0 or b < a:
            raise ConfigError(f"{flag}: {rule}, A <= B (got {text!r})")
        if len(out) + b - a + 1 > MAX_SEEDS:
            raise ConfigError(f"{flag}: must be at most {MAX_SEEDS:,} seeds (got {text!r})")
        out.extend(range(a, b + 1))
    if len(set(out)) != len(out):
        raise ConfigError(f"{flag}: must not repeat a seed (got {text!r})")
    return out


def seeds_of(seed: int | None, trials: int | None, seeds: str | None) -> list[int]:
    """The seeds of a command that runs trials: --seeds LIST, or --trials T consecutive seeds from --seed S
    (defaults 0 and 1), never both."""
    if seeds is not None:
        if seed is not None or trials is not None:
            raise ConfigError(f"--seeds: give --seeds, or --seed and --trials, not both (got --seeds {seeds!r} "
                              f"with {'--seed' if seed is not None else '--trials'})")
        return parse_seeds(seeds)
    seed, trials = (0 if seed is None else seed), (1 if trials is None else trials)
    if trials < 1:
        raise ConfigError(f"--trials: must be >= 1 (got {trials})")
    check_seed(seed)
    return list(range(seed, seed + trials))


SEED_HELP = "first seed (default 0); trial i uses seed + i"
SEEDS_HELP = "the trials' seeds instead of --seed/--trials: comma-separated seeds or ranges, e.g. 0,1,2 or 0-4"

STORE_HELP = ("result store: an SQLite file (created by the commands that run), with IMP runs in imp/ beside "
              "it; imp, plot and report also take the folder holding them, every reading command a folder of "
              "packed tables")
#: the one --store of every command (sweeps, IMP runs, plots, reports, reproduce), default DEFAULT_STORE
Store = Annotated[Path, typer.Option("--store", help=STORE_HELP)]


def imp_folder(store) -> str:
    """The folder whose imp/ holds the IMP runs of ``--store``: that of an SQLite store (``x.db``), or
    the folder given (created if missing; ``--store DIR`` as before)."""
    p = Path(store)
    return str(p.parent) if p.suffix == ".db" or p.is_file() else str(p)


#: where reproduce and imp kept their results before the one --store default (ticketlab 0.1.0 of 2026-12-02)
OLD_DEFAULTS = {"reproduce": "results/ticketlab-results.db", "imp": "results/imp"}


def old_default_note(command: str, store) -> str | None:
    """A line for a user rerunning ``command`` with the default --store to resume, whose earlier results
    sit at the old default path: the new default would silently start over."""
    from ..app import DEFAULT_STORE

    old = Path(OLD_DEFAULTS[command])
    new = Path(imp_folder(store)) / "imp" if command == "imp" else Path(store)
    if str(store) != DEFAULT_STORE or new.exists() or not old.exists():
        return None
    given = old.parent if command == "imp" else old
    return (f"note: the default --store is now {DEFAULT_STORE}; earlier results of `ticketlab {command}` are in "
            f"{old}: pass --store {given} to resume them")


ENGINE_HELP = ("Algorithm 1 engine: auto (fast on the CPU if numba is installed), fast (numba, CPU), "
               "reference (batched torch) or slots (device-side stopping, trials of many cells in shared "
               "slots; CUDA graphs on a GPU); stored with each row")
Engine = Annotated[str, typer.Option("--engine", help=ENGINE_HELP)]
Device = Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N")]
CONFIRM_SECONDS = 600  # a run estimated longer than this asks first (or needs --yes)
Yes = Annotated[bool, typer.Option("--yes", "-y", help=f"run without asking when the estimate exceeds "
                                                       f"{CONFIRM_SECONDS // 60} min (required without a terminal)")]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="show progress bars")]
Scale = Annotated[str, typer.Option("--scale", help="the preset: quick (minutes on a laptop CPU) or paper (the "
                                                    "paper's grids)")]
Trials = Annotated[Optional[int], typer.Option("--trials", help="trials per cell (default: the scale's)")]
Sets = Annotated[list[str], typer.Option("--set", help="override a config field: FIELD=VALUE (lists as 1,2,3 "
                                                       "or [1,2,3]); repeatable")]


def json_text(obj) -> str:
    """One JSON object, valid JSON always: inf and NaN become null (json.dumps would write Infinity)."""
    import math

    def clean(v):
        if isinstance(v, float):
            return v if math.isfinite(v) else None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if hasattr(v, "item") and callable(v.item) and getattr(v, "ndim", 1) == 0:  # numpy scalars
            return clean(v.item())
        return v

    return json.dumps(clean(obj), default=lambda v: clean(float(v)) if hasattr(v, "__float__") else str(v),
                      allow_nan=False)


EXECUTORS = ("local", "dask")


def check_choice(flag: str, value: str, choices) -> str:
    if value not in choices:
        import difflib

        close = difflib.get_close_matches(str(value), choices, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigError(f"{flag}: must be one of {', '.join(choices)} (got {value!r}){hint}")
    return value


def check_seed(seed: int, flag: str = "--seed") -> int:
    if seed < 0:
        raise ConfigError(f"{flag}: must be >= 0 (got {seed})")
    return seed


@contextlib.contextmanager
def engine_chosen(name: str):
    """--engine for the commands that run sweeps (sweep, reproduce, sensitivity --run): this process's
    Algorithm 1 engine while the block runs (recorded in every row's provenance), then the previous one."""
    from .. import engine as engines

    previous = engines.choose(engines.check_engine(name))
    try:
        yield name
    finally:
        engines.choose(previous)
