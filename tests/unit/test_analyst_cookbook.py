"""sql/analyst/: each cookbook query on a small hand-built warehouse, against answers worked out by hand."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]
COOKBOOK = REPO / "sql" / "analyst"
D1, D2 = date(2024, 3, 1), date(2024, 3, 2)


def cook(con, name: str, **params) -> list[tuple]:
    """Run a cookbook file as an analyst would: the file's text with named parameters."""
    return con.execute((COOKBOOK / f"{name}.sql").read_text(), params or None).fetchall()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> duckdb.DuckDBPyConnection:
    """Build a tiny analysts' database with the published tables, then open it read-only."""
    path = tmp_path_factory.mktemp("cookbook") / "analytics.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute((REPO / "sql" / "schema" / "work.sql").read_text())
        con.execute((REPO / "sql" / "publish" / "latest_user_topk.sql").read_text())
        con.execute("CREATE TABLE features.item_knowledge (ds DATE, item_id VARCHAR, title VARCHAR, brand VARCHAR, "
                    "category VARCHAR)")
        con.execute("CREATE TABLE features.user_profile (ds DATE, user_id VARCHAR, segment VARCHAR)")
        con.executemany("INSERT INTO features.item_knowledge VALUES (?, ?, ?, ?, ?)", [
            (D2, "A", "Alpha kettle", "Acme", "Home > Kitchen"), (D2, "B", "Beta shoe", "Bolt", "Sports > Shoes"),
            (D2, "C", "Gamma scarf", "Cozy", "Fashion > Knitwear")])
        con.executemany("INSERT INTO features.user_profile VALUES (?, ?, ?)", [
            (D2, "U1", "GB"), (D2, "U2", "GB"), (D2, "U3", "GB"), (D2, "U4", "FR"), (D1, "U4", "GB")])
        con.executemany("INSERT INTO recs.user_topk VALUES (?, ?, ?, ?, ?, ?, ?, 'ease', 'control')", [
            (D1, "U1", 1, "A", 0.9, "model", "old day"), (D1, "U1", 2, "B", 0.8, "model", "old day"),
            (D2, "U1", 1, "B", 0.7, "model", "Because you bought Alpha kettle"),
            (D2, "U1", 2, "C", 0.6, "popularity", "Popular with shoppers right now"),
            (D2, "U2", 1, "A", 0.95, "model", "Often bought with Beta shoe"),
            (D2, "U2", 2, "B", 0.5, "model", "Because you looked at Gamma scarf"),
            (D2, "U4", 1, "C", 0.4, "model", "x")])
        con.executemany("INSERT INTO recs.default_topk VALUES (?, 'GB', ?, ?, 1.0, 'popularity', 'Popular')", [
            (D2, 1, "A"), (D2, 2, "C"), (D1, 1, "B")])
        con.executemany("INSERT INTO metrics.offline_eval (ds, model, split, track, metric, k, value, served) "
                        "VALUES (?, ?, 'holdout', 'all', 'ndcg', 20, ?, ?)", [
                            (date(2024, 2, 20), "ease", 0.10, True),  # older than the week
                            (date(2024, 2, 26), "ease", 0.30, False), (date(2024, 2, 28), "ease", 0.32, True),
                            (D2, "ease", 0.35, False), (D2, "popularity", 0.20, True)])
        con.executemany("INSERT INTO quality.quarantine VALUES (?, ?, ?, ?, ?, ?, ?, '{}')", [
            ("events", D1, "e1.csv", 3, "item_known", "item_known", "item_id 'X1' unknown on D1"),
            ("events", D2, "e2.csv", 4, "item_known", "item_known", "item_id 'X2' unknown on D2"),
            ("events", D2, "e2.csv", 9, "item_known", "item_known", "item_id 'X2' unknown on D2"),
            ("items", D2, "i2.csv", 1, "title_not_null", "title_not_null", "title is missing"),
            ("events", date(2024, 2, 1), "e0.csv", 5, "price_in_range", "price_in_range", "too old to count")])
    con = duckdb.connect(str(path), read_only=True)
    yield con
    con.close()


def test_user_list_is_the_newest_day_with_titles_and_reasons(warehouse):
    rows = cook(warehouse, "user_list", user_id="U1")
    assert [(r[0], r[1], r[2], r[3], r[8]) for r in rows] == [
        (D2, 1, "B", "Beta shoe", "Because you bought Alpha kettle"),
        (D2, 2, "C", "Gamma scarf", "Popular with shoppers right now")]
    assert cook(warehouse, "user_list", user_id="nobody") == []


def test_segment_shown_counts_members_of_the_newest_profiles(warehouse):
    rows = cook(warehouse, "segment_shown", segment="GB")
    # GB on D2: U1, U2, U3 (U4 moved to FR); B is in U1's and U2's lists at ranks 1 and 2
    assert rows == [("B", "Beta shoe", "Sports > Shoes", 2, 0.667, 1.5, None),
                    ("A", "Alpha kettle", "Home > Kitchen", 1, 0.333, 1.0, 1),
                    ("C", "Gamma scarf", "Fashion > Knitwear", 1, 0.333, 2.0, 2)]
    assert [r[0] for r in cook(warehouse, "segment_shown", segment="FR")] == ["C"]


def test_model_metrics_week_reports_first_last_and_change(warehouse):
    (row,) = cook(warehouse, "model_metrics_week", model="ease")
    track, metric, k, first_day, first, last_day, last, change, low, high, days, served = row
    assert (track, metric, k, first_day, last_day, days, served) == ("all", "ndcg", 20, date(2024, 2, 26), D2, 3, True)
    assert (first, last, low, high) == (0.30, 0.35, 0.30, 0.35)
    assert change == pytest.approx(0.05)
    assert cook(warehouse, "model_metrics_week", model="popularity")[0][10] == 1


def test_quarantine_rules_since_a_day(warehouse):
    rows = cook(warehouse, "quarantine_rules", since=date(2024, 2, 15))
    assert rows == [("events", "item_known", 3, 2, D1, D2, "item_id 'X2' unknown on D2"),
                    ("items", "title_not_null", 1, 1, D2, D2, "title is missing")]
    assert len(cook(warehouse, "quarantine_rules", since=date(2024, 1, 1))) == 3
