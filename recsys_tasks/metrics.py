"""Ranking metrics of the offline protocols in EVALUATION.md.

Protocol B (top-k lists against a set of targets per user): recall_at_k, ndcg_at_k.
Protocol A (one target per user, full ranking): expected_rank, then hit_rate_at_k, ndcg_from_rank.
Per-user functions return one value per user so callers can average over any slice.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp


def _target_matrix(targets: sp.spmatrix | Sequence[Iterable[int]], n_rows: int, n_cols: int) -> sp.csr_matrix:
    if sp.issparse(targets):
        matrix = sp.csr_matrix(targets)
    else:
        lists = [np.unique(np.fromiter(t, dtype=np.int64)) for t in targets]
        rows = np.repeat(np.arange(len(lists)), [len(t) for t in lists])
        cols = np.concatenate(lists) if lists else np.zeros(0, dtype=np.int64)
        n_cols = max(n_cols, int(cols.max(initial=-1)) + 1)
        matrix = sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(lists), n_cols))
    if matrix.shape[0] != n_rows:
        raise ValueError(f"{matrix.shape[0]} target rows for {n_rows} ranked lists")
    matrix.eliminate_zeros()
    return matrix


def _hits(top_items: np.ndarray, targets) -> tuple[np.ndarray, np.ndarray]:
    """Return (n_users, k) bool hits and (n_users,) target counts; index -1 pads and never hits."""
    top_items = np.asarray(top_items, dtype=np.int64)
    n_cols = max(int(top_items.max(initial=-1)) + 1, 1)
    matrix = _target_matrix(targets, len(top_items), n_cols)
    width = max(matrix.shape[1], n_cols)
    coo = matrix.tocoo()
    target_keys = coo.row.astype(np.int64) * width + coo.col
    keys = np.arange(len(top_items))[:, None] * width + top_items
    hits = np.isin(keys, target_keys) & (top_items >= 0)
    return hits, np.diff(matrix.indptr)


def recall_at_k(top_items: np.ndarray, targets, k: int) -> np.ndarray:
    """Per user: hits in the first k items / min(k, number of targets); NaN for a user with no target."""
    hits, n_targets = _hits(np.asarray(top_items)[:, :k], targets)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_targets > 0, hits.sum(axis=1) / np.minimum(k, n_targets), np.nan)


def ndcg_at_k(top_items: np.ndarray, targets, k: int) -> np.ndarray:
    """Per user: binary-gain DCG@k over the ideal DCG of min(k, number of targets) hits; NaN without target."""
    hits, n_targets = _hits(np.asarray(top_items)[:, :k], targets)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discounts[: hits.shape[1]]).sum(axis=1)
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[np.minimum(k, n_targets)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_targets > 0, dcg / ideal, np.nan)


def expected_rank(scores: np.ndarray, targets: np.ndarray, exclude: sp.spmatrix | np.ndarray | None = None) -> np.ndarray:
    """Per user: 0-based rank of the target expected under random tie-breaking.

    rank = (items scored strictly higher) + (other items with an equal score) / 2, over the items not excluded.
    exclude (n_users, n_items), sparse or bool, removes items from the ranking; an excluded target ranks +inf.
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    rows = np.arange(len(targets))
    target_scores = scores[rows, targets].copy()
    removed = np.zeros(len(targets), dtype=bool)
    if exclude is not None:
        mask = exclude.toarray() != 0 if sp.issparse(exclude) else np.asarray(exclude, dtype=bool)
        removed = mask[rows, targets]
        scores = np.where(mask, np.nan, scores)  # NaN compares false: excluded items neither beat nor tie
    higher = (scores > target_scores[:, None]).sum(axis=1)
    equal = (scores == target_scores[:, None]).sum(axis=1) - 1
    return np.where(removed, np.inf, higher + equal / 2.0)


def hit_rate_at_k(ranks: np.ndarray, k: int = 10) -> np.ndarray:
    """Per user: 1 when the expected rank is below k."""
    return (np.asarray(ranks) < k).astype(np.float64)


def ndcg_from_rank(ranks: np.ndarray, k: int = 10) -> np.ndarray:
    """Per user: 1 / log2(rank + 2) when the expected rank is below k, else 0."""
    ranks = np.asarray(ranks, dtype=np.float64)
    inside = ranks < k
    return np.where(inside, 1.0 / np.log2(np.where(inside, ranks, 0.0) + 2.0), 0.0)
