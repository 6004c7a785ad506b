"""Figure 11 summary, claims, notes and plot on hand-written stores; the ``imp`` CLI on a tiny oracle run."""

import json
import os

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from ticketlab.cli.imp import register
from ticketlab.config import ConfigError
from ticketlab.deep.fig11 import fig11_claims, fig11_notes, plot_fig11, summarize_fig11, write_summary
from ticketlab.deep.imp import IMPSpec
from ticketlab.deep.train import TrainSpec

# test errors[N][seed] per level (levels 0..2, pruning 0/20/36 %); validation errors are built so that
# validation chooses level 2 although level 1 has the lower test error: selection must follow validation
ERR = {100: {0: [5.0, 4.0, 4.4], 1: [5.2, 4.2, 4.6], 2: [5.4, 4.1, 4.5]},
       200: {0: [4.3, 3.9, 4.0], 1: [4.5, 4.1, 4.2], 2: [4.4, 4.0, 4.1]}}
VAL = {0: 5.0, 1: 4.6, 2: 4.5}


def write_run(root, n, seed, errs, control="none", vals=VAL, train=None):
    sp = IMPSpec(model="lenet5", data="mnist5k", n_train=n, seed=seed, control=control,
                 train=train or TrainSpec(epochs=3))
    rdir = os.path.join(root, "imp", sp.run_name())
    os.makedirs(rdir)
    json.dump({"identity": sp.identity(), "spec": sp.model_dump(mode="json"), "device": "cpu"},
              open(f"{rdir}/config.json", "w"))
    for lv, e in enumerate(errs):
        os.makedirs(f"{rdir}/level_{lv:02d}")
        json.dump({"n_train": n, "pruning_ratio_percent": 100 * (1 - 0.8 ** lv), "test_error": e + 0.05,
                   "early_stop": {"step": 10 * (lv + 1), "val_error": vals[lv], "val_loss": 0.1, "test_error": e},
                   "error_unit": "percent", "device": "cpu"},
                  open(f"{rdir}/level_{lv:02d}/metrics.json", "w"))


def write_store(root, controls=()):
    for n, by_seed in ERR.items():
        for seed, errs in by_seed.items():
            write_run(root, n, seed, errs)
            for c in controls:  # a control worse than the ticket by 1.0 at pruned levels
                write_run(root, n, seed, [errs[0]] + [e + 1.0 for e in errs[1:]], control=c)


def test_summary_by_brute_force_and_selection_on_validation(tmp_path):
    write_store(tmp_path)
    s = summarize_fig11(str(tmp_path))
    (fam,) = s["families"]
    assert fam["label"] == "lenet5-mnist5k-ticket" and fam["control"] == "none"
    for n, by_seed in ERR.items():
        arr = np.array(list(by_seed.values()))
        pts = fam["curves"][str(n)]
        assert [p["mean"] for p in pts] == pytest.approx(arr.mean(0).tolist())
        assert [p["std"] for p in pts] == pytest.approx(arr.std(0, ddof=1).tolist())
        assert [p["early_stop_step_mean"] for p in pts] == [10, 20, 30]
        ch = fam["chosen"][str(n)]
        assert ch["level"] == 2  # validation's choice, although level 1 is better on test
        diff = arr[:, 0] - arr[:, 2]
        assert ch["gain"]["mean"] == pytest.approx(diff.mean())
        assert ch["gain"]["se"] == pytest.approx(diff.std(ddof=1) / np.sqrt(3))
    last = summarize_fig11(str(tmp_path), metric="test_error")["families"][0]
    assert last["curves"]["100"][0]["mean"] == pytest.approx(5.25)
    with pytest.raises(ConfigError, match="metric"):
        summarize_fig11(str(tmp_path), metric="best_test_error")
    with pytest.raises(ConfigError, match="no imp runs"):
        summarize_fig11(str(tmp_path / "empty"))


def _by(claims, text):
    return [c for c in claims if text in c["claim"]]


