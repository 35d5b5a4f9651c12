"""Recall: each source offers its best items per user; every candidate gets every feature the ranker combines.

Sources: the served model's top-N, buy it again (with a re-purchase propensity from the user's cycles), behaviour
and text neighbours of the user's recent items, this week's trending items, popularity in the user's segment.
Features are dense (users, items) rows, so a chunk of users is scored with a few matrix operations.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recsys_tasks.models.topk import top_k
from recsys_tasks.policy.signals import Moment

# feature -> the source (evidence group) it speaks for; the ranker learns one weight per feature
FEATURES = {
    "served": "served",  # 1 / log2(rank + 2) in the served model's top-N, else 0
    "bought": "buy_again",  # 1 when the user bought the item before
    "purchase_days": "buy_again",  # log(1 + days the user bought it on)
    "propensity": "buy_again",  # chance of buying it again within 30 days, from the user's cycle
    "bought_lately": "buy_again",  # exp(-days since the last purchase / 30), 0 when never bought
    "item_repeat_share": "buy_again",  # share of the item's buyers who bought it on two or more days
    "interest": "viewed",  # log(1 + the user's recency-weighted interaction weight with the item)
    "bought_with": "bought_with",  # mean co-interaction cosine with the user's recent items
    "similar_text": "similar_text",  # mean text cosine with the user's recent items (top neighbours only)
    "trending": "trending",  # log(1 + events in the last 7 days), scaled to [0, 1]
    "segment_popularity": "segment_popularity",  # log(1 + popularity in the user's segment), scaled per segment
    "popularity": "popularity",  # log(1 + recent popularity), scaled to [0, 1]
    "new_item": "new_item",  # 1 when the item was first seen within new_item_days
    "user_activity": "user",  # log(1 + the user's (item, purchase day) pairs): how much the user buys at all
}
FEATURE_NAMES = tuple(FEATURES)
SOURCES = ("served", "buy_again", "viewed", "bought_with", "similar_text", "trending", "segment_popularity")


@dataclass
class Candidates:
    """Features of every (user, item) of a chunk and which pairs some source recalled."""

    users: np.ndarray  # (B,) user rows
    features: np.ndarray  # (n_features, B, n_items) float32, in FEATURE_NAMES order
    recalled: np.ndarray  # (B, n_items) bool
    source_hits: dict[str, int]  # source -> (user, item) pairs it recalled

    def feature(self, name: str) -> np.ndarray:
        return self.features[FEATURE_NAMES.index(name)]


def top_mask(scores: np.ndarray, n: int) -> np.ndarray:
    """Return a (B, n_items) mask of each row's n best positive scores."""
    mask = np.zeros(scores.shape, dtype=bool)
    n = min(n, scores.shape[1])
    if n <= 0:
        return mask
    idx = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    np.put_along_axis(mask, idx, True, axis=1)
    return mask & (scores > 0)


def _scaled_log(values: np.ndarray) -> np.ndarray:
    out = np.log1p(np.maximum(values, 0.0))
    top = out.max(initial=0.0)
    return (out / top if top > 0 else out).astype(np.float32)


def _lately(since_plus_one: np.ndarray) -> np.ndarray:
    """Return exp(-days since the last purchase / 30) from days + 1 (0 = never bought -> 0)."""
    return np.where(since_plus_one > 0, np.exp(-(since_plus_one - 1.0) / 30.0), 0.0).astype(np.float32)


def neighbour_scores(recent: sp.csr_matrix, similarity: sp.csr_matrix) -> np.ndarray:
    """Return (B, n_items) recency-weighted mean similarity of each item to the users' recent items."""
    weights = np.asarray(recent.sum(axis=1)).ravel()
    weights[weights == 0] = 1.0
    return np.asarray((sp.diags(1.0 / weights) @ recent @ similarity).todense(), dtype=np.float32)


def served_feature(model, users: np.ndarray, n: int, exclude: sp.csr_matrix | None, n_items: int) -> np.ndarray:
    """Return (B, n_items) 1 / log2(rank + 2) of the model's top-n (0 outside it)."""
    items, _ = top_k(model, users, n, exclude=exclude)
    out = np.zeros((len(users), n_items), dtype=np.float32)
    rank_value = (1.0 / np.log2(np.arange(items.shape[1]) + 2.0)).astype(np.float32)
    rows, cols = np.nonzero(items >= 0)
    out[rows, items[rows, cols]] = rank_value[cols]
    return out


def recall(moment: Moment, model, users: np.ndarray, per_source: int, new_item_days: int,
           exclude: sp.csr_matrix | None = None) -> Candidates:
    """Return the candidates and features of users (rows of moment.data) from every source."""
    data, cat = moment.data, moment.catalogue
    users = np.asarray(users, dtype=np.int64)
    n_items, b = data.n_items, len(users)
    dense = lambda m: np.asarray(m[users].todense(), dtype=np.float32)  # noqa: E731
    recent = moment.recent[users]
    feats = {
        "served": served_feature(model, users, per_source, exclude, n_items),
        "bought": (dense(moment.bought) > 0).astype(np.float32),
        "purchase_days": np.log1p(dense(moment.bought)),
        "propensity": dense(moment.propensity),
        "bought_lately": _lately(dense(moment.days_since_last)),
        "item_repeat_share": np.broadcast_to(moment.item_repeat_share, (b, n_items)),
        "interest": np.log1p(np.maximum(dense(data.interactions), 0.0)),
        "bought_with": neighbour_scores(recent, moment.behaviour),
        "similar_text": neighbour_scores(recent, moment.text),
        "trending": np.broadcast_to(_scaled_log(cat.events_7d), (b, n_items)),
        "segment_popularity": np.vstack([_scaled_log(moment.segment_scores[r])
                                         for r in moment.user_segment_row[users]]) if b else
        np.zeros((0, n_items), np.float32),
        "popularity": np.broadcast_to(_scaled_log(data.recent_popularity), (b, n_items)),
        "new_item": np.broadcast_to(cat.is_new(new_item_days).astype(np.float32), (b, n_items)),
        "user_activity": np.broadcast_to(np.log1p(np.asarray(moment.bought[users].sum(axis=1), np.float32)),
                                         (b, n_items)),
    }
    offered = {
        "served": feats["served"] > 0,
        "buy_again": feats["bought"] > 0,
        "viewed": feats["interest"] > 0,
        "bought_with": top_mask(feats["bought_with"], per_source),
        "similar_text": top_mask(feats["similar_text"], per_source),
        "trending": top_mask(np.asarray(feats["trending"]), per_source),
        "segment_popularity": top_mask(feats["segment_popularity"], per_source),
    }
    recalled = np.zeros((b, n_items), dtype=bool)
    for mask in offered.values():
        recalled |= mask
    if exclude is not None:
        recalled &= ~(np.asarray(exclude[users].todense()) > 0)
    features = np.stack([np.asarray(feats[f], dtype=np.float32) for f in FEATURE_NAMES])
    return Candidates(users, features, recalled, {s: int(m.sum()) for s, m in offered.items()})
