"""Everything the policy knows at one cut-off (the end of D to serve, the holdout start to learn), as arrays.

Items are indexed like data.items and users like data.users, so every source and rule works on dense rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_tasks.build import interaction_params
from recsys_tasks.config import Settings
from recsys_tasks.models.base import TrainingData
from recsys_tasks.policy.neighbours import as_matrix, behaviour_vectors, exact_neighbours, text_neighbours
from recsys_tasks.warehouse import fetch_frame, sql

HORIZON_DAYS = 30  # a re-purchase propensity is the chance of buying again within this many days
DEFAULT_CYCLE_DAYS = 60.0  # prior cycle when neither the user nor other buyers of the item have repeated


@dataclass
class Catalogue:
    """Per item (aligned with data.items): facts from the catalogue and recent demand."""

    titles: list[str]
    top_category: np.ndarray  # (n_items,) str
    brand: np.ndarray  # (n_items,) str, "" when none
    available: np.ndarray  # (n_items,) bool, as of D
    age_days: np.ndarray  # (n_items,) days between first seen and the cut-off
    min_age: np.ndarray  # (n_items,) int, 0 = unrestricted
    countries: list[frozenset | None]  # allowed countries (None = everywhere)
    blocked_countries: list[frozenset]
    events_7d: np.ndarray  # (n_items,) events in the 7 days before the cut-off
    reach: np.ndarray  # (n_items,) users who ever interacted before the cut-off
    embeddings: np.ndarray  # (n_items, d) L2-normalised text embeddings (zeros when unknown)

    def is_new(self, days: int) -> np.ndarray:
        """Return which items were first seen at most `days` days before the cut-off."""
        return self.age_days <= days


@dataclass
class Moment:
    """The inputs of every recall source at one cut-off."""

    data: TrainingData
    catalogue: Catalogue
    until: datetime
    recent: sp.csr_matrix  # (n_users, n_items) interaction weight of each user's last `recent_items` items
    bought: sp.csr_matrix  # (n_users, n_items) days with a purchase
    days_since_last: sp.csr_matrix  # (n_users, n_items) days since the last purchase, +1 (0 = never bought)
    own_cycle: sp.csr_matrix  # (n_users, n_items) the user's mean days between purchases of the item (>= 2 days)
    propensity: sp.csr_matrix  # (n_users, n_items) chance of buying a bought item again within HORIZON_DAYS
    item_repeat_share: np.ndarray  # (n_items,) share of the item's buyers who bought it on two or more days
    segment_scores: np.ndarray  # (n_segments, n_items) recent popularity within each segment
    user_segment_row: np.ndarray  # (n_users,) row of segment_scores
    behaviour: sp.csr_matrix  # (n_items, n_items) co-interaction cosine of the top neighbours
    text: sp.csr_matrix  # (n_items, n_items) text cosine of the top neighbours
    segments: list[str]  # segment name of each row of segment_scores
    text_search: str  # "exact" or "ivf"


def _align(frame: pl.DataFrame, items: list[str]) -> pl.DataFrame:
    """Return frame's rows in the order of items (missing items as nulls)."""
    return pl.DataFrame({"item_id": items}).join(frame, on="item_id", how="left", maintain_order="left")


def load_catalogue(con, settings: Settings, items: list[str], until: datetime, ds: date) -> Catalogue:
    """Return the catalogue facts of items before until (text embeddings from features.item_knowledge of ds)."""
    facts = _align(fetch_frame(con, sql("policy/item_signals"),
                               {"until": until, "restricted_min_age": settings.restricted_min_age}), items)
    emb = _align(fetch_frame(con, "SELECT item_id, text_embedding FROM features.item_knowledge WHERE ds = ?", [ds]),
                 items)
    dim = next((len(v) for v in emb["text_embedding"].to_list() if v is not None), 384)
    vectors = np.asarray([v if v is not None else [0.0] * dim for v in emb["text_embedding"].to_list()],
                         dtype=np.float32).reshape(len(items), dim)
    cut = until.date()
    first_seen = facts["first_seen"].to_list()
    return Catalogue(
        titles=[t if t else i for t, i in zip(facts["title"].to_list(), items)],
        top_category=np.asarray(facts["top_category"].fill_null("uncategorised").to_list(), dtype=object),
        brand=np.asarray(facts["brand"].fill_null("").to_list(), dtype=object),
        available=facts["available"].fill_null(True).to_numpy().astype(bool),
        age_days=np.asarray([(cut - f).days - 1 if f is not None else 10**6 for f in first_seen], dtype=np.int64),
        min_age=facts["min_age"].fill_null(0).to_numpy().astype(np.int64),
        countries=[frozenset(c) if c is not None else None for c in facts["countries"].to_list()],
        blocked_countries=[frozenset(c or ()) for c in facts["blocked_countries"].to_list()],
        events_7d=facts["events_7d"].fill_null(0).to_numpy().astype(np.float64),
        reach=facts["users"].fill_null(0).to_numpy().astype(np.float64),
        embeddings=vectors,
    )


