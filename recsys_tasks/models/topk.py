"""Exact top-k per user over a model's dense scores, a chunk of users at a time."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys_tasks.models.base import Recommender

TIES = ("index", "numpy")  # "index": lower item index first (deterministic); "numpy": np.argsort's own order


def _top_rows(scores: np.ndarray, k: int, ties: str) -> np.ndarray:
    """Return (n_rows, min(k, n_items)) column indices, best first."""
    n_rows, n_items = scores.shape
    kk = min(k, n_items)
    if kk == 0:
        return np.zeros((n_rows, 0), dtype=np.int64)
    if ties == "numpy":
        # Mirrors a plain `np.argsort(-scores)`: its tie order depends on NumPy's sort kernel (SIMD on some CPUs).
        return np.argsort(-scores.astype(np.float64), axis=1)[:, :kk]
    if kk < n_items:
        kth = np.partition(scores, n_items - kk, axis=1)[:, n_items - kk][:, None]
        above = scores > kth
        at = scores == kth
        room = kk - above.sum(axis=1, keepdims=True)
        chosen = above | (at & (np.cumsum(at, axis=1) <= room))
        cols = np.nonzero(chosen)[1].reshape(n_rows, kk)
    else:
        cols = np.tile(np.arange(n_items), (n_rows, 1))
    values = np.take_along_axis(scores, cols, axis=1)
    # cols ascend within a row, so a stable sort leaves equal scores in item-index order
    return np.take_along_axis(cols, np.argsort(-values, axis=1, kind="stable"), axis=1)


def top_k(
    model: Recommender,
    user_idx: np.ndarray,
    k: int,
    exclude: sp.csr_matrix | None = None,
    chunk: int = 2048,
    ties: str = "index",
) -> tuple[np.ndarray, np.ndarray]:
    """Return the exact top-k item indices (int64) and scores (float32) per user, best first.

    exclude (n_users, n_items), indexed by user row like the model, removes its non-zero items. Items scoring
    -inf (or NaN) are never returned; rows without k finite items are padded with index -1 and score -inf.
    """
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, not {ties!r}")
    user_idx = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
    items = np.full((len(user_idx), k), -1, dtype=np.int64)
    values = np.full((len(user_idx), k), -np.inf, dtype=np.float32)
    for start in range(0, len(user_idx), chunk):
        users = user_idx[start : start + chunk]
        scores = np.array(model.score(users), dtype=np.float32, copy=True)
        scores[np.isnan(scores)] = -np.inf
        if exclude is not None:
            rows, cols = exclude[users].nonzero()
            scores[rows, cols] = -np.inf
        cols = _top_rows(scores, k, ties)
        top = np.take_along_axis(scores, cols, axis=1)
        cols = np.where(np.isneginf(top), -1, cols)
        width = cols.shape[1]
        items[start : start + len(users), :width] = cols
        values[start : start + len(users), :width] = top
    return items, values
