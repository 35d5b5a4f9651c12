"""Recommend: every known user's top-K with reasons, lists for unknown users, and item-to-item neighbours."""
from __future__ import annotations

import logging
from datetime import date

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_tasks.build import end_of, interaction_params
from recsys_tasks.config import Settings
from recsys_tasks.models import load_model
from recsys_tasks.models.topk import top_k
from recsys_tasks.reasons import reason_text
from recsys_tasks.training import served_choice, served_model_path
from recsys_tasks.training_data import load_training_data, seen_mask
from recsys_tasks.warehouse import fetch_frame, publish_day, sql, work_db

log = logging.getLogger(__name__)

VARIANT = "control"  # A/B variants come with the recommendation policy
MIN_SEGMENT_USERS = 5  # a segment needs this many active users to get a list of its own


def popularity_order(popularity: np.ndarray) -> np.ndarray:
    """Return item indices by decreasing popularity (ties: item order)."""
    return np.lexsort((np.arange(len(popularity)), -popularity))


def user_lists(model, data, ds: date, k: int, exclude, unavailable: np.ndarray, titles: list[str],
               bought, model_label: str, chunk: int = 1024) -> pl.DataFrame:
    """Return recs rows for every user in data: k distinct available items, padded from popularity."""
    fallback = [i for i in popularity_order(data.recent_popularity) if not unavailable[i]]
    rows: dict[str, list] = {c: [] for c in ("user_id", "rank", "item_id", "score", "strategy", "reason")}
    ask = k + int(unavailable.sum())
    for start in range(0, len(data.users), chunk):
        users = np.arange(start, min(start + chunk, len(data.users)))
        items, scores = top_k(model, users, min(ask, len(data.items)), exclude=exclude)
        for row, u in enumerate(users):
            picked = [(i, s) for i, s in zip(items[row], scores[row]) if i >= 0 and not unavailable[i]][:k]
            chosen = {i for i, _ in picked}
            evidence = model.explain(int(u), np.asarray([i for i, _ in picked], dtype=np.int64)) if picked else []
            reasons = [reason_text(e, titles, bought[u]) for e in evidence]
            strategies = [e.strategy for e in evidence]
            seen = set(exclude[u].indices) if exclude is not None else set()
            for i in fallback:
                if len(picked) >= k:
                    break
                if i not in chosen and i not in seen:
                    picked.append((i, float("nan")))
                    chosen.add(i)
                    strategies.append("popularity_fill")
                    reasons.append("Popular with shoppers right now")
            user = data.users[u]
            for rank, ((i, s), strategy, reason) in enumerate(zip(picked, strategies, reasons), start=1):
                rows["user_id"].append(user)
                rows["rank"].append(rank)
                rows["item_id"].append(data.items[i])
                rows["score"].append(float(s) if np.isfinite(s) else None)
                rows["strategy"].append(strategy)
                rows["reason"].append(reason)
    frame = pl.DataFrame(rows, schema={"user_id": pl.Utf8, "rank": pl.Int32, "item_id": pl.Utf8,
                                       "score": pl.Float64, "strategy": pl.Utf8, "reason": pl.Utf8})
    return frame.with_columns(pl.lit(ds).alias("ds"), pl.lit(model_label).alias("model"),
                              pl.lit(VARIANT).alias("variant"))


def default_lists(con, settings: Settings, data, ds: date, unavailable: np.ndarray) -> pl.DataFrame:
    """Return lists for users we do not know: overall and per-segment recent popularity."""
    frames = []
    available = [i for i in popularity_order(data.recent_popularity) if not unavailable[i]][:settings.top_k]
    frames.append(pl.DataFrame({
        "segment": "all", "rank": list(range(1, len(available) + 1)),
        "item_id": [data.items[i] for i in available],
        "score": [float(data.recent_popularity[i]) for i in available],
        "strategy": "popularity", "reason": "Popular with shoppers right now"}))
    seg = fetch_frame(con, sql("recommend/segment_popularity"),
                      {**interaction_params(settings, end_of(ds)), "days": settings.popularity_days})
    gone = {data.items[i] for i in np.flatnonzero(unavailable)}
    seg = seg.filter(~pl.col("item_id").is_in(list(gone)) & pl.col("item_id").is_in(data.items))
    active = seg.group_by("segment").agg(pl.col("users").max().alias("n")).filter(pl.col("n") >= MIN_SEGMENT_USERS)
    seg = (seg.filter(pl.col("segment").is_in(active["segment"]) & (pl.col("segment") != "unknown"))
              .sort(["segment", "popularity", "item_id"], descending=[False, True, False])
              .with_columns(pl.int_range(1, pl.len() + 1).over("segment").alias("rank"))
              .filter(pl.col("rank") <= settings.top_k))
    frames.append(seg.select(
        "segment", "rank", "item_id", pl.col("popularity").cast(pl.Float64).alias("score"),
        pl.lit("segment_popularity").alias("strategy"),
        pl.format("Popular with shoppers in {}", pl.col("segment")).alias("reason")))
    out = pl.concat([f.with_columns(pl.col("rank").cast(pl.Int32), pl.col("score").cast(pl.Float64))
                     for f in frames], how="vertical_relaxed")
    return out.with_columns(pl.lit(ds).alias("ds")).select("ds", "segment", "rank", "item_id", "score",
                                                           "strategy", "reason")


