"""What a result store holds, and which config a plot or report shows.

A store can hold several configs of one experiment (a quick run, a paper run, a small `--set`
test). Each is listed with its trials done and asked; by default the largest complete one is shown,
so that a small side run never takes over a figure, and of equal sizes the one with the preset's
choices (solver settings and scalar fields), so that a variant (another step convention, fresh
batches, IMP rate, mask finder) never takes over the default; ``config_id`` or ``scale`` choose explicitly.
"""

from __future__ import annotations

from .config import ConfigError, bad_value

__all__ = ["config_status", "store_status", "select_config", "is_default", "choice_distance", "choice_label", "spelled",
           "NOT_CHOICES"]


#: scalar fields that define the problem or how it is computed, not a choice the paper leaves unstated
NOT_CHOICES = frozenset({"trials", "scale", "seed", "dtype", "design", "d", "K", "r", "N", "noise"})


def _choices(cfg) -> dict:
    """The choices a config makes beyond its design: every solver field and every other scalar field (the
    IMP rate, lambda, the mask finder, its pre-training, ...) and the grids that say how a quantity is
    measured (``choice_grids``: the landscape's radii), not the problems' grids (other tuple fields), the
    problem's own sizes, the dtype, the design, the seed, the trial count or the scale (NOT_CHOICES)."""
    d = cfg.model_dump(mode="json", exclude=set(NOT_CHOICES) | set(cfg.problem_grids()))
    solver = d.pop("solver", {})
    return {**{k: v for k, v in d.items() if not isinstance(v, dict)},
            **{f"solver.{k}": v for k, v in solver.items()}}


def _presets_for(exp, cfg) -> list:
    """The preset configs ``cfg`` is compared with: its scale's, or every preset for a custom config."""
    presets = exp.presets()
    return [exp.default_config(scale) for scale in ([cfg.scale] if cfg.scale in presets else list(presets))]


