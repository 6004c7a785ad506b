"""Loaders: files written here in the real formats (IDX, CIFAR pickles), corrupt ones, in-package sets."""

import gzip
import os
import pickle

import numpy as np
import pytest
import torch

from ticketlab.config import ConfigError
from ticketlab.deep.data import CIFAR_MEAN, CIFAR_STD, MNIST_MEAN, MNIST_STD, load_data, parse_oracle
from ticketlab.deep.oracle import DeepOracleSpec, make_teacher, sample


def write_idx(path, arr, gz=False):
    arr = np.asarray(arr, dtype=np.uint8)
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(head + arr.tobytes())


def write_mnist(d, n_train=12, n_test=5, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    parts = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        X = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, n, dtype=np.uint8)
        ext = ".gz" if gz else ""
        write_idx(os.path.join(d, f"{prefix}-images-idx3-ubyte{ext}"), X, gz)
        write_idx(os.path.join(d, f"{prefix}-labels-idx1-ubyte{ext}"), y, gz)
        parts[prefix] = (X, y)
    return parts


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_roundtrip(tmp_path, gz):
    parts = write_mnist(tmp_path, gz=gz)
    ds = load_data(f"mnist:{tmp_path}")
    X, y = parts["train"]
    assert ds.x_train.shape == (12, 1, 28, 28) and ds.x_test.shape == (5, 1, 28, 28)
    assert torch.equal(ds.y_train, torch.from_numpy(y.astype(np.int64)))
    expect = (X.astype(np.float32) / 255 - MNIST_MEAN) / MNIST_STD
    assert np.allclose(ds.x_train[:, 0].numpy(), expect, atol=1e-6)


def test_mnist_corrupt_and_missing(tmp_path):
    write_mnist(tmp_path)
    img = tmp_path / "train-images-idx3-ubyte"
    raw = img.read_bytes()
    img.write_bytes(raw[:-7])  # truncated data
    with pytest.raises(ConfigError, match="train-images-idx3-ubyte.*header says"):
        load_data(f"mnist:{tmp_path}")
    img.write_bytes(b"\x00\x00\x09\x03" + raw[4:])  # wrong element type
    with pytest.raises(ConfigError, match="expected an IDX header"):
        load_data(f"mnist:{tmp_path}")
    img.write_bytes(raw)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(11))  # 11 labels for 12 images
    with pytest.raises(ConfigError, match="12 images.*11 labels"):
        load_data(f"mnist:{tmp_path}")
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(12))
    os.remove(tmp_path / "t10k-labels-idx1-ubyte")
    with pytest.raises(ConfigError, match="missing MNIST t10k labels"):
        load_data(f"mnist:{tmp_path}")
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ConfigError, match="corrupt file .*t10k-labels-idx1-ubyte.gz"):
        load_data(f"mnist:{tmp_path}")
    with pytest.raises(ConfigError, match="not a directory"):
        load_data(f"mnist:{tmp_path}/nope")


