"""Packed trial tables: a result store as a folder that can be committed to git (the format; the
store's ``pack`` and ``unpack`` call it).

``write_tables`` writes one Parquet file per experiment (every trial row: its cell, result and
provenance as typed columns, zstd-compressed), ``configs.json`` (the stored configs) and
``MANIFEST.json`` (row counts, the sha256 of each file, code version, commit, date, machine).
``open_tables(folder, schema)`` reads such a folder back into an in-memory SQLite database of the store's own
schema, so that every reader of a store (`report`, `plot`, `ls`, ``store.load``) takes the folder as
``--store`` unchanged; the folder itself is never written.

Lossless by construction: the store keeps each cell, result and provenance as JSON text, and the
packer checks that the text rebuilt from the columns equals the stored text, row by row, after the
file is written and read back. A value the columns cannot carry exactly (a key order that differs
from the column order, a number written another way) keeps its text in a ``_order.PART`` or
``_raw.PART`` column for that row.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sqlite3
import time
from pathlib import Path

from .config import ConfigError

__all__ = [
    "MANIFEST", "CONFIGS", "FORMAT", "is_tables", "check_out", "write_tables", "open_tables", "read_manifest",
    "PARTS", "PLAIN", "INT64", "ARROW_KINDS",
]

#: a packed folder's manifest: format, files with their sha256, provenance
MANIFEST = "MANIFEST.json"
#: a packed folder's configs, config_id -> experiment and config
CONFIGS = "configs.json"
#: the format name and version a manifest must carry
FORMAT = "ticketlab-tables/1"
PARTS = ("cell", "result", "provenance")  #: the JSON columns of a trial row, each packed as typed columns
#: the scalar columns of a trial row and their Arrow types
PLAIN = (("trial_id", "string"), ("experiment", "string"), ("config_id", "string"), ("cell_id", "string"),
         ("trial", "int64"), ("seed", "int64"), ("created", "float64"), ("rowid", "int64"))
#: the range of an int64 column; a JSON integer outside it is kept as JSON text
INT64 = (-(2 ** 63), 2 ** 63 - 1)


def is_tables(path) -> bool:
    """Whether ``path`` is a folder of packed trial tables (it holds a MANIFEST.json)."""
    p = Path(path)
    return p.is_dir() and (p / MANIFEST).is_file()


# --- the JSON text of a row, and back ---------------------------------------------------------------

def _dump(part: str, obj: dict) -> str:
    """The text the store writes for each part (store.Store._write): cells with sorted keys."""
    return json.dumps(obj, sort_keys=part == "cell")


def _kind(values: list) -> str:
    """The column type that carries every present value of a key exactly."""
    types = {type(v) for v in values}
    if types == {bool}:
        return "bool"
    if types == {int} and all(INT64[0] <= v <= INT64[1] for v in values):
        return "int"
    if types == {float}:
        return "float"
    if types == {str}:
        return "str"
    if types == {list} and all(type(x) is float for v in values for x in v):
        return "floats"
    return "json"  # None, dicts, mixed lists, mixed types: the value's own JSON text


#: the kind of a JSON field's values -> the Arrow type of its column
ARROW_KINDS = {"bool": "bool_", "int": "int64", "float": "float64", "str": "string", "json": "string"}


def _encode_part(part: str, texts: list[str]) -> tuple[list[tuple[str, str]], dict[str, list]]:
    """One part's rows as typed columns: ([(key, kind)], {column name: values}); a row that the
    columns do not rebuild exactly keeps its order (``_order.PART``) or its text (``_raw.PART``)."""
    objs = [json.loads(t) for t in texts]
    keys: dict[str, None] = {}
    for o in objs:
        for k in o:
            keys.setdefault(k, None)
    schema = []
    cols: dict[str, list] = {}
    for k in keys:
        present = [o[k] for o in objs if k in o]
        kind = _kind(present)
        schema.append((k, kind))
        cols[f"{part}.{k}"] = [(json.dumps(o[k]) if kind == "json" else o[k]) if k in o else None for o in objs]
    order: list = [None] * len(objs)
    raw: list = [None] * len(objs)
    names = list(keys)
    for i, (o, text) in enumerate(zip(objs, texts)):
        if list(o) != [k for k in names if k in o]:
            order[i] = json.dumps(list(o))
        if _rebuild(part, schema, {c: v[i] for c, v in cols.items()}, order[i]) != text:
            raw[i] = text
    if any(v is not None for v in order):
        cols[f"_order.{part}"] = order
    if any(v is not None for v in raw):
        cols[f"_raw.{part}"] = raw
    return schema, cols


def _rebuild(part: str, schema, row: dict, order: str | None = None, raw: str | None = None) -> str:
    """The stored JSON text of one part of one row, from its column values."""
    if raw is not None:
        return raw
    obj = {}
    for k, kind in schema:
        v = row[f"{part}.{k}"]
        if v is None:
            continue  # the row has no such key (a present null is the json text 'null')
        obj[k] = json.loads(v) if kind == "json" else v
    if order is not None:
        obj = {k: obj[k] for k in json.loads(order)}
    return _dump(part, obj) if part == "cell" else json.dumps(obj)


def _rows_of(columns: dict[str, list], meta: dict) -> list[tuple]:
    """Store rows (rowid first, then store.COLUMNS) from a table's columns and its schema."""
    n = len(columns["trial_id"])
    texts = {}
    for part in PARTS:
        schema = meta["parts"][part]
        names = [f"{part}.{k}" for k, _ in schema]
        order = columns.get(f"_order.{part}", [None] * n)
        raw = columns.get(f"_raw.{part}", [None] * n)
        texts[part] = [_rebuild(part, schema, {c: columns[c][i] for c in names}, order[i], raw[i])
                       for i in range(n)]
    return [(columns["rowid"][i], columns["trial_id"][i], columns["experiment"][i], columns["config_id"][i],
             columns["cell_id"][i], texts["cell"][i], columns["trial"][i], columns["seed"][i], texts["result"][i],
             texts["provenance"][i], columns["created"][i]) for i in range(n)]


