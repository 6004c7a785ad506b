"""The application layer: configs from command-line overrides, running an experiment into the store,
the order of `reproduce`, and the plot and report entry points. The CLI only parses and prints;
tests and notebooks call these directly."""

from __future__ import annotations

import json
import typing
from pathlib import Path

from .config import ConfigError, bad_value
from .store import DEFAULT_STORE

__all__ = [
    "DEFAULT_STORE", "REPRODUCE_ORDER", "build_report", "make_config", "paper", "parse_value", "list_store",
    "load_config_file", "plot_experiment", "reproduce_estimates", "reproduce_names", "run_experiment",
    "sensitivity_study", "verdict_word", "CONFIG_FILE_SUFFIXES", "sensitivity_choices",
]

#: The order `reproduce` runs the experiments in (every registered experiment, cheapest first).
REPRODUCE_ORDER = ["fig2", "fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "fig9", "fig10", "landscape",
                   "fig11", "init"]


def verdict_word(verdict) -> str:
    """A claim's verdict (one of ticketlab.verdicts.CATEGORIES) as the report and the CLI print it."""
    from .report import verdict_word as word

    return word(verdict)


def paper() -> dict:
    """The paper's read-off figure values (shipped with the package)."""
    from .report import paper_values

    return paper_values()


def parse_value(text: str) -> object:
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
    if len(path) == 1 and f"{field}_grid" in fields:
        return [f"{field}_grid"]  # N names the N grid of Figures 9-10 too (Figure 9's inherited N is unused)
    if len(path) == 1 and field not in fields:
        owners = [name for name, f in fields.items() if _sub_model(f.annotation) and field in
                  _sub_model(f.annotation).model_fields]
        if len(owners) == 1:
            path = [owners[0], field]
    if field == "scale":
        raise ConfigError("--set: must name a config field other than scale (got 'scale'); use --scale quick|paper "
                          "(any --set makes the scale 'custom')")
    model = exp.Config
    for i, name in enumerate(path):
        if model is None or name not in model.model_fields:
            import difflib

            names = _field_names(exp.Config)
            close = difflib.get_close_matches(field, names, n=1, cutoff=0.6)
            hint = f"did you mean --set {close[0]}=...? " if close else ""
            raise ConfigError(f"--set {field}: must be a field of {exp.name} (got {'.'.join(path[:i + 1])!r}); "
                              f"{hint}fields: {', '.join(names)}")
        if i < len(path) - 1:
            model = _sub_model(model.model_fields[name].annotation)
    if _sub_model(model.model_fields[path[-1]].annotation):
        first = next(iter(_sub_model(model.model_fields[path[-1]].annotation).model_fields))
        raise bad_value(f"--set {field}", f"must set one of the fields of {field}, e.g. --set {field}.{first}=...",
                        field)
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


#: the files ``--config FILE`` reads, by suffix
CONFIG_FILE_SUFFIXES = (".json", ".toml", ".yaml", ".yml")


