"""Each recall source on a tiny hand-built shop (the shop is shared by the other policy tests)."""
from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from recsys_tasks.models import build_model
from recsys_tasks.models.base import TrainingData
from recsys_tasks.policy.candidates import recall, top_mask
from recsys_tasks.policy.neighbours import IVFIndex, exact_neighbours, text_neighbours
from recsys_tasks.policy.signals import Catalogue, build_moment, repurchase_cycles

AS_OF = dt.date(2024, 6, 30)
UNTIL = dt.datetime(2024, 7, 1)
ITEMS = ["coffee-a", "coffee-b", "candle-a", "candle-b", "wine", "jumper-new", "mug"]
TITLES = ["Bold Coffee Beans", "Smooth Coffee Beans", "Amber Candle", "Sage Candle", "Rioja Red Wine",
          "Cable Knit Jumper", "Blue Mug"]
CATEGORY = ["Grocery", "Grocery", "Home", "Home", "Drinks", "Fashion", "Home"]
BRAND = ["Roast", "Roast", "Wick", "Lowlight", "Vale", "Marlow", ""]
# text directions: coffees alike, candles alike, the new jumper close to the candles, the mug on its own
DIRECTIONS = [[1, 0, 0, 0], [0.95, 0.31, 0, 0], [0, 0, 1, 0], [0, 0.1, 0.99, 0], [0, 1, 0, 0],
              [0, 0, 0.8, 0.6], [0, 0, 0, 1]]


