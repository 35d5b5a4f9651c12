"""Exact top-k per user over a model's dense scores, a chunk of users at a time.

A model that scores in torch (`score_tensor`, the language-model models) has its top-k taken by torch where its
scores lie, on the GPU when it scores there, so only the k best of each row come back to the host; other models'
NumPy scores are selected with NumPy (the baselines' tasks never import torch). Both select with a partial sort and
take the exact path below only for the rows where equal scores straddle the k-th place.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys_tasks.models.base import Recommender

TIES = ("index", "numpy")  # "index": lower item index first (deterministic); "numpy": np.argsort's own order
CHUNK_BYTES = 256 * 2**20  # at most this much float32 score matrix per chunk, whatever the catalogue's size


def _top_rows(scores: np.ndarray, k: int, ties: str) -> np.ndarray:
    """Return (n_rows, min(k, n_items)) column indices, best first (the exact path, for any ties)."""
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
    return _best_first(scores, cols)


def _best_first(scores: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Order each row's chosen columns by score, equal scores by item index."""
    cols = np.sort(cols, axis=1)
    values = np.take_along_axis(scores, cols, axis=1)
    return np.take_along_axis(cols, np.argsort(-values, axis=1, kind="stable"), axis=1)


def _top_rows_partial(scores: np.ndarray, k: int) -> np.ndarray:
    """_top_rows(scores, k, "index") through one partial sort for the k + 1 best of each row.

    The k best are the only answer when the (k + 1)-th scores below the k-th; the rows where the two are equal
    (ties across the cut, rows with fewer than k finite scores) go through the exact path.
    """
    n_rows, n_items = scores.shape
    kk = min(k, n_items)
    if kk == 0 or kk == n_items:
        return _top_rows(scores, k, "index")
    part = np.argpartition(scores, n_items - kk - 1, axis=1)
    cols = part[:, n_items - kk:]
    kth = np.take_along_axis(scores, cols, axis=1).min(axis=1)
    tied = np.take_along_axis(scores, part[:, n_items - kk - 1:n_items - kk], axis=1)[:, 0] == kth
    cols = _best_first(scores, cols)
    if tied.any():
        cols[tied] = _top_rows(scores[tied], k, "index")
    return cols


def _top_rows_torch(scores, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The same selection on a torch tensor, where it lies; return host (indices, values), best first."""
    import torch

    n_rows, n_items = scores.shape
    kk = min(k, n_items)
    if kk == 0:
        return np.zeros((n_rows, 0), dtype=np.int64), np.zeros((n_rows, 0), dtype=np.float32)
    values, cols = torch.topk(scores, min(kk + 1, n_items), dim=1)
    nan = torch.isnan(values).any(dim=1)  # topk ranks NaN first: only these rows need NaN made -inf (a full pass)
    if nan.any():
        rows = torch.nonzero(nan)[:, 0]
        scores[rows] = torch.nan_to_num(scores[rows], nan=float("-inf"), posinf=float("inf"), neginf=float("-inf"))
        values[rows], cols[rows] = torch.topk(scores[rows], min(kk + 1, n_items), dim=1)
    tied = values[:, kk - 1] == values[:, kk] if kk < n_items else torch.zeros(n_rows, dtype=torch.bool)
    cols, _ = torch.sort(cols[:, :kk], dim=1)
    values = torch.gather(scores, 1, cols)
    order = torch.sort(-values, dim=1, stable=True).indices
    cols = torch.gather(cols, 1, order).cpu().numpy()
    values = torch.gather(values, 1, order).cpu().numpy()
    tied = tied.cpu().numpy()
    if tied.any():
        rows = scores[torch.as_tensor(np.flatnonzero(tied), device=scores.device)].cpu().numpy()
        cols[tied] = _top_rows(rows, k, "index")
        values[tied] = np.take_along_axis(rows, cols[tied], axis=1)
    return cols, values


def _chunk_rows(model: Recommender, chunk: int) -> int:
    """Return the users per chunk: `chunk`, fewer where a chunk's scores would pass CHUNK_BYTES."""
    items = getattr(model, "items", None)
    if not items:
        return chunk
    return max(1, min(chunk, CHUNK_BYTES // (4 * len(items))))


def _score_chunk(model: Recommender, users: np.ndarray, k: int, exclude: sp.csr_matrix | None,
                 ties: str) -> tuple[np.ndarray, np.ndarray]:
    """Return one chunk's (indices, scores), best first, width min(k, n_items); -inf where nothing finite is left."""
    rows, cols = exclude[users].nonzero() if exclude is not None else (None, None)
    if ties == "index" and hasattr(model, "score_tensor"):
        import torch

        scores = model.score_tensor(users)
        if rows is not None:
            scores[torch.as_tensor(rows, device=scores.device), torch.as_tensor(cols, device=scores.device)] = -np.inf
        return _top_rows_torch(scores, k)
    scores = np.array(model.score(users), dtype=np.float32, copy=True)
    scores[np.isnan(scores)] = -np.inf
    if rows is not None:
        scores[rows, cols] = -np.inf
    top = _top_rows_partial(scores, k) if ties == "index" else _top_rows(scores, k, ties)
    return top, np.take_along_axis(scores, top, axis=1)


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
    step = _chunk_rows(model, chunk)
    for start in range(0, len(user_idx), step):
        users = user_idx[start : start + step]
        cols, top = _score_chunk(model, users, k, exclude, ties)
        cols = np.where(np.isneginf(top), -1, cols)
        width = cols.shape[1]
        items[start : start + len(users), :width] = cols
        values[start : start + len(users), :width] = top
    return items, values
