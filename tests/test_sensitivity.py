"""Which stored config plot/report show when variants sit beside the default, and `ticketlab
sensitivity`: the variants of --vary choices, their trials done/asked and each claim's verdict, judged
exactly as the experiment judges them; bad --vary input is one line, exit 2."""

from __future__ import annotations

import json

import pytest

from ticketlab.app import make_config, paper, sensitivity_choices
from ticketlab.catalog import choice_distance, is_default, select_config
from ticketlab.cli import main
from ticketlab.experiments import get_experiment
from ticketlab.report import write_report
from ticketlab.store import Store, pack
from ticketlab.sweep import plan, run_sweep, run_task
from ticketlab.verdicts import withhold_incomplete

TINY = ["d=24", "K=2", "r_tilde=4,8", "N=16,48", "max_iter=40"]
SETS = sum((["--set", s] for s in TINY), [])


def _run(db, extra=(), trials=2, chunks=None):
    exp = get_experiment("fig4")
    cfg = make_config(exp, "quick", trials, [*TINY, *extra])
    with Store(db) as st:
        if chunks is None:
            run_sweep("fig4", cfg, st, progress=False)
        else:  # a sweep stopped after some chunks
            st.save_config(exp.name, cfg.config_id(), cfg.model_dump(mode="json"))
            for t in plan(exp, cfg, st)[0][:chunks]:
                st.write(run_task(t))
    return cfg


def _judged(exp, cfg, db):
    """The claims of one config, computed directly (the truth the study must repeat)."""
    df = exp.load(cfg, db)
    return withhold_incomplete(exp.claims(cfg, exp.summarize(cfg, df), paper()), len(df), len(exp.trials(cfg)))


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """A store with the default config and, run later, a K2 variant of the same size."""
    db = tmp_path_factory.mktemp("sens") / "r.db"
    default = _run(db)
    variant = _run(db, ["step_convention=K2"])
    return db, default, variant


def test_the_default_config_is_shown_over_a_later_variant_of_equal_size(both, tmp_path):
    db, default, variant = both
    exp = get_experiment("fig4")
    # both change the tiny problem and max_iter; the variant changes the step convention too
    assert choice_distance(exp, variant) == choice_distance(exp, default) + 1
    assert exp.stored_config(db).config_id() == default.config_id()
    res = write_report(db, tmp_path / "rep")
    sec = next(s for s in res["sections"] if s["name"] == "fig4")
    assert sec["config"]["solver"]["step_convention"] == "K"
    # the variant is listed in the section's Sensitivity table, judged by the same rules
    rows = sec["sensitivity"]
    assert [r["config_id"] for r in rows] == [default.config_id(), variant.config_id()]
    assert rows[0]["variant"] == "shown" and rows[1]["variant"] == "solver.step_convention=K2"
    want = [(c["claim"], c["verdict"], c["check"]) for c in _judged(exp, variant, db)]
    assert [(c["claim"], c["verdict"], c["check"]) for c in rows[1]["claims"]] == want
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "### Sensitivity: fig4" in md and "solver.step_convention=K2" in md
    assert "Sensitivity: fig4" in (tmp_path / "rep" / "report.html").read_text()


def test_a_variant_of_a_scalar_choice_is_not_the_default_either():
    """Not only solver fields are choices: Figure 10's IMP rate, Figures 7-9's mask finder and dense
    pre-training are too (a 20%-a-round variant of equal size took over Figure 10 before)."""
    fig10, fig9 = get_experiment("fig10"), get_experiment("fig9")
    assert is_default(fig10, make_config(fig10, "paper"))
    assert choice_distance(fig10, make_config(fig10, "paper", sets=["rate=0.2"])) == 1
    assert choice_distance(fig9, make_config(fig9, "paper", sets=["method=magnitude", "pre_iters=1000"])) == 2
    assert is_default(fig9, make_config(fig9, "paper", sets=["N=25,50"]))  # a grid is the design, not a choice
    # how it is computed is not a choice of the paper's either: Figure 2's bisection in float32 stays the default,
    # so a K2 variant of the same size cannot take over the figure
    fig2 = get_experiment("fig2")
    fast = make_config(fig2, "paper", sets=["design=bisect", "dtype=float32"])
    assert is_default(fig2, fast)
    assert choice_distance(fig2, make_config(fig2, "paper", sets=["design=bisect", "dtype=float32",
                                                                  "step_convention=K2"])) == 1