def tiny_moment(available=None, min_age=None, countries=None, ann_min_items: int = 10_000):
    """Return a Moment of 3 users and 7 items with known cycles, neighbours, trends and segments.

    u1 (GB) buys coffee-a every 9 days (5 purchase days, first 40 days ago, last 4 days ago), bought candle-a once
    100 days ago and browsed candle-b; u2 (GB) bought coffee-a and coffee-b together 2 days ago; u3 (FR) bought wine.
    """
    interactions = pl.DataFrame({
        "user_id": ["u1", "u1", "u1", "u2", "u2", "u3"],
        "item_id": ["coffee-a", "candle-a", "candle-b", "coffee-a", "coffee-b", "wine"],
        "weight": [20.0, 3.0, 1.0, 8.0, 8.0, 8.0],
        "purchases": [5.0, 1.0, 0.0, 1.0, 1.0, 1.0],
    })
    popularity = pl.DataFrame({"item_id": ITEMS, "recent_popularity": [30.0, 10.0, 5.0, 4.0, 8.0, 0.0, 1.0]})
    users = pl.DataFrame({"user_id": ["u1", "u2", "u3"], "segment": ["GB", "GB", "FR"]})
    data = TrainingData.from_frames(interactions, AS_OF, popularity, users, item_ids=ITEMS)
    vectors = np.asarray(DIRECTIONS, dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    n = len(ITEMS)
    catalogue = Catalogue(
        titles=list(TITLES), top_category=np.asarray(CATEGORY, dtype=object), brand=np.asarray(BRAND, dtype=object),
        available=np.ones(n, bool) if available is None else np.asarray(available, bool),
        age_days=np.asarray([300, 300, 300, 300, 300, 2, 300]),
        min_age=np.asarray(min_age or [0, 0, 0, 0, 18, 0, 0]),
        countries=countries or [None] * n, blocked_countries=[frozenset()] * n,
        events_7d=np.asarray([3.0, 1.0, 0.0, 9.0, 0.0, 0.0, 0.0]), reach=np.asarray([2.0, 1, 1, 1, 1, 0, 0]),
        embeddings=vectors)
    recent = interactions.select("user_id", "item_id", "weight")
    purchase_days = pl.DataFrame({
        "user_id": ["u1", "u1", "u2", "u2", "u3"], "item_id": ["coffee-a", "candle-a", "coffee-a", "coffee-b", "wine"],
        "purchase_days": [5, 1, 1, 1, 1], "days_since_first": [40, 100, 2, 2, 10],
        "days_since_last": [4, 100, 2, 2, 10]})
    segment_popularity = pl.DataFrame({"segment": ["GB", "GB", "FR"], "item_id": ["mug", "coffee-b", "wine"],
                                       "popularity": [7.0, 2.0, 5.0]})
    return build_moment(data, catalogue, UNTIL, recent, purchase_days, segment_popularity, neighbour_k=3,
                        ann_min_items=ann_min_items)


def item(name: str) -> int:
    return ITEMS.index(name)


@pytest.fixture(scope="module")
def moment():
    return tiny_moment()


@pytest.fixture(scope="module")
def candidates(moment):
    model = build_model("popularity").fit(moment.data)
    return recall(moment, model, np.arange(3), per_source=2, new_item_days=14)


def test_buy_again_learns_the_cycle_and_ranks_the_regular_above_the_one_off(moment):
    u1 = 0
    assert float(moment.own_cycle[u1, item("coffee-a")]) == pytest.approx(9.0)  # (40 - 4) / (5 - 1)
    assert moment.own_cycle[u1, item("candle-a")] == 0  # one purchase: no cycle of its own
    regular, one_off = moment.propensity[u1, item("coffee-a")], moment.propensity[u1, item("candle-a")]
    assert 0 < one_off < regular < 1


def test_repurchase_cycle_of_a_single_purchase_borrows_the_items_other_buyers():
    days = pl.DataFrame({"user_id": ["a", "b", "c"], "item_id": ["x", "x", "x"], "purchase_days": [3, 3, 1],
                         "days_since_first": [20, 40, 5], "days_since_last": [0, 0, 5]})
    out = repurchase_cycles(days).sort("user_id")
    assert out["own_cycle"].to_list()[:2] == [10.0, 20.0] and out["own_cycle"][2] is None
    assert out["prior_cycle"][2] == 15.0  # median of the repeat buyers' cycles
    assert out["propensity"][2] == pytest.approx(1 - np.exp(-30 * 1 / (5 + 15)))


def test_buy_again_source_offers_exactly_the_bought_items(candidates):
    bought = candidates.feature("bought")
    assert set(np.flatnonzero(bought[0])) == {item("coffee-a"), item("candle-a")}
    assert candidates.recalled[0, item("candle-a")]


def test_behaviour_neighbours_of_recent_items(candidates):
    # u1's coffee-a was bought with coffee-b by u2: coffee-b is a behaviour neighbour for u1
    score = candidates.feature("bought_with")[0]
    assert score[item("coffee-b")] > 0 and candidates.recalled[0, item("coffee-b")]
    assert score[item("mug")] == 0  # nobody touched the mug with anything


def test_text_neighbours_of_recent_items(candidates):
    score = candidates.feature("similar_text")[1]  # u2 bought the two coffees
    assert score[item("coffee-a")] > 0 and score[item("candle-a")] == 0
    u1 = candidates.feature("similar_text")[0]
    assert u1[item("jumper-new")] > 0  # close in text to the candles u1 touched


def test_trending_is_this_weeks_demand_scaled(candidates):
    trending = candidates.feature("trending")[0]
    assert trending.argmax() == item("candle-b") and trending.max() == pytest.approx(1.0)
    assert trending[item("wine")] == 0


def test_segment_popularity_is_the_users_segment(moment, candidates):
    seg = candidates.feature("segment_popularity")
    assert seg[0].argmax() == item("mug") and seg[1].argmax() == item("mug")  # GB
    assert seg[2].argmax() == item("wine") and seg[2][item("mug")] == 0  # FR


def test_served_source_is_the_models_top_n_by_rank(candidates):
    served = candidates.feature("served")[0]
    assert np.count_nonzero(served) == 2  # per_source = 2
    assert served[item("coffee-a")] == pytest.approx(1.0) and served[item("coffee-b")] == pytest.approx(1 / np.log2(3))


def test_every_source_contributes_to_recall(candidates):
    assert all(n > 0 for n in candidates.source_hits.values()), candidates.source_hits


def test_top_mask_keeps_the_best_positive_scores():
    mask = top_mask(np.asarray([[0.5, 0.0, 0.9, 0.1]]), 3)
    assert mask.tolist() == [[True, False, True, True]]


def test_exact_neighbours_never_return_the_item_itself():
    vectors = np.eye(4, dtype=np.float32) + 0.1
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    idx, _ = exact_neighbours(vectors, 2)
    assert all(i not in row for i, row in enumerate(idx))


def test_ivf_index_finds_most_exact_neighbours_and_is_chosen_for_large_catalogues():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 16))
    vectors = (centres[rng.integers(0, 20, 2000)] + 0.3 * rng.normal(size=(2000, 16))).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    exact, _ = exact_neighbours(vectors, 10)
    approx, _ = IVFIndex(vectors).neighbours(10, n_probe=8)
    overlap = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert overlap >= 0.9
    assert text_neighbours(vectors, 5, ann_min_items=1000)[2] == "ivf"
    assert text_neighbours(vectors[:500], 5, ann_min_items=1000)[2] == "exact"
