"""Sensitivity: one experiment's claims across the choices the paper leaves unstated.

A *variant* is a config that differs from another only in such choices (the step convention, full
or fresh batches, the cap, lambda, the landscape's radius grid, ...): every grid of problems (tuple
field but ``choice_grids``), the seed and the dtype are the same.
For each variant this gives its trials done of asked and each claim's verdict and check line, judged
by the experiment's own ``claims`` (withheld while the sweep is incomplete). `ticketlab sensitivity`
builds the variants from ``--vary`` choices (``app.sensitivity_study``); the report lists the
variants a store holds beside the config it shows (``stored_variants``).
"""

from __future__ import annotations

from .config import ConfigError

__all__ = [
    "ALIASES", "split_choices", "expand_choice", "variant_row", "stored_variants", "diff_label",
    "format_table", "MAX_VARIANTS", "short_label", "verdicts_under_variants", "choice_sets", "choice_sets_line",
]

#: most variants one ``--vary`` study may ask for
MAX_VARIANTS = 64


def _batches(value: str) -> list[str]:
    """``batches=full`` (all N samples every iteration) or ``batches=fresh:T`` (T disjoint batches,
    one per iteration): the two solver fields it stands for."""
    if value == "full":
        return ["solver.sampling=full", "solver.num_batches=1"]
    kind, _, t = value.partition(":")
    if kind == "fresh" and t.isdigit() and int(t) >= 1:
        return ["solver.sampling=fresh", f"solver.num_batches={int(t)}"]
    raise ConfigError(f"--vary batches: each choice must be full or fresh:T with a whole T >= 1 (got {value!r})")


ALIASES = {"batches": (_batches, ("solver.sampling", "solver.num_batches"))}  #: name -> (expand, fields set)


def split_choices(item: str) -> tuple[str, list[str]]:
    """``NAME=V1,V2`` as (NAME, [V1, V2]); commas inside brackets belong to a value (``N=[50,100],[150]``)."""
    name, eq, rest = item.partition("=")
    name = name.strip()
    example = "e.g. --vary step_convention=K,K2 or --vary batches=full,fresh:8"
    if not eq or not name or not rest.strip():
        raise ConfigError(f"--vary: must be NAME=V1,V2,... ({example}; got {item!r})")
    values, depth, cur = [], 0, ""
    for ch in rest:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            values.append(cur.strip())
            cur = ""
        else:
            cur += ch
    values.append(cur.strip())
    if any(v == "" for v in values):
        raise ConfigError(f"--vary {name}: has an empty choice ({example}; got {item!r})")
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ConfigError(f"--vary {name}: names {', '.join(repeated)} more than once")
    return name, values


def expand_choice(name: str, value: str) -> list[str]:
    """The ``--set`` overrides one choice stands for."""
    if name in ALIASES:
        return ALIASES[name][0](value)
    return [f"{name}={value}"]