def write_cifar(d, n=4, seed=0):
    rng = np.random.default_rng(seed)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        with open(os.path.join(d, name), "wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, f)
        batches[name] = (data, labels)
    return batches


def test_cifar_batches(tmp_path):
    sub = tmp_path / "cifar-10-batches-py"
    sub.mkdir()
    b = write_cifar(sub)
    ds = load_data(f"cifar10:{tmp_path}")  # finds the standard sub-folder
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_test.shape == (4, 3, 32, 32)
    data, labels = b["data_batch_2"]
    img = data[1].reshape(3, 32, 32).astype(np.float32) / 255
    expect = (img - np.array(CIFAR_MEAN, np.float32)[:, None, None]) / np.array(CIFAR_STD, np.float32)[:, None, None]
    assert np.allclose(ds.x_train[5].numpy(), expect, atol=1e-6)
    assert ds.y_train[5] == labels[1]


def test_cifar_corrupt(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="data_batch_3.*not a CIFAR-10 python batch"):
        load_data(f"cifar10:{tmp_path}")
    with open(tmp_path / "data_batch_3", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(ConfigError, match=r"data_batch_3.*\(n, 3072\)"):
        load_data(f"cifar10:{tmp_path}")
    os.remove(tmp_path / "test_batch")
    with pytest.raises(ConfigError, match="missing CIFAR-10 test_batch"):
        load_data(f"cifar10:{tmp_path}")


def test_mnist5k_split_and_subsets():
    ds = load_data("mnist5k")
    assert ds.x_train.shape == (4000, 1, 28, 28) and ds.x_test.shape == (1000, 1, 28, 28)
    assert torch.bincount(ds.y_test).tolist() == [100] * 10
    assert torch.bincount(ds.y_train).tolist() == [400] * 10
    # test and pool are disjoint images
    tr = {bytes(x.numpy().tobytes()) for x in ds.x_train}
    assert not any(bytes(x.numpy().tobytes()) in tr for x in ds.x_test[:200])
    a, b, c = ds.subset(1000, 0), ds.subset(2000, 0), ds.subset(1000, 1)
    assert torch.equal(a.x_train, b.x_train[:1000])  # nested across N for one seed
    assert not torch.equal(a.x_train, c.x_train)
    assert torch.equal(a.x_train, ds.subset(1000, 0).x_train)
    with pytest.raises(ConfigError, match=r"n_train: must be in \[1, .*\(got 5000\)"):
        ds.subset(5000, 0)


def test_digits_and_bad_specs():
    ds = load_data("digits")
    assert ds.in_shape == (1, 8, 8) and len(ds.x_train) + len(ds.x_test) == 1797
    assert abs(float(ds.x_train.mean())) < 1e-4 and abs(float(ds.x_train.std()) - 1) < 1e-3
    for bad in ("imagenet", "mnist", "oracle:d=x", "oracle:foo=1", "oracle:widths=4-a"):
        with pytest.raises(ConfigError, match="^data( oracle option [a-z]+)?: must"):
            load_data(bad)


def test_deep_oracle_masks_and_targets():
    spec = DeepOracleSpec(d=10, widths=(6, 4), r=3, noise=0.0)
    teacher, masks = make_teacher(spec, seed=2)
    for name, m in masks.items():
        fan_in = m.shape[1]
        assert bool((m.sum(1) == min(3, fan_in)).all())
        w = dict(teacher.named_parameters())[name]
        assert bool((w[m == 0] == 0).all())
    X, y = sample(spec, teacher, 50, seed=2)
    h = X
    ws = [dict(teacher.named_parameters())[k] for k in masks]
    for i, w in enumerate(ws):
        h = h @ w.T
        if i < len(ws) - 1:
            h = torch.relu(h)
    assert torch.allclose(y, h)
    ds = load_data("oracle:d=10,widths=6-4,r=3,pool=100,test=30,noise=0.1")
    assert ds.task == "regress" and ds.x_train.shape == (100, 10) and ds.y_test.shape == (30, 1)
    assert parse_oracle("d=5,widths=3")["widths"] == (3,)


def _write_named(d, naming, gz, n_train=6, n_test=3):
    rng = np.random.default_rng(1)
    os.makedirs(d, exist_ok=True)
    parts = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        X = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, n, dtype=np.uint8)
        ext = ".gz" if gz else ""
        sep = "." if naming == "dot" else "-"
        write_idx(os.path.join(d, f"{prefix}-images{sep}idx3-ubyte{ext}"), X, gz)
        write_idx(os.path.join(d, f"{prefix}-labels{sep}idx1-ubyte{ext}"), y, gz)
        parts[prefix] = (X, y)
    return parts


@pytest.mark.parametrize("naming,gz,sub", [("dot", True, ""), ("dot", False, ""), ("dash", True, "MNIST/raw"),
                                           ("dash", False, "raw")])
def test_mnist_both_namings_and_torchvision_raw_folder(tmp_path, naming, gz, sub):
    parts = _write_named(os.path.join(tmp_path, sub) if sub else str(tmp_path), naming, gz)
    ds = load_data(f"mnist:{tmp_path}")
    X, y = parts["train"]
    assert torch.allclose(ds.x_train[:, 0], torch.from_numpy((X / 255.0 - MNIST_MEAN) / MNIST_STD).float())
    assert ds.y_train.tolist() == y.tolist() and len(ds.x_test) == 3


def test_mnist_test_images_of_another_size_refused(tmp_path):
    _write_named(str(tmp_path), "dash", False)
    write_idx(os.path.join(tmp_path, "t10k-images-idx3-ubyte"), np.zeros((3, 20, 20)))
    with pytest.raises(ConfigError, match=r"test images are \(20, 20\) pixels"):
        load_data(f"mnist:{tmp_path}")


def _real_mnist():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for d in (os.environ.get("TICKETLAB_MNIST_DIR"), os.path.join(root, "shared", "data", "mnist"),
              os.path.join(root, "..", "shared", "data", "mnist"), os.path.join(root, "..", "..", "shared", "data", "mnist")):
        if d and os.path.isdir(d):
            return d
    pytest.skip("the full MNIST is not here: set TICKETLAB_MNIST_DIR or put it in ../shared/data/mnist")


def test_real_mnist_idx_end_to_end(tmp_path, one_thread):
    from ticketlab.deep.imp import IMPSpec, run_imp
    from ticketlab.deep.train import TrainSpec

    d = _real_mnist()
    ds = load_data(f"mnist:{d}")
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    # known counts of the official files: 5,923 zeros and 6,742 ones in train, 980 and 1,135 in test
    assert torch.bincount(ds.y_train)[:2].tolist() == [5923, 6742]
    assert torch.bincount(ds.y_test)[:2].tolist() == [980, 1135]
    assert abs(float(ds.x_train.mean())) < 0.01 and abs(float(ds.x_train.std()) - 1) < 0.01  # the MNIST constants
    small = Dataset_slice(ds, 600, 300)
    sp = IMPSpec(model="lenet300", data="mnist-slice", n_train=500, rounds=1, output_rate=0.1, val_size=100,
                 train=TrainSpec(optimizer="adam", lr=1.2e-3, batch_size=60, epochs=2))
    res = run_imp(sp, str(tmp_path), data=small)
    assert res[0]["n_val"] == 100 and res[0]["early_stop_test_error"] < 30  # learns (chance: 90 %)


def Dataset_slice(ds, n_train, n_test):
    from ticketlab.deep.data import Dataset

    return Dataset(ds.name, ds.x_train[:n_train], ds.y_train[:n_train], ds.x_test[:n_test], ds.y_test[:n_test],
                   ds.task, ds.in_shape, ds.num_classes, dict(ds.info))
