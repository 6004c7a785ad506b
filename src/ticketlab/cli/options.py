"""Command-line pieces several commands share: list parsing and the oracle's options."""

from __future__ import annotations

import inspect
import typing
from typing import Annotated

import typer

from ..config import ConfigError, OracleSpec, build


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
            raise ConfigError(f"invalid {flag} {text!r}: give comma-separated integers, e.g. 1000,2000") from None
    if not out:
        raise ConfigError(f"invalid {flag} {text!r}: give at least one value")
    return out


def parse_r(text: str) -> int | tuple[int, ...]:
    """--r: one integer for every neuron, or one per neuron."""
    values = int_list(text, "--r")
    return values[0] if len(values) == 1 else tuple(values)


# The oracle's options, one definition for every command that draws an oracle (defaults stay per command).
Dim = Annotated[int, typer.Option("--d", help="input dimension d (>= 1)")]
Neurons = Annotated[int, typer.Option("--K", help="hidden neurons K (>= 1)")]
Kept = Annotated[str, typer.Option("--r", help="kept weights per neuron: one integer, or K comma-separated (1..d)")]
Layout = Annotated[str, typer.Option(help="oracle supports: overlap (pairwise intersecting), random, disjoint, or "
                                          "groups:N1,N2,... (disjoint blocks of overlapping neurons)")]
RSpread = Annotated[float, typer.Option("--r-spread", help="draw r_j uniformly in [(1-s) r, (1+s) r]; the paper "
                                                           "uses 0.1 in Figures 2 and 4 (0 <= s < 1)")]
Noise = Annotated[float, typer.Option(help="noise level sigma / E_y (>= 0)")]
Extra = Annotated[int, typer.Option(help="learner mask = oracle mask plus this many random extra inputs per neuron")]


def oracle_from_options(d, K, r, layout, r_spread, noise, extra) -> OracleSpec:
    return build(OracleSpec, True, d=d, K=K, r=parse_r(r), layout=layout, r_spread=r_spread, noise=noise,
                 extra=extra)


def model_option(model_cls, name: str, **option) -> inspect.Parameter:
    """The typer option of field ``name`` of a config model, its type, default and help text taken from the
    model (written once there). A Literal becomes a string the model checks (so a bad value is refused
    with the flag named and the allowed values listed); ``option`` adds typer.Option arguments."""
    field = model_cls.model_fields[name]
    kind = field.annotation
    optional = type(None) in typing.get_args(kind)
    if optional:
        (kind,) = [a for a in typing.get_args(kind) if a is not type(None)]
    if typing.get_origin(kind) is typing.Literal:
        kind = str
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=typing.Optional[kind] if optional else kind,
                             default=typer.Option(field.default, help=field.description, **option))


def with_options(func, params: list[inspect.Parameter]):
    """``func(**options)`` as a typer command whose options are ``params`` (in this order)."""
    func.__signature__ = inspect.Signature(params)
    return func
