"""Validated configuration models and their stable ids.

Every knob a result depends on lives in one of these models. They reject bad input at the edge with
a message naming the field, the value and the allowed range, and hash to a stable id (the
canonical JSON of the model) so that a finished trial is found again instead of recomputed.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import re
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, InstanceOf, StrictBool, ValidationError,
                      create_model, field_validator, model_validator)

__all__ = [
    "LAYOUTS", "ConfigError", "Model", "stable_hash", "reword", "format_validation_error", "validation_fields", "build",
    "OracleSpec", "SolverSpec", "InitSpec", "TrialSpec", "parse_init",
    "bad_value", "validated", "Instance", "Choice", "VALIDATED",
]

_GROUPS = re.compile(r"^groups:(\d+(,\d+)*)$")
#: the oracle's support layouts (``OracleSpec.layout``)
LAYOUTS = ("overlap", "random", "disjoint", "groups:N1,N2,...")


class ConfigError(ValueError):
    """A user-facing configuration error: one line per bad field, each naming field and range.
    ``detail``: the message without its field (``bad_value``'s 'must ... (got X)'), or None.
    ``function`` and ``fields``: from a ``validated`` function (or its own 'FUNCTION PARAM' check), the
    function and each bad parameter with its text without the name [(param, 'must ... (got X)')], so that
    a caller (the CLI) can name the flag instead; a message not about one parameter has param None."""

    detail: str | None = None
    function: str | None = None
    fields: tuple[tuple[str | None, str], ...] = ()

    def renamed(self, function: str, name) -> "ConfigError":
        """The same error with each of ``function``'s bad parameters named by ``name(param)`` (e.g. its
        --flag); itself when it came from another function or carries no fields."""
        if self.function != function or not self.fields:
            return self
        out = ConfigError("; ".join(text if field is None else f"{name(field)}: {text}" for field, text in self.fields))
        out.function, out.fields, out.detail = self.function, self.fields, self.detail
        return out


def _is_number(annotation) -> bool:
    """int or float, or an Annotated/Optional/tuple of them (a grid): where a bool is never meant."""
    if annotation in (int, float):
        return True
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return False
    return bool(args) and any(_is_number(a) for a in args if a is not type(None) and a is not Ellipsis)


def _is_whole(annotation) -> bool:
    """int, or an Annotated/Optional/list/tuple of int and no float: where 50.0 is not meant (a function's
    argument goes through unconverted, so a float there would reach torch as a float)."""
    if annotation is int:
        return True
    if annotation is float or typing.get_origin(annotation) is typing.Literal:
        return False
    args = [a for a in typing.get_args(annotation) if a is not type(None) and a is not Ellipsis]
    return bool(args) and any(_is_whole(a) for a in args) and not any(a is float for a in args)


def _contains_bool(value) -> bool:
    if isinstance(value, bool):
        return True
    return isinstance(value, (list, tuple)) and any(isinstance(x, bool) for x in value)


class Model(BaseModel):
    """A frozen config model. Every number is finite (``allow_inf_nan=False``), a bool is refused where
    a number belongs, and ``model_copy(update=...)`` validates like the constructor."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, value, info):
        field = cls.model_fields.get(info.field_name)
        if field is not None and _is_number(field.annotation) and _contains_bool(value):
            raise ValueError("must be a number, not true/false")
        return value

    def stable_id(self) -> str:
        return stable_hash(self.model_dump(mode="json"))

    def model_copy(self, *, update=None, deep: bool = False):
        """A copy; with ``update``, the changed config is validated like a new one (ConfigError if bad)."""
        if not update:
            return super().model_copy(deep=deep)
        data = {name: getattr(self, name) for name in type(self).model_fields}
        return build(type(self), **{**data, **update})