# --- writing -----------------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _table(rows: list[tuple]):
    """A pyarrow table of one experiment's store rows, and its schema metadata."""
    import pyarrow as pa

    cols = {name: [r[i] for r in rows] for name, i in (("rowid", 0), ("trial_id", 1), ("experiment", 2),
                                                        ("config_id", 3), ("cell_id", 4), ("trial", 6),
                                                        ("seed", 7), ("created", 10))}
    arrays = {name: pa.array(cols[name], type=getattr(pa, kind)()) for name, kind in PLAIN}
    meta = {"format": FORMAT, "parts": {}}
    for part, idx in (("cell", 5), ("result", 8), ("provenance", 9)):
        schema, pcols = _encode_part(part, [r[idx] for r in rows])
        meta["parts"][part] = schema
        kinds = dict(schema)
        for name, values in pcols.items():
            key = name.split(".", 1)[1]
            kind = kinds.get(key, "json") if name.startswith(f"{part}.") else "json"
            typ = pa.list_(pa.float64()) if kind == "floats" else getattr(pa, ARROW_KINDS[kind])()
            arrays[name] = pa.array(values, type=typ)
    table = pa.table(arrays).replace_schema_metadata({b"ticketlab": json.dumps(meta).encode()})
    return table, meta


def _read_table(path: Path):
    """A packed Parquet file as {column: python values} and its ticketlab schema metadata."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(b"ticketlab")
    if raw is None:
        raise ConfigError(f"--store {str(path.parent)!r}: {path.name} is no ticketlab trial table (no schema "
                          "metadata)")
    meta = json.loads(raw)
    return {name: table.column(name).to_pylist() for name in table.column_names}, meta


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def check_out(out_dir, force: bool = False) -> None:
    """Refuse, before anything is read or written, a folder that cannot take packed tables."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"OUT {str(out)!r}: is a file; give a folder")
    if (out / MANIFEST).exists() and not force:
        raise ConfigError(f"OUT {str(out)!r}: already holds packed tables; pass --force to replace them")


