"""Validate: run the Great Expectations suites on landed partitions; valid rows to clean.*, the rest to quarantine."""
from __future__ import annotations

import logging
from datetime import date, datetime, timezone

import polars as pl

from recsys_tasks.config import Settings
from recsys_tasks.validation import validate_events, validate_items
from recsys_tasks.warehouse import fetch_frame, registered, work_db

log = logging.getLogger(__name__)

CLEAN_COLUMNS = {
    "events": ["dt", "user_id", "item_id", "event_type", "event_ts", "event_id", "session_id", "quantity", "price",
               "rating", "context", "_file", "_row"],
    "items": ["dt", "item_id", "title", "description", "brand", "category", "price", "available", "attributes",
              "image_embedding", "_file", "_row"],
}


def _landed(con, kind: str, ds: date) -> tuple[list[date], pl.DataFrame, dict[str, list[str]]]:
    dts = [r[0] for r in con.execute(
        "SELECT dt FROM raw.partitions WHERE kind = ? AND status = 'landed' AND dt <= ? ORDER BY dt", [kind, ds]
    ).fetchall()]
    if not dts:
        return [], pl.DataFrame(), {}
    frame = fetch_frame(con, 
        f"SELECT * EXCLUDE (_dt), strftime(_dt, '%Y-%m-%d') AS _dt FROM raw.{kind}_landed "
        "WHERE _dt IN (SELECT unnest(?)) ORDER BY _dt, _file, _row", [dts]
    )
    columns = {f: list(c) for f, c in con.execute(
        "SELECT file, columns FROM raw.file_columns WHERE kind = ? AND dt IN (SELECT unnest(?))", [kind, dts]
    ).fetchall()}
    return dts, frame, columns


def _record_rules(con, ds: date, run_id: str, kind: str, outcome, dts: list[date]) -> None:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    parts = [d.isoformat() for d in dts]
    for r in outcome.rules:
        con.execute(
            "INSERT INTO quality.validation_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [ds, run_id, kind, r.suite, r.rule, r.column, r.checked, r.failed, r.success, list(r.examples), parts, now],
        )


def _store(con, kind: str, outcome, dts: list[date], run_id: str) -> None:
    con.execute(f"DELETE FROM clean.{kind} WHERE dt IN (SELECT unnest(?))", [dts])
    with registered(con, "valid_rows", outcome.valid.select(CLEAN_COLUMNS[kind])):
        con.execute(f"INSERT INTO clean.{kind} SELECT * FROM valid_rows")
    con.execute("DELETE FROM quality.quarantine WHERE kind = ? AND dt IN (SELECT unnest(?))", [kind, dts])
    if outcome.quarantine.height:
        q = outcome.quarantine.select("kind", "dt", "file", "row", "rule", "rules", "detail", "record")
        with registered(con, "bad_rows", q):
            con.execute("INSERT INTO quality.quarantine SELECT * FROM bad_rows")
    con.execute(f"DELETE FROM raw.{kind}_landed WHERE _dt IN (SELECT unnest(?))", [dts])
    con.execute(
        "UPDATE raw.partitions SET status = 'validated', validated_by_run = ? WHERE kind = ? AND dt IN (SELECT unnest(?))",
        [run_id, kind, dts],
    )


def _failed(outcome) -> bool:
    return bool(outcome.schema_errors or outcome.bad_share_errors)


def validate(settings: Settings, ds: date, run_id: str) -> dict:
    """Validate landed items, then events; every partition commits together, or none does."""
    counts = {"events_valid": 0, "events_quarantined": 0, "items_valid": 0, "items_quarantined": 0}
    with work_db(settings) as con:
        outcomes = []
        item_dts, items, item_columns = _landed(con, "items", ds)
        if item_dts:
            outcomes.append(("items", validate_items(items, item_columns, settings), item_dts))
        event_dts, events, event_columns = _landed(con, "events", ds)
        if event_dts:
            known = fetch_frame(con, "SELECT item_id, dt FROM clean.items WHERE dt NOT IN (SELECT unnest(?))",
                                [item_dts or [date(1, 1, 1)]])
            if item_dts:  # items validated in this very run count as known too
                known = pl.concat([known, outcomes[0][1].valid.select("item_id", "dt")])
            known = known.group_by("item_id").agg(pl.col("dt").min())
            outcomes.append(("events", validate_events(events, event_columns, known, settings), event_dts))
        ok = not any(_failed(o) for _, o, _ in outcomes)
        if ok and outcomes:
            con.execute("BEGIN TRANSACTION")
            for kind, outcome, dts in outcomes:
                _store(con, kind, outcome, dts, run_id)
            con.execute("COMMIT")
        for kind, outcome, dts in outcomes:
            _record_rules(con, ds, run_id, kind, outcome, dts)
            counts[f"{kind}_valid"] = outcome.valid.height
            counts[f"{kind}_quarantined"] = outcome.quarantine.height
    for _, outcome, _ in outcomes:
        outcome.raise_if_failed()
    log.info("validate %s: %s", ds, counts)
    return counts