def test_the_default_is_the_preset_solver_at_its_scale(tmp_path):
    """The --scale paper convention: the paper preset is default, a --set of a solver field is not; a
    grid change keeps the preset's solver and stays default."""
    exp = get_experiment("fig4")
    assert is_default(exp, make_config(exp, "paper")) and is_default(exp, make_config(exp, "quick"))
    assert is_default(exp, make_config(exp, "paper", sets=["N=100,200"]))
    assert not is_default(exp, make_config(exp, "paper", sets=["step_convention=K2"]))
    assert choice_distance(exp, make_config(exp, "paper", sets=["step_convention=K2", "solver.sampling=fresh",
                                                                "solver.num_batches=8"])) == 3
    assert select_config(exp, tmp_path / "none.db") is None


def test_a_larger_variant_still_wins_and_a_store_without_variants_has_no_sensitivity(tmp_path):
    db = tmp_path / "r.db"
    exp = get_experiment("fig4")
    _run(db)
    big = _run(db, ["step_convention=K2"], trials=3)  # more trials: size decides first, as before
    assert exp.stored_config(db).config_id() == big.config_id()
    lone = tmp_path / "lone.db"
    _run(lone)
    res = write_report(lone, tmp_path / "rep")
    assert "sensitivity" not in next(s for s in res["sections"] if s["name"] == "fig4")
    assert "### Sensitivity" not in (tmp_path / "rep" / "report.md").read_text()


def test_sensitivity_reads_the_store_then_runs_what_is_missing(tmp_path, capsys):
    db = tmp_path / "r.db"
    exp = get_experiment("fig4")
    _run(db)
    _run(db, ["step_convention=K2"])
    argv = ["sensitivity", "fig4", *SETS, "--trials", "2", "--vary", "step_convention=K,K2",
            "--vary", "batches=full,fresh:2", "--store", str(db), "--json"]
    assert main(argv) == 0
    study = json.loads(capsys.readouterr().out)
    got = {v["variant"]: v for v in study["variants"]}
    assert list(got) == ["step_convention=K, batches=full", "step_convention=K, batches=fresh:2",
                         "step_convention=K2, batches=full", "step_convention=K2, batches=fresh:2"]
    assert [(v["done"], v["asked"]) for v in got.values()] == [(8, 8), (0, 8), (8, 8), (0, 8)]
    assert got["step_convention=K, batches=fresh:2"]["claims"] == []
    assert "--set solver.sampling=fresh --set solver.num_batches=2" in got["step_convention=K2, batches=fresh:2"]["command"]
    k2 = make_config(exp, "quick", 2, [*TINY, "step_convention=K2"])
    assert got["step_convention=K2, batches=full"]["config_id"] == k2.config_id()
    assert [(c["verdict"], c["check"]) for c in got["step_convention=K2, batches=full"]["claims"]] == \
        [(c["verdict"], c["check"]) for c in _judged(exp, k2, db)]
    # --run fills the two missing variants through the sweep path; the complete ones are not rerun
    with Store(db) as st:
        before = st.count("fig4")
    assert main([*argv, "--run", "--no-progress"]) == 0
    study = json.loads(capsys.readouterr().out)
    assert all(v["complete"] and v["claims"] for v in study["variants"])
    with Store(db) as st:
        assert st.count("fig4") == before + 16
    fresh = make_config(exp, "quick", 2, [*TINY, "step_convention=K2", "solver.sampling=fresh", "solver.num_batches=2"])
    assert fresh.solver.sampling == "fresh" and fresh.solver.num_batches == 2
    row = next(v for v in study["variants"] if v["config_id"] == fresh.config_id())
    assert [(c["verdict"], c["check"]) for c in row["claims"]] == [(c["verdict"], c["check"])
                                                                    for c in _judged(exp, fresh, db)]
    # the text table names every variant and prints a verdict for each claim
    assert main(argv[:-1]) == 0
    out = capsys.readouterr().out
    assert "4 variant(s)" in out and out.count("8/8") == 4
    for c in row["claims"]:
        assert f"claim: {c['claim']}" in out


