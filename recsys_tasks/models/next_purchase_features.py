"""Features of (user, candidate item) pairs at one cut-off, from the event sequences only: what the GBDT learns on.

A cut-off `shift` before the data's as_of sees only events older than the shift (their ages re-based to the
cut-off), so the same code builds training rows at past cut-offs (labels: the events of the next `horizon`) and the
serving rows at as_of (shift 0). Ages are days when the events have time stamps, else steps: the newest event of a
user is 1 step old, so shift 1 / horizon 1 holds out each user's last event (leave-one-out).
Candidates per user: every item of the user's history, then, among the items not in it, the top `n_related` of
each of: an EASE item-item model, what other shoppers took right after the user's last item, the items whose
text is closest to the last item's, and the never-sold items whose text is closest to the user's profile (new
items); plus the `n_popular` items most bought in the last 30 (days or steps).
Missing values (no history with an item, no text) are NaN, which the trees route themselves.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_tasks.models.ease import ease_weights

PAIR_FEATURES = ("in_history", "events", "decayed_30d", "decayed_90d", "last_age", "first_age", "cycle_days",
                 "last_over_cycle", "ease", "item_cosine", "ease_rank", "text_affinity", "after_last",
                 "after_second_last", "text_last")
USER_FEATURES = ("user_events", "user_last_age", "user_first_age", "user_gap_days", "user_distinct_items")
ITEM_FEATURES = ("sold_7d", "sold_30d", "sold_90d", "sold_all", "trend_7_30", "trend_7_90", "repeat_share",
                 "buyers", "item_age", "text_trend")
FEATURES = PAIR_FEATURES + USER_FEATURES + ITEM_FEATURES
SOURCES = ("ease", "next", "text", "new")  # where candidates beyond the user's own items come from


@dataclass
class Events:
    """Every timed event of a TrainingData, flattened: user row, item column, age in days at as_of."""
    users: np.ndarray  # (n,) int64
    items: np.ndarray  # (n,) int64
    ages: np.ndarray  # (n,) float64
    n_users: int
    n_items: int

    @classmethod
    def from_sequences(cls, sequences: list[np.ndarray], ages: list[np.ndarray] | None, n_items: int) -> "Events":
        """Flatten oldest-first sequences; without ages each event is as many steps old as its place from the end."""
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        users = np.repeat(np.arange(len(sequences), dtype=np.int64), lengths)
        items = np.concatenate([np.zeros(0, np.int64), *(np.asarray(s, dtype=np.int64) for s in sequences)])
        if ages is None:
            parts = (np.arange(n, 0, -1, dtype=np.float64) for n in lengths)
        else:
            parts = (np.asarray(a, dtype=np.float64) for a in ages)
        age = np.concatenate([np.zeros(0), *parts])
        return cls(users, items, age, len(sequences), n_items)

    def span_days(self) -> float:
        return float(self.ages.max(initial=0.0))


@dataclass
class PairRows:
    """Candidate pairs of one cut-off with their features (and labels at past cut-offs)."""
    users: np.ndarray  # (m,) int64 user rows
    items: np.ndarray  # (m,) int64 item columns
    features: np.ndarray  # (m, len(FEATURES)) float32
    labels: np.ndarray | None  # (m,) bool: bought in the horizon after the cut-off


def _item_counts(items: np.ndarray, n_items: int, weights=None) -> np.ndarray:
    return np.bincount(items, weights=weights, minlength=n_items).astype(np.float64)


def _item_features(i: np.ndarray, age: np.ndarray, hi: np.ndarray, pair_events: np.ndarray, n_items: int,
                   text: np.ndarray | None) -> tuple[dict, np.ndarray, np.ndarray]:
    """Items: sales by window, trend, how often buyers come back for them, age, likeness to what is rising."""
    sold = {d: _item_counts(i[age <= d], n_items) for d in (7, 30, 90)}
    sold_all = _item_counts(i, n_items)
    buyers = _item_counts(hi, n_items)
    repeat_share = _item_counts(hi, n_items, (pair_events > 1).astype(float)) / np.maximum(buyers, 1)
    item_age = np.full(n_items, np.nan)
    if len(i):
        oldest = pl.DataFrame({"i": i, "a": age}).group_by("i").agg(pl.col("a").max())
        item_age[oldest["i"].to_numpy()] = oldest["a"].to_numpy()
    trend = sold[7] / np.maximum(sold[30], 1)
    item_cols = [sold[7], sold[30], sold[90], sold_all, trend, sold[7] / np.maximum(sold[90], 1), repeat_share,
                 buyers, item_age]
    if text is not None:
        centre = (sold[7] * trend) @ text
        item_cols.append(text @ (centre / max(np.linalg.norm(centre), 1e-9)))
    else:
        item_cols.append(np.full(n_items, np.nan))
    return sold, sold_all, np.column_stack(item_cols)


def _user_features(u: np.ndarray, age: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
    """Users: how often and how lately they buy, how many distinct items."""
    user = (pl.DataFrame({"u": u, "a": age}).group_by("u")
            .agg(pl.len().alias("n"), pl.col("a").min().alias("last"), pl.col("a").max().alias("first")))
    user_features = np.full((history.shape[0], len(USER_FEATURES)), np.nan)
    ur = user["u"].to_numpy()
    n_u, last_u, first_u = (user[c].to_numpy().astype(float) for c in ("n", "last", "first"))
    user_features[ur, 0], user_features[ur, 1], user_features[ur, 2] = n_u, last_u, first_u
    user_features[ur, 3] = np.where(n_u > 1, (first_u - last_u) / np.maximum(n_u - 1, 1), np.nan)
    user_features[:, 4] = np.diff(history.indptr)
    return user_features


def _own_history(pairs: pl.DataFrame, hkey: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The user's own history with each candidate key (user * n_items + item); NaN where there is none."""
    at = np.searchsorted(hkey, key)
    if len(hkey):
        found = (at < len(hkey)) & (hkey[np.minimum(at, len(hkey) - 1)] == key)
    else:
        found = np.zeros(len(key), bool)
    own = np.full((len(key), 7), np.nan)
    src = at[found]
    n = pairs["n"].to_numpy().astype(float)[src]
    last, first = pairs["last"].to_numpy()[src], pairs["first"].to_numpy()[src]
    cycle = np.where(n > 1, (first - last) / np.maximum(n - 1, 1), np.nan)
    own[found] = np.column_stack([n, pairs["d30"].to_numpy()[src], pairs["d90"].to_numpy()[src], last, first,
                                  cycle, last / np.maximum(cycle, 1)])
    return found, own


