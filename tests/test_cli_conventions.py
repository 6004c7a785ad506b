"""One convention per concept across commands (issues 15, 17 item 5, 18): train's options generated from
its config models, one --store, one --seeds syntax, the dtype default stated, one name per grid, and
--engine on every command that runs sweeps, recorded with each row."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
import typer

from ticketlab.cli import app, main
from ticketlab.store import DEFAULT_STORE


def _params(command: str) -> dict:
    cmd = typer.main.get_command(app).commands[command]
    return {p.name: p for p in cmd.params}


def _run(argv, capsys) -> tuple[int, str, str]:
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


# --- issue 15: train's options come from the config models ------------------------------------------

# every flag `ticketlab train` took before its options were generated (README and tests use them)
TRAIN_FLAGS = ["--d", "--K", "--r", "--N", "--layout", "--r-spread", "--noise", "--extra", "--init", "--eta",
               "--beta", "--step-convention", "--max-iter", "--tol", "--sampling", "--num-batches", "--test-error",
               "--n-test", "--record-every", "--seed", "--trials", "--device", "--dtype", "--backend", "--json"]


def test_train_options_take_name_default_and_help_from_the_models():
    from ticketlab.cli.train import SOLVER_FIELDS, TRIAL_FIELDS
    from ticketlab.config import OracleSpec, SolverSpec, TrialSpec

    params = _params("train")
    sources = [(SolverSpec, n) for n in SOLVER_FIELDS] + [(TrialSpec, n) for n in (*TRIAL_FIELDS, "dtype")] + \
        [(OracleSpec, n) for n in ("layout", "r_spread", "noise", "extra")]
    for model, name in sources:
        field, p = model.model_fields[name], params[name]
        assert p.opts[0] == "--" + name.replace("_", "-"), name
        assert p.default == field.default, name
        assert p.help == field.description and field.description, name
    for name in ("d", "K", "r", "N"):  # required by the models: the command's default, the model's help
        model = TrialSpec if name == "N" else OracleSpec
        assert params[name].opts == [f"--{name}"] and params[name].help == model.model_fields[name].description
    assert params["init"].default == "local:0.3"  # InitSpec's defaults, kind:lam
    flags = {o for p in params.values() for o in p.opts}
    assert set(TRAIN_FLAGS) <= flags


def _numbers(trials):
    return [{k: v for k, v in t.items() if k != "wall_time"} for t in trials]


def test_train_numbers_are_those_of_the_same_spec_and_seeds(capsys):
    """The generated command builds the same TrialSpec and runs the same seeds as the Python API."""
    from ticketlab.config import OracleSpec, SolverSpec, TrialSpec
    from ticketlab.trial import run_trials

    argv = ["train", "--d", "20", "--K", "2", "--r", "4", "--N", "80", "--max-iter", "300", "--eta", "0.4",
            "--json"]
    rc, out, _ = _run([*argv, "--seed", "3", "--trials", "2"], capsys)
    assert rc == 0
    got = json.loads(out)
    spec = TrialSpec(oracle=OracleSpec(d=20, K=2, r=4), N=80, solver=SolverSpec(max_iter=300, eta=0.4))
    assert got["config"] == spec.model_dump(mode="json")
    want = run_trials(spec, [3, 4])
    assert [t["relative_error"] for t in got["trials"]] == [w["relative_error"] for w in want]
    for seeds in ("3-4", "3,4"):
        rc, out, _ = _run([*argv, "--seeds", seeds], capsys)
        assert rc == 0 and _numbers(json.loads(out)["trials"]) == _numbers(got["trials"])


# --- issue 17, item 5: one seeds syntax -------------------------------------------------------------

def test_parse_seeds():
    from ticketlab.cli.options import parse_seeds
    from ticketlab.config import ConfigError

    assert parse_seeds("0,1,2") == [0, 1, 2] == parse_seeds("0-2") == parse_seeds(" 0 - 1 , 2")
    assert parse_seeds("5") == [5] and parse_seeds("0-2,7,9-10") == [0, 1, 2, 7, 9, 10]
    for bad in ("", "a", "-1", "2-1", "0,0", "0-2,1", "1.5", "0-", "0-99999999"):
        with pytest.raises(ConfigError, match="--seeds: must"):
            parse_seeds(bad)


@pytest.mark.parametrize("command,base", [
    ("train", ["--d", "10", "--K", "2", "--r", "3", "--N", "30", "--max-iter", "5"]),
    ("landscape", ["--d", "10", "--K", "2", "--r", "3", "--N", "30", "--points", "1", "--no-population"]),
    ("imp", ["--model", "mlp", "--widths", "4", "--data", "oracle:widths=4", "--n-train", "20", "--rounds", "0",
             "--epochs", "1"]),
])
@pytest.mark.parametrize("seeds", ["2-1", "-1", "a", "0,0"])
def test_a_bad_seeds_list_is_one_line_naming_seeds(command, base, seeds, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, _, err = _run([command, *base, "--seeds", seeds], capsys)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: --seeds: must"), lines
    assert list(tmp_path.iterdir()) == []


def test_seeds_and_seed_trials_are_not_mixed(capsys):
    rc, _, err = _run(["train", "--seeds", "0-1", "--trials", "2"], capsys)
    assert rc == 2 and "--seeds: give --seeds, or --seed and --trials, not both" in err


def test_landscape_seeds_run_those_seeds(capsys):
    base = ["landscape", "--d", "10", "--K", "2", "--r", "3", "--N", "60", "--points", "1", "--no-population",
            "--radius-grid", "0.1", "--json"]
    rc, out, _ = _run([*base, "--seeds", "4,7"], capsys)
    assert rc == 0
    assert [t["seed"] for t in json.loads(out)["trials"]] == [4, 7]


# --- one store ----------------------------------------------------------------------------------------

def test_every_store_option_has_one_help_and_one_default():
    from ticketlab.cli.options import STORE_HELP

    seen = []
    for name, cmd in typer.main.get_command(app).commands.items():
        for p in cmd.params:
            if p.name == "store":
                seen.append(name)
                assert p.opts == ["--store"] and p.help == STORE_HELP, name
                assert str(p.default) == DEFAULT_STORE and not p.required, name
    assert {"sweep", "plot", "report", "reproduce", "ls", "export", "pack", "sensitivity", "imp",
            "imp-summary"} <= set(seen)


IMP = ["imp", "--model", "mlp", "--widths", "6-4", "--data", "oracle:d=8,widths=6-4,r=3,pool=60,test=30",
       "--n-train", "20", "--rounds", "0",
       "--epochs", "1", "--json"]


def test_imp_store_is_the_store_file_or_the_folder_holding_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # an SQLite store path: the runs go in imp/ beside it, where fig11 and the report look for them
    assert main([*IMP, "--seeds", "0-1", "--store", "a/r.db"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [r["seed"] for r in runs] == [0, 1]
    assert sorted(p.name for p in (tmp_path / "a" / "imp").iterdir()) == sorted(r["run"] for r in runs)
    assert not (tmp_path / "a" / "r.db").exists()
    from ticketlab.experiments.fig11 import imp_dir

    assert imp_dir(tmp_path / "a" / "r.db") == tmp_path / "a"
    # a folder, as before (scripts/paper_deep.sh): the runs go in DIR/imp/
    (tmp_path / "b").mkdir()
    assert main([*IMP, "--seeds", "0", "--store", "b"]) == 0
    capsys.readouterr()
    assert (tmp_path / "b" / "imp").is_dir()
    # the default: the default store's folder, the working directory
    assert main([*IMP, "--seeds", "0"]) == 0
    capsys.readouterr()
    assert (tmp_path / "imp").is_dir()
    # imp-summary reads the same store
    assert main(["imp-summary", "--store", "a/r.db", "--out", "s.json"]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["runs"]


# --- one dtype story, one grid name ----------------------------------------------------------------

@pytest.mark.parametrize("command,default", [("train", "float64"), ("sweep", "float64"), ("imp", "float32")])
def test_every_dtype_help_states_its_default(command, default):
    p = _params(command)["dtype"]
    assert f"{default} (default" in p.help, p.help
    assert p.default in (default, None)


def test_init_study_grids_are_named_as_the_init_sweep_names_them(capsys):
    from ticketlab.experiments import get_experiment

    fields = get_experiment("init").Config.model_fields
    params = _params("init-study")
    for name in ("N", "r", "d"):
        assert name in fields
        assert params[f"{name}_grid"].opts[:2] == [f"--{name}", f"--{name}-grid"]  # the old spelling kept
    rc, out, _ = _run(["init-study", "--N", "a,b"], capsys)
    assert rc == 2


@pytest.mark.parametrize("name", ["fig9", "fig10"])
def test_set_N_names_the_N_grid_of_every_experiment(name, capsys, tmp_path):
    from ticketlab.app import make_config
    from ticketlab.experiments import get_experiment

    default = get_experiment(name).default_config("quick")
    for field in ("N", "N_grid"):
        rc, out, _ = _run(["sweep", name, "--show-config", "--set", f"{field}=150,250"], capsys)
        cfg = json.loads(out)["config"]
        assert rc == 0 and cfg["N_grid"] == [150, 250]
        assert cfg.get("N") == (default.model_dump(mode="json").get("N"))  # Figure 9's unused N untouched
    (tmp_path / "c.json").write_text(json.dumps({"N": [100, 200]}))
    rc, out, _ = _run(["sweep", name, "--show-config", "--config", str(tmp_path / "c.json")], capsys)
    assert rc == 0 and json.loads(out)["config"]["N_grid"] == [100, 200]


# --- issue 18: --engine on reproduce and sensitivity --run, recorded with each row -------------------

TINY = ["d=24", "K=2", "r_tilde=4", "N=16", "max_iter=5"]


def _engines(db) -> set[tuple[str, str]]:
    with sqlite3.connect(db) as c:
        provs = [json.loads(p) for (p,) in c.execute("SELECT provenance FROM trials")]
    assert provs
    return {(p["engine"], p["engine_choice"]) for p in provs}


@pytest.mark.parametrize("choice", ["reference", "fast"])
def test_reproduce_passes_engine_to_every_sweep_and_records_it(choice, tmp_path, monkeypatch, capsys):
    import ticketlab.cli.sweep as cli_sweep
    from ticketlab import app as application
    from ticketlab import engine as engines

    seen = []

    def tiny(name, **kw):  # the real run, at a tiny grid
        seen.append(engines.chosen())
        return application.run_experiment(name, **kw, sets=TINY, trials=1)

    monkeypatch.setattr(cli_sweep, "run_experiment", tiny)
    monkeypatch.setattr(cli_sweep, "build_report", lambda store, out: {"html": "r.html", "markdown": "r.md"})
    db = tmp_path / "r.db"
    before = engines.chosen()
    assert main(["reproduce", "--only", "fig4", "--store", str(db), "--engine", choice, "--no-progress"]) == 0
    assert seen == [choice] and _engines(db) == {(choice, choice)}
    assert engines.chosen() == before  # the choice does not outlive the command


def test_sensitivity_run_passes_engine_and_records_it(tmp_path, capsys):
    db = tmp_path / "s.db"
    sets = [x for s in TINY for x in ("--set", s)]
    assert main(["sensitivity", "fig4", "--vary", "step_convention=K,K2", *sets, "--trials", "1", "--store",
                 str(db), "--run", "--engine", "reference", "--no-progress", "--json"]) == 0
    assert _engines(db) == {("reference", "reference")}
    assert len(json.loads(capsys.readouterr().out)["variants"]) == 2


@pytest.mark.parametrize("argv", [["reproduce", "--only", "fig4"], ["sensitivity", "fig4", "--vary", "lam=0.1",
                                                                     "--run"]])
def test_a_bad_engine_is_refused_before_anything_runs(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, _, err = _run([*argv, "--engine", "turbo"], capsys)
    assert rc == 2 and err.strip().startswith("error: --engine: must be one of auto, fast, reference")
    assert list(tmp_path.iterdir()) == []


def test_sweep_and_sensitivity_share_their_option_declarations():
    sweep, sens = _params("sweep"), _params("sensitivity")
    for name in ("scale", "trials", "set_", "store", "device", "engine", "yes", "progress"):
        assert (sweep[name].opts, sweep[name].help, sweep[name].default) == \
            (sens[name].opts, sens[name].help, sens[name].default), name


# --- help: a flag shows no placeholder, a value option keeps its own -----------------------------------------

COMMANDS = sorted(typer.main.get_command(app).commands)


def _help(argv, capsys) -> str:
    rc, out, err = _run([*argv, "--help"], capsys)
    assert rc == 0 and not err, (argv, rc, err)
    return out


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_shows_no_placeholder_for_a_flag(command, capsys):
    """A flag takes no value: typer's rich help wrote '<bool>' after each (--version <bool>, --help <bool>)."""
    text = _help([command] if command else [], capsys)
    assert "--help" in text and "<bool>" not in text, text
    for flag in ("--help", "--json", "--version", "--yes"):
        for row in (r for r in text.splitlines() if re.search(rf"{flag}\b", r) and r.lstrip("│ ").startswith(flag)):
            assert "<" not in row, row