def test_an_incomplete_variant_has_its_verdicts_withheld(tmp_path, capsys):
    db = tmp_path / "r.db"
    _run(db)
    _run(db, ["step_convention=K2"], chunks=1)
    assert main(["sensitivity", "fig4", *SETS, "--trials", "2", "--vary", "step_convention=K2",
                 "--store", str(db), "--json"]) == 0
    (v,) = json.loads(capsys.readouterr().out)["variants"]
    assert 0 < v["done"] < v["asked"] and not v["complete"]
    assert v["claims"] and all(c["verdict"] == "undecided" and "incomplete sweep" in c["reason"] for c in v["claims"])


def test_sensitivity_reads_a_packed_folder_and_refuses_to_run_into_it(both, tmp_path, capsys):
    db, default, variant = both
    folder = tmp_path / "packed"
    pack(db, folder)
    argv = ["sensitivity", "fig4", *SETS, "--trials", "2", "--vary", "step_convention=K,K2", "--json"]
    assert main([*argv, "--store", str(db)]) == 0
    a = json.loads(capsys.readouterr().out)["variants"]
    assert main([*argv, "--store", str(folder)]) == 0
    b = json.loads(capsys.readouterr().out)["variants"]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "command"} for r in rows]
    assert strip(a) == strip(b) and all(r["complete"] for r in b)
    assert main([*argv, "--store", str(folder), "--run", "--vary", "lam=0.3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "read-only" in err[0]


def test_vary_choices_expand_into_set_overrides():
    exp = get_experiment("fig4")
    got = sensitivity_choices(exp, ["step_convention=K,K2", "batches=full,fresh:8"])
    assert got == [("step_convention=K, batches=full", ["step_convention=K", "solver.sampling=full",
                                                         "solver.num_batches=1"]),
                   ("step_convention=K, batches=fresh:8", ["step_convention=K", "solver.sampling=fresh",
                                                            "solver.num_batches=8"]),
                   ("step_convention=K2, batches=full", ["step_convention=K2", "solver.sampling=full",
                                                          "solver.num_batches=1"]),
                   ("step_convention=K2, batches=fresh:8", ["step_convention=K2", "solver.sampling=fresh",
                                                             "solver.num_batches=8"])]
    assert sensitivity_choices(exp, ["N=[16,32],[48]"]) == [("N=[16,32]", ["N=[16,32]"]), ("N=[48]", ["N=[48]"])]


BAD = [
    (["--vary", "step_convention"], "--vary"),
    (["--vary", "=K,K2"], "--vary"),
    (["--vary", "step_convention="], "--vary"),
    (["--vary", "step_convention=K,,K2"], "--vary step_convention"),
    (["--vary", "step_convention=K,K"], "--vary step_convention"),
    (["--vary", "step_convention=K,K3"], "--vary step_convention=K3"),
    (["--vary", "stepconvention=K"], "--vary stepconvention"),
    (["--vary", "batches=full,fresh:0"], "--vary batches"),
    (["--vary", "batches=fresh:x"], "--vary batches"),
    (["--vary", "batches=partial"], "--vary batches"),
    (["--vary", "batches=full", "--vary", "solver.sampling=full"], "--vary"),
    (["--vary", "step_convention=K", "--vary", "step_convention=K2"], "--vary step_convention"),
    (["--vary", "max_iter=0,10"], "--vary max_iter=0"),
    (["--vary", "N=1,2,3,4,5,6,7,8", "--vary", "lam=0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9"], "--vary"),
    ([], "--vary"),
]


@pytest.mark.parametrize("extra,needle", BAD)
def test_bad_vary_is_one_line_exit_2(extra, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = main(["sensitivity", "fig4", *SETS, "--store", "none.db", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_sensitivity_of_fig11_is_refused_in_one_line(capsys):
    assert main(["sensitivity", "fig11", "--vary", "rate=0.1,0.2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fig11" in err[0]


# --- the replication table's "other choices" column and the Choice sets table -----------------------

def _variant(label, claims, done=10, asked=10):
    return {"variant": label, "config_id": "c" * 16, "scale": "paper", "trials": asked, "done": done,
            "asked": asked, "complete": done >= asked,
            "claims": [{"claim": c, "verdict": v, "check": "", "reason": ""} for c, v in claims]}


def _section(name, claims, variants=()):
    shown = _variant("shown (default choices)", claims)
    sec = {"name": name, "claims": shown["claims"]}
    if variants:
        sec["sensitivity"] = [shown, *variants]
    return sec


def test_other_choices_name_each_stored_variant_and_its_verdict():
    from ticketlab.sensitivity import verdicts_under_variants

    sec = _section("fig4", [("a", "undecided"), ("b", "not reproduced")],
                   [_variant("solver.step_convention=K2", [("a", "reproduced"), ("b", "trend only")]),
                    _variant("solver.max_iter=50000", [("a", "undecided")], done=3, asked=10)])
    assert verdicts_under_variants("a", sec["sensitivity"]) == (
        "step_convention=K2: reproduced; max_iter=50000: undecided (3/10 trials)")
    assert verdicts_under_variants("b", sec["sensitivity"]) == (
        "step_convention=K2: trend only; max_iter=50000: no results (3/10 trials)")
    assert verdicts_under_variants("a", []) == "none stored"
    assert verdicts_under_variants("a", sec["sensitivity"][:1]) == "none stored"


def test_choice_sets_count_gains_and_losses_against_the_shown_config():
    from ticketlab.sensitivity import choice_sets, choice_sets_line

    secs = [_section("fig3", [("x", "reproduced"), ("y", "not reproduced")],
                     [_variant("solver.step_convention=K2", [("x", "trend only"), ("y", "reproduced")])]),
            _section("fig4", [("a", "undecided")],
                     [_variant("solver.step_convention=K2", [("a", "reproduced")]),
                      _variant("solver.max_iter=50000", [("a", "undecided")])]),
            _section("fig5", [("t", "reproduced")])]
    sets = choice_sets(secs)
    shown, k2, cap = sets
    assert shown["choices"] == "shown configs" and shown["experiments"] == ["fig3", "fig4", "fig5"]
    assert shown["counts"] == {"reproduced": 2, "trend only": 0, "not reproduced": 1, "undecided": 1}
    assert (k2["choices"], k2["experiments"], k2["claims"]) == ("step_convention=K2", ["fig3", "fig4"], 3)
    assert k2["gained"] == ["fig3: y", "fig4: a"] and k2["lost"] == ["fig3: x"]
    assert (cap["gained"], cap["lost"]) == ([], [])
    line = choice_sets_line(sets)
    assert line.startswith("No stored set of choices reproduces every claim: the shown configs reproduce 2 of 4")
    assert "2 other sets ran on some experiments only, turning 2 claims reproduced and 1 no longer" in line


def test_a_set_that_reproduces_every_claim_everywhere_is_named_and_a_lone_config_says_so():
    from ticketlab.sensitivity import choice_sets, choice_sets_line

    every = [_section(n, [(n + "1", "undecided")], [_variant("lam=0.1", [(n + "1", "reproduced")])])
             for n in ("fig2", "fig4")]
    assert choice_sets_line(choice_sets(every)) == (
        "One set of choices reproduces every claim of every experiment here: lam=0.1.")
    one_short = [every[0], _section("fig5", [("t", "undecided")])]  # lam=0.1 not run on fig5
    assert choice_sets_line(choice_sets(one_short)).startswith("No stored set")
    alone = [_section("fig5", [("t", "reproduced")])]
    assert choice_sets_line(choice_sets(alone)) == (
        "One set of choices reproduces every claim of every experiment here: shown configs.")
    alone = [_section("fig5", [("t", "undecided")])]
    assert choice_sets_line(choice_sets(alone)).endswith("; no other set of choices is stored.")


def test_the_report_tables_carry_the_variants_verdicts_and_escape_pipes(both, tmp_path):
    db, default, variant = both
    exp = get_experiment("fig4")
    res = write_report(db, tmp_path / "rep")
    md = (tmp_path / "rep" / "report.md").read_text()
    want = {c["claim"]: c["verdict"] for c in _judged(exp, variant, db)}
    rows = [line for line in md.splitlines() if line.startswith("| [fig4]")]
    assert len(rows) == len(want)
    for line in rows:  # 6 cells: no unescaped '|' inside a cell
        cells = [c.strip() for c in __import__("re").split(r"(?<!\\)\|", line)[1:-1]]
        assert len(cells) == 6
        claim = cells[1].replace("\\|", "|")
        assert cells[5] == f"step_convention=K2: {want[claim]}"
    # the set is named by how it differs from the preset (the tiny run's own cap too), not from the shown config
    assert "### Choice sets" in md and "| max_iter=40, step_convention=K2 | fig4 |" in md
    assert "id='choice-sets-table'" in (tmp_path / "rep" / "report.html").read_text()
    sec = next(s for s in res["sections"] if s["name"] == "fig4")
    assert sec["sensitivity"][1]["variant"] == "solver.step_convention=K2"


def test_a_pipe_in_a_claim_stays_inside_its_markdown_cell(tmp_path, monkeypatch):
    """Figure 6's claim text has |xi|: the row must still have six cells."""
    import re

    from ticketlab.experiments.fig4 import Fig4

    real = Fig4.claims

    def piped(self, cfg, summary, paper):
        return [{**c, "claim": c["claim"] + " (|xi|)"} for c in real(self, cfg, summary, paper)]

    monkeypatch.setattr(Fig4, "claims", piped)
    db = tmp_path / "r.db"
    _run(db)
    write_report(db, tmp_path / "rep")
    rows = [x for x in (tmp_path / "rep" / "report.md").read_text().splitlines() if x.startswith("| [fig4]")]
    assert rows and all(len(re.split(r"(?<!\\)\|", x)[1:-1]) == 6 for x in rows)
    assert all("(\\|xi\\|)" in x for x in rows)


def test_choice_sets_are_named_by_their_absolute_choices_and_claims_must_be_judged_by_both():
    """A label relative to each shown config would merge different choices ('step_convention=K2' beside a
    shown run at another cap); a set that judges fewer claims than the shown config cannot reproduce
    'every claim'; an empty report says so."""
    from ticketlab.sensitivity import choice_sets, choice_sets_line

    k2_cap = {**_variant("solver.step_convention=K2", [("a", "reproduced")]),
              "choices": "solver.max_iter=50000, solver.step_convention=K2"}
    k2 = {**_variant("solver.step_convention=K2", [("x", "reproduced")]), "choices": "solver.step_convention=K2"}
    sets = choice_sets([_section("fig4", [("a", "undecided")], [k2_cap]), _section("fig5", [("x", "undecided")], [k2])])
    assert sorted(r["choices"] for r in sets[1:]) == ["max_iter=50000, step_convention=K2", "step_convention=K2"]
    assert all(len(r["experiments"]) == 1 for r in sets[1:])
    assert choice_sets_line(sets).startswith("No stored set")
    # a variant that judges only one of two claims, both experiments covered: not 'every claim'
    short = {**_variant("lam=0.1", [("a", "reproduced")]), "choices": "lam=0.1"}
    short5 = {**_variant("lam=0.1", [("x", "reproduced")]), "choices": "lam=0.1"}
    sets = choice_sets([_section("fig4", [("a", "undecided"), ("b", "undecided")], [short]),
                        _section("fig5", [("x", "undecided")], [short5])])
    assert choice_sets_line(sets).startswith("No stored set")
    assert choice_sets_line(choice_sets([])) == "No experiment here has a claim to judge."
    same = {**_variant("", [("a", "reproduced")]), "choices": ""}  # the presets' own choices beside a variant shown
    assert choice_sets([_section("fig4", [("a", "undecided")], [same])])[1]["choices"] == "the presets' choices"


def test_the_landscape_radius_grid_and_bandwidth_are_choices_its_problem_grid_is_not(tmp_path):
    """The radius grid says how the convex radius is measured, so a finer grid is a variant of the same
    problems (shown in Sensitivity, named by its choice); a different r grid is another design."""
    from ticketlab.catalog import choice_label
    from ticketlab.sensitivity import stored_variants

    exp = get_experiment("landscape")
    tiny = ["d=12", "K=2", "r=3,6", "N=200"]
    db = tmp_path / "l.db"
    cfgs = {}
    for name, extra in [("shown", []), ("fine", ["radius_grid=[0.01,0.05,0.2]"]), ("h", ["bandwidth=0.1"]),
                        ("other r", ["r=3,4"])]:
        cfgs[name] = make_config(exp, "paper", 1, [*tiny, *extra])
        with Store(db) as st:
            run_sweep("landscape", cfgs[name], st, progress=False)
    assert choice_label(exp, cfgs["fine"]) == "radius_grid=[0.01,0.05,0.2]"
    assert choice_label(exp, cfgs["h"]) == "bandwidth=0.1"
    assert choice_label(exp, make_config(exp, "paper", sets=["r=100,400"])) == ""  # the problems' grid
    got = stored_variants(exp, cfgs["shown"], db)
    assert [c.config_id() for _, c in got] == [cfgs[k].config_id() for k in ("shown", "fine", "h")]
    assert [label for label, _ in got[1:]] == ["radius_grid=[0.01,0.05,0.2]", "bandwidth=0.1"]  # one spelling
