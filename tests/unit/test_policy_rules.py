"""Each business rule, kept as data, on small tables: what it leaves out and what it keeps."""
from __future__ import annotations

import datetime as dt
import logging

import duckdb
import numpy as np
import polars as pl
import pytest

from recsys_tasks.policy.lists import Arm, ListBuilder
from recsys_tasks.policy.ranker import served_order
from recsys_tasks.policy.rules import build_rulebook, repurchase_categories
from recsys_tasks.policy.variants import Knobs
from recsys_tasks.models import build_model
from recsys_tasks.warehouse import sql
from tests.unit.test_policy_sources import ITEMS, item, tiny_moment

NO_OPT_OUTS = pl.DataFrame({"user_id": [], "scope": [], "value": []}, schema={c: pl.Utf8 for c in
                                                                              ("user_id", "scope", "value")})
U1, U2, U3 = 0, 1, 2


def rules(moment=None, blocked=(), repurchase=None, no_rebuy_days=30, ages=None, opt_outs=NO_OPT_OUTS):
    moment = moment or tiny_moment()
    return build_rulebook(moment, set(blocked), repurchase or {}, no_rebuy_days, ages or {}, opt_outs)


def allowed(book, user: int, name: str) -> bool:
    return bool(book.allowed(np.asarray([user]))[0, item(name)])


def test_unavailable_items_are_never_allowed():
    book = rules(tiny_moment(available=[True, False, True, True, True, True, True]))
    assert not any(allowed(book, u, "coffee-b") for u in (U1, U2, U3))
    assert allowed(book, U1, "coffee-a")


def test_block_list_rows_block_items_brands_and_categories_within_their_dates():
    con = duckdb.connect()
    con.execute(sql("schema/work"))
    con.execute("CREATE TABLE staging.items AS SELECT * FROM (VALUES "
                "('p1', 'Roast', 'Grocery > Coffee'), ('p2', 'Wick', 'Home > Candles'), "
                "('p3', 'Lowlight', 'Home > Candles > Tealights'), ('p4', 'Vale', 'Homeware'), "
                "('p5', 'Marlow', 'Fashion')) AS t(item_id, brand, category)")
    con.execute("INSERT INTO policy.block_list VALUES "
                "('p1', NULL, NULL, 'recall', DATE '2024-06-01', NULL), "
                "(NULL, 'wick', NULL, 'brand dispute', NULL, DATE '2024-12-31'), "
                "(NULL, NULL, 'Home > Candles', 'fire safety', NULL, NULL), "
                "(NULL, 'Marlow', NULL, 'expired', NULL, DATE '2024-01-31'), "
                "(NULL, 'Vale', NULL, 'not yet', DATE '2024-08-01', NULL)")
    blocked = con.execute(sql("policy/active_blocks"), {"ds": dt.date(2024, 6, 30)}).fetchall()
    assert {r[0] for r in blocked} == {"p1", "p2", "p3"}  # p4 'Homeware' is no child of 'Home > Candles'
    before = con.execute(sql("policy/active_blocks"), {"ds": dt.date(2024, 5, 1)}).fetchall()
    assert {r[0] for r in before} == {"p2", "p3"}
    book = rules(blocked={"candle-a"})
    assert not allowed(book, U1, "candle-a") and not allowed(book, U3, "candle-a")


def test_recent_purchase_outside_a_repurchase_category_is_left_out():
    # u2 bought coffee-b 2 days ago; u1 bought candle-a 100 days ago
    book = rules(repurchase={"Grocery": False, "Home": False}, no_rebuy_days=30)
    assert not allowed(book, U2, "coffee-b") and allowed(book, U1, "coffee-b")
    assert allowed(book, U1, "candle-a")  # bought longer ago than no_rebuy_days
    keep = rules(repurchase={"Grocery": True, "Home": False}, no_rebuy_days=30)
    assert allowed(keep, U2, "coffee-b")


def test_manual_repurchase_rows_beat_the_observed_share():
    observed = pl.DataFrame({"top_category": ["Grocery", "Fashion"], "repurchase_share": [0.3, 0.01]})
    manual = pl.DataFrame({"category": ["Grocery"], "repurchase": [False]})
    assert repurchase_categories(manual, observed, 0.05) == {"Grocery": False, "Fashion": False}
    assert repurchase_categories(manual.clear(), observed, 0.05) == {"Grocery": True, "Fashion": False}


def test_age_restricted_items_need_a_verified_age():
    book = rules(ages={"u1": 21, "u2": 16})
    assert allowed(book, U1, "wine")
    assert not allowed(book, U2, "wine") and not allowed(book, U3, "wine")  # too young / unknown
    assert not book.allowed_for_segment(None)[item("wine")]  # unknown shoppers never see it