def test_help_keeps_the_placeholder_of_a_value_option(capsys):
    text = _help(["train"], capsys)
    assert re.search(r"--d\s+<int>", text) and re.search(r"--noise\s+<float>", text) and \
        re.search(r"--init\s+<str>", text), text
    assert re.search(r"--store\s+<path>", _help(["sweep"], capsys))


# --- usage errors: an option in the wrong case is named; a value typer cannot convert is worded as any bad value --


def _case_swapped(command):
    """An option of ``command`` with its letters' case swapped, and the option itself (or the root's)."""
    group = typer.main.get_command(app)
    cmd = group.commands[command] if command else group
    names = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    for p in cmd.params:
        for opt in p.opts:
            if opt.startswith("--") and opt.swapcase() not in names and opt.swapcase() != opt:
                return "--" + opt[2:].swapcase(), opt
    raise AssertionError(f"{command}: no option to swap the case of")


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_an_option_in_the_wrong_case_suggests_the_right_one(command, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    wrong, right = _case_swapped(command)
    rc, out, err = _run([command, wrong, "1"] if command else [wrong], capsys)
    assert rc == 2 and not out, (rc, out, err)
    assert err.splitlines() == [f"error: no such option {wrong} (did you mean {right}?)"], err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv,line", [
    (["train", "--k", "5"], "error: no such option --k (did you mean --K?)"),
    (["train", "--n=400"], "error: no such option --n (did you mean --N?)"),
    (["train", "--D", "5"], "error: no such option --D (did you mean --d?)"),
    (["init-study", "--n", "50"], "error: no such option --n (did you mean --N?)"),
    (["sweep", "fig4", "-Y"], "error: no such option -Y (did you mean -y?)"),
])
def test_the_paper_s_case_of_an_option_is_suggested(argv, line, capsys):
    rc, _, err = _run(argv, capsys)
    assert rc == 2 and err.splitlines() == [line], err


