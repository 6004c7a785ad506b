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

__all__ = ["DEFAULT_STORE", "Store", "load", "export", "flatten_config"]

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
    """One SQLite result store. ``create=False`` opens an existing file only (FileNotFoundError naming
    the path otherwise), so that reading never leaves an empty database behind."""

    def __init__(self, path: str | Path = DEFAULT_STORE, *, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise FileNotFoundError(f"no result store at {str(self.path)!r}")
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
        """Record a config as run now. The id ignores the trial count and scale (more trials extend a
        sweep), so a row already there keeps the larger trial count and takes the new time."""
        with self._conn:
            row = self._conn.execute("SELECT config FROM configs WHERE config_id = ?", (config_id,)).fetchone()
            if row is not None and json.loads(row[0]).get("trials", 0) > config.get("trials", 0):
                self._conn.execute("UPDATE configs SET created = ? WHERE config_id = ?", (time.time(), config_id))
                return
            self._conn.execute("INSERT OR REPLACE INTO configs VALUES (?, ?, ?, ?)",
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
        """The configs recorded for an experiment, oldest first, each with its ``config_id``."""
        rows = self._conn.execute("SELECT config_id, config FROM configs WHERE experiment = ? ORDER BY created",
                                  (experiment,)).fetchall()
        return [{"config_id": cid, **json.loads(cfg)} for cid, cfg in rows]

    def config_records(self) -> list[dict]:
        """Every recorded config: {experiment, config_id, config, created (unix time)}, oldest first."""
        rows = self._conn.execute("SELECT experiment, config_id, config, created FROM configs ORDER BY created")
        return [{"experiment": e, "config_id": c, "config": json.loads(j), "created": t} for e, c, j, t in rows]

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


def flatten_config(config: dict, prefix: str = "config.") -> dict:
    """A stored config as flat columns: {'config.d': 100, 'config.solver.eta': 0.5, ...}; grids (lists)
    stay lists."""
    out = {}
    for k, v in config.items():
        if isinstance(v, dict):
            out.update(flatten_config(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def load(path: str | Path = DEFAULT_STORE, experiment: str | None = None, *,
         with_config: bool = False) -> pd.DataFrame:
    """All trials of a store (or of one experiment) as a DataFrame: cell fields, results, provenance.

    ``with_config=True`` adds the fields of each row's config as columns named ``config.FIELD``
    (nested ones dotted: ``config.solver.eta``). A missing file raises FileNotFoundError (nothing
    is created)."""
    with Store(path, create=False) as s:
        df = s.frame(experiment)
        if with_config and not df.empty:
            import pandas as pd

            configs = {r["config_id"]: flatten_config(r["config"]) for r in s.config_records()}
            extra = pd.DataFrame.from_records([configs.get(cid, {}) for cid in df["config_id"]], index=df.index)
            df = pd.concat([df, extra], axis=1)
        return df


def _cell_to_text(v):
    """An export cell: lists and dicts as JSON text, missing values as real nulls (never 'NaN')."""
    if isinstance(v, (list, dict, tuple)):
        return json.dumps(v)
    if v is None or (isinstance(v, float) and v != v):
        return None
    return v


def export(path: str | Path, out: str | Path, experiment: str | None = None, *, with_config: bool = False) -> Path:
    """Write the trials to CSV or Parquet (by the extension of ``out``); list-valued columns become JSON,
    missing values are nulls."""
    df = load(path, experiment, with_config=with_config)
    for col in df.columns:
        if df[col].map(lambda v: isinstance(v, (list, dict, tuple))).any():
            df[col] = df[col].map(_cell_to_text).astype(object)
    out = Path(out)
    if out.suffix == ".parquet":
        df.to_parquet(out, index=False)
    elif out.suffix == ".csv":
        df.to_csv(out, index=False)
    else:
        raise ValueError(f"export path must end in .csv or .parquet (got {out.name!r})")
    return out