def load_config_file(path) -> dict:
    """The fields of a config file (``--config FILE``): JSON, TOML or YAML, by the extension; nested
    models as tables (``[solver]`` / ``"solver": {...}``). Validated by ``make_config``."""
    path = Path(path)
    if path.suffix not in CONFIG_FILE_SUFFIXES:
        raise bad_value("--config", f"must be a file ending in {', '.join(CONFIG_FILE_SUFFIXES)}", str(path))
    if not path.is_file():
        raise bad_value("--config", "must be an existing file", str(path), hint="no such file")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        elif path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as err:  # each parser has its own error type; all mean the same to the user
        raise bad_value("--config", f"must be a file that parses as {path.suffix[1:].upper()}", str(path),
                        hint=f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None
    if not isinstance(data, dict):
        raise bad_value("--config", "must hold a table of FIELD = VALUE", str(path),
                        hint=f"it holds a {type(data).__name__}")
    return data


def make_config(exp, scale: str = "quick", trials: int | None = None, sets=(), seed: int | None = None,
                dtype=None, file_values: dict | None = None):
    """An experiment's config at a scale, with the fields of a config file (``file_values``, from
    ``load_config_file``) and then FIELD=VALUE overrides (as `--set` gives them) on top."""
    from pydantic import ValidationError

    from .config import format_validation_error

    base = exp.default_config(scale).model_dump(mode="json")
    overrides: dict = {}
    for field, value in (file_values or {}).items():
        if field not in exp.Config.model_fields or f"{field}_grid" in exp.Config.model_fields:
            path = _field_path(exp, field)  # raises the one-line error with the field list
            field = path[0] if len(path) == 1 else field  # N: N_grid
        if isinstance(value, dict) and isinstance(base.get(field), dict):
            value = {**base[field], **value}
        overrides[field] = value
    for item in sets or []:
        field, eq, value = item.partition("=")
        if not eq or not field:
            raise ConfigError(f"--set: must be FIELD=VALUE, e.g. --set N=100,200,300 (got {item!r})")
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
        raise ConfigError(f"{exp.name} {format_validation_error(err, exp.Config)}") from None
    return cfg


def run_experiment(name, *, scale="quick", trials=None, sets=(), store=DEFAULT_STORE, device="cpu",
                   executor="local", scheduler=None, workers=2, chunk_size=None, memory_budget=None,
                   progress=True, seed=None, dtype=None, confirm=None, connect_timeout=5.0, config_file=None):
    """Run one experiment (what the store lacks of it) and summarize it from the store.

    Returns (experiment, config, summary, counts). ``confirm(exp, cfg, seconds, fmt_duration, device, todo)``
    is called with the time estimate of the trials the store still lacks before anything runs (the
    CLI asks there). ``config_file``: a JSON/TOML/YAML file of fields, applied before ``sets``."""
    from .device import check_device_syntax, resolve_device
    from .executors import make_executor
    from .experiments import get_experiment
    from .sweep import estimate_seconds, fmt_duration, remaining_per_cell

    exp = get_experiment(name)
    if executor not in ("local", "dask"):
        raise ConfigError(f"--executor: must be local or dask (got {executor!r})")
    cfg = make_config(exp, scale, trials, list(sets), seed, dtype,
                      file_values=load_config_file(config_file) if config_file else None)
    if exp.sweeps:  # refuse, before anything is written, a sweep that cannot fit (sweep.preflight)
        from .sweep import check_batching, preflight

        from .store import check_store_path

        check_batching(chunk_size, memory_budget)
        preflight(exp, cfg, device if not scheduler else "cpu", memory_budget)
        check_store_path(store)
    use_dask = executor == "dask" or bool(scheduler)
    # with a remote scheduler the workers, not this (login) machine, must have the GPU
    dev = check_device_syntax(device) if scheduler else resolve_device(device)
    if confirm is not None and exp.sweeps:
        left = remaining_per_cell(exp, cfg, store)
        confirm(exp, cfg, estimate_seconds(exp, cfg, str(dev), chunk_size, memory_budget, remaining=left),
                fmt_duration, str(dev), sum(left.values()))
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
            raise bad_value("--only", f"must name experiments among {', '.join(names)}", ",".join(bad))
        names = [n for n in names if n in wanted]
    return names


def reproduce_estimates(names: list[str], scale: str, device: str = "cpu", store=None) -> dict[str, float]:
    """The planning estimate of each store sweep among ``names`` at ``scale`` (seconds); with
    ``store``, of only the trials it does not hold yet (a resumed reproduce)."""
    from .experiments import get_experiment
    from .sweep import estimate_seconds, remaining_per_cell

    out = {}
    for name in names:
        exp = get_experiment(name)
        if exp.sweeps:
            cfg = exp.default_config(scale)
            left = remaining_per_cell(exp, cfg, store) if store is not None else None
            out[name] = estimate_seconds(exp, cfg, device, remaining=left)
    return out


def plot_experiment(name: str, store: Path, out: Path, config_id: str | None = None,
                    scale: str | None = None) -> list[Path]:
    """Draw one experiment's figure (PNG and PDF) from what the store holds; returns the paths. The
    config shown: the largest complete one, or the one named by ``config_id`` / at ``scale``."""
    from .experiments import get_experiment
    from .report import experiment_section

    exp = get_experiment(name)
    if not exp.has_results(store):
        raise bad_value("--store", "must be an existing store", str(store),
                        hint=f"no such file; run `ticketlab sweep {name}` first")
    cfg = exp.stored_config(store, config_id, scale)
    sec = experiment_section(name, store, out, paper(), cfg=cfg) if cfg is not None else None
    if sec is None:
        raise ConfigError(f"the store {str(store)!r} holds no trials of {name}: run `ticketlab sweep {name}` first")
    if not sec["figures"]:
        raise ConfigError(f"the store {str(store)!r} holds no finished {name} results to draw")
    return [Path(p) for p in sec["figures"]]


def list_store(store: Path) -> list[dict]:
    """What a store holds: one row per experiment config (``ticketlab.catalog.store_status``)."""
    from .catalog import store_status
    from .store import is_store

    if not is_store(store):
        raise bad_value("--store", "must be an existing store", str(store), hint="no such file")
    return store_status(store)


def build_report(store: Path, out: Path) -> dict:
    """Write the HTML + Markdown report of everything the store holds; returns the paths and sections."""
    from .deep.fig11 import resolve_report_store
    from .report import write_report

    from .store import Store
    from .tables import is_tables

    if not Path(store).exists():
        raise ConfigError(f"--store: must be an existing store file, folder of packed tables or IMP folder (got "
                          f"{str(store)!r}; run a sweep or `ticketlab reproduce`)")
    # a folder of packed tables is a store (IMP runs may sit in its imp/); another folder: IMP runs and/or
    # the SQLite store
    where = {"sqlite": Path(store), "imp": None} if is_tables(store) else \
        resolve_report_store(store, Path(DEFAULT_STORE).name)
    if where["sqlite"] is not None and where["imp"] is None:
        with Store(where["sqlite"]) as st:
            if st.count() == 0 and not st.configs("fig11"):
                raise ConfigError(f"--store {str(store)!r}: holds no results yet; run a sweep or `ticketlab reproduce`")
    return write_report(where["sqlite"] or where["imp"], out)


def sensitivity_choices(exp, varies: list[str]) -> list[tuple[str, list[str]]]:
    """The variants of ``--vary NAME=V1,V2`` items (their product): [(label, --set overrides)]. NAME is
    a config field (a bare solver field names it: step_convention) or an alias (batches=full,fresh:T)."""
    import itertools

    from .sensitivity import ALIASES, MAX_VARIANTS, expand_choice, split_choices

    if not varies:
        raise ConfigError("--vary: give at least one, e.g. --vary step_convention=K,K2 --vary batches=full,fresh:8")
    axes, owners = [], {}
    for item in varies:
        name, values = split_choices(item)
        if name in ALIASES:
            fields = ALIASES[name][1]
        else:
            try:
                fields = (".".join(_field_path(exp, name)),)
            except ConfigError as err:
                raise ConfigError(str(err).replace("--set", "--vary")) from None
        for f in fields:
            if f in owners:
                raise ConfigError(f"--vary {name}: sets {f}, which --vary {owners[f]} sets too; give each choice once")
            owners[f] = name
        axes.append([(f"{name}={v}", expand_choice(name, v)) for v in values])
    n = 1
    for a in axes:
        n *= len(a)
    if n > MAX_VARIANTS:
        raise ConfigError(f"--vary: gives {n} variants, more than {MAX_VARIANTS}; vary fewer choices at once")
    return [(", ".join(lab for lab, _ in combo), [s for _, sets in combo for s in sets])
            for combo in itertools.product(*axes)]


def sensitivity_study(name: str, varies: list[str], *, scale="quick", trials=None, sets=(), store=DEFAULT_STORE,
                      run=False, device="cpu", progress=True, confirm=None) -> dict:
    """One experiment's claims under each combination of ``--vary`` choices, from the store (``run``:
    first run what the store lacks of each, through ``run_experiment``). Returns {experiment, scale,
    store, variants: [ticketlab.sensitivity.variant_row + choices, sets, command]}. Every variant's
    config is validated before anything is read or run."""
    from .experiments import get_experiment
    from .sensitivity import variant_row

    exp = get_experiment(name)
    if not exp.sweeps:
        raise bad_value("EXPERIMENT", "must be an experiment with a store sweep, for sensitivity", name,
                        hint=f"{name} keeps its runs in folders (run its variants with `ticketlab imp`)")
    variants = []
    for label, vsets in sensitivity_choices(exp, varies):
        try:
            cfg = make_config(exp, scale, trials, [*sets, *vsets])
        except ConfigError as err:
            raise ConfigError(f"--vary {label}: {err}") from None
        variants.append((label, vsets, cfg))
    if run:
        from .store import check_store_path

        check_store_path(store)
        for label, vsets, cfg in variants:
            if variant_row(exp, cfg, store, paper(), label, claims=[])["complete"]:
                continue
            run_experiment(name, scale=scale, trials=trials, sets=[*sets, *vsets], store=store, device=device,
                           progress=progress, confirm=confirm)
    from .tables import is_tables, read_manifest

    # a folder of packed tables is read-only: the commands run into the store it was packed from
    target = (read_manifest(store).get("source") or DEFAULT_STORE) if is_tables(store) else store
    rows = []
    for label, vsets, cfg in variants:
        row = variant_row(exp, cfg, store, paper(), label)
        flags = " ".join(f"--set {s}" for s in [*sets, *vsets])
        row.update(sets=[*sets, *vsets], command=f"ticketlab sweep {name} --scale {scale}"
                   + (f" --trials {trials}" if trials else "") + f" {flags} --store {target}")
        rows.append(row)
    return {"experiment": name, "scale": scale, "store": str(store), "variants": rows}
