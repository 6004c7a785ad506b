"""The result store: one SQLite row per trial, keyed by a stable trial id.

The store is the single source of truth: plots and reports read it, never in-memory state. Each
chunk of trials is written in one transaction (atomic), and the trial id is the primary key, so a
retried or resumed chunk can never store a trial twice. WAL journaling keeps a kill -9 from
corrupting what was already committed.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported where a frame is built, so that importing DEFAULT_STORE is cheap
    import pandas as pd

DEFAULT_STORE = "ticketlab-results.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    trial_id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    config_id TEXT NOT NULL,
    cell_id TEXT NOT NULL,
    cell TEXT NOT NULL,
    trial INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    result TEXT NOT NULL,
    provenance TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS trials_by_cell ON trials (experiment, cell_id);
CREATE TABLE IF NOT EXISTS configs (
    config_id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    config TEXT NOT NULL,
    created REAL NOT NULL
);
"""


class Store:
    def __init__(self, path: str | Path = DEFAULT_STORE):
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(self.path), timeout=60)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def save_config(self, experiment: str, config_id: str, config: dict) -> None:
        with self._conn:
            self._conn.execute("INSERT OR IGNORE INTO configs VALUES (?, ?, ?, ?)",
                               (config_id, experiment, json.dumps(config, sort_keys=True), time.time()))

    def existing(self, trial_ids: list[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(trial_ids), 900):  # SQLite's bound-parameter limit
            part = trial_ids[i:i + 900]
            q = f"SELECT trial_id FROM trials WHERE trial_id IN ({','.join('?' * len(part))})"
            found.update(row[0] for row in self._conn.execute(q, part))
        return found

    def write(self, rows: list[dict]) -> int:
        """Write one chunk atomically; rows already present are ignored. Returns rows inserted."""
        before = self._conn.total_changes
        with self._conn:
            self._conn.executemany(
                "INSERT OR IGNORE INTO trials VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r["trial_id"], r["experiment"], r["config_id"], r["cell_id"], json.dumps(r["cell"], sort_keys=True),
                  r["trial"], r["seed"], json.dumps(r["result"], allow_nan=False), json.dumps(r["provenance"]),
                  time.time()) for r in rows])
        return self._conn.total_changes - before

    def count(self, experiment: str | None = None) -> int:
        if experiment is None:
            return self._conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
        return self._conn.execute("SELECT COUNT(*) FROM trials WHERE experiment = ?", (experiment,)).fetchone()[0]

    def configs(self, experiment: str) -> list[dict]:
        rows = self._conn.execute("SELECT config_id, config FROM configs WHERE experiment = ? ORDER BY created",
                                  (experiment,)).fetchall()
        return [{"config_id": cid, **json.loads(cfg)} for cid, cfg in rows]

    def experiments(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT DISTINCT experiment FROM trials ORDER BY experiment")]

    def frame(self, experiment: str | None = None, config_id: str | None = None) -> pd.DataFrame:
        import pandas as pd

        q, args = "SELECT trial_id, experiment, config_id, cell_id, cell, trial, seed, result, provenance FROM trials", []
        where = []
        if experiment is not None:
            where.append("experiment = ?")
            args.append(experiment)
        if config_id is not None:
            where.append("config_id = ?")
            args.append(config_id)
        if where:
            q += " WHERE " + " AND ".join(where)
        records = []
        for tid, exp, cid, cell_id, cell, trial, seed, result, prov in self._conn.execute(q + " ORDER BY rowid", args):
            rec = {"trial_id": tid, "experiment": exp, "config_id": cid, "cell_id": cell_id, "trial": trial,
                   "seed": seed}
            rec.update({f"cell.{k}" if k in ("seed",) else k: v for k, v in json.loads(cell).items()})
            res = json.loads(result)
            res.pop("seed", None)
            rec.update(res)
            p = json.loads(prov)
            rec.update({"device": p.get("device"), "dtype": p.get("dtype"), "git_commit": p.get("git_commit"),
                        "ticketlab_version": p.get("ticketlab_version")})
            records.append(rec)
        return pd.DataFrame.from_records(records)


def load(path: str | Path = DEFAULT_STORE, experiment: str | None = None) -> pd.DataFrame:
    """All trials of a store (or of one experiment) as a DataFrame: cell fields, results, provenance."""
    with Store(path) as s:
        return s.frame(experiment)


def export(path: str | Path, out: str | Path, experiment: str | None = None) -> Path:
    """Write the trials to CSV or Parquet (by the extension of ``out``); list-valued columns become JSON."""
    df = load(path, experiment)
    for col in df.columns:
        if df[col].map(lambda v: isinstance(v, (list, dict))).any():
            df[col] = df[col].map(json.dumps)
    out = Path(out)
    if out.suffix == ".parquet":
        df.to_parquet(out, index=False)
    elif out.suffix == ".csv":
        df.to_csv(out, index=False)
    else:
        raise ValueError(f"export path must end in .csv or .parquet (got {out.name!r})")
    return out
