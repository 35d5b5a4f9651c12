"""Lists for shoppers we do not know yet: overall, per segment (country) and per visit context (device)."""
from __future__ import annotations

from datetime import date, datetime

import numpy as np
import polars as pl

from recsys_tasks import reasons
from recsys_tasks.build import interaction_params
from recsys_tasks.config import Settings
from recsys_tasks.policy.rules import RuleBook
from recsys_tasks.policy.signals import Moment
from recsys_tasks.warehouse import fetch_frame, sql

MIN_SEGMENT_USERS = 5  # a segment or context needs this many active users to get a list of its own


def _ranked(segment: str, scores: np.ndarray, allowed: np.ndarray, items: list[str], k: int,
            strategy: str, reason: str, floor: float = 0.0) -> pl.DataFrame:
    """Return one list: the k allowed items scoring above floor, best first (ties: item order)."""
    score = np.where(allowed, scores, -np.inf)
    order = [int(i) for i in np.lexsort((np.arange(len(score)), -score))[:k] if score[i] > floor]
    return pl.DataFrame({"segment": segment, "rank": list(range(1, len(order) + 1)),
                         "item_id": [items[i] for i in order], "score": [float(score[i]) for i in order],
                         "strategy": strategy, "reason": reason},
                        schema={"segment": pl.Utf8, "rank": pl.Int32, "item_id": pl.Utf8, "score": pl.Float64,
                                "strategy": pl.Utf8, "reason": pl.Utf8})


def default_lists(con, settings: Settings, moment: Moment, rules: RuleBook, ds: date, until: datetime) -> pl.DataFrame:
    """Return recs.default_topk rows: 'all', each active segment, and 'device:<d>' contexts, rules applied."""
    data, k = moment.data, settings.top_k
    frames = [_ranked("all", data.recent_popularity, rules.allowed_for_segment(None), data.items, k,
                      "popularity", reasons.POPULAR, floor=-np.inf)]
    params = {**interaction_params(settings, until), "days": settings.popularity_days}
    segment_row = {s: r for r, s in enumerate(moment.segments)}
    item = {i: j for j, i in enumerate(data.items)}
    for query, strategy in (("recommend/segment_popularity", "segment_popularity"),
                            ("policy/context_popularity", "context_popularity")):
        seg = fetch_frame(con, sql(query), params).filter(pl.col("item_id").is_in(data.items))
        active = (seg.group_by("segment").agg(pl.col("users").max().alias("n"))
                  .filter((pl.col("n") >= MIN_SEGMENT_USERS) & (pl.col("segment") != "unknown"))
                  .sort("segment")["segment"].to_list())
        for name in active:
            rows = seg.filter(pl.col("segment") == name)
            scores = np.zeros(data.n_items)
            scores[[item[i] for i in rows["item_id"]]] = rows["popularity"].to_numpy()
            allowed = rules.allowed_for_segment(segment_row.get(name) if strategy == "segment_popularity" else None)
            reason = (reasons.segment_text(name) if strategy == "segment_popularity"
                      else f"Popular with shoppers on {name.split(':', 1)[1]}")
            frames.append(_ranked(name, scores, allowed, data.items, k, strategy, reason))
    return pl.concat(frames).with_columns(pl.lit(ds).alias("ds")).select(
        "ds", "segment", "rank", "item_id", "score", "strategy", "reason")
