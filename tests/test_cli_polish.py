"""The command line and store API never mislead: selection of what is shown, listing, safety of long
runs, config files, the store's load and export, refusing contradictory input."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest
import torch

from ticketlab.app import make_config
from ticketlab.cli import main
from ticketlab.experiments import get_experiment
from ticketlab.store import Store, export, load
from ticketlab.sweep import estimate_seconds, plan, remaining_per_cell, run_sweep, run_task

GRID = ["r_tilde=10,20", "N=50,150", "max_iter=200"]


def _sweep(db, trials=2, sets=GRID, cells=None):
    exp = get_experiment("fig4")
    cfg = make_config(exp, "quick", trials, sets)
    with Store(db) as st:
        if cells is None:
            run_sweep("fig4", cfg, st, progress=False)
        else:  # a sweep killed after some chunks
            st.save_config(exp.name, cfg.config_id(), cfg.model_dump(mode="json"))
            for t in plan(exp, cfg, st)[0][:cells]:
                st.write(run_task(t))
    return exp, cfg


def test_version(capsys):
    from ticketlab import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"ticketlab {__version__}"


def test_a_small_side_run_does_not_take_over_plot_or_report(tmp_path, capsys):
    db = tmp_path / "r.db"
    exp, big = _sweep(db, trials=3)
    _, small = _sweep(db, trials=1, sets=["r_tilde=10", "N=50", "max_iter=200", "lam=0.3"])  # later, smaller
    assert exp.stored_config(db).config_id() == big.config_id()
    assert exp.stored_config(db, config_id=small.config_id()[:6]).config_id() == small.config_id()
    # ls lists both, with their trial counts
    assert main(["ls", "--store", str(db), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    got = {(r["config_id"], r["done"], r["asked"], r["complete"]) for r in rows}
    assert got == {(big.config_id(), 12, 12, True), (small.config_id(), 1, 1, True)}
    assert main(["plot", "fig4", "--store", str(db), "--out", str(tmp_path / "f"), "--config", "nosuch"]) == 2
    assert "--config: must start the id of a fig4 config the store holds (got 'nosuch')" in capsys.readouterr().err


def test_an_incomplete_sweep_loses_to_a_complete_one_and_shows_its_count(tmp_path, capsys):
    db = tmp_path / "r.db"
    exp, cfg = _sweep(db, trials=2)  # complete: 8 trials
    _, more = _sweep(db, trials=4, cells=1)  # the same config extended to 4 trials, killed after 1 chunk
    assert more.config_id() == cfg.config_id()
    chosen = exp.stored_config(db)
    assert chosen.trials == 2  # the complete part of the extended sweep, not the 10-of-16 whole
    assert main(["ls", "--store", str(db)]) == 0
    out = capsys.readouterr().out
    assert "10/16" in out and "INCOMPLETE" in out
    # with nothing complete, the incomplete one is shown (drawn as incomplete: see test_plots)
    db2 = tmp_path / "k.db"
    _, killed = _sweep(db2, trials=2, cells=2)
    assert exp.stored_config(db2).config_id() == killed.config_id()


def test_long_run_without_terminal_needs_yes(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    db = tmp_path / "r.db"
    assert main(["sweep", "fig2", "--scale", "paper", "--store", str(db), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: not started") and "--yes" in err[-1]
    assert not db.exists()  # nothing ran, no store was made


def test_show_config_and_config_file(tmp_path, capsys):
    assert main(["sweep", "fig4", "--show-config", "--set", "N=100,200"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["config"]["N"] == [100, 200] and shown["config"]["scale"] == "custom"
    toml = tmp_path / "c.toml"
    toml.write_text("N = [60, 70]\nd = 40\n[solver]\nmax_iter = 123\n")
    assert main(["sweep", "fig4", "--show-config", "--config", str(toml), "--set", "d=50"]) == 0
    cfg = json.loads(capsys.readouterr().out)["config"]
    assert cfg["N"] == [60, 70] and cfg["d"] == 50 and cfg["solver"]["max_iter"] == 123  # --set wins
    js = tmp_path / "c.json"
    js.write_text(json.dumps({"nosuchfield": 1}))
    assert main(["sweep", "fig4", "--show-config", "--config", str(js)]) == 2
    assert "nosuchfield" in capsys.readouterr().err
    js.write_text(json.dumps({"N": [-5]}))
    assert main(["sweep", "fig4", "--show-config", "--config", str(js)]) == 2


def test_load_of_a_missing_store_raises_and_creates_nothing(tmp_path):
    missing = tmp_path / "missing.db"
    with pytest.raises(FileNotFoundError, match="missing.db"):
        load(missing)
    assert not missing.exists()


def test_load_with_config_and_export_nulls(tmp_path):
    db = tmp_path / "r.db"
    exp, cfg = _sweep(db, trials=1)
    df = load(db, with_config=True)
    assert (df["config.d"] == cfg.d).all() and (df["config.solver.max_iter"] == 200).all()
    assert (df["config.K"] == cfg.K).all()
    # a Figure 3 row has a curve, a Figure 4 row none: the export must write a null, not "NaN"
    f3 = get_experiment("fig3")
    c3 = make_config(f3, "quick", 1, ["d=20", "N=200", "K=2", "r=5", "beta=0.2", "max_iter=50"])
    with Store(db) as st:
        run_sweep("fig3", c3, st, progress=False)
    out = export(db, tmp_path / "x.parquet")
    back = pd.read_parquet(out)
    curves = back["curve"]
    assert curves[back["experiment"] == "fig4"].isna().all()
    assert not (curves.astype(str) == "NaN").any()
    assert isinstance(json.loads(curves[back["experiment"] == "fig3"].iloc[0]), list)


def test_resume_estimate_counts_only_the_remaining_trials(tmp_path):
    db = tmp_path / "r.db"
    exp, cfg = _sweep(db, trials=2, cells=2)
    left = remaining_per_cell(exp, cfg, db)
    assert sum(left.values()) == len(exp.trials(cfg)) - 4
    full = estimate_seconds(exp, cfg)
    part = estimate_seconds(exp, cfg, remaining=left)
    assert 0 < part < full
    assert estimate_seconds(exp, cfg, remaining={}) == 0


def test_progress_split_makes_several_chunks_per_cell_with_the_same_numbers(tmp_path):
    exp = get_experiment("fig4")
    cfg = make_config(exp, "quick", 8, ["r_tilde=10", "N=100", "max_iter=100"])
    with Store(tmp_path / "a.db") as st:
        one, _ = plan(exp, cfg, st)
        four, _ = plan(exp, cfg, st, split=4)
    assert [len(t.trials) for t in one] == [8]
    assert [len(t.trials) for t in four] == [2, 2, 2, 2]
    whole = {r["trial_id"]: r["result"]["relative_error"] for r in run_task(one[0])}
    parts = {r["trial_id"]: r["result"]["relative_error"] for t in four for r in run_task(t)}
    assert parts == pytest.approx(whole, rel=1e-9)


def test_run_trials_refuses_a_contradicting_problem():
    from ticketlab.config import OracleSpec, TrialSpec
    from ticketlab.oracle import make_problem
    from ticketlab.trial import run_trials

    spec = TrialSpec(oracle=OracleSpec(d=20, K=2, r=5), N=100)
    ok = make_problem(spec.oracle, 100, [1, 2])
    assert len(run_trials(spec, [1, 2], problem=ok)) == 2
    for other, needle in ((make_problem(OracleSpec(d=30, K=2, r=5), 100, [1, 2]), "d = 30"),
                          (make_problem(spec.oracle, 80, [1, 2]), "N = 80"),
                          (make_problem(OracleSpec(d=20, K=2, r=5, noise=0.1), 100, [1, 2]), "noise")):
        with pytest.raises(ValueError, match=needle):
            run_trials(spec, [1, 2], problem=other)


def test_make_problem_takes_an_oracle_mask():
    from ticketlab.config import OracleSpec
    from ticketlab.oracle import make_problem

    spec = OracleSpec(d=12, K=2, r=3)
    M = torch.zeros(12, 2)
    M[[0, 1, 2], 0] = 1
    M[[5, 6, 7], 1] = 1
    p = make_problem(spec, 50, [3], oracle_mask=M)
    assert torch.equal(p.oracle_mask[0], M.double())
    assert torch.all(p.W_star[0][M == 0] == 0) and torch.count_nonzero(p.W_star[0]) == 6
    assert torch.all(p.mask[0][M == 1] == 1)  # the learner mask covers the oracle's
    with pytest.raises(ValueError, match="shape"):
        make_problem(spec, 50, [3], oracle_mask=torch.ones(11, 2))
