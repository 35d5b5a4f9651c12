"""The working DuckDB database: one writer at a time, SQL loaded from files in sql/."""
from __future__ import annotations

import fcntl
import re
import time
import warnings
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import duckdb
import polars as pl

from recsys_tasks.config import REPO_ROOT, Settings

SQL_DIR = REPO_ROOT / "sql"
LOCK_WAIT_S = 1800  # a task waits this long for another task to release the working database


@lru_cache(maxsize=None)
def sql(name: str) -> str:
    """Return the text of sql/<name>.sql."""
    return (SQL_DIR / f"{name}.sql").read_text()


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    # DuckDB lets one process write a file; tasks on parallel workers queue here instead of failing.
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"working database {lock_path} stayed locked for {LOCK_WAIT_S}s")
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def connect(path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB file with the session settings the pipeline relies on."""
    con = duckdb.connect(str(path), read_only=read_only)
    con.execute("SET TimeZone = 'UTC'")
    return con


@contextmanager
def work_db(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """Yield a connection to the working database, holding its lock, with every schema in place."""
    settings.warehouse_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(settings.work_db.with_suffix(".lock")):
        con = connect(settings.work_db)
        try:
            con.execute(sql("schema/work"))
            yield con
        finally:
            con.close()


def bind(query: str, params):
    """Return the named parameters a query uses (DuckDB rejects unused ones); lists pass through."""
    if not isinstance(params, dict):
        return params or None
    used = {k: v for k, v in params.items() if re.search(rf"\${k}\b", query)}
    return used or None


def run(con: duckdb.DuckDBPyConnection, name: str, **params) -> None:
    """Execute sql/<name>.sql with named parameters ($name in the file)."""
    text = sql(name)
    con.execute(text, bind(text, params))


def count(con: duckdb.DuckDBPyConnection, table: str, where: str = "", **params) -> int:
    """Return the number of rows of a table, optionally filtered by a fixed predicate."""
    query = f"SELECT count(*) FROM {table}" + (f" WHERE {where}" if where else "")
    return int(first_row(con, query, params)[0])


def first_row(con: duckdb.DuckDBPyConnection, query: str, params=None) -> tuple | None:
    """Return the first row of a query, or None; the whole result is consumed (DuckDB 2 keeps partial ones open)."""
    rows = con.execute(query, bind(query, params)).fetchall()
    return rows[0] if rows else None


def publish_day(con: duckdb.DuckDBPyConnection, target: str, source: str, ds) -> int:
    """Replace the rows of `target` for day ds with those of `source` (same columns), creating target if needed."""
    con.execute(f"CREATE TABLE IF NOT EXISTS {target} AS SELECT * FROM {source} WITH NO DATA")
    con.execute("BEGIN TRANSACTION")
    con.execute(f"DELETE FROM {target} WHERE ds = ?", [ds])
    con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM {source}")
    con.execute("COMMIT")
    return count(con, target, "ds = $ds", ds=ds)


def fetch_frame(con: duckdb.DuckDBPyConnection, query: str, params=None) -> pl.DataFrame:
    """Return a query's result as a polars DataFrame."""
    with warnings.catch_warnings():
        # DuckDB 2 nudges towards con.sql(), which refuses to run while an earlier execute() result is open
        warnings.simplefilter("ignore", UserWarning)
        return pl.from_arrow(con.execute(query, bind(query, params)).to_arrow_table())


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> Iterator[None]:
    """Expose a polars frame to SQL as `name` for the duration of the block."""
    con.register(name, frame.to_arrow())
    try:
        yield
    finally:
        con.unregister(name)
