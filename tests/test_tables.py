"""Packed trial tables (`ticketlab pack`): store -> tables -> store is lossless (every row byte, every
frame column, dtype and NaN position, the same verdicts), the folder reads as --store everywhere a
store is read, and it is never written."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest

from ticketlab.app import make_config
from ticketlab.cli import main
from ticketlab.experiments import get_experiment
from ticketlab.report import write_report
from ticketlab.store import Store, load, pack, unpack
from ticketlab.sweep import run_sweep
from ticketlab.tables import MANIFEST, read_manifest

FIG4 = ["d=24", "K=2", "r_tilde=4,8", "N=16,48", "max_iter=40"]
FIG3 = ["d=24", "K=2", "r=4,8", "N=60", "max_iter=30", "record_every=5"]


def _run(db, name, sets, trials=2):
    exp = get_experiment(name)
    cfg = make_config(exp, "quick", trials, sets)
    with Store(db) as st:
        run_sweep(name, cfg, st, progress=False)
    return cfg


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    db = tmp_path_factory.mktemp("tables") / "r.db"
    _run(db, "fig4", FIG4)
    _run(db, "fig4", FIG4 + ["step_convention=K2"])
    _run(db, "fig3", FIG3)  # its results carry curves (lists of floats)
    return db


def _rows(conn):
    return (conn.execute("SELECT rowid, * FROM trials ORDER BY rowid").fetchall(),
            conn.execute("SELECT * FROM configs ORDER BY rowid").fetchall())


def test_store_to_tables_to_store_keeps_every_byte_and_every_frame(store, tmp_path):
    folder = tmp_path / "packed"
    manifest = pack(store, folder)
    assert manifest["rows"] == 2 * 8 + 8 and set(manifest["experiments"]) == {"fig3", "fig4"}
    assert sorted(p.name for p in folder.iterdir()) == ["MANIFEST.json", "configs.json", "fig3.parquet", "fig4.parquet"]
    import pyarrow.parquet as pq

    t = pq.read_table(folder / "fig4.parquet")
    assert t.num_rows == 16 and pq.ParquetFile(folder / "fig4.parquet").metadata.row_group(0).column(0).compression == "ZSTD"
    assert pd.api.types.is_bool_dtype(t.column("result.success").to_pandas())  # typed, readable columns
    assert "provenance.git_commit" in t.column_names and "cell.N" in t.column_names
    # every stored row and config, byte for byte: through the folder, and through an unpacked file
    original = _rows(sqlite3.connect(store))
    with Store(folder) as st:
        assert st.read_only and _rows(st._conn) == original
    back = unpack(folder, tmp_path / "back.db")
    assert _rows(sqlite3.connect(back)) == original
    for name in (None, "fig3", "fig4"):
        for with_config in (False, True):
            a, b = load(store, name, with_config=with_config), load(folder, name, with_config=with_config)
            pd.testing.assert_frame_equal(a, b, check_exact=True)  # columns, order, dtypes, values
            assert list(a.dtypes) == list(b.dtypes)
            assert (a.isna().to_numpy() == b.isna().to_numpy()).all()
    curves = load(folder, "fig3")["curve"]
    assert all(isinstance(c, list) and len(c) > 1 for c in curves)


def test_report_from_the_tables_gives_the_same_verdicts(store, tmp_path):
    folder = tmp_path / "packed"
    pack(store, folder)
    a = write_report(store, tmp_path / "a")
    b = write_report(folder, tmp_path / "b")
    claims = lambda res: [(s["name"], c["claim"], c["verdict"], c.get("check"), c["ours"]) for s in res["sections"]
                          for c in s["claims"]]
    assert claims(a) == claims(b) and len(claims(a)) > 0
    assert [s["config"] for s in a["sections"]] == [s["config"] for s in b["sections"]]
    text = (tmp_path / "b" / "report.md").read_text()
    # a not-run command unpacks to a store of the reader's own (the packing machine's path means nothing
    # elsewhere), runs into it and packs again; the folder itself is never written by a sweep
    assert f"ticketlab unpack {folder} --store paper.db && ticketlab sweep " in text
    assert f"ticketlab pack {folder} --store paper.db --force" in text and str(store) not in text


def test_unpack_command_round_trip(store, tmp_path, capsys):
    from ticketlab.cli import main

    folder = tmp_path / "packed"
    pack(store, folder)
    back = tmp_path / "new" / "back.db"  # a missing parent folder is made
    assert main(["unpack", str(folder), "--store", str(back)]) == 0
    assert _rows(sqlite3.connect(back)) == _rows(sqlite3.connect(store))
    assert not list(back.parent.glob("*.part"))  # written whole, then renamed into place
    capsys.readouterr()
    assert main(["unpack", str(folder), "--store", str(back)]) == 2  # never overwrites a store
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --store: must be a new file"), err
    for not_a_pack in (tmp_path / "nothing", tmp_path / "new"):  # missing, or a folder without MANIFEST.json
        assert main(["unpack", str(not_a_pack), "--store", str(tmp_path / "n.db")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: FOLDER: must be a folder written by"), err
    assert not (tmp_path / "n.db").exists()


def test_odd_values_stay_exact(tmp_path):
    """A row the typed columns cannot carry (null, nested, huge int, mixed types, another key order,
    a missing key) still rebuilds to its stored text."""
    db = tmp_path / "odd.db"
    prov = {"device": "cpu", "dtype": "float64", "git_commit": None, "ticketlab_version": "0"}
    results = [
        {"a": 1, "b": 0.5, "c": "x", "d": True, "e": [0.1, 0.2], "f": None, "g": {"k": [1, "y"]}, "h": 2 ** 70},
        {"b": -0.0, "a": 2, "c": "y", "d": False, "e": [1.0, 2], "f": 3, "g": [], "h": 1},  # another order
        {"a": 3, "e": [], "z": 1e-300},  # missing keys, a new key
    ]
    rows = [{"trial_id": f"t{i}", "experiment": "fig4", "config_id": "c", "cell_id": "x", "cell": {"N": i, "q": None},
             "trial": i, "seed": 2 ** 63 - 1 - i, "result": r, "provenance": prov} for i, r in enumerate(results)]
    with Store(db) as st:
        st.write(rows)
    pack(db, tmp_path / "p")
    with Store(tmp_path / "p") as st:
        assert _rows(st._conn) == _rows(sqlite3.connect(db))
    pd.testing.assert_frame_equal(load(db), load(tmp_path / "p"), check_exact=True)


def test_the_cli_packs_reads_and_refuses_to_write_the_folder(store, tmp_path, capsys):
    folder = tmp_path / "packed"
    assert main(["pack", str(folder), "--store", str(store)]) == 0
    assert "packed 24 trials of 2 experiment(s)" in capsys.readouterr().out
    # refusing to replace without --force; --force replaces
    assert main(["pack", str(folder), "--store", str(store)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["pack", str(folder), "--store", str(store), "--force", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 24
    # ls and plot read the folder like the store
    assert main(["ls", "--store", str(store), "--json"]) == 0
    want = json.loads(capsys.readouterr().out)
    assert main(["ls", "--store", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == want
    assert main(["plot", "fig4", "--store", str(folder), "--out", str(tmp_path / "f"), "--json"]) == 0
    assert any(f.endswith(".png") for f in json.loads(capsys.readouterr().out)["files"])
    # never written: a sweep into it is one line, exit 2, and nothing in the folder changes
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert main(["sweep", "fig4", "--no-progress", "--trials", "3", *sum((["--set", s] for s in FIG4), []),
                 "--store", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "read-only" in err[0] and "--store" in err[0]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    with Store(folder) as st, pytest.raises(Exception, match="read-only"):
        st.write([])


def test_a_changed_table_is_refused_naming_the_file(store, tmp_path, capsys):
    folder = tmp_path / "packed"
    pack(store, folder)
    raw = bytearray((folder / "fig3.parquet").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (folder / "fig3.parquet").write_bytes(bytes(raw))
    assert main(["report", "--store", str(folder), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fig3.parquet" in err[0] and "sha256" in err[0]


def test_packing_an_empty_or_missing_store_is_one_line(tmp_path, capsys):
    with Store(tmp_path / "empty.db"):
        pass
    for db in ("empty.db", "none.db"):
        assert main(["pack", str(tmp_path / "out"), "--store", str(tmp_path / db)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--store" in err[0]
    assert not (tmp_path / "out").exists()


def test_manifest_records_provenance_and_hashes(store, tmp_path):
    import hashlib

    m = pack(store, tmp_path / "p")
    assert m == read_manifest(tmp_path / "p")
    for key in ("created", "ticketlab_version", "git_commit", "machine", "source"):
        assert key in m
    for name, info in m["files"].items():
        assert hashlib.sha256((tmp_path / "p" / name).read_bytes()).hexdigest() == info["sha256"]
    assert m["experiments"]["fig4"]["rows"] == 16 and len(m["experiments"]["fig4"]["configs"]) == 2
    assert (tmp_path / "p" / MANIFEST).is_file()
    assert np.isfinite(m["files"]["fig4.parquet"]["bytes"])
