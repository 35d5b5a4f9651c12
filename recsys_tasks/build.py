"""Build: join and clean the validated history into the staging tables every later stage reads."""
from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta

from recsys_tasks.config import Settings
from recsys_tasks.warehouse import bind, count, run, sql, work_db

log = logging.getLogger(__name__)

STAGING_TABLES = ("events", "items", "sessions", "item_daily_stats", "user_segments", "interactions")


def interaction_params(settings: Settings, until: datetime) -> dict:
    """Return the bind parameters of sql/build/interactions.sql for a cut-off (exclusive)."""
    return {"until": until, "half_life": settings.recency_half_life_days}


def end_of(ds: date) -> datetime:
    """Return the first instant after day ds (UTC, naive)."""
    return datetime.combine(ds + timedelta(days=1), time())


def build_interactions(con, settings: Settings, table: str, until: datetime) -> int:
    """Create staging.<table> from sql/build/interactions.sql with events before `until`."""
    assert table in ("interactions", "interactions_holdout")  # table names never come from users
    query = f"CREATE OR REPLACE TABLE staging.{table} AS " + sql("build/interactions")
    con.execute(query, bind(query, interaction_params(settings, until)))
    return count(con, f"staging.{table}")


def build(settings: Settings, ds: date, run_id: str) -> dict:
    """Rebuild every staging table for ds; return their row counts."""
    with work_db(settings) as con:
        run(con, "build/event_weights", **{f"w_{t}": w for t, w in settings.event_weights().items()})
        run(con, "build/events", ds=ds, history_days=settings.history_window_days)
        run(con, "build/items", ds=ds)
        run(con, "build/sessions", gap_minutes=settings.session_gap_minutes)
        run(con, "build/item_daily_stats")
        run(con, "build/user_segments")
        build_interactions(con, settings, "interactions", end_of(ds))
        counts = {t: count(con, f"staging.{t}") for t in STAGING_TABLES}
    if counts["events"] == 0:
        raise ValueError(f"no valid events on or before {ds}: nothing to recommend from")
    log.info("build %s: %s", ds, counts)
    return counts
