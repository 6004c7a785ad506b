"""Sweeps, the store, resumption, the boundary estimator and the report."""

import signal
import sqlite3
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from ticketlab.analysis import linear_fit, transition
from ticketlab.app import make_config
from ticketlab.experiments import get_experiment
from ticketlab.report import write_report
from ticketlab.store import Store, export, load
from ticketlab.sweep import run_sweep

TINY_FIG4 = ["--set", "d=24", "--set", "K=2", "--set", "r_tilde=4,8", "--set", "N=8,16,32,64,96",
             "--set", "max_iter=1500", "--trials", "4"]


def tiny_fig4(trials=4):
    exp = get_experiment("fig4")
    return exp, make_config(exp, "quick", trials, ["d=24", "K=2", "r_tilde=4,8", "N=8,16,32,64,96", "max_iter=1500"])


# --- boundary estimator -------------------------------------------------------------------------

def test_transition_recovers_a_known_boundary():
    rng = np.random.default_rng(0)
    x = np.arange(50, 601, 50)
    for true in (180.0, 320.0, 450.0):
        p = 1 / (1 + np.exp(-(x - true) / 25))
        k = rng.binomial(200, p)
        tr = transition(x, k, np.full_like(k, 200))
        assert tr["ci_low"] <= true <= tr["ci_high"]
        assert tr["point"] == pytest.approx(true, abs=15)


def test_transition_without_crossing_says_so():
    x = np.array([1, 2, 3])
    assert transition(x, [5, 5, 5], [5, 5, 5])["outside_grid"] == "below"
    assert transition(x, [0, 0, 0], [5, 5, 5])["outside_grid"] == "above"


def test_sharp_transition_lies_between_the_grid_points():
    tr = transition([100, 200, 300, 400], [0, 0, 10, 10], [10, 10, 10, 10])
    assert 200 < tr["point"] < 300 and tr["ci_low"] < tr["ci_high"]


def test_linear_fit_on_a_line():
    fit = linear_fit([1, 2, 3, 4], [7, 12, 17, 22])
    assert fit["a"] == pytest.approx(5) and fit["b"] == pytest.approx(2) and fit["r2"] == pytest.approx(1)


# --- store and sweeps ---------------------------------------------------------------------------

def test_sweep_is_resumable_and_never_duplicates(tmp_path):
    exp, cfg = tiny_fig4(trials=2)
    db = tmp_path / "s.db"
    with Store(db) as st:
        first = run_sweep("fig4", cfg, st, progress=False)
        assert first == {"total": 20, "skipped": 0, "ran": 20, "written": 20}
        again = run_sweep("fig4", cfg, st, progress=False)
        assert again["ran"] == 0 and st.count() == 20
        # more trials extend the sweep: only the new ones run
        more = make_config(exp, "quick", 3, ["d=24", "K=2", "r_tilde=4,8", "N=8,16,32,64,96", "max_iter=1500"])
        assert more.config_id() == cfg.config_id()
        assert run_sweep("fig4", more, st, progress=False)["ran"] == 10
        assert st.count() == 30
    df = load(db)
    assert df["trial_id"].is_unique and len(df) == 30
    assert {"relative_error", "success", "r_tilde", "N", "r_tilde_target", "git_commit", "device"} <= set(df.columns)
    csv = export(db, tmp_path / "out.csv")
    assert csv.stat().st_size > 0


def _wait_for_rows(db: Path, at_least: int, timeout: float = 120) -> int:
    end = time.time() + timeout
    while time.time() < end:
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=1) as c:
                    n = c.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
                if n >= at_least:
                    return n
            except sqlite3.OperationalError:
                pass
        time.sleep(0.05)
    raise AssertionError("sweep did not write rows in time")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_sweep_resumes_to_exactly_the_trials_asked(tmp_path, sig):
    db = tmp_path / "k.db"
    cmd = [sys.executable, "-m", "ticketlab", "sweep", "fig4", "--store", str(db), "--chunk-size", "1",
           "--no-progress", *TINY_FIG4[:-1], "6"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    n = _wait_for_rows(db, 3)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == 130
        assert "rerun the same command" in proc.stderr.read().decode()
    with sqlite3.connect(db) as c:
        partial = c.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    assert n <= partial < 60, "the sweep should have been interrupted part-way"
    done = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    df = load(db)
    assert len(df) == 60 and df["trial_id"].is_unique
    assert sorted(df.groupby("cell_id")["trial"].apply(sorted).map(tuple).unique()) == [tuple(range(6))]
    # identical to an uninterrupted run: every trial's numbers depend only on its seed
    exp, cfg = tiny_fig4(trials=6)
    clean = tmp_path / "clean.db"
    with Store(clean) as st:
        run_sweep("fig4", cfg, st, progress=False)
    a = df.set_index("trial_id").sort_index()
    b = load(clean).set_index("trial_id").sort_index()
    assert list(a.index) == list(b.index)
    assert np.allclose(a["relative_error"], b["relative_error"], rtol=1e-12)
    assert (a["iterations"] == b["iterations"]).all()


def test_cli_sweep_json_and_bad_input(tmp_path):
    db = tmp_path / "c.db"
    out = subprocess.run([sys.executable, "-m", "ticketlab", "sweep", "fig4", "--store", str(db), "--json",
                          *TINY_FIG4], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    import json

    data = json.loads(out.stdout)
    assert {"boundary", "slope"} <= set(data)
    assert {"r_tilde", "n_star", "ci_low", "ci_high"} <= set(data["boundary"][0])
    bad = subprocess.run([sys.executable, "-m", "ticketlab", "sweep", "fig4", "--store", str(db), "--set", "lam=-1"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "lam" in bad.stderr and "Traceback" not in bad.stderr
    bad = subprocess.run([sys.executable, "-m", "ticketlab", "sweep", "fig4", "--set", "nosuch=1"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "nosuch" in bad.stderr


# --- report -------------------------------------------------------------------------------------

class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.imgs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(dict(attrs)["src"])


def test_report_from_a_small_store(tmp_path):
    exp, cfg = tiny_fig4(trials=3)
    db = tmp_path / "r.db"
    with Store(db) as st:
        run_sweep("fig4", cfg, st, progress=False)
    res = write_report(db, tmp_path / "rep")
    parser = _Collector()
    parser.feed(Path(res["html"]).read_text())
    assert "table" in parser.tags and parser.imgs and all(s.startswith("data:image/png;base64,") for s in parser.imgs)
    figs = list((tmp_path / "rep" / "figures").iterdir())
    assert {f.suffix for f in figs} == {".png", ".pdf"} and all(f.stat().st_size > 1000 for f in figs)
    md = Path(res["markdown"]).read_text()
    assert "## Replication table" in md and "fig4" in md
    from ticketlab.verdicts import CATEGORIES

    assert res["sections"][0]["claims"] and all(c["verdict"] in CATEGORIES for c in res["sections"][0]["claims"])
