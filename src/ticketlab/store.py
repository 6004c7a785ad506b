"""The result store: one SQLite row per trial, keyed by a stable trial id.

The store is the single source of truth: plots and reports read it, never in-memory state. Each
chunk of trials is written in one transaction (atomic), and the trial id is the primary key, so a
retried or resumed chunk can never store a trial twice. WAL journaling keeps a kill -9 from
corrupting what was already committed.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import time
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from .config import ConfigError

if TYPE_CHECKING:  # pandas is imported where a frame is built, so that importing DEFAULT_STORE is cheap
    import pandas as pd

__all__ = [
    "DEFAULT_STORE", "Store", "is_store", "load", "export", "flatten_config", "pack", "unpack", "SCHEMA",
    "CLAIM_LEASE", "COLUMNS", "StoreError", "store_error", "check_store_path",
]

#: the SQLite store used when no --store is given
DEFAULT_STORE = "ticketlab-results.db"

#: the store's tables: trial rows, claims of trials being run, configs
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
CREATE TABLE IF NOT EXISTS claims (
    trial_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS configs (
    config_id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    config TEXT NOT NULL,
    created REAL NOT NULL
);
"""


CLAIM_LEASE = 6 * 3600.0  #: seconds after which a claim of a sweep on another host is taken as abandoned
#: the columns of a trial row, in table order
COLUMNS = ("trial_id", "experiment", "config_id", "cell_id", "cell", "trial", "seed", "result", "provenance",
           "created")


class StoreError(ConfigError):
    """A store that cannot be used (not a database, another schema, unwritable): one line naming the file."""


