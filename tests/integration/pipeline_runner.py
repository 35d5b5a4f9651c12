"""Run the real recsys_nightly DAG with dag.test() against a given RECSYS_HOME, and read what it published."""
from __future__ import annotations

import os
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[2]


def load_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag("recsys_nightly")


def run_day(recsys_home: Path, ds: date, **conf) -> str:
    """Run the DAG for ds through Airflow; return the run's final state."""
    os.environ["RECSYS_HOME"] = str(recsys_home)
    dag = load_dag()
    run = dag.test(logical_date=datetime(ds.year, ds.month, ds.day, tzinfo=timezone.utc), run_conf=conf)
    return str(run.state)


def analytics(recsys_home: Path) -> duckdb.DuckDBPyConnection:
    """Open the analysts' database read-only, as an analyst would."""
    return duckdb.connect(str(recsys_home / "warehouse" / "analytics.duckdb"), read_only=True)


def work(recsys_home: Path) -> duckdb.DuckDBPyConnection:
    """Open the pipeline's working database read-only (only while no run is going)."""
    return duckdb.connect(str(recsys_home / "warehouse" / "work.duckdb"), read_only=True)


def snapshot(con: duckdb.DuckDBPyConnection, table: str, drop: tuple[str, ...] = ()) -> list[tuple]:
    """Return a table's rows in a stable order, without run-specific columns."""
    cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall() if r[0] not in drop]
    select = ", ".join(f'"{c}"' for c in cols)
    return con.execute(f"SELECT {select} FROM {table} ORDER BY ALL").fetchall()
