"""Reasons name real evidence: the cited item is in the user's history, the cited category is the item's own."""
from __future__ import annotations

import re

import numpy as np
import pytest

from recsys_tasks.models import build_model
from recsys_tasks.policy.candidates import FEATURE_NAMES, recall
from recsys_tasks.policy.explain import Explainer
from recsys_tasks.policy.lists import Arm, ListBuilder
from recsys_tasks.policy.ranker import Ranker
from recsys_tasks.policy.rules import build_rulebook
from recsys_tasks.policy.variants import Knobs
from tests.unit.test_policy_rules import NO_OPT_OUTS
from tests.unit.test_policy_sources import CATEGORY, ITEMS, TITLES, item, tiny_moment

HISTORY = {"u1": {"coffee-a", "candle-a", "candle-b"}, "u2": {"coffee-a", "coffee-b"}, "u3": {"wine"}}
SEGMENT = {"u1": "GB", "u2": "GB", "u3": "FR"}
CITES_AN_ITEM = [re.compile(p) for p in (r"^Because you (?:bought|looked at) (.+)$", r"^Often bought with (.+)$",
                                         r"^New in: like (.+), which you (?:bought|looked at)$")]


def ranker_favouring(*features: str) -> Ranker:
    """A ranker whose weight sits on the given features (to walk every source's sentence in a test)."""
    n = len(FEATURE_NAMES)
    weights = [1.0 if f in features else 0.0 for f in FEATURE_NAMES]
    return Ranker(weights, 0.0, [0.0] * n, [1.0] * n, "test")


def _lists(ranker: Ranker, exploration: float = 0.0, k: int = 6):
    moment = tiny_moment()
    if exploration:
        moment.catalogue.age_days[:] = 300
        moment.catalogue.age_days[item("jumper-new")] = 2
    book = build_rulebook(moment, set(), {}, 30, {"u3": 30}, NO_OPT_OUTS)
    model = build_model("itemknn", neighbours=None).fit(moment.data)
    builder = ListBuilder(moment, book, new_item_days=14, k=k)
    knobs = Knobs(exploration_share=exploration, mmr_lambda=1.0)
    return builder.build(np.arange(3), Arm(model, ranker, knobs))


def check_reason(user: str, item_id: str, reason: str) -> str:
    """Assert the reason cites only true facts; return which kind of evidence it cites."""
    for pattern in CITES_AN_ITEM:
        m = pattern.match(reason)
        if m:
            cited = [ITEMS[i] for i, t in enumerate(TITLES) if t == m.group(1)]
            assert cited and set(cited) & HISTORY[user], (user, reason)
            return "item"
    m = re.match(r"^Popular in (.+) this week$", reason)
    if m:
        assert m.group(1) == CATEGORY[item(item_id)], (item_id, reason)
        return "category"
    m = re.match(r"^Popular with shoppers in (.+)$", reason)
    if m:
        assert m.group(1) == SEGMENT[user], (user, reason)
        return "segment"
    m = re.match(r"^Buy it again: you order this about every (\d+) days$", reason)
    if m:
        assert (user, item_id) == ("u1", "coffee-a") and m.group(1) == "9", reason  # u1's own 9-day cycle
        return "cycle"
    if reason.startswith("Buy it again: you bought this"):
        assert item_id in HISTORY[user], (user, item_id, reason)
        return "bought"
    if reason == "You looked at this recently":
        assert item_id in HISTORY[user], (user, item_id)
        return "viewed"
    assert reason in ("Popular with shoppers right now", "Popular this week"), reason
    return "plain"


@pytest.mark.parametrize("features", [("bought_with",), ("similar_text",), ("trending",), ("segment_popularity",),
                                      ("propensity", "purchase_days"), ("served",), ("interest",)])
def test_every_sentence_cites_true_evidence(features):
    frame = _lists(ranker_favouring(*features))
    kinds = {check_reason(u, i, r) for u, i, r in frame.select("user_id", "item_id", "reason").iter_rows()}
    assert kinds - {"plain"}, kinds  # each source produced at least one evidence-backed sentence


def test_buy_it_again_names_the_users_own_cycle():
    frame = _lists(ranker_favouring("propensity", "purchase_days"))
    row = frame.filter((frame["user_id"] == "u1") & (frame["item_id"] == "coffee-a"))
    assert row["reason"].to_list() == ["Buy it again: you order this about every 9 days"]
    assert row["strategy"].to_list() == ["buy_again"]


def test_exploration_slot_names_a_history_item_close_in_text():
    frame = _lists(ranker_favouring("popularity"), exploration=0.5, k=4)
    explored = frame.filter(frame["strategy"] == "explore_new")
    assert explored.height > 0 and set(explored["item_id"]) == {"jumper-new"}
    assert set(explored["rank"]) <= {2, 4}  # slots of share 0.5: every second position
    for user, item_id, reason in explored.select("user_id", "item_id", "reason").iter_rows():
        assert check_reason(user, item_id, reason) == "item" and "Candle" in reason


def test_structured_evidence_cites_history_items_and_the_items_own_category():
    moment = tiny_moment()
    model = build_model("itemknn", neighbours=None).fit(moment.data)
    explainer = Explainer(moment, model)
    cand = recall(moment, model, np.arange(3), per_source=7, new_item_days=14)
    for features in (("bought_with",), ("similar_text",), ("trending",)):
        ranker = ranker_favouring(*features)
        for row, user in enumerate(("u1", "u2", "u3")):
            items = np.flatnonzero(cand.recalled[row])
            for i, e in zip(items, explainer.explain(cand, row, items, ranker)):
                if e.cited_item is not None:
                    assert ITEMS[e.cited_item] in HISTORY[user]
                if e.cited_category is not None:
                    assert e.cited_category == CATEGORY[i]
