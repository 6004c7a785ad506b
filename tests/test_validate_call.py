"""The core's raw-argument functions refuse a bad argument in the one wording (issue 15).

``config.validated`` wraps each public function of the core that takes plain numbers, seeds, words or
tensors. The test below is generated from the wrapped functions' argument types: for every checked
parameter it draws bad values from the type and its bounds alone (one past each bound, NaN, +-inf, a
bool or text where a number belongs, a wrong type, an empty list, an unknown word) and asserts that each
is refused before any work with one line 'FUNCTION PARAM: must ...'. A coverage test keeps the list
of wrapped functions complete.
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
import types
import typing
from collections.abc import Callable, Mapping

import numpy as np
import pytest
import torch
from annotated_types import Ge, Gt, Le, Lt, MinLen
from pydantic import Strict
from pydantic.functional_validators import AfterValidator, InstanceOf

from ticketlab import config as C
from ticketlab.config import ConfigError, OracleSpec, SolverSpec, TrialSpec

CORE = ["oracle", "trial", "engine", "init.starts", "init.moments", "init.decomp", "metrics", "population",
        "landscape.empirical", "landscape.population", "landscape.study", "pruning"]
MODULES = [importlib.import_module("ticketlab." + m) for m in CORE]

# Public core functions with raw arguments that are deliberately not wrapped, and why.
EXEMPT = {
    "oracle.draw_r": "a step of draw_trial on its checked spec",
    "oracle.draw_supports": "a step of draw_trial on its checked spec",
    "oracle.support_mask": "a step of draw_trial",
    "oracle.superset_mask": "a step of draw_trial on its checked spec",
    "trial.check_problem": "a check itself (named errors about a prepared problem)",
    "trial.next_start": "a step of run_bisect, once per start",
    "trial.edge": "a step of run_bisect",
    "engine.choose": "checks its argument with check_engine (the --engine wording)",
    "engine.resolve": "checks its argument with check_engine; called by every solve",
    "engine.used": "bookkeeping of the engines that ran",
    "engine.mark_used": "bookkeeping of the engines that ran",
    "init.decomp.power_decompose": "a step of tensor_init, once per restart",
    "population.unit_angle": "a tensor kernel inside the Hessian loops (hot)",
    "landscape.empirical.hvp_on_mask": "once per Lanczos step (hot)",
    "landscape.study.convex_radius": "a step of analyze_trials on its checked grid",
    "landscape.study.radius_values": "the radius grid's rule itself",
    "landscape.study.check_radius_grid": "the radius grid's rule itself",
}
# Parameters of wrapped functions that the function checks itself, by a rule that lives elsewhere.
CHECKED_IN_BODY = {
    ("analyze_trials", "radius_grid"): "landscape.study.check_radius_grid, the grid's one rule",
    ("analyze", "radius_grid"): "landscape.study.check_radius_grid, via analyze_trials",
    ("imp_loop", "masks"): "whatever train_level takes",
}
# Kernels called once per iteration (or per Lanczos step): never wrapped, so the check costs nothing there.
HOT = ["landscape.empirical.hvp_on_mask", "landscape.population.population_hvp", "landscape.population.pair_block",
       "population.unit_angle", "population.relu_kernel", "engine.reference.solve", "engine.reference.gradient"]

RAW = re.compile(r"\b(int|float|str|bool|Sequence)\b")
FUNCS = list(C.VALIDATED)


def _resolve(name):
    mod, _, fn = name.rpartition(".")
    return getattr(importlib.import_module("ticketlab." + mod), fn)


def _public_functions():
    for mod in MODULES:
        short = mod.__name__.removeprefix("ticketlab.")
        for name, fn in vars(mod).items():
            if not name.startswith("_") and inspect.isfunction(fn) and fn.__module__ == mod.__name__:
                yield f"{short}.{name}", fn


def _takes_raw(fn) -> bool:
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if RAW.search(str(p.annotation).replace("[str, ", "[")) or isinstance(p.default, (int, float, str)) and p.default is not None:
            return True
    return False


# --------------------------------------------------------------------------- values from a type

def _split(tp):
    """(base, metadata) of an Annotated type, flattening FieldInfo into its constraints."""
    if typing.get_origin(tp) is not typing.Annotated:
        return tp, []
    base, *meta = typing.get_args(tp)
    flat = []
    for m in meta:
        flat.extend(getattr(m, "metadata", None) or [m]) if type(m).__name__ == "FieldInfo" else flat.append(m)
    return base, flat


def _optional(tp):
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(inner) == 1 and len(typing.get_args(tp)) == 2:
            return inner[0]
    return None


def _validator(meta) -> str | None:
    return next((m.func.__name__ for m in meta if isinstance(m, AfterValidator)), None)


OBJ = object()


def bad_values(tp, none_ok: bool = False) -> list:
    inner = _optional(tp)
    if inner is not None:
        return bad_values(inner, none_ok=True)
    nothing = [] if none_ok else [None]
    base, meta = _split(tp)
    if typing.get_origin(base) is typing.Literal:
        return ["nonsense", 3, *nothing]
    if any(isinstance(m, InstanceOf) for m in meta):
        return [OBJ, {"d": 1}, *nothing]
    check = _validator(meta)
    if check is not None:
        return {"_is_tensor": [[1.0, 2.0], np.zeros(2)], "_is_dtype": ["float64"], "_is_device": ["gpu", 3]}[check] \
            + nothing
    if base is bool and any(isinstance(m, Strict) for m in meta):
        return [1, "yes", *nothing]
    if base is int or base is float:
        out = [True, "1", *nothing]
        out += [1.5, 2.0] if base is int else [math.nan, math.inf, -math.inf]
        for m in meta:  # one past each bound
            out += [m.ge - 1] if isinstance(m, Ge) else [m.gt] if isinstance(m, Gt) else \
                [m.le + 1] if isinstance(m, Le) else [m.lt] if isinstance(m, Lt) else []
        return out
    if typing.get_origin(base) is list:
        (item,) = typing.get_args(base)
        out = [5, "0", *nothing] + [[b] for b in bad_values(item, none_ok=True)[:3]]
        return out + ([[]] if any(isinstance(m, MinLen) and m.min_length >= 1 for m in meta) else [])
    if typing.get_origin(base) in (Mapping, dict):
        _, item = typing.get_args(base)
        return [5, *nothing] + [{"W": b} for b in bad_values(item, none_ok=True)[:2]]
    if base is Callable:
        return [5, *nothing]
    pytest.fail(f"no bad values for the argument type {tp!r}: teach bad_values() about it")


def _problem():
    from ticketlab.oracle import make_problem

    return make_problem(OracleSpec(d=4, K=1, r=2), 5, [0])


GOOD_INSTANCES = {OracleSpec: lambda: OracleSpec(d=4, K=1, r=2), SolverSpec: SolverSpec,
                  TrialSpec: lambda: TrialSpec(oracle=OracleSpec(d=4, K=1, r=2), N=5)}


def good_value(tp):
    if _optional(tp) is not None:
        return None
    base, meta = _split(tp)
    if typing.get_origin(base) is typing.Literal:
        return typing.get_args(base)[0]
    inst = next((m for m in meta if isinstance(m, InstanceOf)), None)
    if inst is not None:
        from ticketlab.oracle import Problem

        return _problem() if base is Problem else GOOD_INSTANCES[base]()
    check = _validator(meta)
    if check is not None:
        return {"_is_tensor": torch.zeros(2, 2), "_is_dtype": torch.float64, "_is_device": "cpu"}[check]
    if base is bool:
        return True
    if base in (int, float):
        lo = next((m.ge for m in meta if isinstance(m, Ge)), None)
        gt = next((m.gt for m in meta if isinstance(m, Gt)), None)
        lt = next((m.lt for m in meta if isinstance(m, Lt)), None)
        v = lo if lo is not None else (gt + lt) / 2 if gt is not None and lt is not None else \
            (gt + 1 if gt is not None else 1)
        return base(v)
    if typing.get_origin(base) is list:
        return [good_value(typing.get_args(base)[0])]
    if typing.get_origin(base) in (Mapping, dict):
        return {"W": good_value(typing.get_args(base)[1])}
    if base is Callable:
        return lambda *a: None
    pytest.fail(f"no good value for the argument type {tp!r}")


def _required_good(fn) -> dict:
    out = {}
    for name, p in inspect.signature(fn).parameters.items():
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            if (fn.__name__, name) in CHECKED_IN_BODY:
                out[name] = None  # never reached: the check refuses the bad argument first
                continue
            assert name in fn.argument_types, f"{fn.__name__}: required parameter {name} is not checked"
            out[name] = good_value(fn.argument_types[name])
    return out


CASES = [(fn, name, bad) for fn in FUNCS for name, tp in fn.argument_types.items() for bad in bad_values(tp)]


def _id(case):
    fn, name, bad = case
    return f"{fn.__name__}-{name}-{type(bad).__name__}:{str(bad)[:12]}"


# --------------------------------------------------------------------------- the tests

def test_the_core_s_raw_argument_functions_are_all_wrapped():
    """Every public core function with a raw parameter is wrapped or exempt with a reason; every
    parameter of a wrapped function is checked (or checked in the body by its own rule)."""
    assert len(FUNCS) >= 20
    missing = [name for name, fn in _public_functions()
               if _takes_raw(fn) and not hasattr(fn, "check_arguments") and name not in EXEMPT]
    assert not missing, f"wrap these with config.validated or list them in EXEMPT: {missing}"
    stale = [name for name in EXEMPT if hasattr(_resolve(name), "check_arguments")]
    assert not stale, f"exempt but wrapped: {stale}"
    for fn in FUNCS:
        for name, p in inspect.signature(fn).parameters.items():
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and (fn.__name__, name) not in CHECKED_IN_BODY:
                assert name in fn.argument_types, f"{fn.__module__}.{fn.__name__}: parameter {name} is not checked"
    for name in HOT:
        assert not hasattr(_resolve(name), "check_arguments"), f"{name} runs once per iteration: do not wrap it"


@pytest.mark.parametrize("fn", FUNCS, ids=lambda f: f.__name__)
def test_good_arguments_pass_the_check(fn):
    kwargs = _required_good(fn)
    kwargs.update({k: good_value(tp) for k, tp in fn.argument_types.items() if k not in kwargs})
    fn.check_arguments(**kwargs)


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_each_bad_argument_is_refused_naming_it(case):
    fn, name, bad = case
    kwargs = {**_required_good(fn), name: bad}
    with pytest.raises(ConfigError) as err:
        fn(**kwargs)
    msg = str(err.value)
    assert len(msg.splitlines()) == 1, msg
    assert re.match(rf"{fn.__name__} {name}(\[[^\]]*\]|\.\w+)?: must ", msg), msg


def test_the_wording_and_the_shown_value():
    from ticketlab.oracle import make_problem

    spec = OracleSpec(d=4, K=1, r=2)
    with pytest.raises(ConfigError, match=r"^make_problem N: must be greater than or equal to 1 \(got 0\) "
                                          r"\[an integer >= 1\]$"):
        make_problem(spec, 0, [1])
    with pytest.raises(ConfigError, match=r"^make_problem seeds\[1\]: must be greater than or equal to 0 \(got -1\)"):
        make_problem(spec, 5, [1, -1])
    with pytest.raises(ConfigError, match=r"^make_problem N: .*; make_problem seeds: must have at least 1 item"):
        make_problem(spec, 0, [])  # all bad arguments, on one line
    with pytest.raises(ConfigError) as err:  # a big value is shown cut, on one line
        make_problem(spec, 5, [1], learner_mask=np.zeros((40, 40)))
    assert len(str(err.value).splitlines()) == 1 and len(str(err.value)) < 200 and "..." in str(err.value)


def test_arguments_reach_the_function_unconverted_and_results_are_unchanged():
    from ticketlab.oracle import make_problem
    from ticketlab.pruning import prune

    echo = C.validated(N=C.Count, seeds=C.Seeds)(lambda N, seeds: (N, seeds))
    n, seeds = np.int64(3), (4, 5)
    out = echo(n, seeds)
    assert out[0] is n and out[1] is seeds
    spec = OracleSpec(d=6, K=2, r=3)
    a, b = make_problem(spec, 7, [1, 2]), make_problem.__wrapped__(spec, 7, [1, 2])
    assert torch.equal(a.X, b.X) and torch.equal(a.W_star, b.W_star) and a.seeds == b.seeds
    s, m = {"W": torch.arange(12.0).reshape(3, 4)}, {"W": torch.ones(3, 4)}
    assert torch.equal(prune(s, m, 0.5)["W"], prune.__wrapped__(s, m, 0.5)["W"])


def test_a_misspelt_parameter_is_an_error_at_import():
    with pytest.raises(TypeError, match="no parameter nn"):
        C.validated(nn=C.Count)(lambda N: N)
