"""Re-ranking: MMR trades relevance for diversity by its lambda, the brand cap holds, exploration slots are fixed."""
from __future__ import annotations

import numpy as np

from recsys_tasks.policy.rerank import exploration_slots, mmr

# items 0 and 1 are near-duplicates (same category, same text), 2 and 3 differ from them and each other
EMB = np.asarray([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
CATEGORY = np.asarray([0, 0, 1, 2])
POOL = np.asarray([[0, 1, 2, 3]])
RELEVANCE = np.asarray([[1.0, 0.95, 0.7, 0.6]])


def test_lambda_one_keeps_the_ranker_order():
    picked = mmr(RELEVANCE, POOL, EMB, CATEGORY, np.full(4, -1), 4, lam=1.0, category_weight=0.5, max_per_brand=0)
    assert picked.tolist() == [[0, 1, 2, 3]]


def test_lower_lambda_moves_the_near_duplicate_down():
    picked = mmr(RELEVANCE, POOL, EMB, CATEGORY, np.full(4, -1), 4, lam=0.6, category_weight=0.5, max_per_brand=0)
    assert picked[0, 0] == 0 and picked[0, 1] == 2 and picked[0].tolist().index(1) == 3


def test_category_weight_zero_uses_text_only():
    emb = np.eye(4, dtype=np.float32)  # every text differs; only the categories of 0 and 1 agree
    text_only = mmr(RELEVANCE, POOL, emb, CATEGORY, np.full(4, -1), 4, lam=0.6, category_weight=0.0, max_per_brand=0)
    with_category = mmr(RELEVANCE, POOL, emb, CATEGORY, np.full(4, -1), 4, lam=0.6, category_weight=1.0,
                        max_per_brand=0)
    assert text_only.tolist() == [[0, 1, 2, 3]] and with_category[0, 1] == 2


def test_brand_cap_holds_and_items_without_brand_are_never_capped():
    brand = np.asarray([7, 7, 7, -1])
    pool = np.asarray([[0, 1, 2, 3]])
    picked = mmr(RELEVANCE, pool, EMB, CATEGORY, brand, 4, lam=1.0, category_weight=0.5, max_per_brand=1)
    assert picked.tolist() == [[0, 3, -1, -1]]  # one item of brand 7, then the unbranded one; the pool runs out


def test_unusable_pool_slots_are_never_picked():
    relevance = np.asarray([[1.0, -np.inf, 0.5, -np.inf]])
    for lam in (1.0, 0.7):
        picked = mmr(relevance, POOL, EMB, CATEGORY, np.full(4, -1), 4, lam=lam, category_weight=0.5, max_per_brand=0)
        assert picked.tolist() == [[0, 2, -1, -1]]


def test_exploration_slots_are_every_one_over_share_slots():
    assert exploration_slots(50, 0.05) == [19, 39]
    assert exploration_slots(20, 0.1) == [9, 19]
    assert exploration_slots(10, 0.05) == [] and exploration_slots(50, 0.0) == []