def pair_rows(events: Events, shift: float, horizon: float | None, text: np.ndarray | None, *,
              n_related: int = 100, n_popular: int = 50, ease_lambda: float = 500.0, max_items: int = 20_000,
              sources: tuple[str, ...] = SOURCES, hidden: np.ndarray | None = None, new_pool: np.ndarray | None = None,
              chunk: int = 1024) -> PairRows:
    """Return the candidate pairs and features of the cut-off `shift` days before as_of (labels when horizon).

    hidden: (n_items,) bool, items treated as launched after the cut-off: their events before it are dropped (their
    later ones still label), so the rows show how a never-sold item with only its text is bought; only their rows
    are returned (the features of the others are not built).
    new_pool: (n_items,) bool, the items the "new" source may offer (default: every item not sold before the cut-off).
    """
    seen = events.ages > shift
    if hidden is not None:
        seen &= ~hidden[events.items]
    u, i, age = events.users[seen], events.items[seen], events.ages[seen] - shift
    n_users, n_items = events.n_users, events.n_items
    pairs = (pl.DataFrame({"u": u, "i": i, "a": age})
             .group_by("u", "i").agg(pl.len().alias("n"), (-pl.col("a") / 30).exp().sum().alias("d30"),
                                     (-pl.col("a") / 90).exp().sum().alias("d90"),
                                     pl.col("a").min().alias("last"), pl.col("a").max().alias("first"))
             .sort("u", "i"))
    hu, hi = pairs["u"].to_numpy().astype(np.int64), pairs["i"].to_numpy().astype(np.int64)
    history = sp.csr_matrix((np.ones(len(hu), np.float32), (hu, hi)), shape=(n_users, n_items))
    decayed = sp.csr_matrix((pairs["d90"].to_numpy().astype(np.float32), (hu, hi)), shape=(n_users, n_items))

    sold, sold_all, item_features = _item_features(i, age, hi, pairs["n"].to_numpy(), n_items, text)

    user_features = _user_features(u, age, history)

    # item-item models on the most sold items (EASE is O(items^2) memory)
    kept = np.sort(np.argsort(-sold_all, kind="stable")[:max_items])
    kept = kept[sold_all[kept] > 0]
    x = history[:, kept]
    gram = (x.T @ x).toarray().astype(np.float64)
    ease = ease_weights(gram, ease_lambda).astype(np.float32) if len(kept) else np.zeros((0, 0), np.float32)
    norms = np.sqrt(np.maximum(np.diag(gram), 1e-12))
    cosine = (gram / norms[:, None] / norms[None, :]).astype(np.float32)
    np.fill_diagonal(cosine, 0.0)
    popular = np.argsort(-sold[30], kind="stable")[:n_popular]
    popular = popular[sold[30][popular] > 0]
    # what shoppers take next: consecutive events of one user (the sequences are oldest first)
    same_user = u[1:] == u[:-1]
    after = sp.csr_matrix((np.ones(int(same_user.sum()), np.float32), (i[:-1][same_user], i[1:][same_user])),
                          shape=(n_items, n_items))
    after.sum_duplicates()
    ends = np.flatnonzero(np.r_[u[1:] != u[:-1], True]) if len(u) else np.zeros(0, np.int64)
    last_item = np.zeros(n_users, np.int64)
    second_last = np.zeros(n_users, np.int64)
    last_item[u[ends]] = i[ends]
    prev = np.maximum(ends - 1, 0)
    second_last[u[ends]] = np.where((ends > 0) & (u[prev] == u[ends]), i[prev], i[ends])
    never_sold = sold_all == 0 if new_pool is None else (sold_all == 0) & new_pool
    if text is not None:
        profile = decayed @ text
        profile /= np.maximum(np.linalg.norm(profile, axis=1, keepdims=True), 1e-9)

    blocks_u, blocks_i, blocks_pair = [], [], []
    active = np.flatnonzero(np.diff(history.indptr))
    for start in range(0, len(active), chunk):
        rows = active[start:start + chunk]
        xr = x[rows]
        e_scores = np.full((len(rows), n_items), np.nan, np.float32)
        c_scores = np.full((len(rows), n_items), np.nan, np.float32)
        e_scores[:, kept] = (xr @ ease) if len(kept) else 0.0
        c_scores[:, kept] = (xr @ cosine) if len(kept) else 0.0
        bought = history[rows].toarray() > 0
        unseen = np.where(bought | np.isnan(e_scores), -np.inf, e_scores)
        order = np.argsort(-unseen, axis=1, kind="stable")
        rank = np.empty(order.shape, np.float32)  # each item's place in its row's order (one sort, then a scatter)
        np.put_along_axis(rank, order, np.arange(order.shape[1], dtype=np.float32)[None, :], axis=1)
        next_scores = after[last_item[rows]].toarray()
        next2_scores = after[second_last[rows]].toarray()
        text_last = text[last_item[rows]] @ text.T if text is not None else None
        cand = bought.copy()
        n_rel = min(n_related, n_items)
        offered = {"ease": unseen, "next": np.where(next_scores > 0, next_scores, -np.inf), "text": text_last,
                   "new": (np.where(never_sold, profile[rows] @ text.T, -np.inf)
                           if text is not None and never_sold.any() else None)}
        for name in sources:
            source = offered[name]
            if n_rel and source is not None:
                source = np.where(bought, -np.inf, source)
                top = np.argpartition(-source, n_rel - 1, axis=1)[:, :n_rel]
                keep = np.isfinite(np.take_along_axis(source, top, axis=1)) | np.take_along_axis(cand, top, axis=1)
                np.put_along_axis(cand, top, keep, axis=1)
        cand[:, popular] = True
        if hidden is not None:
            cand &= hidden[None, :]
        cu, ci = np.nonzero(cand)
        cols = [e_scores[cu, ci], c_scores[cu, ci], np.where(bought[cu, ci], np.nan, rank[cu, ci])]
        if text is not None:
            cols.append(np.einsum("md,md->m", profile[rows[cu]], text[ci]))
        else:
            cols.append(np.full(len(cu), np.nan))
        cols += [next_scores[cu, ci], next2_scores[cu, ci],
                 text_last[cu, ci] if text_last is not None else np.full(len(cu), np.nan)]
        blocks_u.append(rows[cu])
        blocks_i.append(ci)
        blocks_pair.append(np.column_stack(cols))
    cu = np.concatenate(blocks_u) if blocks_u else np.zeros(0, np.int64)
    ci = np.concatenate(blocks_i) if blocks_i else np.zeros(0, np.int64)
    item_item = np.vstack(blocks_pair) if blocks_pair else np.zeros((0, 7))

    key = cu * n_items + ci
    found, own = _own_history(pairs, hu * n_items + hi, key)
    features = np.column_stack([found.astype(float), own, item_item, user_features[cu], item_features[ci]])

    labels = None
    if horizon is not None:
        window = (events.ages <= shift) & (events.ages > shift - horizon)
        target = np.unique(events.users[window] * n_items + events.items[window])
        labels = np.isin(key, target)
    return PairRows(cu, ci, features.astype(np.float32), labels)
