"""Bring your own network: any nn.Module factory and data, params by name or type, masks to and from
torch.nn.utils.prune; every bad input a one-line error naming the parameter, exit 2, nothing written."""

import os
import re

import pytest
import torch
from torch import nn

from ticketlab.cli import main
from ticketlab.config import ConfigError
from ticketlab.deep.data import Dataset
from ticketlab.deep.imp import IMPSpec, load_level, run_imp, to_torch_prune
from ticketlab.deep.models import prunable
from ticketlab.deep.train import TrainSpec

pytestmark = pytest.mark.usefixtures("one_thread")


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 8), nn.Tanh())
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.body(x))


def _data(n=120):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n + 40, 6, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return Dataset.from_tensors(x[:n], y[:n], x[n:], y[n:], name="toy")


def test_custom_factory_param_selection_and_torch_prune_export(tmp_path):
    spec = IMPSpec(model="custom:net", data="toy", n_train=100, rounds=2, rate=0.5, params="body.*.weight",
                   train=TrainSpec(epochs=2, batch_size=20, lr=0.05))
    res = run_imp(spec, str(tmp_path), factory=Net, data=_data())
    assert sorted(res[2]["kept"]) == ["body.0.weight", "body.2.weight"]  # the head is not pruned
    assert res[2]["kept"] == {"body.0.weight": 24, "body.2.weight": 32}  # 96 -> 48 -> 24, 128 -> 64 -> 32
    model, masks, _ = load_level(os.path.join(tmp_path, "imp", "custom-net-toy-n100-seed0"), 2, factory=Net)
    x = torch.randn(5, 6)
    expect = model(x)
    to_torch_prune(model, masks)
    assert hasattr(model.body[0], "weight_orig") and torch.equal(model.body[0].weight_mask, masks["body.0.weight"].float())
    assert torch.allclose(model(x), expect)
    # a module pruned by torch.nn.utils.prune is refused, not silently trained without masking
    with pytest.raises(ConfigError, match=r"'body.0.weight' is already pruned by torch.nn.utils.prune"):
        prunable(model)
    with pytest.raises(ConfigError, match="already pruned"):
        run_imp(spec.model_copy(update={"n_train": 50}), str(tmp_path / "x"), factory=lambda: model, data=_data())
    assert not os.path.exists(tmp_path / "x")
    # by type
    assert list(prunable(Net(), "Linear")) == ["body.0.weight", "body.2.weight", "head.weight"]
    with pytest.raises(ConfigError, match=r"params: must select at least one parameter \(got 'conv.\*'\)"):
        prunable(Net(), "conv.*")


def test_custom_model_needs_factory_and_data(tmp_path):
    spec = IMPSpec(model="custom:net", data="toy")
    with pytest.raises(ConfigError, match="needs factory= and data="):
        run_imp(spec, str(tmp_path))
    with pytest.raises(ConfigError, match=r"test inputs have shape \(5,\)"):
        Dataset.from_tensors(torch.zeros(4, 6), torch.zeros(4), torch.zeros(2, 5), torch.zeros(2))


def _oracle_args(store):
    return ["imp", "--model", "mlp", "--widths", "8-4", "--data", "oracle:d=8,widths=8-4,r=3,pool=100,test=40",
            "--n-train", "40", "--rounds", "1", "--epochs", "1", "--batch-size", "20", "--store", str(store)]


BAD = [
    (["--device", "cuda:0"], "--device|device", None if not torch.cuda.is_available() else "skip"),
    (["--device", "mps"], r"--device: must .*\(got 'mps'\)", None if not (torch.backends.mps.is_available()) else "skip"),
    (["--device", "tpu"], r"--device: must .*\(got 'tpu'\)", None),
    (["--lr", "inf"], "--lr", None),
    (["--lr", "nan"], "--lr", None),
    (["--rewind", "3xx"], "--rewind", None),
    (["--control", "shuffle"], "--control", None),
    (["--init", "xavier"], "--init", None),
    (["--val-size", "100"], r"val_size: must be .*\(got 100\)", None),
    (["--params", "nothing.*"], "params: must select", None),
    (["--gamma", "2"], "--gamma", None),
    (["--warmup-steps", "-1"], "--warmup-steps", None),
    (["--milestones", "3,1"], "milestones", None),
    (["--rewind", "50"], "rewind: must be within .*got '50 ", None),
]


@pytest.mark.parametrize("extra,match,skip", BAD)
def test_bad_inputs_one_line_exit_2_nothing_written(tmp_path, capsys, extra, match, skip):
    if skip:
        pytest.skip("that device exists here")
    store = tmp_path / "store"
    assert main(_oracle_args(store) + extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and re.search(match, err), err
    assert not store.exists()


def test_bad_model_combinations(tmp_path, capsys):
    store = tmp_path / "s"
    assert main(["imp", "--model", "lenet5", "--widths", "16-8", "--data", "digits", "--store", str(store)]) == 2
    assert "widths" in capsys.readouterr().err and not store.exists()
    assert main(["imp", "--model", "lenet5", "--data", "oracle:d=8", "--n-train", "40", "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert "lenet5" in err and len(err.strip().splitlines()) == 1 and not store.exists()


def test_test_images_of_another_size_exit_2(tmp_path, capsys):
    from test_deep_data import _write_named, write_idx  # noqa: I001
    import numpy as np

    _write_named(str(tmp_path / "m"), "dash", False)
    write_idx(os.path.join(tmp_path, "m", "t10k-images-idx3-ubyte"), np.zeros((3, 20, 20)))
    assert main(["imp", "--model", "lenet300", "--data", f"mnist:{tmp_path / 'm'}", "--n-train", "4",
                 "--store", str(tmp_path / "s")]) == 2
    assert "test images are (20, 20) pixels" in capsys.readouterr().err and not (tmp_path / "s").exists()


def test_docs_worked_example_runs(tmp_path, monkeypatch):
    text = open(os.path.join(os.path.dirname(__file__), "..", "docs", "deep.md")).read()
    block = text.split("## Bring your own network", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "docs/deep.md", "exec"), {})
    assert sorted(os.listdir(tmp_path / "byo-store" / "imp")) == [
        "custom-net-toy-n250-seed0", "custom-net-toy-n250-seed0-random_mask", "custom-net-toy-n250-seed0-reinit"]
