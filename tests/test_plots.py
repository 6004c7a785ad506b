"""Figures: the style never leaks into the user's matplotlib, unrun cells never look like success,
bands and the paper's read-offs are labelled, curves end where the trials stopped."""

from __future__ import annotations

import importlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from ticketlab import plotting


def test_importing_and_plotting_leaves_rcparams_and_backend_alone(tmp_path):
    # a fresh interpreter: nothing else imported matplotlib's pyplot or changed rcParams before
    code = """
import matplotlib
raw_backend = lambda: dict.__getitem__(matplotlib.rcParams, 'backend')  # read without resolving it
backend = raw_backend()
before = {k: dict.__getitem__(matplotlib.rcParams, k) for k in matplotlib.rcParams}
import ticketlab, ticketlab.plotting, ticketlab.report, ticketlab.app
from ticketlab.experiments import available, get_experiment
for name in available():
    get_experiment(name)
from ticketlab import plotting
fig, ax = plotting.new_figure()
ax.plot([1, 2], [1, 4], label="x")
plotting.save(fig, __import__("sys").argv[1], "probe")
after = {k: dict.__getitem__(matplotlib.rcParams, k) for k in matplotlib.rcParams}
changed = sorted(k for k in before if before[k] != after[k])
assert not changed, changed
assert raw_backend() == backend, (raw_backend(), backend)
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=None)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout
    assert (tmp_path / "probe.png").stat().st_size > 1000 and (tmp_path / "probe.pdf").is_file()


def test_style_is_applied_only_inside_the_context():
    import matplotlib

    outside = matplotlib.rcParams["axes.spines.top"]
    with plotting.style():
        assert matplotlib.rcParams["axes.spines.top"] is False
        assert matplotlib.rcParams["font.size"] == plotting.STYLE["font.size"]
    assert matplotlib.rcParams["axes.spines.top"] == outside


def test_missing_cells_are_hatched_not_white():
    fig, ax = plotting.new_figure()
    rate = np.array([[1.0, np.nan], [0.5, 0.0]])
    partial = np.array([[True, False], [False, False]])
    plotting.phase_diagram(ax, [1, 2], [10, 20], rate, "x", "y", partial=partial)
    hatched = [p for p in ax.patches if p.get_hatch() == "///"]
    assert len(hatched) == 1  # one cell never ran
    x, y = hatched[0].get_xy()
    assert (x, y) == (1.5, 5.0)  # the (x=2, y=10) cell: column 1, row 0
    assert any(p.get_hatch() == ".." for p in ax.patches)  # the partly run cell is marked too
    plotting.legend_with_missing(ax)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "not run" in labels and "fewer trials than asked" in labels
    # and a complete grid gets neither mark nor legend entry
    fig2, ax2 = plotting.new_figure()
    plotting.phase_diagram(ax2, [1, 2], [10, 20], np.ones((2, 2)), "x", "y", partial=np.zeros((2, 2), bool))
    assert not [p for p in ax2.patches if p.get_hatch()]


def test_wilson_interval_matches_closed_form():
    lo, hi = plotting.wilson_interval([0, 5, 10], [10, 10, 10])
    z = 1.959964
    # k = 0: upper bound z^2 / (n + z^2); k = n: lower bound n / (n + z^2)
    assert hi[0] == pytest.approx(z * z / (10 + z * z), rel=1e-9) and lo[0] == pytest.approx(0.0, abs=1e-12)
    assert lo[2] == pytest.approx(10 / (10 + z * z), rel=1e-9) and hi[2] == pytest.approx(1.0)
    assert lo[1] == pytest.approx(1 - hi[1], rel=1e-9)  # symmetric at p = 1/2
    assert lo[1] == pytest.approx(0.2366, abs=1e-4)


def test_completeness_wording():
    assert plotting.completeness(600, 600) == ""
    assert plotting.completeness(290, 600) == "290 of 600 trials"
    fig, ax = plotting.new_figure()
    plotting.trials_title(ax, "Fig", 290, 600)
    assert "290 of 600 trials" in ax.get_title() and "incomplete" in ax.get_title()


def test_log_axis_keeps_several_labels_on_a_narrow_range():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig, ax = plotting.new_figure()
    ax.plot([0, 1], [0.1, 0.22])
    plotting.log_axis(ax, "y")
    FigureCanvasAgg(fig).draw()
    assert ax.get_yscale() == "log"
    labels = [t.get_text() for t in ax.get_yticklabels() + ax.get_yticklabels(minor=True)
              if t.get_text() and 0.1 <= t.get_position()[1] <= 0.22]
    assert len(labels) >= 3, labels


def test_fig3_curve_ends_at_the_median_stop():
    from ticketlab.experiments.fig3 import stopped_mean_curve

    every = 10
    # three trials that stop at 20, 40 and 80 iterations; the store carries the last value forward
    curves, its = [], [20, 40, 80]
    for stop in its:
        c = [10.0 ** (-i * every / 20) for i in range(stop // every + 1)]
        curves.append(c + [c[-1]] * (10 - len(c)))
    it, y = stopped_mean_curve(pd.DataFrame({"curve": curves, "iterations": its}), every)
    assert it[-1] == 40  # the median stop: beyond it fewer than half the trials still run
    assert len(y) == 5
    # every trial follows the same line until it stops, so the geometric mean is that line
    assert np.allclose(y, [10.0 ** (-i / 2) for i in range(5)])


def _fig4_store(tmp_path, kill_after_cells=None):
    from ticketlab.app import make_config
    from ticketlab.experiments import get_experiment
    from ticketlab.store import Store
    from ticketlab.sweep import plan, run_task

    exp = get_experiment("fig4")
    cfg = make_config(exp, "quick", 3, ["r_tilde=10,20", "N=50,150,300", "max_iter=300"])
    db = tmp_path / "r.db"
    with Store(db) as st:
        st.save_config(exp.name, cfg.config_id(), cfg.model_dump(mode="json"))
        tasks, _ = plan(exp, cfg, st)
        for t in tasks[:kill_after_cells]:
            st.write(run_task(t))
    return exp, cfg, db


def test_incomplete_fig4_is_drawn_as_incomplete_with_the_paper_boundary(tmp_path):
    exp, cfg, db = _fig4_store(tmp_path, kill_after_cells=4)
    df = exp.load(cfg, db)
    assert len(df) == 12  # 4 of 6 cells
    summary = exp.summarize(cfg, df)
    import matplotlib.figure

    captured = {}
    orig = plotting.save

    def spy(fig, out_dir, name):
        captured["fig"] = fig
        return orig(fig, out_dir, name)

    plotting.save = spy
    try:
        paths = exp.plot(cfg, df, summary, tmp_path / "figs")
    finally:
        plotting.save = orig
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    ax = captured["fig"].axes[0]
    assert "12 of 18 trials" in ax.get_title()
    assert len([p for p in ax.patches if p.get_hatch() == "///"]) == 2  # the two cells that never ran
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(lab.startswith("paper") for lab in labels)
    # the N* bars say what they are whenever there are any
    has_boundary = any(b["n_star"] is not None for b in summary["boundary"])
    assert any("95% bootstrap CI" in lab for lab in labels) == has_boundary
    assert isinstance(captured["fig"], matplotlib.figure.Figure)


def test_complete_fig4_has_no_incomplete_mark(tmp_path):
    exp, cfg, db = _fig4_store(tmp_path)
    df = exp.load(cfg, db)
    summary = exp.summarize(cfg, df)
    orig, captured = plotting.save, {}
    plotting.save = lambda fig, out_dir, name: captured.setdefault("fig", fig) and []
    try:
        exp.plot(cfg, df, summary, tmp_path)
    finally:
        plotting.save = orig
    ax = captured["fig"].axes[0]
    assert "incomplete" not in ax.get_title()
    assert not [p for p in ax.patches if p.get_hatch() == "///"]


def test_fig11_axis_is_weights_remaining_on_a_log_scale_with_the_paper_curves(tmp_path, monkeypatch):
    from ticketlab.deep import fig11

    pts = [{"level": lv, "pruning_ratio_percent": pr, "mean": 2.0 + lv * 0.1, "std": 0.1, "n_seeds": 2,
            "early_stop_step_mean": 100.0, "val_mean": 2.0} for lv, pr in enumerate([0.0, 20.0, 36.0, 48.8])]
    fam = {"family": {"model": "lenet5", "data": "mnist", "control": "none"}, "control": "none",
           "error_unit": "percent", "curves": {"25000": pts}}
    captured = []
    from ticketlab import plotting as P

    orig = P.new_figure

    def spy(*a, **k):
        fig, axes = orig(*a, **k)
        captured.append(fig)
        return fig, axes

    monkeypatch.setattr(P, "new_figure", spy)
    paths = fig11.plot_fig11(str(tmp_path), str(tmp_path / "out"), summary={"families": [fam]})
    assert len(paths) == 2
    ax = captured[0].axes[0]
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "weights remaining (%)"
    assert ax.xaxis_inverted()  # dense on the left
    xs = sorted(float(x) for c in ax.containers if c.get_label().startswith("N = 25000, ticket")
                for x in c.lines[0].get_xdata())
    assert xs[-1] == pytest.approx(100.0) and xs[0] == pytest.approx(51.2)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "paper: N = 25000" in labels
    # another model gets no paper overlay (the read-offs are LeNet-5 on MNIST)
    captured.clear()
    fam2 = {**fam, "family": {"model": "lenet300", "data": "mnist5k", "control": "none"}}
    fig11.plot_fig11(str(tmp_path), str(tmp_path / "out2"), summary={"families": [fam2]})
    labels = [t.get_text() for t in captured[0].axes[0].get_legend().get_texts()]
    assert not any(lab.startswith("paper") for lab in labels)
