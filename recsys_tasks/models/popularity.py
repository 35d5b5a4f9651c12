"""Popularity baselines: what is selling now, for everyone or for the user's segment."""
from __future__ import annotations

import numpy as np

from recsys_tasks.models.base import Evidence, Recommender, TrainingData, dense_rank


class Popularity(Recommender):
    """Most popular items over the recent window: the non-personalised baseline every model must beat.

    Scores (n_users, n_items) are recent_popularity (n_items,) repeated for every user.
    """

    name = "popularity"
    scale_limits = "popularity: O(n_items) memory and O(n_users x n_items) to score; no limit needed"

    def __init__(self) -> None:
        super().__init__()
        self.popularity: np.ndarray | None = None

    def get_params(self) -> dict:
        return {}

    def fit(self, data: TrainingData) -> "Popularity":
        self._remember_ids(data)
        self.popularity = data.recent_popularity.astype(np.float32)
        return self

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return np.tile(self.popularity, (len(np.atleast_1d(user_idx)), 1))

    def explain(self, user_idx: int, item_idx: np.ndarray) -> list[Evidence]:
        return [Evidence("popularity") for _ in np.atleast_1d(item_idx)]

    def _state(self) -> dict:
        return {"popularity": self.popularity}

    def _set_state(self, state: dict) -> None:
        self.popularity = state["popularity"].astype(np.float32)


class SegmentPopularity(Recommender):
    """Popularity within the user's segment (e.g. country), then overall recent popularity.

    Segment popularity (n_segments, n_items) sums the interaction weights of the segment's users; segments with
    fewer than min_users users, and unknown segments, fall back to the overall order.
    Scores are per-segment ranks of (segment popularity, recent popularity), exact in float32.
    """

    name = "segment_popularity"
    scale_limits = "segment_popularity: O(n_segments x n_items) memory; small segments fall back to overall"

    def __init__(self, min_users: int = 20) -> None:
        super().__init__()
        self.min_users = min_users  # int: a segment needs this many users to get its own list
        self.segments: np.ndarray | None = None  # (n_segments,) str; row 0 is the overall fallback ""
        self.segment_scores: np.ndarray | None = None  # (n_segments, n_items) float32
        self.user_segment_row: np.ndarray | None = None  # (n_users,) int64 row of segment_scores

    def get_params(self) -> dict:
        return {"min_users": self.min_users}

    def fit(self, data: TrainingData) -> "SegmentPopularity":
        self._remember_ids(data)
        overall = data.recent_popularity
        labels, inverse, sizes = np.unique(data.user_segment, return_inverse=True, return_counts=True)
        own = [s for s, label in enumerate(labels) if label != "" and sizes[s] >= self.min_users]
        self.segments = np.asarray([""] + [labels[s] for s in own], dtype=str)
        rows = np.zeros(data.n_users, dtype=np.int64)
        scores = [dense_rank(overall).astype(np.float32)]
        for row, s in enumerate(own, start=1):
            members = np.flatnonzero(inverse == s)
            rows[members] = row
            seg_pop = np.asarray(data.interactions[members].sum(axis=0)).ravel()
            scores.append(dense_rank(seg_pop, overall).astype(np.float32))
        self.segment_scores = np.vstack(scores)
        self.user_segment_row = rows
        return self

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return self.segment_scores[self.user_segment_row[np.atleast_1d(user_idx)]]

    def explain(self, user_idx: int, item_idx: np.ndarray) -> list[Evidence]:
        row = int(self.user_segment_row[user_idx])
        if row == 0:
            return [Evidence("popularity") for _ in np.atleast_1d(item_idx)]
        return [Evidence("segment_popularity", segment=str(self.segments[row])) for _ in np.atleast_1d(item_idx)]

    def _state(self) -> dict:
        return {
            "segments": self.segments,
            "segment_scores": self.segment_scores,
            "user_segment_row": self.user_segment_row,
        }

    def _set_state(self, state: dict) -> None:
        self.segments = state["segments"].astype(str)
        self.segment_scores = state["segment_scores"].astype(np.float32)
        self.user_segment_row = state["user_segment_row"].astype(np.int64)