def _sparse(frame: pl.DataFrame, column: str, users: dict, items: dict, shape) -> sp.csr_matrix:
    frame = frame.filter(pl.col("user_id").is_in(list(users)) & pl.col("item_id").is_in(list(items)))
    rows = np.fromiter((users[u] for u in frame["user_id"]), dtype=np.int64, count=frame.height)
    cols = np.fromiter((items[i] for i in frame["item_id"]), dtype=np.int64, count=frame.height)
    m = sp.csr_matrix((frame[column].cast(pl.Float64).to_numpy(), (rows, cols)), shape=shape)
    m.eliminate_zeros()
    return m


def repurchase_cycles(days: pl.DataFrame) -> pl.DataFrame:
    """Add each (user, item)'s cycle and re-purchase propensity to purchase_days rows.

    own cycle = (days since first - days since last) / (purchase days - 1), for two or more purchase days;
    the prior cycle is the median own cycle of the item's other repeat buyers (else DEFAULT_CYCLE_DAYS);
    rate = purchase days / (days since first + prior cycle), a Poisson rate shrunk towards the prior;
    propensity = 1 - exp(-rate x HORIZON_DAYS).
    """
    days = days.with_columns(
        pl.when(pl.col("purchase_days") >= 2)
        .then((pl.col("days_since_first") - pl.col("days_since_last")) / (pl.col("purchase_days") - 1))
        .alias("own_cycle"))
    days = days.with_columns(pl.when(pl.col("own_cycle") >= 1).then(pl.col("own_cycle")).alias("own_cycle"))
    prior = days.group_by("item_id").agg(pl.col("own_cycle").median().alias("item_cycle"))
    days = days.join(prior, on="item_id", how="left").with_columns(
        pl.col("item_cycle").fill_null(DEFAULT_CYCLE_DAYS).alias("prior_cycle"))
    rate = pl.col("purchase_days") / (pl.col("days_since_first") + pl.col("prior_cycle"))
    return days.with_columns((1.0 - (-rate * HORIZON_DAYS).exp()).alias("propensity")).drop("item_cycle")


def build_moment(data: TrainingData, catalogue: Catalogue, until: datetime, recent: pl.DataFrame,
                 purchase_days: pl.DataFrame, segment_popularity: pl.DataFrame, neighbour_k: int,
                 ann_min_items: int) -> Moment:
    """Return the moment of frames already read.

    recent: user_id, item_id, weight (each user's last items); purchase_days: user_id, item_id, purchase_days,
    days_since_first, days_since_last; segment_popularity: segment, item_id, popularity.
    """
    users = {u: i for i, u in enumerate(data.users)}
    items = {i: j for j, i in enumerate(data.items)}
    shape = (len(data.users), len(data.items))
    days = repurchase_cycles(purchase_days)
    repeat = days.group_by("item_id").agg((pl.col("purchase_days") >= 2).mean().alias("share"))
    names = sorted(set(data.user_segment.tolist()) | set(segment_popularity["segment"].to_list()))
    row = {s: r for r, s in enumerate(names)}
    seg = segment_popularity.filter(pl.col("item_id").is_in(data.items))
    seg_scores = np.zeros((len(names), len(data.items)), dtype=np.float32)
    seg_scores[[row[s] for s in seg["segment"]], [items[i] for i in seg["item_id"]]] = seg["popularity"].to_numpy()
    b_idx, b_score = exact_neighbours(behaviour_vectors(data.interactions), neighbour_k)
    t_idx, t_score, how = text_neighbours(catalogue.embeddings, neighbour_k, ann_min_items)
    return Moment(
        data=data, catalogue=catalogue, until=until,
        recent=_sparse(recent, "weight", users, items, shape),
        bought=_sparse(days, "purchase_days", users, items, shape),
        days_since_last=_sparse(days.with_columns(pl.col("days_since_last") + 1), "days_since_last", users, items,
                                shape),
        own_cycle=_sparse(days.filter(pl.col("own_cycle").is_not_null()), "own_cycle", users, items, shape),
        propensity=_sparse(days, "propensity", users, items, shape),
        item_repeat_share=_align(repeat, data.items)["share"].fill_null(0.0).to_numpy().astype(np.float32),
        segment_scores=seg_scores, user_segment_row=np.asarray([row[s] for s in data.user_segment], dtype=np.int64),
        behaviour=as_matrix(b_idx, b_score, len(data.items)), text=as_matrix(t_idx, t_score, len(data.items)),
        segments=names, text_search=how)


def load_moment(con, settings: Settings, data: TrainingData, table: str, until: datetime, ds: date) -> Moment:
    """Return the policy's inputs at the cut-off `until`, data being the interactions in staging.<table>."""
    assert table in ("interactions", "interactions_holdout")  # table names never come from users
    return build_moment(
        data, load_catalogue(con, settings, data.items, until, ds), until,
        recent=fetch_frame(con, sql("policy/recent_items").replace("{table}", table), {"n": settings.recent_items}),
        purchase_days=fetch_frame(con, sql("policy/purchase_days"), {"until": until}),
        segment_popularity=fetch_frame(con, sql("recommend/segment_popularity"),
                                       {**interaction_params(settings, until), "days": settings.popularity_days}),
        # recs.item_similar is cut from the same neighbour lists
        neighbour_k=max(settings.neighbour_k, settings.similar_k), ann_min_items=settings.ann_min_items)
