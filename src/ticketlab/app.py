"""The application layer: configs from command-line overrides, running an experiment into the store,
the order of `reproduce`, and the plot and report entry points. The CLI only parses and prints;
tests and notebooks call these directly."""

from __future__ import annotations

import json
import typing
from pathlib import Path

from .config import ConfigError
from .store import DEFAULT_STORE

__all__ = ["DEFAULT_STORE", "REPRODUCE_ORDER", "build_report", "make_config", "paper", "parse_value",
           "plot_experiment", "reproduce_estimates", "reproduce_names", "run_experiment", "verdict_word"]

# The order `reproduce` runs the experiments in (every registered experiment, cheapest first).
REPRODUCE_ORDER = ["fig2", "fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "fig9", "fig10", "landscape",
                   "fig11", "init"]


def verdict_word(verdict) -> str:
    """A claim's verdict (True, False, None) as the report and the CLI print it."""
    from .report import verdict_word as word

    return word(verdict)


def paper() -> dict:
    """The paper's read-off figure values (shipped with the package)."""
    from .report import paper_values

    return paper_values()


def parse_value(text: str):
    """--set values: JSON if it parses ('[100,200]', '0.5', 'true'), a comma list of numbers, else a string.

    >>> parse_value("0.5"), parse_value("100,200"), parse_value("exact")
    (0.5, [100, 200], 'exact')
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    if "," in text:
        return [parse_value(p) for p in text.split(",")]
    return text


def _is_grid(annotation) -> bool:
    return typing.get_origin(annotation) is tuple


def _sub_model(annotation):
    """The pydantic model a field nests (solver: SolverSpec), or None."""
    from pydantic import BaseModel

    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _field_path(exp, field: str) -> list[str]:
    """A --set field as a path into the config: 'solver.beta' as given; a bare name that is no field of
    the config itself but of exactly one nested model ('max_iter') means that one."""
    fields = exp.Config.model_fields
    path = field.split(".")
    if len(path) == 1 and field not in fields:
        owners = [name for name, f in fields.items() if _sub_model(f.annotation) and field in
                  _sub_model(f.annotation).model_fields]
        if len(owners) == 1:
            path = [owners[0], field]
    model = exp.Config
    for i, name in enumerate(path):
        if model is None or name not in model.model_fields:
            allowed = ", ".join(_field_names(exp.Config))
            raise ConfigError(f"invalid --set {field}: {exp.name} has no field {'.'.join(path[:i + 1])!r}; "
                              f"fields: {allowed}")
        if i < len(path) - 1:
            model = _sub_model(model.model_fields[name].annotation)
    if _sub_model(model.model_fields[path[-1]].annotation):
        raise ConfigError(f"invalid --set {field}: set one of its fields, e.g. --set {field}."
                          f"{next(iter(_sub_model(model.model_fields[path[-1]].annotation).model_fields))}=...")
    return path


def _field_names(model, prefix: str = "") -> list[str]:
    """Every settable field of a config, nested ones dotted (solver.beta)."""
    out = []
    for name, f in model.model_fields.items():
        if name == "scale":
            continue
        sub = _sub_model(f.annotation)
        out += _field_names(sub, f"{prefix}{name}.") if sub else [f"{prefix}{name}"]
    return out


def make_config(exp, scale: str = "quick", trials: int | None = None, sets=(), seed: int | None = None,
                dtype=None):
    """An experiment's config at a scale, with FIELD=VALUE overrides (as `--set` gives them)."""
    from pydantic import ValidationError

    from .config import format_validation_error

    base = exp.default_config(scale).model_dump(mode="json")
    overrides: dict = {}
    for item in sets or []:
        field, eq, value = item.partition("=")
        if not eq or not field:
            raise ConfigError(f"invalid --set {item!r}: expected FIELD=VALUE, e.g. --set N=100,200,300")
        path = _field_path(exp, field)
        model, target = exp.Config, overrides
        for name in path[:-1]:
            model = model.model_fields[name].annotation
            target = target.setdefault(name, dict(base[name]))
        value = parse_value(value)
        if not isinstance(value, list) and _is_grid(model.model_fields[path[-1]].annotation):
            value = [value]  # a one-point grid
        target[path[-1]] = value
    if trials is not None:
        overrides["trials"] = trials
    if seed is not None:
        overrides["seed"] = seed
    if dtype is not None:
        overrides["dtype"] = dtype
    if any(k not in ("trials",) for k in overrides):
        overrides.setdefault("scale", "custom" if any(k not in ("trials", "seed") for k in overrides) else scale)
    try:
        cfg = exp.Config(**{**base, **overrides})
        exp.cells(cfg)  # the grid's every cell must be a valid trial too
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, exp.Config).replace("invalid ", f"invalid {exp.name} ")) from None
    return cfg


