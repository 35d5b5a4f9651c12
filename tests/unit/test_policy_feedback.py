"""Feedback metrics on a hand-built example equal the numbers computed by hand; nothing after D is read."""
from __future__ import annotations

import datetime as dt
import math

import duckdb
import polars as pl
import pytest

from recsys_tasks.config import load_settings
from recsys_tasks.policy.feedback import online_feedback, score_day, user_outcomes

LIST_DS = dt.date(2024, 6, 28)
D = dt.date(2024, 6, 30)
# user a: x (buy_again), y (bought_with), z (trending); b: x, w, v; c (arm "bare"): y, v, w
LISTS = pl.DataFrame({
    "list_ds": [LIST_DS] * 9,
    "user_id": ["a", "a", "a", "b", "b", "b", "c", "c", "c"],
    "rank": [1, 2, 3, 1, 2, 3, 1, 2, 3],
    "item_id": ["x", "y", "z", "x", "w", "v", "y", "v", "w"],
    "strategy": ["buy_again", "bought_with", "trending", "buy_again", "bought_with", "trending",
                 "buy_again", "bought_with", "trending"],
    "variant": ["control"] * 6 + ["bare"] * 3,
})
# a bought y (10) and q (30, not listed); b bought nothing; c bought v (5) and w (5)
EVENTS = pl.DataFrame({"user_id": ["a", "a", "c", "c"], "item_id": ["y", "q", "v", "w"],
                       "revenue": [10.0, 30.0, 5.0, 5.0]})
L2, L3 = 1 / math.log2(3), 1 / math.log2(4)  # discounts of ranks 2 and 3
NDCG_A = L2 / (1 + L2)  # a's one hit at rank 2, two targets
NDCG_C = (L2 + L3) / (1 + L2)  # c's hits at ranks 2 and 3, two targets


def _table(rows):
    return {(r["variant"], r["strategy"], r["metric"]): r for r in rows}


def test_whole_list_metrics_equal_the_hand_computed_numbers():
    rows = _table(score_day(LISTS, EVENTS, k=3, n_boot=0, seed=1))
    assert rows[("all", "all", "hit_rate")]["value"] == pytest.approx(1.0)  # a and c both hit; b is not scored
    assert rows[("all", "all", "ndcg")]["value"] == pytest.approx((NDCG_A + NDCG_C) / 2)
    assert rows[("all", "all", "precision")]["value"] == pytest.approx(3 / 6)
    assert rows[("all", "all", "revenue_share")]["value"] == pytest.approx((10 + 10) / (40 + 10))
    assert rows[("all", "all", "ndcg")]["n_users"] == 2


def test_per_variant_and_per_strategy_metrics():
    rows = _table(score_day(LISTS, EVENTS, k=3, n_boot=0, seed=1))
    assert rows[("control", "all", "ndcg")]["value"] == pytest.approx(NDCG_A)
    assert rows[("control", "all", "revenue_share")]["value"] == pytest.approx(10 / 40)
    assert rows[("bare", "all", "precision")]["value"] == pytest.approx(2 / 3)
    assert rows[("control", "bought_with", "hit_rate")]["value"] == pytest.approx(1.0)
    assert rows[("control", "buy_again", "hit_rate")]["value"] == pytest.approx(0.0)
    assert rows[("all", "bought_with", "revenue_share")]["value"] == pytest.approx((10 + 5) / 50)
    assert rows[("all", "trending", "precision")]["value"] == pytest.approx(1 / 2)  # a's z no, c's w yes
    assert ("control", "bought_with", "ndcg") not in rows  # NDCG only for the whole list


def test_cut_at_k_and_the_ideal_list_follows_the_targets():
    rows = _table(score_day(LISTS, EVENTS, k=2, n_boot=0, seed=1))
    assert rows[("all", "all", "ndcg")]["value"] == pytest.approx((L2 / (1 + L2) + L2 / (1 + L2)) / 2)
    assert rows[("all", "all", "precision")]["value"] == pytest.approx(2 / 4)
    outcome = user_outcomes(LISTS.filter(pl.col("user_id") == "a"), EVENTS, k=1)
    assert outcome["ndcg_all"].tolist() == [0.0] and outcome["hit_all"].tolist() == [0.0]


def test_bootstrap_intervals_hold_the_value_and_repeat_exactly():
    first = score_day(LISTS, EVENTS, k=3, n_boot=200, seed=7)
    again = score_day(LISTS, EVENTS, k=3, n_boot=200, seed=7)
    assert first == again
    for row in first:
        if row["value"] is not None and row["ci_low"] is not None:
            assert row["ci_low"] - 1e-12 <= row["value"] <= row["ci_high"] + 1e-12, row
    ndcg = _table(first)[("all", "all", "ndcg")]
    assert ndcg["ci_low"] == pytest.approx(NDCG_A) and ndcg["ci_high"] == pytest.approx(NDCG_C)


def test_the_stage_reads_only_earlier_lists_and_events_up_to_d(tmp_path):
    settings = load_settings({"recsys_home": str(tmp_path), "feedback_bootstrap": 0, "eval_k": 3}, environ={})
    settings.warehouse_dir.mkdir(parents=True)
    con = duckdb.connect(str(settings.work_db))
    from recsys_tasks.warehouse import sql

    con.execute(sql("schema/work"))
    lists = LISTS.select(pl.col("list_ds").alias("ds"), "user_id", "rank", "item_id",
                         pl.lit(None, pl.Float64).alias("score"), "strategy", pl.lit("").alias("reason"),
                         pl.lit("m").alias("model"), "variant")
    today = lists.with_columns(pl.lit(D).alias("ds"))  # the list of D itself is not scored on D
    con.register("l", pl.concat([lists, today]).to_arrow())
    con.execute("INSERT INTO recs.user_topk SELECT * FROM l")
    events = EVENTS.with_columns(pl.lit(dt.date(2024, 6, 29)).alias("dt"))
    later = pl.DataFrame({"user_id": ["b"], "item_id": ["x"], "revenue": [99.0], "dt": [D + dt.timedelta(days=1)]})
    before = pl.DataFrame({"user_id": ["b"], "item_id": ["w"], "revenue": [7.0], "dt": [LIST_DS]})
    for frame in (events, later, before):
        con.register("e", frame.to_arrow())
        con.execute("INSERT INTO clean.events (dt, user_id, item_id, event_type, quantity, price) "
                    "SELECT dt, user_id, item_id, 'purchase', 1, revenue FROM e")
        con.unregister("e")
    con.execute("CREATE TABLE staging.events AS SELECT 'purchase' AS event_type")
    con.close()
    assert online_feedback(settings, D, "run")["online_feedback"] > 0
    assert online_feedback(settings, D, "run")["online_feedback"] > 0  # idempotent for its date
    con = duckdb.connect(str(settings.work_db), read_only=True)
    rows = con.execute("SELECT list_ds, days_after, value, n_users FROM metrics.online_feedback WHERE "
                       "variant = 'all' AND strategy = 'all' AND metric = 'ndcg' AND k = 3").fetchall()
    assert rows == [(LIST_DS, 2, pytest.approx((NDCG_A + NDCG_C) / 2), 2)]  # b's purchases on D+1 / on LIST_DS unseen