def test_an_unknown_option_of_another_spelling_keeps_click_s_message(capsys):
    rc, _, err = _run(["train", "--kk", "5"], capsys)
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("error: No such option: --kk"), err


@pytest.mark.parametrize("argv,line", [
    (["train", "--d", "abc"], "error: --d: must be a valid integer (got 'abc')"),
    (["train", "--noise=x"], "error: --noise: must be a valid number (got 'x')"),
])
def test_a_value_typer_cannot_convert_is_worded_as_every_bad_value(argv, line, capsys):
    rc, _, err = _run(argv, capsys)
    assert rc == 2 and err.splitlines() == [line], err


@pytest.mark.parametrize("command,old,given", [("reproduce", "results/ticketlab-results.db", "results/ticketlab-results.db"),
                                                ("imp", "results/imp", "results")])
def test_a_rerun_on_the_new_default_store_points_at_the_old_results(tmp_path, monkeypatch, command, old, given):
    """reproduce and imp kept their results elsewhere before the one --store default: a user rerunning
    them to resume would silently start over, so the old place is named (and only when it holds results)."""
    from ticketlab.cli.options import old_default_note

    monkeypatch.chdir(tmp_path)
    assert old_default_note(command, DEFAULT_STORE) is None  # nothing at the old place: nothing to say
    (tmp_path / old).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / old).mkdir() if command == "imp" else (tmp_path / old).write_bytes(b"")
    note = old_default_note(command, DEFAULT_STORE)
    assert note.startswith("note: the default --store is now") and f"--store {given} " in note
    assert old_default_note(command, "elsewhere.db") is None  # a store given: the user chose