def test_claims_pass_fail_and_undecided(tmp_path):
    write_store(tmp_path, controls=("reinit", "random_mask"))
    s = summarize_fig11(str(tmp_path))
    claims = fig11_claims(s, {})
    labels = {c["family"] for c in claims}
    assert labels == {"lenet5-mnist5k-ticket", "lenet5-mnist5k-reinit control", "lenet5-mnist5k-random-mask control"}
    assert all(c["claim"].startswith(f"[{c['family']}]") for c in claims)
    fixed = _by(claims, "At a fixed N")
    # fixed N: gains at level 2 are 0.6 +- 0 (N=100, clear) and 0.3 +- 0 (N=200, clear)
    assert [c["verdict"] for c in fixed] == [True, True] and all("ticket" in c["family"] for c in fixed)
    # N=100 at level 2 (4.5 mean) vs dense N=200 (4.4 mean): per seed 4.3-4.4, 4.5-4.6, 4.4-4.5 -> gain -0.1 +- 0
    (cross,) = _by(claims, "N=100 vs N=200")
    assert cross["verdict"] is False
    ctrl = _by(claims, "The ticket beats its")
    assert len(ctrl) == 4 and all(c["verdict"] is True for c in ctrl)
    assert not any("control" in c["family"] for c in fixed + [cross])  # controls never judged on ticket claims


def test_claims_undecided_with_noise_or_one_seed(tmp_path):
    # gains of mixed sign over seeds: the 2-SE interval covers 0 -> no verdict
    for seed, errs in {0: [5.0, 4.5, 4.5], 1: [5.0, 5.4, 5.4], 2: [5.0, 4.9, 4.9]}.items():
        write_run(tmp_path, 100, seed, errs)
    (fixed,) = _by(fig11_claims(summarize_fig11(str(tmp_path)), {}), "At a fixed N")
    assert fixed["verdict"] is None
    one = tmp_path / "one"
    write_run(one, 100, 0, [5.0, 4.0, 4.0])
    (fixed,) = _by(fig11_claims(summarize_fig11(str(one)), {}), "At a fixed N")
    assert fixed["verdict"] is None and "1 seed" in fixed["ours"]


def test_notes_follow_what_was_run(tmp_path):
    write_store(tmp_path)
    (note,) = fig11_notes(summarize_fig11(str(tmp_path)), "quick")
    assert "lenet5 on mnist5k" in note and "N = 100, 200" in note and "seeds [0, 1, 2]" in note
    assert "3 epochs" in note and "quick scale" in note
    other = tmp_path / "other"
    write_run(other, 300, 4, [5.0, 4.0], train=TrainSpec(epochs=7, optimizer="adam", lr=1e-3))
    (note2,) = fig11_notes(summarize_fig11(str(other)), "paper")
    assert "N = 300" in note2 and "seeds [4]" in note2 and "7 epochs" in note2 and "adam lr 0.001" in note2


def test_plot_and_summary_file(tmp_path):
    write_store(tmp_path / "s", controls=("reinit",))
    paths = plot_fig11(str(tmp_path / "s"), str(tmp_path / "out"))
    assert sorted(os.path.basename(p) for p in paths) == ["fig11-lenet5-mnist5k.pdf", "fig11-lenet5-mnist5k.png"]
    assert all(os.path.getsize(p) > 1000 for p in paths)
    out = write_summary(str(tmp_path / "s"), str(tmp_path / "sum" / "fig11.json"), scale="quick")
    back = json.load(open(tmp_path / "sum" / "fig11.json"))
    assert back["kind"] == "ticketlab.imp_summary" and back["claims"] == out["claims"]
    assert len(back["runs"]) == 12 and all(r["levels_finished"] == 3 for r in back["runs"].values())


def _app():
    app = typer.Typer()
    register(app)

    @app.command("other")
    def other():  # a second command keeps typer in multi-command mode, as in the real app
        pass
    return app


def test_cli_tiny_oracle_run_json(tmp_path, one_thread):
    args = ["imp", "--model", "mlp", "--widths", "8-4", "--data", "oracle:d=8,widths=8-4,r=3,pool=100,test=40",
            "--n-train", "40,80", "--rounds", "1", "--rate", "0.5", "--epochs", "1", "--batch-size", "20",
            "--seeds", "0,1", "--store", str(tmp_path), "--rewind", "2", "--control", "none,reinit", "--json"]
    r = CliRunner().invoke(_app(), args)
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert len(out["runs"]) == 8 and out["runs"][0]["pruning_ratio_percent"][0] == 0
    labels = sorted(f["label"] for f in out["summary"]["families"])
    assert labels == ["mlp-oracle-reinit control", "mlp-oracle-ticket"]
    assert sorted(out["summary"]["families"][0]["curves"]) == ["40", "80"]
    cfg = json.load(open(tmp_path / "imp" / "mlp-oracle-n40-seed1" / "config.json"))
    assert cfg["spec"]["rewind"] == 2 and cfg["spec"]["init"] == "kaiming_normal"
    m = json.load(open(tmp_path / "imp" / "mlp-oracle-n40-seed1" / "level_01" / "metrics.json"))
    assert m["start_step"] == 2 and m["steps"] == 0  # 2 steps per level, rewound to step 2: nothing left