def stable_hash(obj) -> str:
    """A short hash of canonical JSON: identical configs give identical ids across runs and hosts."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_REWORD = [("Input should be", "must be"), ("Input should", "must"), ("Value should", "must"),
           ("Tuple should", "must"), ("List should", "must"), ("String should", "must"),
           ("Extra inputs are not permitted", "is not a field"), ("Field required", "is required")]


def reword(msg: str) -> str:
    """pydantic's message in the project's wording: 'must be ...'."""
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    for a, b in _REWORD:
        if msg.startswith(a):
            return b + msg[len(a):]
    return msg


def _loc_name(loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _field_info(model_cls, loc):
    """The pydantic FieldInfo a location names, through nested models (solver.eta: SolverSpec's eta)."""
    info = None
    for part in loc:
        fields = getattr(model_cls, "model_fields", None)
        if not isinstance(part, str) or not fields or part not in fields:
            break
        info = fields[part]
        model_cls = info.annotation
    return info


def validation_fields(err: ValidationError, model_cls=None) -> list[tuple[str | None, str, str]]:
    """Each bad field once: (top-level field or None, its name as printed, 'must be ... (got X) [allowed]')."""
    parts, seen = [], set()
    for e in err.errors():
        msg = reword(e["msg"])
        if not e["loc"]:
            parts.append((None, "", msg))
            continue
        field = str(e["loc"][0])
        if field in seen:  # one complaint per field (a bad grid point also makes the grid 'too short')
            continue
        seen.add(field)
        info = _field_info(model_cls, e["loc"])
        allowed = f" [{info.description}]" if info is not None and info.description else ""
        value = e.get("input")
        shown = "" if isinstance(value, dict) or "(got" in msg else f" (got {_shown(value)})"
        parts.append((field, _loc_name(e["loc"]), f"{msg}{shown}{allowed}"))
    return parts


def format_validation_error(err: ValidationError, model_cls=None, flag_style: bool = False, prefix: str = "",
                            fields: list | None = None) -> str:
    """One line for all bad fields, each 'FIELD: must be ... (got X) [allowed]' (FIELD as --flag with
    flag_style, after ``prefix``), joined by '; ' so that the CLI prints exactly one line (``fields``:
    ``validation_fields`` already taken)."""
    return "; ".join(text if field is None else
                     f"{prefix}{'--' + field.replace('_', '-') if flag_style else name}: {text}"
                     for field, name, text in (fields or validation_fields(err, model_cls)))


def build(model_cls, flag_style: bool = False, **kwargs):
    """Construct a config model, turning pydantic's error into a ConfigError with readable lines."""
    try:
        return model_cls(**kwargs)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, model_cls, flag_style)) from None