def store_error(path, err: BaseException) -> StoreError:
    """A one-line ``StoreError`` naming the --store path for a database or disk error, with what to do."""
    why = str(err).splitlines()[0] if str(err) else type(err).__name__
    if isinstance(err, sqlite3.DatabaseError) and ("not a database" in why or "malformed" in why):
        why += " (the file is no ticketlab store, or is damaged: restore it, or give another --store)"
    elif "disk" in why.lower() or "full" in why.lower():
        why += " (free disk space; what was committed is kept, and rerunning resumes)"
    return StoreError(f"--store {str(path)!r}: {why}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_store(path) -> bool:
    """Whether ``path`` can be read as a store: an SQLite file, or a folder of packed trial tables
    (``ticketlab pack``; ticketlab.tables), which reads as a read-only store."""
    from .tables import is_tables

    return Path(path).is_file() or is_tables(path)


def check_store_path(path) -> None:
    """Refuse, without writing anything, a store path that cannot be a store to write: empty, a folder
    (packed tables included: they are read-only), under a file, or an existing file that is no ticketlab
    store (StoreError naming the file)."""
    from .tables import is_tables

    p = Path(path)
    if str(path).strip() in ("", "."):
        raise StoreError(f"--store {str(path)!r}: must name a file, e.g. {DEFAULT_STORE}")
    if is_tables(p):
        raise StoreError(f"--store {str(path)!r}: is a folder of packed trial tables, which is read-only; run "
                         f"into an SQLite store (e.g. --store {DEFAULT_STORE}) and pack it again")
    if p.is_dir():
        raise StoreError(f"--store {str(path)!r}: is a directory; give a file inside it, e.g. "
                         f"{str(p / DEFAULT_STORE)!r}")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise StoreError(f"--store {str(path)!r}: sits under {str(parent)!r}, which is a file, not a folder")
            break
    if p.is_file():
        try:
            conn = sqlite3.connect(f"file:{p.resolve()}?mode=ro", uri=True)
        except sqlite3.Error as err:
            raise store_error(path, err) from None
        try:
            _check_schema(conn, path)
        finally:
            conn.close()


def _check_schema(conn, path) -> None:
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        cols = tuple(r[1] for r in conn.execute("PRAGMA table_info(trials)"))
    except sqlite3.Error as err:
        raise store_error(path, err) from None
    if (tables and "trials" not in tables) or (cols and cols != COLUMNS):
        what = f"a trials table of another schema ({', '.join(cols)})" if cols else \
            f"other tables ({', '.join(sorted(tables)[:5])})"
        raise StoreError(f"--store {str(path)!r}: is an SQLite file with {what}, not a ticketlab store; "
                         "give a ticketlab store or a new file")


class Store:
    """One SQLite result store. ``create=False`` opens an existing file only (FileNotFoundError naming
    the path otherwise), so that reading never leaves an empty database behind. A folder of packed
    trial tables opens as a read-only store held in memory (``read_only``; writing raises StoreError)."""

    read_only = False

    def __init__(self, path: str | Path = DEFAULT_STORE, *, create: bool = True):
        from .tables import is_tables, open_tables

        self.path = Path(path)
        if is_tables(self.path):
            self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
            self.read_only = True
            self._conn = open_tables(self.path, SCHEMA)
            return
        if not create and not self.path.is_file():
            raise FileNotFoundError(f"no result store at {str(self.path)!r}")
        check_store_path(path)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        try:
            if self.path.parent and not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), timeout=60)
        except (OSError, sqlite3.Error) as err:
            raise store_error(path, err) from None
        try:  # look before writing anything: a file that is no ticketlab store is left as it was
            _check_schema(self._conn, path)
        except StoreError:
            self._conn.close()
            raise
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(SCHEMA)
        except sqlite3.Error as err:
            self._conn.close()
            raise store_error(path, err) from None

    def _check_writable(self) -> None:
        if self.read_only:
            check_store_path(self.path)  # raises the one line that says the folder is read-only

    def close(self) -> None:
        """Close, folding the write-ahead log into the .db file, so that the file alone holds every row."""
        if self.read_only:
            self._conn.close()
            return
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass  # another connection is reading: its close checkpoints instead
        self._conn.close()

    def claim(self, trial_ids: list[str], owner: str) -> str:
        """Claim a chunk for ``owner``: 'done' (all stored), 'busy' (another live sweep holds one of them)
        or 'mine'. Claims of dead processes on this host, and old ones from elsewhere, lapse."""
        self._check_writable()
        try:
            return self._claim(trial_ids, owner)
        except sqlite3.Error as err:  # e.g. a full disk: one line naming the store, like a failed write
            raise store_error(self.path, err) from None

    def _claim(self, trial_ids: list[str], owner: str) -> str:
        host = socket.gethostname()
        now = time.time()
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            if len(self.existing(trial_ids)) == len(trial_ids):
                return "done"  # claims on stored trials are moot: release() drops them
            q = f"SELECT trial_id, owner, created FROM claims WHERE trial_id IN ({','.join('?' * len(trial_ids))})"
            for tid, other, created in self._conn.execute(q, trial_ids).fetchall():
                if other == owner:
                    continue
                o_host, _, rest = other.partition(":")
                pid = int(rest.split(":")[0]) if rest.split(":")[0].isdigit() else -1
                stale = (o_host == host and not _pid_alive(pid)) or now - created > CLAIM_LEASE
                if not stale:
                    return "busy"
                self._conn.execute("DELETE FROM claims WHERE trial_id = ?", (tid,))
            self._conn.executemany("INSERT OR REPLACE INTO claims VALUES (?, ?, ?)",
                                   [(t, owner, now) for t in trial_ids])
        return "mine"

    def release(self, owner: str) -> None:
        """Drop ``owner``'s claims at the end of its sweep, and every claim on trials already stored: a
        sweep killed mid-run leaves the claims of the chunks it had finished, and they are moot."""
        try:
            with self._conn:
                self._conn.execute("DELETE FROM claims WHERE owner = ? OR trial_id IN (SELECT trial_id FROM trials)",
                                   (owner,))
        except sqlite3.Error:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def save_config(self, experiment: str, config_id: str, config: dict) -> None:
        """Record a config as run now. The id ignores the trial count and scale (more trials extend a
        sweep), so a row already there keeps the larger trial count and takes the new time."""
        self._check_writable()
        try:
            self._save_config(experiment, config_id, config)
        except sqlite3.Error as err:
            raise store_error(self.path, err) from None

    def _save_config(self, experiment: str, config_id: str, config: dict) -> None:
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
        self._check_writable()
        before = self._conn.total_changes
        try:
            self._write(rows)
        except sqlite3.Error as err:
            raise store_error(self.path, err) from None
        return self._conn.total_changes - before

    def _write(self, rows: list[dict]) -> None:
        with self._conn:
            self._conn.executemany(
                "INSERT OR IGNORE INTO trials VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r["trial_id"], r["experiment"], r["config_id"], r["cell_id"], json.dumps(r["cell"], sort_keys=True),
                  r["trial"], r["seed"], json.dumps(r["result"], allow_nan=False), json.dumps(r["provenance"]),
                  time.time()) for r in rows])

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
        records, bad = [], 0
        try:
            stored = self._conn.execute(q + " ORDER BY rowid", args).fetchall()
        except sqlite3.Error as err:
            raise store_error(self.path, err) from None
        for tid, exp, cid, cell_id, cell, trial, seed, result, prov in stored:
            rec = {"trial_id": tid, "experiment": exp, "config_id": cid, "cell_id": cell_id, "trial": trial,
                   "seed": seed}
            try:  # a row that cannot be read is skipped (counted, warned), never the end of the analysis
                cell_d, res, p = json.loads(cell), json.loads(result), json.loads(prov)
                if not (isinstance(cell_d, dict) and isinstance(res, dict) and isinstance(p, dict)):
                    raise ValueError("not an object")
                if any(isinstance(v, float) and not math.isfinite(v) for v in res.values()):
                    raise ValueError("a non-finite number")
            except (ValueError, TypeError):
                bad += 1
                continue
            rec.update({f"cell.{k}" if k in ("seed",) else k: v for k, v in cell_d.items()})
            res.pop("seed", None)
            rec.update(res)
            rec.update({"device": p.get("device"), "dtype": p.get("dtype"), "git_commit": p.get("git_commit"),
                        "ticketlab_version": p.get("ticketlab_version")})
            records.append(rec)
        if bad:
            warnings.warn(f"{self.path}: {bad} stored trial row(s) could not be read (bad JSON or non-finite "
                          "numbers) and were left out of the analysis", RuntimeWarning, stacklevel=2)
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
    is created).

    A store with one config and two trial rows (rows as ``sweep`` writes them), read back:

    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = Path(tmp.name) / "demo.db"
    >>> with Store(path) as s:
    ...     s.save_config("demo", "c1", {"d": 20, "solver": {"eta": 0.5}})
    ...     n = s.write([{"trial_id": f"t{i}", "experiment": "demo", "config_id": "c1", "cell_id": "N=50",
    ...                   "cell": {"N": 50}, "trial": i, "seed": i, "result": {"rel_error": 10.0 ** -(i + 3)},
    ...                   "provenance": {"device": "cpu", "dtype": "float64"}} for i in range(2)])
    >>> n
    2
    >>> df = load(path, "demo", with_config=True)
    >>> df[["trial_id", "N", "rel_error", "config.d", "config.solver.eta"]].values.tolist()
    [['t0', 50, 0.001, 20, 0.5], ['t1', 50, 0.0001, 20, 0.5]]
    >>> load(Path(tmp.name) / "missing.db")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: ...
    >>> sorted(p.name for p in Path(tmp.name).iterdir())  # reading created nothing
    ['demo.db']
    >>> tmp.cleanup()
    """
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


def export(path: str | Path, out: str | Path, experiment: str | None = None, force: bool = False, *,
           with_config: bool = False) -> Path:
    """Write the trials to CSV or Parquet (by the extension of ``out``); list-valued columns become JSON,
    missing values are nulls.
    An existing ``out`` is kept unless ``force``; the file is written beside it and renamed into place."""
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"OUT {str(out)!r}: is a directory; give a file name ending in .csv or .parquet")
    if out.exists() and not force:
        raise ConfigError(f"OUT {str(out)!r}: exists; pass --force to overwrite it")
    df = load(path, experiment, with_config=with_config)
    for col in df.columns:
        if df[col].map(lambda v: isinstance(v, (list, dict, tuple))).any():
            df[col] = df[col].map(_cell_to_text).astype(object)
    if out.suffix not in (".parquet", ".csv"):
        raise ConfigError(f"OUT {str(out)!r}: must end in .csv or .parquet")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        if out.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
        os.replace(tmp, out)
    except OSError as err:
        raise ConfigError(f"OUT {str(out)!r}: cannot be written ({err.strerror or err})") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def _snapshot(path) -> tuple[dict[str, list[tuple]], list[tuple]]:
    """Every trial row (by experiment, in rowid order, rowid first) and config row, read in one
    read-only transaction: a sweep writing to the store meanwhile can neither tear the snapshot nor
    be disturbed by it (nothing is written, not even a checkpoint)."""
    p = Path(path)
    if not p.is_file():
        raise StoreError(f"--store {str(path)!r}: must be an existing store file")
    check_store_path(p)
    try:
        conn = sqlite3.connect(f"file:{p.resolve()}?mode=ro", uri=True, timeout=60)
        try:
            conn.execute("BEGIN")
            trials: dict[str, list[tuple]] = {}
            for row in conn.execute("SELECT rowid, trial_id, experiment, config_id, cell_id, cell, trial, seed, "
                                    "result, provenance, created FROM trials ORDER BY rowid"):
                trials.setdefault(row[2], []).append(row)
            configs = conn.execute("SELECT config_id, experiment, config, created FROM configs "
                                   "ORDER BY rowid").fetchall()
            conn.execute("COMMIT")
        finally:
            conn.close()
    except sqlite3.Error as err:
        raise store_error(path, err) from None
    return trials, configs


def pack(path: str | Path, out_dir: str | Path, *, force: bool = False) -> dict:
    """Pack the store at ``path`` into a folder of trial tables (ticketlab.tables; only reads the
    store). Returns the folder's manifest."""
    from .tables import check_out, write_tables

    check_out(out_dir, force)
    trials, configs = _snapshot(path)
    return write_tables(trials, configs, out_dir, source=str(path), force=force)


def unpack(folder: str | Path, db_path: str | Path) -> Path:
    """Write a folder of packed trial tables back as an SQLite store file (which must not exist yet)."""
    from .tables import open_tables

    db_path = Path(db_path)
    if db_path.exists():
        raise ConfigError(f"OUT {str(db_path)!r}: exists; give a new file")
    src = open_tables(folder, SCHEMA)
    part = db_path.with_name(db_path.name + ".part")  # renamed into place once whole: a failed copy leaves no store
    part.unlink(missing_ok=True)
    dst = sqlite3.connect(str(part))
    try:
        src.backup(dst)
    except BaseException:
        dst.close()
        part.unlink(missing_ok=True)
        raise
    finally:
        src.close()
    dst.close()
    part.replace(db_path)
    return db_path