def test_resolve_report_store(tmp_path):
    from ticketlab.deep.fig11 import resolve_report_store

    write_store(tmp_path / "s")
    assert resolve_report_store(tmp_path / "s") == {"sqlite": None, "imp": tmp_path / "s"}
    db = tmp_path / "s" / "ticketlab-results.db"
    db.write_bytes(b"")
    assert resolve_report_store(tmp_path / "s")["sqlite"] == db
    assert resolve_report_store(db) == {"sqlite": db, "imp": tmp_path / "s"}
    (tmp_path / "empty").mkdir()
    for bad in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(ConfigError, match="--store: must"):
            resolve_report_store(bad)


def test_report_of_an_imp_folder_shows_its_runs_recipe(tmp_path, capsys):
    from ticketlab.app import build_report
    from ticketlab.cli import main

    write_store(tmp_path / "s")
    res = build_report(tmp_path / "s", tmp_path / "rep")
    md = open(res["markdown"]).read()
    (sec,) = [s for s in res["sections"] if s["name"] == "fig11"]
    cfg = sec["config"]  # read from the runs' config.json, not the quick preset (lenet300 on mnist5k)
    assert (cfg["model"], cfg["data"], cfg["n_train"], cfg["seeds"], cfg["rounds"], cfg["epochs"]) == \
        ("lenet5", "mnist5k", [100, 200], [0, 1, 2], 2, 3)
    assert cfg["scale"] == "custom" and "*Scale: custom*" in md and "lenet300" not in md
    assert any(c["claim"] for c in sec["claims"]) and sec["figures"]
    (tmp_path / "empty").mkdir()
    assert main(["report", "--store", str(tmp_path / "empty"), "--out", str(tmp_path / "rep2")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --store: must") and len(err.splitlines()) == 1, err
    assert not (tmp_path / "rep2").exists()


def test_imp_options_are_generated_from_the_config_models():
    from typer.main import get_command

    from ticketlab.cli.imp import IMP_FIELDS, TRAIN_FIELDS
    from ticketlab.deep.spec import IMPSpec, TrainSpec

    params = {p.name: p for p in get_command(_app()).commands["imp"].params}
    for model, names in ((IMPSpec, IMP_FIELDS), (TrainSpec, TRAIN_FIELDS)):
        for n in names:  # default and help text come from the model, written once there
            field = model.model_fields[n]
            assert (params[n].default, params[n].help) == (field.default, field.description), n
    assert params["rewind_optimizer"].secondary_opts == ["--no-rewind-optimizer"]
    # a Literal field is a plain string option that the model refuses with the flag named
    r = CliRunner().invoke(_app(), ["imp", "--scope", "per-neuron", "--data", "digits", "--store", "x"])
    assert r.exit_code != 0 and "--scope" in str(r.exception) and "layerwise" in str(r.exception)


def _write_fc_run(root, seed, control, errs, steps):
    sp = IMPSpec(model="lenet300", data="mnist:/x", n_train=None, seed=seed, control=control, output_rate=0.1)
    rdir = os.path.join(root, "imp", sp.run_name())
    os.makedirs(rdir)
    json.dump({"identity": sp.identity(), "spec": sp.model_dump(mode="json")}, open(f"{rdir}/config.json", "w"))
    for lv, (e, st) in enumerate(zip(errs, steps)):
        os.makedirs(f"{rdir}/level_{lv:02d}")
        json.dump({"n_train": 55000, "pruning_ratio_percent": 100 * (1 - 0.8 ** lv), "test_error": e,
                   "early_stop": {"step": st, "val_error": e, "test_error": e}, "error_unit": "percent"},
                  open(f"{rdir}/level_{lv:02d}/metrics.json", "w"))


def test_frankle_carbin_checks_pass_and_fail_on_built_stores(tmp_path):
    from ticketlab.deep.fig11 import frankle_carbin_checks

    # level 3 = 51.2 % remaining (nearest 51.3); seeds 0-2. Ticket: faster and better than dense;
    # reinit: slower and worse than the ticket; random mask: faster and better than the ticket (shape fails)
    for s, d in enumerate((0.0, 0.1, -0.05)):
        _write_fc_run(tmp_path, s, "none", [2.5 + d, 2.4 + d, 2.3 + d, 2.0 + d], [5000 + 10 * s, 3000, 2500, 2000 + 20 * s])
        _write_fc_run(tmp_path, s, "reinit", [2.5 + d, 2.6, 2.6, 2.4 + d], [5000 + 10 * s, 4000, 4000, 4500 - 30 * s])
        _write_fc_run(tmp_path, s, "random_mask", [2.5 + d, 2.6, 2.6, 1.8 + d], [5000 + 10 * s, 4000, 4000, 1500 + 5 * s])
    rows = frankle_carbin_checks(summarize_fig11(str(tmp_path)))
    got = {(r["family"].split("-", 2)[2], r["check"].split(" (")[0]): r for r in rows}
    assert {r["level"] for r in rows} == {3} and len(rows) == 6  # 21.1 % was not reached: no row
    speed, acc = got[("ticket", "learns faster than the dense net")], got[("ticket", "reaches lower test error than the dense net")]
    assert speed["gain"]["mean"] == pytest.approx(np.mean([3000, 2990, 2980])) and speed["verdict"] is True
    assert acc["gain"]["mean"] == pytest.approx(0.5) and acc["verdict"] is True
    assert got[("reinit control", "loses the ticket's accuracy")]["verdict"] is True
    assert got[("reinit control", "loses the ticket's speed")]["verdict"] is True
    assert got[("random-mask control", "loses the ticket's accuracy")]["verdict"] is False
    assert got[("random-mask control", "loses the ticket's speed")]["verdict"] is False
    # one seed: the numbers, no verdict
    _write_fc_run(tmp_path / "one", 0, "none", [2.5, 2.4, 2.3, 2.0], [5000, 3000, 2500, 2000])
    (speed1, acc1) = frankle_carbin_checks(summarize_fig11(str(tmp_path / "one")))
    assert speed1["gain"]["mean"] == 3000 and acc1["gain"]["mean"] == pytest.approx(0.5)
    assert speed1["verdict"] is None and acc1["verdict"] is None and "1 seed" in acc1["ours"]


def test_two_seeds_with_equal_gains_give_no_verdict(tmp_path):
    """Two seeds whose gains agree exactly have a standard error of 0: the numbers, no verdict."""
    from ticketlab.deep.fig11 import frankle_carbin_checks

    for s in (0, 1):
        _write_fc_run(tmp_path, s, "none", [2.5, 2.4, 2.3, 2.0], [5000, 3000, 2500, 2000])
    speed, acc = frankle_carbin_checks(summarize_fig11(str(tmp_path)))
    assert acc["gain"]["se"] == 0.0 and acc["gain"]["mean"] == pytest.approx(0.5)
    assert speed["verdict"] is None and acc["verdict"] is None


def test_paper_numbers_only_on_the_papers_setting(tmp_path):
    # LeNet-5 on MNIST gets the paper's numbers; LeNet-300-100 (same N and errors) must not quote them
    paper = {"pruning_ratio_percent": [0, 20, 36], "N=100": [5.3, 4.4, 4.5], "N=200": [4.4, 4.0, 4.1]}
    write_store(tmp_path)
    for n, by_seed in ERR.items():
        for seed, errs in by_seed.items():
            sp = IMPSpec(model="lenet300", data="mnist5k", n_train=n, seed=seed, train=TrainSpec(epochs=3))
            rdir = os.path.join(tmp_path, "imp", sp.run_name())
            os.makedirs(rdir)
            json.dump({"identity": sp.identity(), "spec": sp.model_dump(mode="json"), "device": "cpu"},
                      open(f"{rdir}/config.json", "w"))
            for lv, e in enumerate(errs):
                os.makedirs(f"{rdir}/level_{lv:02d}")
                json.dump({"n_train": n, "pruning_ratio_percent": 100 * (1 - 0.8 ** lv), "test_error": e,
                           "early_stop": {"step": 10, "val_error": VAL[lv], "val_loss": 0.1, "test_error": e},
                           "error_unit": "percent", "device": "cpu"},
                          open(f"{rdir}/level_{lv:02d}/metrics.json", "w"))
    claims = fig11_claims(summarize_fig11(str(tmp_path)), paper)
    lenet5 = [c for c in claims if c["family"].startswith("lenet5")]
    lenet300 = [c for c in claims if c["family"].startswith("lenet300")]
    assert lenet5 and lenet300 and len(lenet5) == len(lenet300)
    assert all("N=100: dense 5.30 -> best 4.40" in c["paper"] for c in _by(lenet5, "At a fixed N"))
    assert all("LeNet-5 on MNIST only" in c["paper"] and "dense 5.30" not in c["paper"] for c in lenet300)
    # the verdicts are the same: the data are; only the paper column differs
    assert [c["verdict"] for c in lenet5] == [c["verdict"] for c in lenet300]
