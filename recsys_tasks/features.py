"""Features: features.item_knowledge (what we know about each item) and features.user_profile (who each user is)."""
from __future__ import annotations

import logging
from datetime import date

import numpy as np
import polars as pl

from recsys_tasks import text_encoder
from recsys_tasks.config import Settings
from recsys_tasks.warehouse import fetch_frame, publish_day, registered, run, work_db

log = logging.getLogger(__name__)


def item_knowledge(settings: Settings, ds: date, run_id: str) -> dict:
    """Build features.item_knowledge for ds: attributes, popularity, trend, co-purchases and the MiniLM embedding."""
    with work_db(settings) as con:
        run(con, "features/basket_lines", ds=ds, window_days=settings.history_window_days)
        run(con, "features/item_knowledge", ds=ds, popularity_days=settings.popularity_days,
            new_days=settings.new_item_days)
        base = fetch_frame(con, "SELECT item_id, item_text FROM staging.item_knowledge_base ORDER BY item_id")
        texts = base["item_text"].fill_null("").to_list()
        emb, new = text_encoder.cached_embeddings(con, texts, batch_size=settings.encoder_batch_size)
        frame = pl.DataFrame({"item_id": base["item_id"], "text_hash": [text_encoder.text_hash(t) for t in texts],
                              "text_embedding": emb.tolist()},
                             schema={"item_id": pl.Utf8, "text_hash": pl.Utf8,
                                     "text_embedding": pl.Array(pl.Float32, text_encoder.DIM)})
        with registered(con, "item_embeddings", frame):
            con.execute("CREATE OR REPLACE TABLE staging.item_knowledge AS SELECT k.* EXCLUDE (item_text), "
                        "e.text_hash, e.text_embedding FROM staging.item_knowledge_base AS k "
                        "JOIN item_embeddings AS e USING (item_id) ORDER BY item_id")
        rows = publish_day(con, "features.item_knowledge", "staging.item_knowledge", ds)
    log.info("item_knowledge %s: %d items, %d texts newly encoded", ds, rows, new)
    return {"item_knowledge": rows, "texts_encoded": new}


def history_embeddings(histories: pl.DataFrame, items: pl.DataFrame, last_n: int) -> pl.DataFrame:
    """Average, recency-weighted, the text embeddings of each user's last_n distinct items (user_id, embedding)."""
    index = {item: i for i, item in enumerate(items["item_id"].to_list())}
    matrix = np.asarray(items["text_embedding"].to_list(), dtype=np.float32).reshape(len(index), -1)
    users, vectors = [], []
    for user, group in histories.sort(["user_id", "last_ts"], descending=[False, True]).group_by(
            "user_id", maintain_order=True):
        rows = [index[i] for i in group["item_id"].to_list()[:last_n] if i in index]
        if not rows:
            continue
        weights = 0.5 ** np.arange(len(rows), dtype=np.float32) ** 0.5  # the latest items speak loudest
        vec = (matrix[rows] * weights[:, None]).sum(0)
        users.append(user[0])
        vectors.append(vec / max(float(np.linalg.norm(vec)), 1e-9))
    dim = matrix.shape[1] if matrix.size else text_encoder.DIM
    return pl.DataFrame({"user_id": users, "history_embedding": [v.tolist() for v in vectors]},
                        schema={"user_id": pl.Utf8, "history_embedding": pl.Array(pl.Float32, dim)})


def user_profile(settings: Settings, ds: date, run_id: str) -> dict:
    """Build features.user_profile for ds: activity, RFM, affinities, segment and a history embedding."""
    with work_db(settings) as con:
        run(con, "features/user_profile", ds=ds)
        items = fetch_frame(con, "SELECT item_id, text_embedding FROM features.item_knowledge WHERE ds = ? "
                            "ORDER BY item_id", [ds])
        histories = fetch_frame(con, "SELECT user_id, item_id, last_ts FROM staging.interactions")
        emb = history_embeddings(histories, items, settings.history_embedding_items)
        with registered(con, "history_embeddings", emb):
            con.execute("CREATE OR REPLACE TABLE staging.user_profile AS SELECT p.*, h.history_embedding "
                        "FROM staging.user_profile_base AS p LEFT JOIN history_embeddings AS h USING (user_id) "
                        "ORDER BY user_id")
        rows = publish_day(con, "features.user_profile", "staging.user_profile", ds)
    log.info("user_profile %s: %d users", ds, rows)
    return {"user_profile": rows}
