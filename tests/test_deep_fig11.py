"""Figure 11 summary and plot on a hand-written store; the ``imp`` CLI on a tiny oracle run."""

import json
import os

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from ticketlab.cli.imp import register
from ticketlab.config import ConfigError
from ticketlab.deep.fig11 import plot_fig11, summarize_fig11
from ticketlab.deep.imp import IMPSpec

# errors[N][seed] = test error per level (levels 0..2, pruning 0/20/36 %)
ERR = {100: {0: [5.0, 4.0, 4.4], 1: [5.2, 4.2, 4.6], 2: [5.4, 4.1, 4.5]},
       200: {0: [4.3, 3.9, 4.0], 1: [4.5, 4.1, 4.2], 2: [4.4, 4.0, 4.1]}}


def write_store(root):
    for n, by_seed in ERR.items():
        for seed, errs in by_seed.items():
            sp = IMPSpec(model="lenet5", data="mnist5k", n_train=n, seed=seed)
            rdir = os.path.join(root, "imp", sp.run_name())
            os.makedirs(rdir)
            json.dump({"identity": sp.identity(), "spec": sp.model_dump(mode="json")}, open(f"{rdir}/config.json", "w"))
            for lv, e in enumerate(errs):
                os.makedirs(f"{rdir}/level_{lv:02d}")
                json.dump({"n_train": n, "pruning_ratio_percent": 100 * (1 - 0.8 ** lv), "test_error": e,
                           "best_test_error": e - 0.1, "error_unit": "percent"},
                          open(f"{rdir}/level_{lv:02d}/metrics.json", "w"))


def test_summary_by_brute_force(tmp_path):
    write_store(tmp_path)
    s = summarize_fig11(str(tmp_path))
    (fam,) = s["families"]
    for n, by_seed in ERR.items():
        arr = np.array(list(by_seed.values()))
        pts = fam["curves"][str(n)]
        assert [p["mean"] for p in pts] == pytest.approx(arr.mean(0).tolist())
        assert [p["std"] for p in pts] == pytest.approx(arr.std(0, ddof=1).tolist())
        fx = fam["fixed_n"][str(n)]
        assert fx["best_level"] == 1
        diff = arr[:, 0] - arr[:, 1]
        assert fx["improvement_mean"] == pytest.approx(diff.mean())
        assert fx["improvement_se"] == pytest.approx(diff.std(ddof=1) / np.sqrt(3))
    # pruned N=100 beats dense N=200 (4.4) at level 1 (4.1) only; level 2 (4.5) does not
    dense200 = np.mean([e[0] for e in ERR[200].values()])
    expect = [(100, lv) for lv in (1, 2) if np.mean([e[lv] for e in ERR[100].values()]) < dense200]
    assert [(b["n_pruned"], b["level"]) for b in fam["beats"]] == expect == [(100, 1)]
    b = fam["beats"][0]
    se = np.sqrt(np.var([4.0, 4.2, 4.1], ddof=1) / 3 + np.var([4.3, 4.5, 4.4], ddof=1) / 3)
    assert b["margin_se"] == pytest.approx((dense200 - 4.1) / se)
    best = summarize_fig11(str(tmp_path), metric="best_test_error")["families"][0]
    assert best["curves"]["100"][0]["mean"] == pytest.approx(5.1)
    with pytest.raises(ConfigError, match="metric"):
        summarize_fig11(str(tmp_path), metric="loss")
    with pytest.raises(ConfigError, match="no imp runs"):
        summarize_fig11(str(tmp_path / "empty"))


def test_plot_writes_png_and_pdf(tmp_path):
    write_store(tmp_path / "s")
    paths = plot_fig11(str(tmp_path / "s"), str(tmp_path / "out"))
    assert sorted(os.path.basename(p) for p in paths) == ["fig11-lenet5-mnist5k.pdf", "fig11-lenet5-mnist5k.png"]
    assert all(os.path.getsize(p) > 1000 for p in paths)


def _app():
    app = typer.Typer()
    register(app)

    @app.command("other")
    def other():  # a second command keeps typer in multi-command mode, as in the real app
        pass
    return app




def test_cli_tiny_oracle_run_json(tmp_path, one_thread):
    args = ["imp", "--model", "mlp", "--widths", "8-4", "--data", "oracle:d=8,widths=8-4,r=3,pool=80,test=40",
            "--n-train", "40,80", "--rounds", "1", "--rate", "0.5", "--epochs", "1", "--batch-size", "20",
            "--seeds", "0,1", "--store", str(tmp_path), "--rewind", "2", "--json"]
    r = CliRunner().invoke(_app(), args)
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert len(out["runs"]) == 4 and out["runs"][0]["pruning_ratio_percent"][0] == 0
    assert sorted(out["summary"]["families"][0]["curves"]) == ["40", "80"]
    assert json.load(open(tmp_path / "imp" / "mlp-oracle-n40-seed1" / "config.json"))["spec"]["rewind"] == 2


@pytest.mark.parametrize("args,match", [(["--rewind", "later"], "--rewind"), (["--n-train", "1k"], "--n-train"),
                                        (["--rate", "1.5"], "rate"), (["--scope", "x"], "scope")])
def test_cli_bad_options_raise_config_error(tmp_path, args, match):
    r = CliRunner().invoke(_app(), ["imp", "--store", str(tmp_path), *args])
    assert isinstance(r.exception, ConfigError) and match in str(r.exception)
