"""Metrics against values worked out by hand."""
import numpy as np
import pytest
import scipy.sparse as sp

from recsys_tasks.metrics import expected_rank, hit_rate_at_k, ndcg_at_k, ndcg_from_rank, recall_at_k

LOG2 = np.log2


@pytest.mark.parametrize(
    "top, targets, k, recall, ndcg",
    [
        # one hit at position 2 of 3, two targets: ideal list has two hits
        ([3, 1, 2, 0], {1, 5}, 3, 1 / 2, (1 / LOG2(3)) / (1 + 1 / LOG2(3))),
        # more targets than k: recall divides by k, ideal DCG has k hits
        ([0, 1], {0, 1, 2, 3}, 2, 1.0, 1.0),
        ([7, 0], {0, 1, 2}, 2, 1 / 2, (1 / LOG2(3)) / (1 + 1 / LOG2(3))),
        # a padding index never hits
        ([4, -1, -1], {4, 9}, 3, 1 / 2, 1 / (1 + 1 / LOG2(3))),
        ([5, 6, 7], {1}, 3, 0.0, 0.0),
    ],
)
def test_recall_and_ndcg_by_hand(top, targets, k, recall, ndcg):
    assert recall_at_k(np.array([top]), [targets], k)[0] == pytest.approx(recall)
    assert ndcg_at_k(np.array([top]), [targets], k)[0] == pytest.approx(ndcg)


def test_metrics_cut_longer_lists_at_k():
    top = np.array([[9, 8, 1]])
    assert recall_at_k(top, [{1}], 2)[0] == 0.0
    assert recall_at_k(top, [{1}], 3)[0] == 1.0


def test_user_without_targets_is_nan():
    top = np.array([[0, 1], [0, 1]])
    assert np.isnan(recall_at_k(top, [set(), {1}], 2)[0])
    assert np.isnan(ndcg_at_k(top, [set(), {1}], 2)[0])


def test_sparse_targets_equal_sets():
    top = np.array([[0, 2, 4], [1, 3, 0]])
    sets = [{2, 3}, {0}]
    matrix = sp.csr_matrix(np.array([[0, 0, 1, 1, 0], [1, 0, 0, 0, 0]]))
    np.testing.assert_allclose(recall_at_k(top, matrix, 3), recall_at_k(top, sets, 3))
    np.testing.assert_allclose(ndcg_at_k(top, matrix, 3), ndcg_at_k(top, sets, 3))


def test_expected_rank_counts_half_the_other_ties():
    scores = np.array([[0.5, 0.9, 0.5, 0.5, 0.1]])
    # one item strictly higher, two other items tied: 1 + 2/2
    assert expected_rank(scores, np.array([0]))[0] == 2.0
    assert expected_rank(scores, np.array([1]))[0] == 0.0
    assert expected_rank(scores, np.array([4]))[0] == 4.0


def test_masked_rank_removes_history_and_a_repeated_target_misses():
    scores = np.array([[0.5, 0.9, 0.5, 0.5, 0.1]])
    history = sp.csr_matrix(np.array([[0, 1, 1, 0, 0]]))
    assert expected_rank(scores, np.array([0]), history)[0] == 0.5  # 0.9 and one tie removed
    assert expected_rank(scores, np.array([2]), history)[0] == np.inf
    assert expected_rank(scores, np.array([0]), history.toarray() > 0)[0] == 0.5


def test_excluded_items_do_not_tie_with_an_unrankable_target():
    scores = np.array([[1.0, -np.inf, -np.inf, -np.inf]])
    history = sp.csr_matrix(np.array([[0, 0, 1, 1]]))
    assert expected_rank(scores, np.array([1]))[0] == 1 + 2 / 2
    assert expected_rank(scores, np.array([1]), history)[0] == 1.0


def test_hit_rate_and_ndcg_from_rank():
    ranks = np.array([0.0, 2.0, 9.5, 10.0, np.inf])
    np.testing.assert_allclose(hit_rate_at_k(ranks, 10), [1, 1, 1, 0, 0])
    np.testing.assert_allclose(ndcg_from_rank(ranks, 10), [1.0, 0.5, 1 / LOG2(11.5), 0.0, 0.0])