@pytest.mark.parametrize("flag,value", [("--points", "0"), ("--dense-max", "-1"), ("--hessian", "foo"),
                                        ("--bandwidth", "2")])
def test_landscape_errors_name_the_flag_not_the_function_parameter(capsys, flag, value):
    """analyze_trials checks its own parameters ('analyze_trials points: ...'); through the CLI the user
    typed a flag, so the one line names the flag."""
    rc, _, err = _run(["landscape", "--d", "10", "--K", "2", "--r", "3", "--N", "60", flag, value], capsys)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith(f"error: {flag}: must"), lines


def test_a_validated_error_carries_its_parameters_so_a_caller_can_rename_them():
    """ConfigError.fields: each bad parameter and its text without the name, from ``validated`` and
    from a function's own 'FUNCTION PARAM' check (bad_value); renamed() rewrites the names only."""
    from ticketlab.config import ConfigError, OracleSpec, bad_value
    from ticketlab.landscape.study import analyze_trials

    with pytest.raises(ConfigError) as e:
        analyze_trials(OracleSpec(d=8, K=2, r=3), 0, [0], points=0)
    err = e.value
    assert [f for f, _ in err.fields] == ["N", "points"]
    assert str(err).startswith("analyze_trials N: must be greater than or equal to 1 (got 0)")
    assert err.function == "analyze_trials"
    renamed = err.renamed("analyze_trials", lambda p: {"N": "--N", "points": "--points"}[p])
    assert str(renamed) == "; ".join(f"--{f}: {t}" for f, t in err.fields)
    assert "analyze_trials" not in str(renamed) and str(renamed).startswith("--N: must be greater than or equal to 1")
    own = bad_value("analyze_trials dense_max", "must be >= 0", -1)
    assert own.fields == (("dense_max", "must be >= 0 (got -1)"),) and own.function == "analyze_trials"
    assert str(own.renamed("analyze_trials", lambda p: "--dense-max")) == "--dense-max: must be >= 0 (got -1)"
    # another function's error is left as it is: 'solve layout' must not become the CLI's --layout
    other = bad_value("solve layout", "must be known", "x")
    assert other.renamed("analyze_trials", lambda p: "--" + p) is other
    plain = bad_value("--memory-budget", "must be a size", "x")  # a flag already: nothing to rename
    assert plain.fields == () and plain.renamed("analyze_trials", str.upper) is plain


def test_landscape_names_compare_for_both(capsys):
    """analyze_trials' ``both`` is the CLI's --compare: the renaming maps it, not just '_' to '-'."""
    from ticketlab.cli.landscape import FLAG_OF

    assert FLAG_OF["both"] == "--compare"
