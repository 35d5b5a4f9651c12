"""Turn the staging tables into a models.TrainingData for one cut-off."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_tasks.build import interaction_params
from recsys_tasks.config import Settings
from recsys_tasks.models.base import TrainingData
from recsys_tasks.models.sequences import TimedTrainingData
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


def user_sequences(con, until: datetime, users: list[str], items: list[str]
                   ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Return each user's item indices before `until`, oldest first, and their ages in days at `until`."""
    frame = fetch_frame(con, sql("train/user_sequences"), {"until": until})
    user_index = {u: i for i, u in enumerate(users)}
    item_index = {i: j for j, i in enumerate(items)}
    frame = frame.filter(pl.col("user_id").is_in(users) & pl.col("item_id").is_in(items))
    rows = np.fromiter((user_index[u] for u in frame["user_id"]), dtype=np.int64, count=frame.height)
    cols = np.fromiter((item_index[i] for i in frame["item_id"]), dtype=np.int64, count=frame.height)
    # the SQL orders by user then time; a stable sort by row keeps the time order inside each user
    order = np.argsort(rows, kind="stable")
    rows, cols = rows[order], cols[order]
    ages = frame["age_days"].cast(pl.Float32).to_numpy()[order]
    bounds = np.searchsorted(rows, np.arange(len(users) + 1))
    return ([cols[bounds[u]:bounds[u + 1]] for u in range(len(users))],
            [ages[bounds[u]:bounds[u + 1]] for u in range(len(users))])


@dataclass
class ItemInputs:
    """The item tower's inputs in catalogue order: base text embedding, texts to (re-)encode, attributes."""
    text_embedding: np.ndarray | None  # (n_items, 384) float32; zeros for an item without knowledge
    texts: list[str]  # title. brand. category. description. price band
    attributes: dict[str, np.ndarray]  # category, top_category, brand, price_band (str); image_embedding (n, d)


def item_inputs(con, ds: date, items: list[str]) -> ItemInputs:
    """Return what features.item_knowledge of ds says about each item (empty inputs when it has no rows)."""
    exists = first_row(con, "SELECT count(*) FROM information_schema.tables "
                            "WHERE table_schema = 'features' AND table_name = 'item_knowledge'")[0]
    frame = fetch_frame(con, sql("train/item_inputs"), {"ds": ds}) if exists else pl.DataFrame()
    if frame.height == 0:
        return ItemInputs(None, list(items), {})
    at = {i: j for j, i in enumerate(frame["item_id"].to_list())}
    rows = np.asarray([at.get(i, -1) for i in items], dtype=np.int64)
    found = rows >= 0

    def column(name: str, missing="") -> np.ndarray:
        values = np.asarray(frame[name].cast(pl.Utf8).fill_null(missing).to_list(), dtype=object)
        out = np.full(len(items), missing, dtype=object)
        out[found] = values[rows[found]]
        return out

    base = np.asarray(frame["text_embedding"].to_list(), dtype=np.float32)
    embedding = np.zeros((len(items), base.shape[1]), dtype=np.float32)
    embedding[found] = base[rows[found]]
    texts = [t if t else i for t, i in zip(column("item_text"), items)]
    attributes = {name: column(name) for name in ("category", "top_category", "brand", "price_band")}
    images = frame["image_embedding"].to_list()
    sizes = [len(v) for v in images if v is not None and len(v)]
    if sizes:
        dim = max(set(sizes), key=sizes.count)
        matrix = np.zeros((len(items), dim), dtype=np.float32)
        for item, row in enumerate(rows):
            vector = images[row] if row >= 0 else None
            if vector is not None and len(vector) == dim:
                matrix[item] = np.asarray(vector, dtype=np.float32)
        attributes["image_embedding"] = matrix
    return ItemInputs(embedding, texts, attributes)


def load_training_data(con, settings: Settings, table: str, until: datetime, as_of: date) -> TrainingData:
    """Build TrainingData from staging.<table> (interactions before `until`) and the catalogue known then."""
    inter = fetch_frame(con, 
        f"SELECT user_id, item_id, weight, n_purchases, n_ratings, "
        f"date_diff('day', last_purchase_ts, ?) AS last_purchase_age_days FROM staging.{table}", [until]
    )
    listed = fetch_frame(con, sql("train/catalogue").replace("{interactions}", table),
                         {"until": until, "as_of": as_of})
    catalogue = listed["item_id"].to_list()
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
    inputs = item_inputs(con, as_of, catalogue)
    sequences, ages = user_sequences(con, until, users, catalogue)
    first_seen_days = listed["listed_days"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    return TimedTrainingData(
        users=users, items=catalogue,
        interactions=_matrix(inter, "weight", user_index, item_index),
        purchases=_matrix(inter, "n_purchases", user_index, item_index),
        last_purchase_age_days=age_matrix,
        recent_popularity=recent,
        user_segment=np.asarray(segments["segment"].to_list(), dtype=object),
        as_of=as_of,
        item_text_embedding=inputs.text_embedding,
        item_attributes=inputs.attributes,
        user_sequences=sequences,
        user_sequence_ages=ages,
        item_first_seen_days=first_seen_days,
    )


def seen_mask(con, table: str, data: TrainingData, event_type: str) -> sp.csr_matrix:
    """Return the user x item mask of what each user already did with the target event type (their history)."""
    column = {"purchase": "n_purchases", "rating": "n_ratings"}.get(event_type, "n_events")
    frame = fetch_frame(con, f"SELECT user_id, item_id, 1.0 AS seen FROM staging.{table} WHERE {column} > 0")
    users = {u: i for i, u in enumerate(data.users)}
    items = {i: j for j, i in enumerate(data.items)}
    frame = frame.filter(pl.col("user_id").is_in(data.users) & pl.col("item_id").is_in(data.items))
    return _matrix(frame, "seen", users, items)
