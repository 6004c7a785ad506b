"""Command-line pieces several commands share: list parsing and the oracle's options."""

from __future__ import annotations

import inspect
import json
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