def diff_label(cfg, ref) -> str:
    """How ``cfg`` differs from ``ref``: 'solver.step_convention=K2, lam=0.3' ('' if it does not)."""
    from .store import flatten_config

    a = flatten_config(cfg.model_dump(mode="json", exclude={"trials", "scale"}), "")
    b = flatten_config(ref.model_dump(mode="json", exclude={"trials", "scale"}), "")
    from .catalog import spelled

    return ", ".join(f"{k}={spelled(a.get(k))}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))


def _same_design(cfg, ref) -> bool:
    """The same grids, seed and dtype: only unstated choices (scalars, the solver, a grid that says how
    a quantity is measured, ``choice_grids``) may differ."""
    a, b = cfg.model_dump(mode="json"), ref.model_dump(mode="json")
    return all(a.get(k) == b.get(k) for k in ("seed", "dtype", *cfg.problem_grids()))


def stored_variants(exp, cfg, store) -> list[tuple[str, object]]:
    """The configs a store holds that are variants of ``cfg`` (it first): [(label, config)], each
    label the fields in which it differs from ``cfg``, at the trial count it was run with."""
    from .catalog import config_status, is_default

    out = [("shown" + (" (default choices)" if is_default(exp, cfg) else ""), cfg)]
    seen = {cfg.config_id()}
    for row in config_status(exp, store):
        other = row["config"]
        if other.config_id() in seen or type(other) is not type(cfg) or not _same_design(other, cfg):
            continue
        seen.add(other.config_id())
        out.append((diff_label(other, cfg), other))
    return out


def variant_row(exp, cfg, store, paper: dict, label: str, *, claims: list[dict] | None = None) -> dict:
    """One variant: {variant, config_id, trials, done, asked, complete, claims}; its claims judged on
    what the store holds (``claims``: already judged, e.g. the report's own section)."""
    from .store import Store, is_store
    from .verdicts import withhold_incomplete

    refs = exp.trials(cfg)
    found: set[str] = set()
    if is_store(store):
        with Store(store, create=False) as st:
            found = st.existing([r.trial_id for r in refs])
    done, asked = len(found), len(refs)
    if claims is None:
        claims = []
        if done:
            df = exp.load(cfg, store)
            claims = withhold_incomplete(exp.claims(cfg, exp.summarize(cfg, df), paper), int(len(df)), asked)
    from .catalog import choice_label

    return {"variant": label, "choices": choice_label(exp, cfg), "config_id": cfg.config_id(), "scale": cfg.scale,
            "trials": cfg.trials,
            "done": done, "asked": asked, "complete": done >= asked,
            "claims": [{k: c.get(k) for k in ("claim", "paper", "ours", "verdict", "check", "reason")}
                       for c in claims]}


def format_table(rows: list[dict], verdict_word=str) -> str:
    """The study as text: the variants (config, trials done/asked), then, per claim, each variant's
    verdict and check line (and why, where the verdict says)."""
    width = max([len("variant")] + [len(r["variant"]) for r in rows])
    lines = [f"{'variant':<{width}}  {'config':<12}  {'trials':>13}  status"]
    for r in rows:
        status = "complete" if r["complete"] else ("not run" if r["done"] == 0 else "INCOMPLETE")
        lines.append(f"{r['variant']:<{width}}  {r['config_id'][:12]:<12}  {str(r['done']) + '/' + str(r['asked']):>13}"
                     f"  {status}" + (f": {r['command']}" if r.get("command") and not r["complete"] else ""))
    claims: dict[str, None] = {}
    for r in rows:
        for c in r["claims"]:
            claims.setdefault(c["claim"], None)
    for claim in claims:
        lines += ["", f"claim: {claim}"]
        for r in rows:
            c = next((c for c in r["claims"] if c["claim"] == claim), None)
            if c is None:
                lines.append(f"  {r['variant']:<{width}}  (no results)")
            else:
                lines.append(f"  {r['variant']:<{width}}  {verdict_word(c['verdict']):<14}  "
                             f"{c.get('check') or c.get('ours')}")
                if c.get("reason"):
                    lines.append(f"  {'':<{width}}  {'':<14}  why: {c['reason']}")
    return "\n".join(lines)


def short_label(label: str) -> str:
    """A variant label as the replication table prints it: solver fields without their 'solver.' prefix."""
    return label.replace("solver.", "")


def _claim_in(variant: dict, claim: str) -> dict | None:
    return next((c for c in variant["claims"] if c["claim"] == claim), None)


def verdicts_under_variants(claim: str, variants: list[dict], verdict_word=str) -> str:
    """The replication table's "other choices" cell: the claim's verdict under each stored variant after
    the first (the config shown), e.g. 'step_convention=K2: reproduced; max_iter=50000: undecided (20/100
    trials)'; 'none stored' when the store holds no variant of the shown config."""
    parts = []
    for v in variants[1:]:
        c = _claim_in(v, claim)
        word = "no results" if c is None else verdict_word(c["verdict"])
        partial = "" if v["complete"] else f" ({v['done']}/{v['asked']} trials)"
        parts.append(f"{short_label(v['variant'])}: {word}{partial}")
    return "; ".join(parts) if parts else "none stored"


def _set_name(choices: str) -> str:
    return short_label(choices) if choices else "the presets' choices"


def choice_sets(sections: list[dict], verdict_word=str) -> list[dict]:
    """Every set of unstated choices a report's sections hold, scored over the experiments it ran on.

    The first set is the configs the sections show. Every other is one set of choices, named by how it
    differs from each experiment's preset (``catalog.choice_label``: the same name means the same
    choices in every experiment), gathered over the experiments where a stored variant makes them. Each:
    {choices, experiments, claims (judged), counts {category: n}, gained (claims reproduced under it but
    not under the shown config), lost (the converse)}; claims are compared only where both judge them."""
    from .verdicts import CATEGORIES

    def empty(name):
        return {"choices": name, "experiments": [], "claims": 0, "counts": dict.fromkeys(CATEGORIES, 0),
                "gained": [], "lost": [], "covers": True}

    shown = empty("shown configs")
    others: dict[str, dict] = {}
    for s in sections:
        base = {c["claim"]: verdict_word(c["verdict"]) for c in s.get("claims", [])}
        if base:
            shown["experiments"].append(s["name"])
        for c in s.get("claims", []):
            shown["claims"] += 1
            shown["counts"][verdict_word(c["verdict"])] += 1
        for v in (s.get("sensitivity") or [])[1:]:
            if not v["claims"]:
                continue
            name = _set_name(v.get("choices", short_label(v["variant"])))
            row = others.setdefault(name, empty(name))
            if s["name"] in row["experiments"]:  # two stored variants with the same choices: the first counts
                continue
            row["experiments"].append(s["name"])
            judged = {c["claim"]: verdict_word(c["verdict"]) for c in v["claims"]}
            row["covers"] &= set(base) <= set(judged)
            for claim, word in judged.items():
                row["claims"] += 1
                row["counts"][word] += 1
                if claim not in base:
                    continue
                if word == "reproduced" and base[claim] != "reproduced":
                    row["gained"].append(f"{s['name']}: {claim}")
                elif base[claim] == "reproduced" and word != "reproduced":
                    row["lost"].append(f"{s['name']}: {claim}")
    return [shown, *sorted(others.values(), key=lambda r: (-len(r["experiments"]), r["choices"]))]


def choice_sets_line(sets: list[dict]) -> str:
    """One sentence from ``choice_sets``: does one stored set of choices reproduce every claim of every
    experiment, and if none does, what the sets that were tried change."""
    shown, others = sets[0], sets[1:]
    every = set(shown["experiments"])
    if not every:
        return "No experiment here has a claim to judge."
    full = [shown] + [r for r in others if set(r["experiments"]) >= every and r["covers"]]
    winners = [r for r in full if r["claims"] and r["counts"]["reproduced"] == r["claims"]]
    if winners:
        return f"One set of choices reproduces every claim of every experiment here: {winners[0]['choices']}."
    line = (f"No stored set of choices reproduces every claim: the shown configs reproduce "
            f"{shown['counts']['reproduced']} of {shown['claims']} claims over {len(every)} experiments")
    partial = [r for r in others if r not in full]
    if len(full) > 1:
        best = max(full[1:], key=lambda r: r["counts"]["reproduced"])
        line += f"; of the other sets run on every experiment, {best['choices']} reproduces {best['counts']['reproduced']}"
    if partial:
        gained = sum(len(r["gained"]) for r in partial)
        lost = sum(len(r["lost"]) for r in partial)
        line += (f"; {len(partial)} other set{'s' if len(partial) > 1 else ''} ran on some experiments only, "
                 f"turning {gained} claim{'s' if gained != 1 else ''} reproduced and {lost} no longer reproduced "
                 f"there (table below)")
    elif len(full) == 1:
        line += "; no other set of choices is stored"
    return line + "."
