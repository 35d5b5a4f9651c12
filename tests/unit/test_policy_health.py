"""List-health metrics on hand-built lists."""
from __future__ import annotations

import numpy as np
import pytest

from recsys_tasks.policy.health import coverage, gini, health_metrics, intra_list_diversity, novelty


def test_gini_is_zero_for_even_exposure_and_near_one_for_one_item_everywhere():
    assert gini(np.asarray([5, 5, 5, 5])) == pytest.approx(0.0)
    assert gini(np.asarray([0, 0, 0, 12])) == pytest.approx(3 / 4)  # (n - 1) / n
    assert gini(np.asarray([1, 2, 3])) == pytest.approx(2 / 9)


def test_coverage_counts_listed_catalogue_items():
    catalogue = np.asarray([True, True, True, False])
    assert coverage([np.asarray([0, 1]), np.asarray([1, 3])], catalogue) == pytest.approx(2 / 3)


def test_intra_list_diversity_and_novelty():
    emb = np.asarray([[1, 0], [0, 1], [1, 0]], dtype=np.float32)
    assert intra_list_diversity([np.asarray([0, 1])], emb) == pytest.approx(1.0)
    assert intra_list_diversity([np.asarray([0, 2])], emb) == pytest.approx(0.0)
    reach = np.asarray([3.0, 0.0])  # of 3 users, everyone touched item 0, nobody item 1
    assert novelty([np.asarray([0, 1])], reach, 3) == pytest.approx((0 + 2) / 2)  # -log2(4/4), -log2(1/4)


def test_cold_share_and_exposure():
    emb = np.eye(3, dtype=np.float32)
    out = health_metrics([np.asarray([0, 2]), np.asarray([1, 2])], np.ones(3, bool), emb, np.asarray(["a", "a", "b"]),
                         np.ones(3), 10, is_new=np.asarray([False, False, True]))
    assert out["cold_share"] == pytest.approx(0.5) and out["cold_items_exposed"] == 1
    assert out["category_diversity"] == pytest.approx(1.0) and out["coverage"] == pytest.approx(1.0)