def run_experiment(name, *, scale="quick", trials=None, sets=(), store=DEFAULT_STORE, device="cpu",
                   executor="local", scheduler=None, workers=2, chunk_size=None, memory_budget=None,
                   progress=True, seed=None, dtype=None, confirm=None, connect_timeout=5.0):
    """Run one experiment (what the store lacks of it) and summarize it from the store.

    Returns (experiment, config, summary, counts). ``confirm(exp, cfg, seconds, fmt_duration, device)``
    is called with the time estimate before anything runs (the CLI asks there)."""
    from .device import check_device_syntax, resolve_device
    from .executors import make_executor
    from .experiments import get_experiment
    from .sweep import estimate_seconds, fmt_duration

    exp = get_experiment(name)
    cfg = make_config(exp, scale, trials, list(sets), seed, dtype)
    use_dask = executor == "dask" or bool(scheduler)
    # with a remote scheduler the workers, not this (login) machine, must have the GPU
    dev = check_device_syntax(device) if scheduler else resolve_device(device)
    if confirm is not None and exp.sweeps:
        confirm(exp, cfg, estimate_seconds(exp, cfg, str(dev), chunk_size, memory_budget), fmt_duration, str(dev))
    made = []

    def factory():
        ex = make_executor("dask", address=scheduler, workers=workers, connect_timeout=connect_timeout) \
            if use_dask else make_executor("local")
        made.append(ex)
        return ex

    try:
        counts = exp.run(cfg, store, device=dev, executor=factory, progress=progress, chunk_size=chunk_size,
                         memory_budget=memory_budget)
    finally:
        for ex in made:
            ex.close()
    summary = exp.summarize(cfg, exp.load(cfg, store))
    return exp, cfg, summary, counts


def reproduce_names(only: str | None = None) -> list[str]:
    """The experiments `reproduce` runs, in order; ``only``: a comma-separated subset."""
    from .experiments import available

    names = [n for n in REPRODUCE_ORDER if n in available()]
    if only:
        wanted = [x.strip() for x in only.split(",") if x.strip()]
        bad = [w for w in wanted if w not in names]
        if bad:
            raise ConfigError(f"invalid --only {','.join(bad)}: choose from {', '.join(names)}")
        names = [n for n in names if n in wanted]
    return names


def reproduce_estimates(names: list[str], scale: str, device: str = "cpu") -> dict[str, float]:
    """The planning estimate of each store sweep among ``names`` at ``scale`` (seconds)."""
    from .experiments import get_experiment
    from .sweep import estimate_seconds

    out = {}
    for name in names:
        exp = get_experiment(name)
        if exp.sweeps:
            out[name] = estimate_seconds(exp, exp.default_config(scale), device)
    return out


def plot_experiment(name: str, store: Path, out: Path) -> list[Path]:
    """Draw one experiment's figure (PNG and PDF) from what the store holds; returns the paths."""
    from .experiments import get_experiment
    from .report import experiment_section

    exp = get_experiment(name)
    if not exp.has_results(store):
        raise ConfigError(f"invalid --store {str(store)!r}: no such file (run `ticketlab sweep {name}` first)")
    sec = experiment_section(name, store, out, paper())
    if sec is None:
        raise ConfigError(f"the store {str(store)!r} holds no trials of {name}: run `ticketlab sweep {name}` first")
    return [Path(p) for p in sec["figures"]]


def build_report(store: Path, out: Path) -> dict:
    """Write the HTML + Markdown report of everything the store holds; returns the paths and sections."""
    from .deep.fig11 import resolve_report_store
    from .report import write_report

    if not Path(store).exists():
        raise ConfigError(f"invalid --store {str(store)!r}: no such file (run a sweep or `ticketlab reproduce`)")
    where = resolve_report_store(store, Path(DEFAULT_STORE).name)  # a folder: IMP runs and/or the SQLite store
    return write_report(where["sqlite"] or where["imp"], out)