def write_tables(trials: dict[str, list[tuple]], configs: list[tuple], out_dir, *, source: str,
                 force: bool = False) -> dict:
    """Write a store's rows (``trials``: experiment -> rows of (rowid, *store.COLUMNS), in rowid order;
    ``configs``: rows of the configs table) as one Parquet file per experiment, configs.json and
    MANIFEST.json into ``out_dir`` (created; other files there are left alone). Returns the manifest."""
    import pyarrow.parquet as pq

    from . import __version__
    from .provenance import git_commit

    out = Path(out_dir)
    check_out(out, force)
    if not trials:
        raise ConfigError(f"--store {source!r}: holds no trials; nothing to pack")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"OUT {str(out)!r}: cannot be created ({err.strerror or err})") from None
    old = read_manifest(out) if (out / MANIFEST).exists() else None
    files: dict[str, dict] = {}
    experiments: dict[str, dict] = {}
    for exp, rows in trials.items():
        table, meta = _table(rows)
        name = f"{exp}.parquet"
        _write_atomic(out / name, lambda tmp: pq.write_table(table, tmp, compression="zstd", compression_level=9))
        back, back_meta = _read_table(out / name)  # read back: the file rebuilds every stored byte
        if _rows_of(back, back_meta) != [tuple(r) for r in rows]:
            raise ConfigError(f"OUT {str(out)!r}: {name} does not read back to the stored rows; nothing was "
                              "replaced by a lossy table (report this as a bug)")
        per_config: dict[str, int] = {}
        for r in rows:
            per_config[r[3]] = per_config.get(r[3], 0) + 1
        files[name] = {"experiment": exp, "rows": len(rows), "bytes": (out / name).stat().st_size,
                       "sha256": _sha256(out / name)}
        experiments[exp] = {"file": name, "rows": len(rows), "configs": per_config}
    records = []
    for cid, exp, text, created in configs:
        rec = {"config_id": cid, "experiment": exp, "created": created, "config": json.loads(text)}
        if json.dumps(rec["config"], sort_keys=True) != text:
            rec["config_text"] = text  # kept verbatim where the object would not rebuild it
        records.append(rec)
    _write_atomic(out / CONFIGS, lambda tmp: tmp.write_text(json.dumps(records, indent=1) + "\n"))
    files[CONFIGS] = {"rows": len(records), "bytes": (out / CONFIGS).stat().st_size, "sha256": _sha256(out / CONFIGS)}
    manifest = {
        "format": FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": source,
        "ticketlab_version": __version__,
        "git_commit": git_commit(),
        "machine": {"platform": platform.platform(), "machine": platform.machine(),
                    "python": platform.python_version(), "cpus": os.cpu_count()},
        "rows": sum(e["rows"] for e in experiments.values()),
        "experiments": experiments,
        "files": files,
        "read_with": f"ticketlab report --store {out}",
    }
    _write_atomic(out / MANIFEST, lambda tmp: tmp.write_text(json.dumps(manifest, indent=1) + "\n"))
    for name in (old or {}).get("files", {}):  # tables of experiments the store no longer holds
        if name not in files and name.endswith(".parquet") and (out / name).is_file():
            (out / name).unlink()
    return manifest


# --- reading -----------------------------------------------------------------------------------------

def read_manifest(folder) -> dict:
    """The MANIFEST.json of a packed folder; ConfigError if it cannot be read or is of another format."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"--store {str(folder)!r}: {MANIFEST} cannot be read ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ConfigError(f"--store {str(folder)!r}: {MANIFEST} is not of format {FORMAT!r} "
                          f"(got {manifest.get('format') if isinstance(manifest, dict) else manifest!r})")
    return manifest


def _load(folder: Path, schema: str) -> sqlite3.Connection:
    manifest = read_manifest(folder)
    conn = sqlite3.connect(":memory:")
    conn.executescript(schema)
    for name, info in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            raise ConfigError(f"--store {str(folder)!r}: {name} is listed in {MANIFEST} but missing")
        if _sha256(path) != info["sha256"]:
            raise ConfigError(f"--store {str(folder)!r}: {name} does not match its sha256 in {MANIFEST} (changed or "
                              "damaged: restore it, or pack the store again)")
    for exp, info in manifest["experiments"].items():
        columns, meta = _read_table(folder / info["file"])
        rows = _rows_of(columns, meta)
        if len(rows) != info["rows"]:
            raise ConfigError(f"--store {str(folder)!r}: {info['file']} holds {len(rows)} rows, {MANIFEST} says "
                              f"{info['rows']}")
        conn.executemany("INSERT INTO trials (rowid, trial_id, experiment, config_id, cell_id, cell, trial, seed, "
                         "result, provenance, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    records = json.loads((folder / CONFIGS).read_text())
    conn.executemany("INSERT INTO configs VALUES (?, ?, ?, ?)",
                     [(r["config_id"], r["experiment"], r.get("config_text") or json.dumps(r["config"], sort_keys=True),
                       r["created"]) for r in records])
    conn.commit()
    return conn


_CACHE: dict[tuple, sqlite3.Connection] = {}


def open_tables(folder, schema: str) -> sqlite3.Connection:
    """A fresh in-memory SQLite connection holding the folder's store (``schema``: the store's SQL).
    The folder is read and checked once per process and state of its MANIFEST; later opens copy it."""
    folder = Path(folder).resolve()
    st = (folder / MANIFEST).stat()
    key = (str(folder), st.st_mtime_ns, st.st_size)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = _load(folder, schema)
    conn = sqlite3.connect(":memory:")
    _CACHE[key].backup(conn)
    return conn
