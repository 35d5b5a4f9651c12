"""What the report and the Airflow page show, read from the analysts' database (opened read-only, never the work db)."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Iterator

import duckdb
import polars as pl

from recsys_tasks.warehouse import fetch_frame, first_row, sql

# tables another stage may publish; shown when present
FEEDBACK_TABLE = "metrics.online_feedback"
LIST_HEALTH_TABLE = "metrics.list_health"
GROUP_COLUMNS = ("variant", "strategy", "segment", "track", "model")  # a published metric may be split by these


@contextmanager
def analytics(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the analysts' database read-only, as an analyst would (publish swaps the file, never writes into it)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        yield con
    finally:
        con.close()


def query(con, name: str, **params) -> pl.DataFrame:
    """Return the result of sql/report/<name>.sql."""
    return fetch_frame(con, sql(f"report/{name}"), params)


def has_table(con, table: str) -> bool:
    """Return True when the database holds schema.table."""
    schema, name = table.split(".")
    return bool(first_row(con, "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                          [schema, name])[0])


def latest_day(con) -> date | None:
    """Return the newest day with published lists (or with a recorded run)."""
    for table in ("recs.user_topk", "ops.pipeline_runs"):
        if has_table(con, table):
            day = first_row(con, f"SELECT max(ds) FROM {table}")[0]
            if day:
                return day
    return None


def metric_series(frame: pl.DataFrame, metric: str, track: str, served_only: bool = False) -> dict[str, list]:
    """Return {model: [(ds, value)]} of one holdout metric and track from metrics.offline_eval rows."""
    rows = frame.filter((pl.col("metric") == metric) & (pl.col("track") == track))
    if served_only:
        rows = rows.filter(pl.col("served")).with_columns(model=pl.lit("served"))
    out: dict[str, list] = {}
    for model, ds, value in rows.select("model", "ds", "value").sort("ds").iter_rows():
        out.setdefault(model, []).append((ds, value))
    return out


def trend_table(con, table: str, ds: date) -> dict[str, list]:
    """Return {metric: [(ds, value)]} of a published metrics table, long (metric, value) or wide, overall rows."""
    frame = fetch_frame(con, f"SELECT * FROM {table} WHERE ds <= ? ORDER BY ds", [ds])
    if frame.is_empty():
        return {}
    for column in GROUP_COLUMNS:  # keep the overall rows when the table also splits by variant, segment, ...
        if column in frame.columns and frame[column].dtype == pl.Utf8:
            overall = frame.filter(pl.col(column).is_null() | pl.col(column).is_in(["all", "overall", "*"]))
            if not overall.is_empty():
                frame = overall
    if {"metric", "value"} <= set(frame.columns):
        long = frame.select("ds", "metric", pl.col("value").cast(pl.Float64))
    else:
        numeric = [c for c, t in frame.schema.items() if c != "ds" and t.is_numeric()]
        long = frame.unpivot(index="ds", on=numeric, variable_name="metric", value_name="value") if numeric else None
        if long is None:
            return {}
        long = long.with_columns(pl.col("value").cast(pl.Float64))
    daily = long.group_by("ds", "metric").agg(pl.col("value").mean()).sort("ds")
    out: dict[str, list] = {}
    for ds_, metric, value in daily.iter_rows():
        out.setdefault(str(metric), []).append((ds_, value))
    return out


def coverage_curve(items: pl.DataFrame, steps: int = 50) -> tuple[list[tuple[float, float]], dict]:
    """Return the popularity-vs-exposure curve and coverage figures from items sorted most popular first.

    x = share of the catalogue (most popular first), y = share of list slots given to those items.
    """
    if items.is_empty() or int(items["shown"].sum()) == 0:
        return [], {}
    shown = items["shown"].to_list()
    total, n = float(sum(shown)), len(shown)
    cumulative, points, acc = [], [(0.0, 0.0)], 0.0
    for value in shown:
        acc += value
        cumulative.append(acc / total)
    for step in range(1, steps + 1):
        upto = max(1, round(step / steps * n))
        points.append((upto / n, cumulative[upto - 1]))
    available = items.filter(pl.col("available"))
    figures = {
        "catalogue_items": n,
        "items_shown": int((items["shown"] > 0).sum()),
        "coverage_of_available": float((available["shown"] > 0).mean()) if available.height else 0.0,
        "slots_on_top_10pct": cumulative[max(0, round(0.1 * n) - 1)],
    }
    return points, figures


def score_groups(con, ds: date, top: int = 4) -> dict[str, list[float]]:
    """Return the scores of day ds by strategy, the most used strategies first."""
    frame = query(con, "score_values", ds=ds)
    if frame.is_empty():
        return {}
    order = frame.group_by("strategy").len().sort("len", descending=True)["strategy"].to_list()[:top]
    return {s: frame.filter(pl.col("strategy") == s)["score"].to_list() for s in order}


def user_list(con, ds: date, user_id: str) -> pl.DataFrame:
    """Return one user's published list of day ds with titles and reasons."""
    return query(con, "user_list", ds=ds, user_id=user_id)


def sample_users(con, ds: date, n: int = 5) -> list[str]:
    """Return a few users with a list on day ds, for the lookup form's hints."""
    rows = con.execute("SELECT DISTINCT user_id FROM recs.user_topk WHERE ds = ? ORDER BY user_id LIMIT ?",
                       [ds, n]).fetchall()
    return [r[0] for r in rows]
