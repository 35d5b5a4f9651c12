"""Health of the published lists: catalogue coverage, exposure concentration, diversity, novelty, cold share.

Written per day, variant and segment into metrics.list_health. Metrics over lists of items (rows) read:
coverage = distinct listed items / catalogue; gini = Gini coefficient of the slots each catalogue item got (0 =
even exposure, 1 = one item everywhere); intra_list_diversity = mean pairwise (1 - text cosine) within a list;
category_diversity = distinct categories / list length; novelty = mean -log2(share of users who ever touched the
item); cold_share = share of slots holding new items; cold_items_exposed = distinct new items listed.
"""
from __future__ import annotations

import logging
from datetime import date

import numpy as np
import polars as pl

from recsys_tasks.config import Settings
from recsys_tasks.warehouse import fetch_frame, registered, sql, work_db

log = logging.getLogger(__name__)

MIN_SEGMENT_USERS = 20  # a segment needs this many listed users to get rows of its own


def coverage(lists: list[np.ndarray], catalogue: np.ndarray) -> float:
    """Return the share of the catalogue (a bool mask over items) that appears in at least one list."""
    listed = np.zeros(len(catalogue), dtype=bool)
    for items in lists:
        listed[items] = True
    return float((listed & catalogue).sum() / catalogue.sum()) if catalogue.sum() else float("nan")


def gini(exposure: np.ndarray) -> float:
    """Return the Gini coefficient of non-negative exposure counts (every catalogue item, zeros included)."""
    x = np.sort(np.asarray(exposure, dtype=np.float64))
    n, total = len(x), x.sum()
    if n == 0 or total == 0:
        return float("nan")
    return float((2.0 * np.sum(np.arange(1, n + 1) * x) / (n * total)) - (n + 1.0) / n)


def intra_list_diversity(lists: list[np.ndarray], embeddings: np.ndarray) -> float:
    """Return the mean over lists of the mean pairwise text distance (1 - cosine) of a list's items."""
    values = []
    for items in lists:
        if len(items) < 2:
            continue
        v = embeddings[items]
        sim = v @ v.T
        n = len(items)
        values.append(1.0 - (sim.sum() - np.trace(sim)) / (n * (n - 1)))
    return float(np.mean(values)) if values else float("nan")


def category_diversity(lists: list[np.ndarray], category: np.ndarray) -> float:
    """Return the mean share of distinct categories in a list."""
    values = [len(set(category[items].tolist())) / len(items) for items in lists if len(items)]
    return float(np.mean(values)) if values else float("nan")


def novelty(lists: list[np.ndarray], reach: np.ndarray, n_users: int) -> float:
    """Return the mean self-information -log2(p) of listed items, p = share of users who touched the item."""
    p = (np.asarray(reach, dtype=np.float64) + 1.0) / (n_users + 1.0)
    slots = np.concatenate(lists) if lists else np.zeros(0, dtype=np.int64)
    return float(np.mean(-np.log2(p[slots]))) if len(slots) else float("nan")


def health_metrics(lists: list[np.ndarray], catalogue: np.ndarray, embeddings: np.ndarray, category: np.ndarray,
                   reach: np.ndarray, n_users: int, is_new: np.ndarray) -> dict[str, float]:
    """Return every list-health metric of a group of lists (item indices into the per-item arrays).

    catalogue (n_items,) bool marks the items that could be listed (available): coverage and Gini count over them.
    """
    slots = np.concatenate(lists) if lists else np.zeros(0, dtype=np.int64)
    exposure = np.bincount(slots, minlength=len(catalogue))
    return {
        "coverage": coverage(lists, catalogue),
        "gini": gini(exposure[catalogue]),
        "intra_list_diversity": intra_list_diversity(lists, embeddings),
        "category_diversity": category_diversity(lists, category),
        "novelty": novelty(lists, reach, n_users),
        "cold_share": float(is_new[slots].mean()) if len(slots) else float("nan"),
        "cold_items_exposed": float(len(np.unique(slots[is_new[slots]]))) if len(slots) else 0.0,
    }


def list_health(settings: Settings, ds: date, run_id: str) -> dict:
    """Write metrics.list_health for ds: every metric per variant and segment (and 'all')."""
    with work_db(settings) as con:
        catalogue = fetch_frame(con, sql("policy/health_catalogue"), {"ds": ds})
        lists = fetch_frame(con, sql("policy/health_lists"), {"ds": ds})
        n_users = int(con.execute("SELECT count(*) FROM staging.user_segments").fetchall()[0][0])
        index = {i: j for j, i in enumerate(catalogue["item_id"].to_list())}
        emb = np.asarray(catalogue["text_embedding"].to_list(), dtype=np.float32).reshape(catalogue.height, -1)
        category = np.asarray(catalogue["top_category"].to_list(), dtype=object)
        reach = catalogue["reach"].to_numpy().astype(np.float64)
        is_new = catalogue["is_new"].to_numpy().astype(bool)
        available = catalogue["available"].to_numpy().astype(bool)
        lists = lists.filter(pl.col("item_id").is_in(list(index))).with_columns(
            pl.col("item_id").replace_strict(index, return_dtype=pl.Int64).alias("item"))
        per_user = lists.sort("user_id", "rank").group_by("user_id", "variant", "segment", maintain_order=True).agg(
            pl.col("item"))
        rows = []
        groups = [("all", "all", per_user)]
        for variant in sorted(per_user["variant"].unique().to_list()):
            groups.append((variant, "all", per_user.filter(pl.col("variant") == variant)))
        for segment, count in per_user.group_by("segment").len().sort("segment").iter_rows():
            if count >= MIN_SEGMENT_USERS:
                groups.append(("all", segment, per_user.filter(pl.col("segment") == segment)))
        k = int(lists["rank"].max() or 0)
        for variant, segment, frame in groups:
            item_lists = [np.asarray(x, dtype=np.int64) for x in frame["item"].to_list()]
            values = health_metrics(item_lists, available, emb, category, reach, n_users, is_new)
            rows += [{"ds": ds, "variant": variant, "segment": segment, "metric": m, "k": k, "value": v,
                      "n_users": frame.height} for m, v in values.items()]
        frame = pl.DataFrame(rows, schema={"ds": pl.Date, "variant": pl.Utf8, "segment": pl.Utf8,
                                           "metric": pl.Utf8, "k": pl.Int32, "value": pl.Float64,
                                           "n_users": pl.Int64})
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM metrics.list_health WHERE ds = ?", [ds])
        with registered(con, "health_rows", frame):
            con.execute("INSERT INTO metrics.list_health BY NAME SELECT * FROM health_rows")
        con.execute("COMMIT")
    log.info("list_health %s: %d rows", ds, frame.height)
    return {"list_health": frame.height}
