"""Ingest: land every partition dated on or before the run date that is new or changed since it was last landed."""
from __future__ import annotations

import logging
from datetime import date

import polars as pl

from recsys_tasks.config import Settings
from recsys_tasks.sources import get_source
from recsys_tasks.sources.base import EVENT_COLUMNS, ITEM_COLUMNS
from recsys_tasks.warehouse import registered, work_db

log = logging.getLogger(__name__)

LANDED_COLUMNS = {"events": EVENT_COLUMNS, "items": ITEM_COLUMNS}


def _landed_frame(kind: str, frame: pl.DataFrame, dt: date) -> pl.DataFrame:
    columns = [pl.col(c).cast(pl.Utf8) if c in frame.columns else pl.lit(None, pl.Utf8).alias(c)
               for c in LANDED_COLUMNS[kind]]
    return frame.select(*columns, pl.col("_file").cast(pl.Utf8), pl.col("_row").cast(pl.Int64),
                        pl.lit(dt, pl.Date).alias("_dt"))


def ingest(settings: Settings, ds: date, run_id: str) -> dict:
    """Land new or changed partitions dated <= ds into raw.*_landed; return row counts."""
    if not settings.landing_path.exists():
        raise FileNotFoundError(f"landing directory {settings.landing_path} does not exist (source {settings.source})")
    source = get_source(settings.source, settings.landing_path)
    partitions = source.partitions(until=ds)
    if any(p.dt > ds for p in partitions):  # a source must never hand us tomorrow's data
        raise RuntimeError(f"source {settings.source} listed partitions after {ds}")
    landed = {"events": 0, "items": 0}
    with work_db(settings) as con:
        seen = {(k, d): c for k, d, c in con.execute("SELECT kind, dt, checksum FROM raw.partitions").fetchall()}
        todo = [p for p in partitions if seen.get((p.kind, p.dt)) != p.checksum]
        con.execute("BEGIN TRANSACTION")
        for p in todo:
            batch = source.read(p)
            frame = _landed_frame(p.kind, batch.frame, p.dt)
            con.execute(f"DELETE FROM raw.{p.kind}_landed WHERE _dt = ?", [p.dt])
            with registered(con, "landed_batch", frame):
                con.execute(f"INSERT INTO raw.{p.kind}_landed SELECT * FROM landed_batch")
            con.execute("DELETE FROM raw.file_columns WHERE kind = ? AND dt = ?", [p.kind, p.dt])
            for file, columns in batch.columns_by_file.items():
                con.execute("INSERT INTO raw.file_columns VALUES (?, ?, ?, ?)", [p.kind, p.dt, file, columns])
            con.execute(
                "INSERT OR REPLACE INTO raw.partitions VALUES (?, ?, ?, ?, 'landed', ?, ?, NULL)",
                [p.kind, p.dt, p.checksum, [str(f) for f in p.files], frame.height, run_id],
            )
            landed[p.kind] += frame.height
        con.execute("COMMIT")
    log.info("ingest %s: %d partitions listed, %d landed (%s)", ds, len(partitions), len(todo), landed)
    return {"partitions_listed": len(partitions), "partitions_landed": len(todo),
            "events_landed": landed["events"], "items_landed": landed["items"]}