def test_a_past_restricted_purchase_counts_as_a_verified_age():
    con = duckdb.connect()
    con.execute(sql("schema/work"))
    con.execute("CREATE TABLE staging.items AS SELECT * FROM (VALUES ('w', '{\"age_restricted\": true}'), "
                "('b', '{\"min_age\": 21}'), ('m', NULL)) AS t(item_id, attributes)")
    con.execute("CREATE TABLE staging.events AS SELECT * FROM (VALUES ('a', 'w', 'purchase'), ('b', 'w', 'view'), "
                "('c', 'm', 'purchase')) AS t(user_id, item_id, event_type)")
    con.execute("INSERT INTO policy.age_verified_users VALUES ('d', 25, DATE '2024-01-01'), "
                "('e', 30, DATE '2025-01-01')")
    ages = dict(con.execute(sql("policy/verified_ages"), {"ds": dt.date(2024, 6, 30), "restricted_min_age": 18})
                .fetchall())
    assert ages == {"a": 18, "d": 25}  # b only looked; c bought nothing restricted; e is verified later


def test_items_sold_in_some_countries_only():
    n = len(ITEMS)
    countries = [None] * n
    countries[item("mug")] = frozenset({"GB"})
    book = rules(tiny_moment(countries=countries))
    assert allowed(book, U1, "mug") and not allowed(book, U3, "mug")  # u3 shops from FR
    assert not book.allowed_for_segment(None)[item("mug")]


def test_opt_outs_by_category_and_brand_and_whole_lists():
    opt = pl.DataFrame({"user_id": ["u1", "u2", "u3", "u3"], "scope": ["category", "brand", "all", "personalisation"],
                        "value": ["home", "Roast", None, None]})
    book = rules(opt_outs=opt)
    assert not allowed(book, U1, "candle-a") and not allowed(book, U1, "mug") and allowed(book, U1, "coffee-a")
    assert not allowed(book, U2, "coffee-a") and allowed(book, U2, "candle-a")
    assert book.no_list.tolist() == [False, False, True] and book.not_personalised.tolist() == [False, False, True]


def _lists(book, moment, k=4):
    model = build_model("popularity").fit(moment.data)
    builder = ListBuilder(moment, book, new_item_days=14, k=k)
    return builder.build(np.arange(3), Arm(model, served_order("test"), Knobs(exploration_share=0.0)))


def test_lists_respect_every_rule_and_opted_out_users_get_no_or_plain_lists():
    moment = tiny_moment()
    opt = pl.DataFrame({"user_id": ["u2"], "scope": ["personalisation"], "value": [None]})
    book = rules(moment, blocked={"coffee-a"}, ages={"u1": 30}, opt_outs=opt)
    frame = _lists(book, moment)
    by_user = {u: g.sort("rank")["item_id"].to_list() for (u,), g in frame.group_by("user_id")}
    assert all("coffee-a" not in items for items in by_user.values())
    assert "wine" not in by_user["u3"]  # no verified age for u3 in the rows given
    assert set(frame.filter(pl.col("user_id") == "u2")["strategy"]) <= {"segment_popularity", "popularity_fill"}
    opted = rules(moment, opt_outs=pl.DataFrame({"user_id": ["u1"], "scope": ["all"], "value": [None]}))
    assert "u1" not in set(_lists(opted, moment)["user_id"])


def test_building_lists_logs_users_scored_with_rate(caplog):
    moment = tiny_moment()
    builder = ListBuilder(moment, rules(moment), new_item_days=14, k=3)
    arm = Arm(build_model("popularity").fit(moment.data), served_order("test"), Knobs(), "control")
    with caplog.at_level(logging.INFO, logger="recsys_tasks.runlog"):
        builder.build(np.arange(3), arm)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("users scored")]
    assert len(lines) == 1 and lines[0].startswith("users scored (control): 3/3 users (100%) at ")
    assert lines[0].split(" at ")[1].split(" users/s, done in ")[1]


@pytest.mark.parametrize("k", [3, 6])
def test_lists_are_full_and_distinct_when_the_rules_leave_enough_items(k):
    moment = tiny_moment()
    frame = _lists(rules(moment, ages={"u1": 30, "u2": 30, "u3": 30}), moment, k=k)
    for _, group in frame.group_by("user_id"):
        assert group.height == k and group["item_id"].n_unique() == k
        assert group["rank"].to_list() == list(range(1, k + 1))


def test_exploration_candidates_respect_the_brand_cap():
    moment = tiny_moment()
    moment.catalogue.brand[item("jumper-new")] = "Wick"  # the brand of candle-a
    builder = ListBuilder(moment, rules(moment), new_item_days=14, k=4)
    room = builder._under_cap([item("candle-a")], max_per_brand=1)
    assert not room[item("jumper-new")] and room[item("candle-b")] and room[item("mug")]  # the mug has no brand
    assert builder._under_cap([item("candle-a")], max_per_brand=2)[item("jumper-new")]


def test_lists_work_for_a_catalogue_without_brands_and_a_brand_cap():
    moment = tiny_moment()
    moment.catalogue.brand[:] = ""  # a catalogue without brands (like the UCI shop) with a cap set
    book = rules(moment, ages={"u1": 30, "u2": 30, "u3": 30})
    model = build_model("popularity").fit(moment.data)
    frame = ListBuilder(moment, book, new_item_days=14, k=4).build(
        np.arange(3), Arm(model, served_order("test"), Knobs(exploration_share=0.5, max_per_brand=1)))
    assert frame.height == 12
