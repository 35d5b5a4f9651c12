"""Publish: build a new analysts' database file beside the old one and swap it in with one atomic rename.

Analysts open analytics.duckdb read-only. DuckDB allows no reader next to a writer of the same file, so the
pipeline never writes to that file: a reader that opened the old file keeps reading the old day, a reader that
opens after the rename reads the new one, and nobody ever sees a mix.
"""
from __future__ import annotations

import logging
import os
import shutil
from datetime import date, timedelta

from recsys_tasks.config import Settings
from recsys_tasks.runlog import finish_run
from recsys_tasks.training import served_choice
from recsys_tasks.warehouse import connect, count, first_row, sql, work_db

log = logging.getLogger(__name__)

# table -> which rows the analysts get: "history" = every ds within retention; "latest" = the newest ds only
# (embedding-heavy snapshots); "all" = every row.
PUBLISHED_TABLES = {
    "recs.user_topk": "history",
    "recs.default_topk": "history",
    "recs.item_similar": "latest",
    "features.user_profile": "latest",
    "features.item_knowledge": "latest",
    "metrics.offline_eval": "history",
    "quality.validation_runs": "history",
    "quality.quarantine": "all",
    "ops.pipeline_runs": "history",
    "metrics.online_feedback": "history",
    "metrics.list_health": "history",
    "policy.block_list": "all",
    "policy.repurchase_categories": "all",
    "policy.user_opt_outs": "all",
    "policy.age_verified_users": "all",
}
# the analysts' file is written in the storage format of DuckDB 1.4, so their tools (the DuckDB CLI, BI drivers) need
# not be as new as the pipeline's duckdb: a 1.x CLI refuses a file in 2.0's own format
ANALYSTS_STORAGE_VERSION = "v1.4.0"
# every table of the working database with a ds column: its history is kept for the retention window only
HISTORY_TABLES = [t for t, how in PUBLISHED_TABLES.items() if how != "all"] + ["ops.stage_runs"]


def prune(con, settings: Settings, keep_from: date) -> None:
    """Drop history and model artefacts older than the retention window."""
    for table in HISTORY_TABLES:
        if first_row(con, "SELECT count(*) FROM duckdb_tables() WHERE schema_name || '.' || table_name = ?",
                     [table])[0]:
            con.execute(f"DELETE FROM {table} WHERE ds < ?", [keep_from])
    for day in settings.models_dir.glob("????-??-??"):
        if day.is_dir() and date.fromisoformat(day.name) < keep_from:
            shutil.rmtree(day)


def _selection(table: str, how: str, keep_from: date) -> tuple[str, list]:
    if how == "history":
        return f"SELECT * FROM {table} WHERE ds >= ? ORDER BY ALL", [keep_from]
    if how == "latest":
        return f"SELECT * FROM {table} WHERE ds = (SELECT max(ds) FROM {table}) ORDER BY ALL", []
    return f"SELECT * FROM {table} ORDER BY ALL", []


def attach_analysts_file(con, target: os.PathLike, alias: str = "pub") -> None:
    """Attach a new analysts' file at target, in the storage format older DuckDB clients read."""
    con.execute(f"ATTACH ? AS {alias} (STORAGE_VERSION '{ANALYSTS_STORAGE_VERSION}')", [str(target)])


def write_analytics_file(con, target: os.PathLike, keep_from: date) -> dict:
    """Copy the published tables from the working database into a new DuckDB file at target."""
    attach_analysts_file(con, target)
    try:
        counts = {}
        for table, how in PUBLISHED_TABLES.items():
            schema = table.split(".")[0]
            con.execute(f"CREATE SCHEMA IF NOT EXISTS pub.{schema}")
            query, params = _selection(table, how, keep_from)
            con.execute(f"CREATE TABLE pub.{table} AS {query}", params or None)
            counts[table] = count(con, f"pub.{table}")
    finally:
        con.execute("DETACH pub")
    analytics = connect(target)
    try:
        analytics.execute(sql("publish/latest_user_topk"))
        analytics.execute(sql("publish/analytics_comments"))
        analytics.execute("CHECKPOINT")
    finally:
        analytics.close()
    return counts


def swap_in(tmp: os.PathLike, final: os.PathLike) -> None:
    """Atomically replace the analysts' file with the new one (same directory, one rename)."""
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)
    dir_fd = os.open(os.path.dirname(os.path.abspath(final)), os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def publish(settings: Settings, ds: date, run_id: str) -> dict:
    """Mark the run successful, prune old history, and swap in a fresh analysts' database."""
    final = settings.analytics_db
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    for stale in (tmp, tmp.with_name(tmp.name + ".wal")):
        stale.unlink(missing_ok=True)
    keep_from = ds - timedelta(days=settings.retention_days - 1)
    with work_db(settings) as con:
        latest = first_row(con, "SELECT max(ds) FROM recs.user_topk")[0] or ds
        keep_from = min(keep_from, latest - timedelta(days=settings.retention_days - 1))
        prune(con, settings, keep_from)
        finish_run(con, ds, run_id, "success", served_choice(settings, ds)["served_model"])
        try:
            counts = write_analytics_file(con, tmp, keep_from)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    swap_in(tmp, final)
    log.info("published %s: %s", final, counts)
    return {f"published_{t.split('.')[1]}": n for t, n in counts.items()}