def _shown(value, limit: int = 80) -> str:
    """repr on one line, cut to ``limit`` characters (a tensor or an array can print many lines)."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def bad_value(field: str, rule: str, got, *, hint: str = "") -> ConfigError:
    """The project's one wording for a bad value, 'FIELD: must ... (got X)[; HINT]', as an error to raise.

    ``rule`` is the requirement, starting with 'must' (as pydantic's reworded messages do); ``got`` is
    shown by repr; ``hint`` says what to do instead. A FIELD 'FUNCTION PARAM' (a function's own check of
    its parameter, as ``validated`` words it) is also recorded as the error's ``fields``."""
    detail = f"{rule} (got {_shown(got)})" + (f"; {hint}" if hint else "")
    err = ConfigError(f"{field}: {detail}")
    err.detail = detail
    head, _, param = field.rpartition(" ")
    if head.isidentifier() and param.isidentifier():  # 'FUNCTION PARAM', as validated words it
        err.function, err.fields = head, ((param, detail),)
    return err


class OracleSpec(Model):
    """The pruned teacher: d inputs, K ReLU neurons, r non-zeros per neuron, a support layout."""

    d: Annotated[int, Field(ge=1, description="input dimension (>= 1)")]
    K: Annotated[int, Field(ge=1, description="number of hidden neurons (>= 1)")]
    r: Annotated[
        int | tuple[int, ...],
        Field(description="kept weights per neuron: one value, or one per neuron (K values; on the command "
                          "line comma-separated), 1 <= r <= d"),
    ]
    r_spread: Annotated[
        float,
        Field(ge=0.0, lt=1.0, description="draw r_j uniformly from [(1-s) r, (1+s) r] (0 <= s < 1); the paper "
                                          "uses 0.1 in Figures 2 and 4"),
    ] = 0.0
    layout: Annotated[
        str, Field(description="oracle supports: overlap (pairwise intersecting), random, disjoint, or "
                               "groups:N1,N2,... (disjoint blocks of overlapping neurons)")
    ] = "overlap"
    noise: Annotated[float, Field(ge=0.0, le=100.0, description="noise level sigma / E_y (0 <= noise <= 100)")] = 0.0
    extra: Annotated[
        int, Field(ge=0, description="learner mask = oracle mask plus this many extra kept inputs per neuron "
                                     "(>= 0)")
    ] = 0

    @field_validator("r")
    @classmethod
    def _r_positive(cls, v):
        values = (v,) if isinstance(v, int) else v
        if any(x < 1 for x in values):
            raise ValueError(f"must be >= 1 for every neuron (got {v})")
        return v

    @field_validator("layout")
    @classmethod
    def _layout_known(cls, v):
        if v in ("overlap", "random", "disjoint") or _GROUPS.match(v):
            return v
        raise ValueError(f"must be one of {', '.join(LAYOUTS)} (got {v!r})")

    @model_validator(mode="after")
    def _fits(self):
        rs = self.r_values()
        if len(rs) != self.K:
            raise ValueError(f"r: must be one value or exactly K = {self.K} values (got {len(rs)} values)")
        r_hi = max(int(round(x * (1 + self.r_spread))) for x in rs)
        if r_hi + self.extra > self.d:
            raise ValueError(
                f"r: must keep r_max + extra <= d = {self.d} (got r_max = {r_hi} with r_spread, extra = {self.extra})"
            )
        if self.layout == "disjoint" and sum(r_hi for _ in rs) > self.d:
            raise ValueError(
                f"layout: must not be 'disjoint' with K * r_max = {self.K * r_hi} > d = {self.d} (got 'disjoint'); "
                "lower K or r, or use layout 'overlap'/'random'"
            )
        groups = self.groups()
        if groups is not None:
            if sum(groups) != self.K:
                raise ValueError(f"layout: must have groups adding up to K = {self.K} (got {self.layout!r})")
            if self.d // len(groups) < r_hi + self.extra:
                raise ValueError(
                    f"layout: must split d = {self.d} into blocks of at least r_max + extra = {r_hi + self.extra} "
                    f"coordinates (got {self.layout!r}: {len(groups)} blocks of {self.d // len(groups)})"
                )
        return self

    def r_values(self) -> tuple[int, ...]:
        return (self.r,) * self.K if isinstance(self.r, int) else tuple(self.r)

    def groups(self) -> tuple[int, ...] | None:
        m = _GROUPS.match(self.layout)
        return tuple(int(x) for x in m.group(1).split(",")) if m else None


StepConvention = Literal["literal", "K", "K2"]


class SolverSpec(Model):
    """Algorithm 1: heavy-ball AGD on the mask (beta = 0 is GD)."""

    eta: Annotated[float, Field(gt=0.0, description="step size eta (> 0)")] = 0.5
    beta: Annotated[float, Field(ge=0.0, lt=1.0, description="momentum beta in [0, 1); 0 is plain GD")] = 0.2
    step_convention: Annotated[
        StepConvention,
        Field(
            description="how eta scales the gradient of the literal objective: 'literal' (eta), "
            "'K' (eta*K, the theory's eta = K/14 scale; closest to the paper's Figure 3 rates), "
            "'K2' (eta*K^2); see docs/step-size.md"
        ),
    ] = "K"
    max_iter: Annotated[int, Field(ge=1, description="iteration cap (>= 1)")] = 10_000
    tol: Annotated[float, Field(gt=0.0, lt=1.0, description="stop when ||W_t+1 - W_t|| / ||W_t|| < tol (0 < tol < 1)")] = 1e-8
    sampling: Annotated[
        Literal["full", "fresh"],
        Field(description="'full': all N samples every iteration (the experiments); 'fresh': "
              "split into num_batches disjoint batches, one per iteration (the analysed algorithm)"),
    ] = "full"
    num_batches: Annotated[int, Field(ge=1, description="batches T for sampling='fresh'")] = 1
    diverge_factor: Annotated[
        float, Field(gt=1.0, description="a trial whose ||W|| exceeds this times its start is failed")
    ] = 1e6


class InitSpec(Model):
    """Where Algorithm 1 starts."""

    kind: Annotated[
        Literal["local", "random", "tensor", "moments", "moments0", "dense"],
        Field(description="local: W* plus a perturbation of relative size lam on the mask; random: "
              "uniform on the mask; from data alone (docs/tensor-init.md): tensor (the paper's method of "
              "moments, on the mask), moments (mask-aware fit, recommended), moments0 (its pure "
              "second-moment estimate), dense (method of moments without the mask)"),
    ] = "local"
    lam: Annotated[float, Field(gt=0.0, description="relative distance of a local start (> 0)")] = 0.3


class TrialSpec(Model):
    """One oracle-learner trial, all but its seed."""

    oracle: OracleSpec
    N: Annotated[int, Field(ge=1, description="training samples (>= 1)")]
    solver: SolverSpec = SolverSpec()
    init: InitSpec = InitSpec()
    test_error: Annotated[
        Literal["exact", "sampled"],
        Field(description="test RMSE from the closed-form population risk (exact) or from n_test fresh "
                          "samples (sampled)"),
    ] = "exact"
    n_test: Annotated[int, Field(ge=1, description="fresh samples for test_error='sampled'")] = 100_000
    record_every: Annotated[
        int, Field(ge=0, description="record the error curve every k iterations (0: off)")
    ] = 0
    dtype: Annotated[Literal["float64", "float32"],
                     Field(description="float64 (default: the 1e-8 stopping rule needs it) or float32")] = "float64"

    @model_validator(mode="after")
    def _batches_fit(self):
        if self.solver.sampling == "fresh" and self.N < self.solver.num_batches:
            raise ValueError(f"solver.num_batches: must be <= N = {self.N} for sampling='fresh' "
                             f"(got {self.solver.num_batches})")
        return self


def parse_init(text: str) -> InitSpec:
    """'local:0.3', 'local', 'random', 'tensor' -> InitSpec (the CLI's compact form)."""
    kind, _, arg = text.partition(":")
    kwargs = {"kind": kind}
    if arg:
        try:
            kwargs["lam"] = float(arg)
        except ValueError:
            raise bad_value("--init", "must be KIND or KIND:LAM with a number LAM, e.g. local:0.3", text) from None
    try:
        return build(InitSpec, **kwargs)
    except ConfigError as err:
        raise ConfigError(f"--init {err}") from None


# --------------------------------------------------------------------------- raw-argument functions
# The core's public functions take plain numbers, seeds and tensors as well as config models. Their
# arguments are checked with the same pydantic rules as a config field (finite floats, no bool or text
# where a number belongs, ranges) and refused in the same wording, 'FUNCTION PARAM: must ... (got X)',
# once per call at entry: no decorated function runs inside an iteration loop.


def _is_tensor(value):
    import torch

    if not torch.is_tensor(value):
        raise ValueError("must be a torch.Tensor")
    return value


def _is_dtype(value):
    import torch

    if not isinstance(value, torch.dtype):
        raise ValueError("must be a torch.dtype, e.g. torch.float64")
    return value


def _is_device(value):
    import torch

    if isinstance(value, torch.device):
        return value
    try:  # torch's own parser: the form only; whether this machine has it is resolve_device's to say
        torch.device(value)
    except (RuntimeError, TypeError):
        raise ValueError("must be a device name such as 'cpu' or 'cuda:0', or a torch.device") from None
    return value


Seed = Annotated[int, Field(ge=0, description="a seed: an integer >= 0")]
Seeds = Annotated[list[Seed], Field(min_length=1, description="one seed (an integer >= 0) per trial")]
Count = Annotated[int, Field(ge=1, description="an integer >= 1")]
NonNegInt = Annotated[int, Field(ge=0, description="an integer >= 0")]
PositiveFloat = Annotated[float, Field(gt=0, description="a finite number > 0")]
NonNegFloat = Annotated[float, Field(ge=0, description="a finite number >= 0")]
Fraction = Annotated[float, Field(ge=0, le=1, description="a fraction in [0, 1]")]
Tol = Annotated[float, Field(gt=0, lt=1, description="a tolerance in (0, 1)")]
Flag = StrictBool
Tensor = Annotated[Any, AfterValidator(_is_tensor)]
Tensors = Mapping[str, Tensor]
DType = Annotated[Any, AfterValidator(_is_dtype)]
Device = Annotated[Any, AfterValidator(_is_device)]


def Instance(cls):  # noqa: N802 - a type, spelled like one
    """An argument that must be an instance of ``cls`` (a config model is not rebuilt from a dict)."""
    return InstanceOf[cls]


def Choice(values):  # noqa: N802 - a type, spelled like one
    """An argument that must be one of ``values``."""
    return Literal[tuple(values)]


class _Arguments(Model):
    """The checked arguments of one function: a config Model's rules, plus no text where a number belongs
    (a config file's '5' is a config's business, not a Python caller's). Only given arguments are checked:
    defaults are the function's own."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=False, allow_inf_nan=False)
    number_fields: typing.ClassVar[frozenset] = frozenset()  # set once per function by ``validated``
    whole_fields: typing.ClassVar[frozenset] = frozenset()  # the int ones among them (no 50.0)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, value, info):  # replaces Model's: the same rule, the fields looked up once
        if info.field_name in cls.number_fields:
            items = value.values() if isinstance(value, Mapping) else value if isinstance(value, (list, tuple)) else (value,)
            kinds = set(map(type, items))
            if bool in kinds:
                raise ValueError("must be a number, not true/false")
            if str in kinds or bytes in kinds:
                raise ValueError("must be a number, not text")
            if info.field_name in cls.whole_fields and float in kinds:
                raise ValueError("must be a whole number (an int), not a float")
        return value


#: every function ``validated`` wraps (tests/test_validate_call.py)
VALIDATED: list = []  # every function ``validated`` wraps, in import order (tests/test_validate_call.py)


def validated(**types):
    """Decorator: check the named arguments against pydantic ``types`` on every call, before the body runs.

    A bad argument raises a ConfigError 'FUNCTION PARAM: must ... (got X) [meaning]', all bad ones on one
    line. The function then receives its arguments exactly as given (nothing is converted), so its
    results are unchanged. The wrapper keeps ``argument_types`` (the ``types``) and ``check_arguments``
    (the check alone) for the generated test."""

    def decorate(fn):
        sig = inspect.signature(fn)
        unknown = sorted(set(types) - set(sig.parameters))
        if unknown:
            raise TypeError(f"validated({fn.__qualname__}): it has no parameter {', '.join(unknown)}")
        model = create_model(f"{fn.__name__}_arguments", __base__=_Arguments,
                             **{name: (tp, None) for name, tp in types.items()})
        model.number_fields = frozenset(k for k, f in model.model_fields.items() if _is_number(f.annotation))
        model.whole_fields = frozenset(k for k in model.number_fields if _is_whole(model.model_fields[k].annotation))
        prefix = f"{fn.__name__} "

        def check_arguments(*args, **kwargs) -> None:
            given = sig.bind(*args, **kwargs).arguments
            try:
                model(**{k: v for k, v in given.items() if k in types})
            except ValidationError as err:
                parts = validation_fields(err, model)
                bad = ConfigError(format_validation_error(err, model, prefix=prefix, fields=parts))
                bad.function = fn.__name__
                bad.fields = tuple((field, text) for field, _, text in parts)
                raise bad from None

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            check_arguments(*args, **kwargs)
            return fn(*args, **kwargs)

        wrapper.argument_types = dict(types)
        wrapper.check_arguments = check_arguments
        VALIDATED.append(wrapper)
        return wrapper

    return decorate