def _top_neighbours(sim: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    k = min(k, sim.shape[1])
    idx = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    part = np.take_along_axis(sim, idx, axis=1)
    order = np.lexsort((idx, -part), axis=1)
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(part, order, axis=1)


def similar_items(items: list[str], vectors: np.ndarray, kind: str, k: int, ds: date,
                  chunk: int = 2048) -> pl.DataFrame:
    """Return each item's k nearest other items by cosine of the given (L2-normalised) vectors."""
    out = {"item_id": [], "rank": [], "similar_item_id": [], "score": []}
    n = len(items)
    for start in range(0, n, chunk):
        block = vectors[start:start + chunk]
        sim = block @ vectors.T
        sim = np.asarray(sim.todense()) if sp.issparse(sim) else sim
        sim[np.arange(len(sim)), np.arange(start, start + len(sim))] = -np.inf  # an item is not its own neighbour
        idx, score = _top_neighbours(sim, k)
        for r in range(len(sim)):
            keep = np.isfinite(score[r]) & (score[r] > 0)
            out["item_id"] += [items[start + r]] * int(keep.sum())
            out["rank"] += list(range(1, int(keep.sum()) + 1))
            out["similar_item_id"] += [items[j] for j in idx[r][keep]]
            out["score"] += score[r][keep].astype(float).tolist()
    frame = pl.DataFrame(out, schema={"item_id": pl.Utf8, "rank": pl.Int32, "similar_item_id": pl.Utf8,
                                      "score": pl.Float64})
    return frame.with_columns(pl.lit(ds).alias("ds"), pl.lit(kind).alias("kind")).select(
        "ds", "item_id", "kind", "rank", "similar_item_id", "score")


def behaviour_vectors(data) -> sp.csr_matrix:
    """Return items' L2-normalised binary user vectors (items x users): cosine = co-interaction similarity."""
    binary = (data.interactions > 0).astype(np.float32).T.tocsr()
    norms = np.sqrt(np.asarray(binary.multiply(binary).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.diags(1.0 / norms).dot(binary).tocsr()


def recommend(settings: Settings, ds: date, run_id: str) -> dict:
    """Write recs.user_topk, recs.default_topk and recs.item_similar for ds."""
    choice = served_choice(settings, ds)
    model = load_model(served_model_path(settings, ds))
    with work_db(settings) as con:
        data = load_training_data(con, settings, "interactions", end_of(ds), ds)
        catalogue = fetch_frame(con, "SELECT item_id, title, available, text_embedding FROM features.item_knowledge "
                                "WHERE ds = ?", [ds])
        known = dict(zip(catalogue["item_id"].to_list(), range(catalogue.height)))
        titles = [catalogue["title"][known[i]] if i in known else i for i in data.items]
        unavailable = np.asarray([i in known and catalogue["available"][known[i]] is False for i in data.items])
        event_type = choice.get("target_event_type", "purchase")
        history = seen_mask(con, "interactions", data, event_type)
        bought = seen_mask(con, "interactions", data, "purchase")
        # shops whose customers re-order keep past purchases in the lists; review-style data never repeats
        exclude = None if event_type == "purchase" else history
        label = f"{choice['served_model']}@{ds.isoformat()}"
        user_topk = user_lists(model, data, ds, settings.top_k, exclude, unavailable, titles, bought, label)
        default_topk = default_lists(con, settings, data, ds, unavailable)
        embeddings = np.asarray(catalogue["text_embedding"].to_list(), dtype=np.float32)
        similar = pl.concat([
            similar_items(data.items, behaviour_vectors(data), "behaviour", settings.similar_k, ds),
            similar_items(catalogue["item_id"].to_list(), embeddings, "text", settings.similar_k, ds),
        ])
        counts = {}
        for table, frame in (("user_topk", user_topk), ("default_topk", default_topk), ("item_similar", similar)):
            con.register("new_rows", frame.to_arrow())
            con.execute(f"CREATE OR REPLACE TABLE staging.{table} AS SELECT * FROM new_rows")
            con.unregister("new_rows")
            counts[table] = publish_day(con, f"recs.{table}", f"staging.{table}", ds)
    log.info("recommend %s: %s", ds, counts)
    return counts
