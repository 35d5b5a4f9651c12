"""Analysts read while a run publishes; bad input fails cleanly or is quarantined row by row."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from datetime import date, timedelta

import polars as pl
import pytest

from recsys_tasks import demo_logs
from recsys_tasks.sources import get_source
from tests.integration.pipeline_runner import analytics, run_day, work

START = date(2024, 5, 1)
DAYS = 9
FIRST = START + timedelta(days=DAYS - 4)


@pytest.fixture(scope="module")
def shop(airflow_db, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("shop2")
    landing = root / "landing"
    demo_logs.generate(landing, start=START, days=DAYS, seed=11, n_users=120, n_items=70)
    home = root / "home"
    conf = {"source": "landing", "landing": str(landing), "top_k": 8, "holdout_days": 2}
    assert run_day(home, FIRST, **conf) == "success"
    return {"home": home, "landing": landing, "conf": conf}


ANALYST = textwrap.dedent("""
    import json, sys, time, duckdb
    path, old_ds, deadline = sys.argv[1], sys.argv[2], time.monotonic() + 900
    seen = []
    while time.monotonic() < deadline:
        con = duckdb.connect(path, read_only=True)
        try:
            con.execute("BEGIN TRANSACTION")
            ds = str(con.execute("SELECT max(ds) FROM recs.user_topk").fetchone()[0])
            rows = con.execute("SELECT count(*) FROM recs.user_topk WHERE ds = CAST(? AS DATE)", [ds]).fetchone()[0]
            run = con.execute("SELECT CAST(ds AS VARCHAR), row_counts FROM ops.pipeline_runs WHERE status = 'success' "
                              "ORDER BY ds DESC, finished_at DESC LIMIT 1").fetchone()
            latest = str(con.execute("SELECT max(ds) FROM recs.latest_user_topk").fetchone()[0])
            profile = str(con.execute("SELECT max(ds) FROM features.user_profile").fetchone()[0])
            con.execute("COMMIT")
        finally:
            con.close()
        seen.append({"ds": ds, "rows": rows, "run_ds": run[0], "recorded": json.loads(run[1])["user_topk"],
                     "latest": latest, "profile": profile})
        if ds != old_ds:
            break
    print(json.dumps(seen))
""")


def test_analyst_reads_the_old_or_the_new_day_never_a_mix(shop):
    db = shop["home"] / "warehouse" / "analytics.duckdb"
    analyst = subprocess.Popen([sys.executable, "-c", ANALYST, str(db), str(FIRST)], stdout=subprocess.PIPE, text=True)
    new_day = FIRST + timedelta(days=1)
    assert run_day(shop["home"], new_day, **shop["conf"]) == "success"
    out, _ = analyst.communicate(timeout=900)
    seen = json.loads(out)
    assert seen[0]["ds"] == str(FIRST) and seen[-1]["ds"] == str(new_day)  # it read while the run went on
    for s in seen:  # every read was one whole day: lists, run log, view and features agree
        assert s["ds"] == s["run_ds"] == s["latest"] == s["profile"], s
        assert s["rows"] == s["recorded"], s


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _day_frame(landing, day) -> pl.DataFrame:
    source = get_source("landing", landing)
    part = next(p for p in source.partitions(until=day) if p.kind == "events" and p.dt == day)
    return source.read(part).frame.drop("_file", "_row")


def test_broken_schema_fails_with_file_and_rule_and_leaves_published_tables_untouched(shop):
    day = FIRST + timedelta(days=2)
    db = shop["home"] / "warehouse" / "analytics.duckdb"
    before = _digest(db)
    broken = shop["landing"] / "events" / f"dt={day}" / "late-upload.csv"
    _day_frame(shop["landing"], day).head(30).drop("event_ts").write_csv(broken)
    try:
        assert run_day(shop["home"], day, **shop["conf"]) == "failed"
        assert _digest(db) == before
        with work(shop["home"]) as w:
            message = w.execute("SELECT message FROM ops.pipeline_runs WHERE ds = ? AND status = 'failed'",
                                [day]).fetchone()[0]
        assert "late-upload.csv" in message and "event_ts" in message, message
    finally:
        broken.unlink()


def test_some_bad_rows_are_quarantined_exactly_and_the_rest_published(shop):
    day = FIRST + timedelta(days=2)
    frame = _day_frame(shop["landing"], day).head(12).with_columns(
        (pl.lit("extra-") + pl.int_range(0, 12).cast(pl.Utf8)).alias("event_id"))
    bad = {2: ("event_type", "teleport"), 5: ("user_id", None), 9: ("quantity", "-3")}  # 1-based rows
    for row, (column, value) in bad.items():
        frame = frame.with_columns(pl.when(pl.int_range(0, pl.len()) == row - 1).then(pl.lit(value, pl.Utf8))
                                   .otherwise(pl.col(column)).alias(column))
    extra = shop["landing"] / "events" / f"dt={day}" / "extra.csv"
    frame.write_csv(extra)
    assert run_day(shop["home"], day, **shop["conf"]) == "success"
    with work(shop["home"]) as w:
        rows = w.execute("SELECT \"row\", rule FROM quality.quarantine WHERE file LIKE '%extra.csv' ORDER BY 1").fetchall()
        kept = w.execute("SELECT count(*) FROM clean.events WHERE _file LIKE '%extra.csv'").fetchone()[0]
    assert [r for r, _ in rows] == sorted(bad)
    assert dict(rows) == {2: "event_type_allowed", 5: "user_id_not_null", 9: "quantity_in_range"}
    assert kept == 12 - len(bad)
    with analytics(shop["home"]) as con:
        assert con.execute("SELECT max(ds) FROM recs.user_topk").fetchone()[0] == day


def test_retention_keeps_only_the_last_days_of_history_and_models(shop):
    day = FIRST + timedelta(days=3)
    assert run_day(shop["home"], day, **{**shop["conf"], "retention_days": 2}) == "success"
    with analytics(shop["home"]) as con:
        days = [r[0] for r in con.execute("SELECT DISTINCT ds FROM recs.user_topk ORDER BY ds").fetchall()]
        runs = {r[0] for r in con.execute("SELECT DISTINCT ds FROM ops.pipeline_runs").fetchall()}
    assert days == [day - timedelta(days=1), day] and runs == set(days)
    kept = sorted(p.name for p in (shop["home"] / "models").iterdir() if p.is_dir())
    assert kept == [str(d) for d in days]
    with work(shop["home"]) as w:
        assert w.execute("SELECT min(ds) FROM features.user_profile").fetchall()[0][0] == days[0]
