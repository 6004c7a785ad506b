"""One wording for a bad value, everywhere: 'FIELD: must ... (got X)' (``config.bad_value``).

Each public function whose hand-written checks were reworded is fed one bad value, and the message
must start with the parameter's name (after the function's name where ``config.validated`` words its
own checks so: 'prune scope: must ...') followed by ': must', and show the value got. A source scan
fails when the old wording, 'invalid X', comes back in a raised message. (The command line's own
checks are driven through the CLI in tests/test_bad_input.py.)
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch

from ticketlab.config import ConfigError, OracleSpec, SolverSpec, TrialSpec, build

SRC = Path(__file__).resolve().parents[1] / "src" / "ticketlab"


def _problem(d=8, K=2, r=3, N=40, seeds=(0,)):
    from ticketlab.oracle import make_problem

    return make_problem(OracleSpec(d=d, K=K, r=r), N, list(seeds))


def _masks():
    return {"W": torch.arange(12.0).reshape(3, 4)}, {"W": torch.ones(3, 4)}


def _prune(**kw):
    from ticketlab.pruning import prune

    scores, masks = _masks()
    return lambda: prune(**{"scores": scores, "masks": masks, "fraction": 0.5, **kw})


def _prune_body(**kw):  # the checks in the body, behind the wrapper's (reached by a caller of __wrapped__)
    from ticketlab.pruning import prune

    scores, masks = _masks()
    return lambda: prune.__wrapped__(**{"scores": scores, "masks": masks, "fraction": 0.5, **kw})


def _moments(fn, **kw):
    from ticketlab.init import moments

    p = _problem(d=10, K=3, r=3, N=60)
    args = {"X": p.X, "y": p.y, "mask": p.mask, "seeds": p.seeds}
    for k in ("X", "y", "mask"):
        if k in kw:
            args[k] = kw.pop(k)(args[k])
    func = moments
    for part in fn.split("."):
        func = getattr(func, part)
    return lambda: func(*args.values(), **kw)


def _thin(mask):
    out = torch.zeros_like(mask)
    out[:, :2, :] = 1.0  # 2 kept coordinates for K = 3 neurons
    return out


def _no_input_for_neuron_0(mask):
    out = mask.clone()
    out[:, :, 0] = 0
    return out


def _run_trials_contradicting():
    from ticketlab.trial import run_trials

    spec = TrialSpec(oracle=OracleSpec(d=8, K=2, r=3), N=40)
    return lambda: run_trials(spec, [0], problem=_problem(d=9))


def _run_common_differing():
    from ticketlab.trial import run_common

    a = TrialSpec(oracle=OracleSpec(d=8, K=2, r=3), N=40)
    return lambda: run_common([a, a.model_copy(update={"N": 50})], [0])


def _draw(fn, **kw):
    from ticketlab import oracle

    args = (OracleSpec(d=8, K=2, r=3), 20) + ((0,) if fn == "draw_trial" else ([0],))
    return lambda: getattr(oracle, fn)(*args, **kw)


def _init_study(**kw):
    from ticketlab.experiments.init import init_study

    return lambda: init_study(**{"N_grid": [50], "r_grid": [3], "d_grid": [10], "K": 2, "trials": 1, **kw})


def _init_cells():
    from ticketlab.experiments import get_experiment

    exp = get_experiment("init")
    cfg = exp.Config(N=(50,), r=(20,), d=(10,), K=2)
    return lambda: exp.cells(cfg)


def _analyze(**kw):
    from ticketlab.landscape.study import analyze_trials

    return lambda: analyze_trials.__wrapped__(**{"oracle_spec": OracleSpec(d=8, K=2, r=3), "N": 20, "seeds": [0],
                                                 **kw})


def _config_file(tmp_path, name, text):
    from ticketlab.app import load_config_file

    path = tmp_path / name
    path.write_text(text)
    return lambda: load_config_file(path)


def _imp_check(tmp_path, **kw):
    from ticketlab.deep.imp import check_run
    from ticketlab.deep.spec import IMPSpec, TrainSpec

    spec = IMPSpec(**{"model": "mlp", "data": "oracle:d=6,widths=4-3,r=2,pool=60,test=20", "n_train": 20,
                      "rounds": 0, "train": TrainSpec(epochs=1), **kw})
    return lambda: check_run(spec)


def _p():
    return _problem()


def _cases():
    """case id -> (FIELD its message must start with, make(tmp_path) -> the call), built lazily."""
    from ticketlab import app
    from ticketlab.experiments import get_experiment
    from ticketlab.experiments.masks import check_choice, prune_learner
    from ticketlab.init.moments import init_from_data
    from ticketlab.landscape.study import check_radius_grid
    from ticketlab.pruning import imp_loop
    from ticketlab.deep.spec import IMPSpec, TrainSpec

    return {
        "prune-of-total-below-current": ("prune fraction", lambda t: _prune(
            fraction=0.1, of="total", masks={"W": torch.tensor([[0.0, 0, 1, 1]])}, scores={"W": torch.ones(1, 4)})),
        "prune-overrides": ("prune overrides", lambda t: _prune(overrides={"V": 0.5})),
        "prune-score-names": ("prune scores", lambda t: _prune(scores={"V": torch.ones(3, 4)})),
        "prune-score-shape": ("prune scores['W']", lambda t: _prune(scores={"W": torch.ones(4, 3)})),
        "prune-nan-scores": ("prune scores", lambda t: _prune(scores={"W": torch.full((3, 4), float("nan"))})),
        "prune-scope": ("prune scope", lambda t: _prune_body(scope="everywhere")),
        "prune-of": ("prune of", lambda t: _prune_body(of="some")),
        "prune-fraction": ("prune fraction", lambda t: _prune_body(fraction=1.5)),
        "imp_loop-rounds": ("imp_loop rounds", lambda t: lambda: imp_loop.__wrapped__({}, print, print, -1)),
        "tensor_init-N": ("N", lambda t: _moments("tensor_init", X=lambda X: X[:, :5], y=lambda y: y[:, :5])),
        "tensor_init-K": ("K", lambda t: _moments("tensor_init", mask=_thin)),
        "tensor_init-shapes": ("X, y, mask", lambda t: _moments("tensor_init", y=lambda y: y[:, :7])),
        "dense_init-K": ("K", lambda t: _moments("dense_init", X=lambda X: X[..., :2], mask=lambda m: m[:, :2])),
        "support_init-mask": ("mask", lambda t: _moments("support_init", mask=_no_input_for_neuron_0)),
        "support_init-start": ("support_init start", lambda t: _moments("support_init.__wrapped__", start="nope")),
        "support_init-rounds": ("support_init rounds", lambda t: _moments("support_init.__wrapped__", rounds=-1)),
        "init_from_data-kind": ("init_from_data kind", lambda t: (lambda p: lambda: init_from_data.__wrapped__(
            "nope", p.X, p.y, p.mask, p.seeds))(_p())),
        "draw_trial-oracle_mask": ("draw_trial oracle_mask", lambda t: _draw("draw_trial", oracle_mask=torch.ones(3, 2))),
        "make_problem-learner_mask": ("make_problem learner_mask",
                                      lambda t: _draw("make_problem", learner_mask=torch.ones(8, 3))),
        "run_trials-problem": ("run_trials problem", lambda t: _run_trials_contradicting()),
        "run_common-specs": ("run_common specs[1]", lambda t: _run_common_differing()),
        "analyze_trials-N": ("analyze_trials N", lambda t: _analyze(N=0)),
        "analyze_trials-points": ("analyze_trials points", lambda t: _analyze(points=0)),
        "analyze_trials-hessian": ("analyze_trials hessian", lambda t: _analyze(hessian="exact")),
        "analyze_trials-bandwidth": ("analyze_trials bandwidth", lambda t: _analyze(bandwidth=2.0)),
        "analyze_trials-dense_max": ("analyze_trials dense_max", lambda t: _analyze(dense_max=-1)),
        "analyze_trials-seeds": ("analyze_trials seeds", lambda t: _analyze(seeds=[])),
        "analyze_trials-radius_grid": ("analyze_trials radius_grid", lambda t: _analyze(radius_grid=[-0.1])),
        "check_radius_grid": ("--radius-grid", lambda t: lambda: check_radius_grid("0,x", "--radius-grid")),
        "init_study-N_grid": ("N_grid", lambda t: _init_study(N_grid=[0])),
        "init_study-kinds": ("kinds", lambda t: _init_study(kinds=["nope"])),
        "init_study-trials": ("trials", lambda t: _init_study(trials=0)),
        "init_study-target": ("target", lambda t: _init_study(target=20.0)),
        "init_study-r_grid": ("r_grid", lambda t: _init_study(r_grid=[30])),
        "InitStudy.cells-r": ("r", lambda t: _init_cells()),
        "check_choice": ("scope", lambda t: lambda: check_choice("scope", "row", ("global", "neuron"))),
        "prune_learner-method": ("method", lambda t: (lambda p: lambda: prune_learner("best", p, p.W_star, p.mask, 0.5))(
            _p())),
        "default_config-scale": ("--scale", lambda t: lambda: get_experiment("fig4").default_config("huge")),
        "load_config_file-suffix": ("--config", lambda t: _config_file(t, "c.ini", "x")),
        "load_config_file-missing": ("--config", lambda t: lambda: app.load_config_file(t / "none.json")),
        "load_config_file-parse": ("--config", lambda t: _config_file(t, "c.json", "{nope")),
        "load_config_file-table": ("--config", lambda t: _config_file(t, "l.json", "[1, 2]")),
        "reproduce_names-only": ("--only", lambda t: lambda: app.reproduce_names("fig99")),
        "list_store": ("--store", lambda t: lambda: app.list_store(t / "none.db")),
        "plot_experiment-store": ("--store", lambda t: lambda: app.plot_experiment("fig4", t / "none.db", t)),
        "sensitivity-EXPERIMENT": ("EXPERIMENT", lambda t: lambda: app.sensitivity_study("fig11", ["lr=0.1,0.2"])),
        "make_config-set-submodel": ("--set solver", lambda t: lambda: app.make_config(
            get_experiment("fig2"), "quick", None, ["solver=1"])),
        "OracleSpec-r": ("r", lambda t: lambda: build(OracleSpec, d=8, K=3, r=(2, 2))),
        "OracleSpec-r-extra": ("r", lambda t: lambda: build(OracleSpec, d=8, K=2, r=6, extra=3)),
        "OracleSpec-layout": ("layout", lambda t: lambda: build(OracleSpec, d=8, K=2, r=3, layout="circle")),
        "OracleSpec-disjoint": ("layout", lambda t: lambda: build(OracleSpec, d=8, K=3, r=3, layout="disjoint")),
        "OracleSpec-groups": ("layout", lambda t: lambda: build(OracleSpec, d=8, K=3, r=2, layout="groups:1,1")),
        "TrialSpec-num_batches": ("solver.num_batches", lambda t: lambda: build(
            TrialSpec, oracle=OracleSpec(d=8, K=2, r=3), N=4, solver=SolverSpec(sampling="fresh", num_batches=8))),
        "IMPSpec-widths": ("widths", lambda t: lambda: build(IMPSpec, model="lenet5", data="digits", widths=(4,))),
        "TrainSpec-milestones": ("milestones", lambda t: lambda: build(TrainSpec, milestones=(3, 1))),
        "check_run-widths": ("widths", lambda t: _imp_check(t, widths=(5,))),
        "check_run-model": ("model", lambda t: _imp_check(t, model="lenet300")),
        "check_run-params": ("params", lambda t: _imp_check(t, widths=(4, 3), params="net.0.weight")),
    }


@pytest.mark.parametrize("case", list(_cases()))
def test_a_bad_value_is_refused_as_field_must_got(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    field, make = _cases()[case]
    call = make(tmp_path)
    with pytest.raises(ConfigError) as err:
        call()
    msg = str(err.value)
    assert len(msg.splitlines()) == 1, msg
    assert msg.startswith(f"{field}: must "), msg
    assert "(got " in msg, msg
    assert not re.search(r"\binvalid\b", msg, re.I), msg


def test_the_experiment_configs_word_their_checks_alike():
    from ticketlab.app import make_config
    from ticketlab.experiments import get_experiment

    for name, sets, field in [("fig7", ["lam_max=0.01"], "lam_max"), ("fig7", ["pruning=1.5"], "pruning"),
                              ("fig3", ["solver.beta=0.5"], "solver.beta")]:
        with pytest.raises(ConfigError) as err:
            make_config(get_experiment(name), "quick", None, sets)
        assert re.search(rf"(^|; |fig\d+ ){re.escape(field)}: must .*\(got ", str(err.value)), str(err.value)


# --------------------------------------------------------------------------- no 'invalid X' comes back

RAISERS = {"ConfigError", "bad_value", "ValueError", "TypeError", "RuntimeError", "KeyError", "BadParameter",
           "UsageError"}
#: files whose raised messages may still say 'invalid' (each with why): none of ours
ALLOWED: dict[str, str] = {}


def _strings(node) -> list[str]:
    """The literal text in an expression, f-strings' literal parts included."""
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def invalid_in_raised_messages(source: str) -> list[tuple[int, str]]:
    """(line, text) of every literal saying 'invalid' in a raise statement or in a call that builds an
    error (ConfigError, bad_value, ValueError, ...)."""
    hits = []
    for node in ast.walk(ast.parse(source)):
        built = isinstance(node, ast.Call) and (getattr(node.func, "id", None) or getattr(node.func, "attr", None)) \
            in RAISERS
        if isinstance(node, ast.Raise) and node.exc is not None or built:
            for text in _strings(node.exc if isinstance(node, ast.Raise) else node):
                if re.search(r"\binvalid\b", text, re.I):
                    hits.append((node.lineno, text))
    return sorted(set(hits))


def test_the_scan_finds_the_old_wording():
    """The check can fail: it finds 'invalid' in each way a message is raised, and nothing else."""
    probe = '''
def f(x, name):
    if x < 0:
        raise ConfigError(f"invalid {name} {x!r}: must be >= 0")
    if x > 9:
        raise bad_value(name, "Invalid value", x)
    err = ValueError("an invalid x")
    mesh = np.ma.masked_invalid(x)  # a name, not a message
    raise err
'''
    assert [line for line, _ in invalid_in_raised_messages(probe)] == [4, 6, 7]
    assert invalid_in_raised_messages('raise ConfigError(f"{name}: must be >= 0 (got {x!r})")\n') == []


def test_no_raised_message_says_invalid():
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        hits = invalid_in_raised_messages(path.read_text())
        if hits and rel not in ALLOWED:
            found[rel] = hits
    assert not found, f"reword these with config.bad_value ('FIELD: must ... (got X)'): {found}"
    assert all((SRC / rel).is_file() for rel in ALLOWED), "an allowed file is gone: drop it from ALLOWED"
