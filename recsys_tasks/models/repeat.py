"""'Buy it again': the user's own purchases first, then what is popular now."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys_tasks.models.base import Evidence, Recommender, TrainingData, dense_rank, overlay_rows


class Repeat(Recommender):
    """Re-order baseline for shops whose customers restock (wholesale, groceries).

    The user's bought items come first, ordered by purchase count, then recent popularity, then (use_recency)
    the most recently bought; every other item follows in recent-popularity order.
    Scores (n_users, n_items) float32 are dense ranks of those keys, so the order is exact in float32:
    other items score in [0, n_popularity_levels), bought items above all of them.
    """

    name = "repeat"
    scale_limits = "repeat: O(nnz(purchases)) memory; scoring is one dense row per user"

    def __init__(self, use_recency: bool = True) -> None:
        super().__init__()
        self.use_recency = use_recency  # bool: break (count, popularity) ties by the most recent purchase
        self.popularity_score: np.ndarray | None = None  # (n_items,) float32
        self.bought_score: sp.csr_matrix | None = None  # (n_users, n_items) float32 on bought items
        self.counts: sp.csr_matrix | None = None  # (n_users, n_items) purchase counts
        self.age_days: sp.csr_matrix | None = None  # (n_users, n_items) days since last purchase

    def get_params(self) -> dict:
        return {"use_recency": self.use_recency}

    def fit(self, data: TrainingData) -> "Repeat":
        self._remember_ids(data)
        popularity_rank = dense_rank(data.recent_popularity)
        self.popularity_score = popularity_rank.astype(np.float32)
        counts = data.purchases.copy()
        counts.eliminate_zeros()
        self.counts = counts
        ages = data.last_purchase_age_days
        if ages is None:
            ages = sp.csr_matrix(counts.shape, dtype=np.float32)
        self.age_days = ages
        coo = counts.tocoo()
        rows, cols = coo.row, coo.col
        keys = [coo.data, popularity_rank[cols]]
        if self.use_recency:
            keys.append(-np.asarray(ages[rows, cols]).ravel())
        offset = popularity_rank.max(initial=-1) + 1
        values = (offset + dense_rank(*keys)).astype(np.float32)
        self.bought_score = sp.csr_matrix((values, (rows, cols)), shape=counts.shape)
        return self

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return overlay_rows(self.popularity_score, self.bought_score, user_idx)

    def explain(self, user_idx: int, item_idx: np.ndarray) -> list[Evidence]:
        self._check_fitted()
        out = []
        for item in np.atleast_1d(item_idx):
            count = float(self.counts[user_idx, item])
            if count > 0:
                days = int(np.floor(float(self.age_days[user_idx, item])))
                out.append(Evidence("repeat", because_item=int(item), count=int(round(count)), days_since=days))
            else:
                out.append(Evidence("popularity"))
        return out

    def _state(self) -> dict:
        return {
            "popularity_score": self.popularity_score,
            "bought_score": self.bought_score,
            "counts": self.counts,
            "age_days": self.age_days,
        }

    def _set_state(self, state: dict) -> None:
        self.popularity_score = state["popularity_score"]
        self.bought_score = state["bought_score"]
        self.counts = state["counts"]
        self.age_days = state["age_days"]
