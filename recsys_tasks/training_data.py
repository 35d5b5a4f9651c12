"""Turn the staging tables into a models.TrainingData for one cut-off."""
from __future__ import annotations

from datetime import date, datetime

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_tasks.build import interaction_params
from recsys_tasks.config import Settings
from recsys_tasks.models.base import TrainingData
from recsys_tasks.warehouse import fetch_frame, first_row, sql


def target_event_type(con) -> str:
    """Return the event type that counts as success for this shop (purchase when it has purchases)."""
    row = first_row(con, sql("train/target_event_type"))
    return row[0] if row else "purchase"


def _matrix(frame: pl.DataFrame, column: str, users: dict, items: dict) -> sp.csr_matrix:
    rows = np.fromiter((users[u] for u in frame["user_id"]), dtype=np.int64, count=frame.height)
    cols = np.fromiter((items[i] for i in frame["item_id"]), dtype=np.int64, count=frame.height)
    values = frame[column].cast(pl.Float32).fill_null(0).to_numpy()
    m = sp.csr_matrix((values, (rows, cols)), shape=(len(users), len(items)), dtype=np.float32)
    m.eliminate_zeros()
    return m


def load_training_data(con, settings: Settings, table: str, until: datetime, as_of: date) -> TrainingData:
    """Build TrainingData from staging.<table> (interactions before `until`) and the catalogue known then."""
    inter = fetch_frame(con, 
        f"SELECT user_id, item_id, weight, n_purchases, n_ratings, "
        f"date_diff('day', last_purchase_ts, ?) AS last_purchase_age_days FROM staging.{table}", [until]
    )
    catalogue = fetch_frame(con, 
        "SELECT item_id FROM staging.items WHERE first_seen < CAST(? AS DATE) "
        "UNION SELECT DISTINCT item_id FROM staging.{t} ORDER BY item_id".replace("{t}", table), [until]
    )["item_id"].to_list()
    segments = fetch_frame(con, 
        f"SELECT s.user_id, s.segment FROM staging.user_segments AS s "
        f"WHERE s.user_id IN (SELECT user_id FROM staging.{table}) ORDER BY s.user_id"
    )
    users = segments["user_id"].to_list()
    user_index = {u: i for i, u in enumerate(users)}
    item_index = {i: j for j, i in enumerate(catalogue)}
    popularity = fetch_frame(con, sql("train/recent_popularity"),
                             {**interaction_params(settings, until), "days": settings.popularity_days})
    popularity = popularity.filter(pl.col("item_id").is_in(catalogue))
    recent = np.zeros(len(catalogue), dtype=np.float32)
    recent[[item_index[i] for i in popularity["item_id"]]] = popularity["popularity"].to_numpy()
    bought = inter.filter(pl.col("n_purchases") > 0)
    age = bought.with_columns((pl.col("last_purchase_age_days") + 1).alias("age_plus_one"))
    age_matrix = _matrix(age, "age_plus_one", user_index, item_index)
    age_matrix.data -= 1  # stored +1 so a purchase today (age 0) is not dropped as an explicit zero
    return TrainingData(
        users=users, items=catalogue,
        interactions=_matrix(inter, "weight", user_index, item_index),
        purchases=_matrix(inter, "n_purchases", user_index, item_index),
        last_purchase_age_days=age_matrix,
        recent_popularity=recent,
        user_segment=np.asarray(segments["segment"].to_list(), dtype=object),
        as_of=as_of,
    )


def seen_mask(con, table: str, data: TrainingData, event_type: str) -> sp.csr_matrix:
    """Return the user x item mask of what each user already did with the target event type (their history)."""
    column = {"purchase": "n_purchases", "rating": "n_ratings"}.get(event_type, "n_events")
    frame = fetch_frame(con, f"SELECT user_id, item_id, 1.0 AS seen FROM staging.{table} WHERE {column} > 0")
    users = {u: i for i, u in enumerate(data.users)}
    items = {i: j for j, i in enumerate(data.items)}
    frame = frame.filter(pl.col("user_id").is_in(data.users) & pl.col("item_id").is_in(data.items))
    return _matrix(frame, "seen", users, items)