def _choice_changes(exp, cfg) -> list[str]:
    """The 'FIELD=VALUE' choices (``_choices``) in which ``cfg`` differs from its preset at its scale (a
    custom config: the nearest preset, the one it differs from least)."""
    a = _choices(cfg)
    best = None
    for ref in _presets_for(exp, cfg):
        b = _choices(ref)
        changes = [f"{k}={spelled(a.get(k))}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        best = changes if best is None or len(changes) < len(best) else best
    return best or []


def spelled(value) -> str:
    """A choice's value as `--set` takes it (one spelling in every label): a grid as [0.01,0.02]."""
    return "[" + ",".join(map(str, value)) + "]" if isinstance(value, list) else str(value)


def choice_distance(exp, cfg) -> int:
    """How many of the experiment's own choices ``cfg`` changes: the solver fields and scalar fields
    (``_choices``) that differ from the preset's at its scale (a custom config: the nearest preset's).
    For an experiment without a solver, every field but the trial count and scale counts."""
    from .store import flatten_config

    if hasattr(cfg, "solver"):
        return len(_choice_changes(exp, cfg))
    best = None
    for ref in _presets_for(exp, cfg):
        a, b = (flatten_config(c.model_dump(mode="json", exclude={"trials", "scale"}), "") for c in (cfg, ref))
        n = sum(a.get(k) != b.get(k) for k in set(a) | set(b))
        best = n if best is None else min(best, n)
    return best or 0


def choice_label(exp, cfg) -> str:
    """How ``cfg``'s choices differ from its preset's (the nearest preset's, for a custom config), e.g.
    'solver.step_convention=K2, rate=0.2' or 'bandwidth=0.1'; '' when it makes the experiment's own
    choices."""
    return ", ".join(_choice_changes(exp, cfg))


def is_default(exp, cfg) -> bool:
    """Whether ``cfg`` makes the experiment's own choices: its solver settings and scalar fields equal
    the preset's at its scale (the `--scale paper` convention; a custom config: some preset's)."""
    return choice_distance(exp, cfg) == 0


def _status(exp, raw: dict, created: float, st) -> dict:
    cfg = exp.Config(**{k: v for k, v in raw.items() if k != "config_id"})
    row = {"experiment": exp.name, "config_id": cfg.config_id(), "scale": cfg.scale, "config": cfg,
           "created": created}
    if exp.sweeps:
        refs = exp.trials(cfg)
        found = st.existing([r.trial_id for r in refs])
        missing = [r.trial for r in refs if r.trial_id not in found]
        # the trial count up to which every cell is done: a sweep extended to more trials (same id)
        # and stopped still holds a complete sweep of that many
        row.update(asked=len(refs), done=len(refs) - len(missing),
                   complete_trials=min(missing) if missing else cfg.trials)
    else:  # fig11 keeps its runs in a folder tree: one run per cell
        row.update(asked=len(exp.cells(cfg)), done=None, complete_trials=cfg.trials)
    row["complete"] = row["done"] is None or row["done"] >= row["asked"]
    return row


def config_status(exp, store) -> list[dict]:
    """Every config of ``exp`` recorded in ``store`` (a path): {experiment, config_id, scale, config,
    created, asked, done, complete}, oldest first. ``done`` is None where the results are not rows
    (fig11). Configs that no longer validate (an older code version) are skipped."""
    from pydantic import ValidationError

    from .store import Store, is_store

    if not is_store(store):
        return []
    out = []
    with Store(store, create=False) as st:
        for rec in st.config_records():
            if rec["experiment"] != exp.name:
                continue
            try:
                out.append(_status(exp, rec["config"], rec["created"], st))
            except (ValidationError, ConfigError, TypeError):
                continue
    return out


def store_status(store) -> list[dict]:
    """``config_status`` of every registered experiment, in registry order."""
    from .experiments import available, get_experiment

    return [row for name in available() for row in config_status(get_experiment(name), store)]


def select_config(exp, store, config_id: str | None = None, scale: str | None = None):
    """The config of ``exp`` to show from ``store``: the one whose id starts with ``config_id``; else,
    among those at ``scale`` (any scale when None), the largest complete one (most trials asked, the
    latest on a tie; a sweep extended to more trials and stopped counts with the trials every cell
    has; of equal sizes, the default one, ``is_default`` (or the one changing fewest solver settings,
    ``choice_distance``): a variant shows in the report's Sensitivity section instead); if none is
    complete, the one with most trials done.
    None when the store
    records no config of ``exp``; ConfigError when ``config_id``/``scale`` match nothing."""
    rows = config_status(exp, store)
    if config_id:
        hits = [r for r in rows if r["config_id"].startswith(config_id)]
        if not hits:
            known = ", ".join(r["config_id"][:12] for r in rows) or "none"
            raise bad_value("--config", f"must start the id of a {exp.name} config the store holds", config_id,
                            hint=f"it holds: {known}; see `ticketlab ls`")
        return hits[-1]["config"]
    if scale:
        rows = [r for r in rows if r["scale"] == scale]
        if not rows:
            raise bad_value("--scale", f"must be the scale of a {exp.name} config the store holds", scale,
                            hint="see `ticketlab ls`")
    if not rows:
        return None
    complete = [(r["asked"], -choice_distance(exp, r["config"]), r["created"], r["config"]) for r in rows
                if r["complete"]]
    for r in rows:  # an extended sweep that stopped: its complete part counts
        if not r["complete"] and r["complete_trials"] > 0:
            cfg = r["config"].model_copy(update={"trials": r["complete_trials"]})
            complete.append((r["asked"] * r["complete_trials"] // r["config"].trials, -choice_distance(exp, cfg),
                             r["created"], cfg))
    if complete:
        return max(complete, key=lambda c: c[:3])[3]
    return max(rows, key=lambda r: (r["done"] or 0, r["created"]))["config"]
