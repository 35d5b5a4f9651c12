"""Feedback: score the lists published on earlier days against what their users did since, into
metrics.online_feedback.

For a list day p and the run day D, the window is (p, D]: nothing dated after D is read. Scored users are those
with a list on p who bought (or rated, for review shops) something in the window; their targets are the distinct
items they bought. Per variant and per strategy ('all' = the whole list):
  hit_rate@k   share of users who bought at least one of their first k items (of that strategy);
  ndcg@k       binary-gain NDCG of the first k items against the targets (strategy 'all' only);
  precision@k  bought listed items / listed items;
  revenue_share@k  revenue of bought listed items / all the users' revenue in the window (ratio of sums).
ci_low / ci_high: the 2.5th / 97.5th percentiles over `feedback_bootstrap` resamples of the scored users.
"""
from __future__ import annotations

import logging
import zlib
from datetime import date

import numpy as np
import polars as pl

from recsys_tasks.config import Settings
from recsys_tasks.training_data import target_event_type
from recsys_tasks.warehouse import fetch_frame, registered, sql, work_db

log = logging.getLogger(__name__)

SCHEMA = {"ds": pl.Date, "list_ds": pl.Date, "days_after": pl.Int32, "variant": pl.Utf8, "strategy": pl.Utf8,
          "metric": pl.Utf8, "k": pl.Int32, "value": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64,
          "n_users": pl.Int64}


def user_outcomes(lists: pl.DataFrame, events: pl.DataFrame, k: int) -> dict[str, np.ndarray]:
    """Return per-user arrays for the users with a list who acted in the window.

    lists: user_id, rank, item_id, strategy (one list day); events: user_id, item_id, revenue (the window).
    Keys: users, revenue (all their revenue), and per strategy s ('all' too): hit_<s>, shown_<s>, bought_<s>,
    revenue_<s>; plus ndcg_all.
    """
    targets = events.group_by("user_id").agg(pl.col("item_id").unique().alias("targets"),
                                              pl.col("revenue").sum().alias("revenue"))
    item_revenue = events.group_by("user_id", "item_id").agg(pl.col("revenue").sum().alias("item_revenue"))
    top = lists.filter(pl.col("rank") <= k).join(targets.select("user_id"), on="user_id", how="semi")
    top = top.join(item_revenue, on=["user_id", "item_id"], how="left").with_columns(
        pl.col("item_revenue").is_not_null().alias("bought"), pl.col("item_revenue").fill_null(0.0))
    users = sorted(set(top["user_id"].to_list()))
    index = {u: i for i, u in enumerate(users)}
    n = len(users)
    revenue = np.zeros(n)
    n_targets = np.zeros(n)
    for user, tgt, rev in targets.filter(pl.col("user_id").is_in(users)).iter_rows():
        revenue[index[user]], n_targets[index[user]] = rev, len(tgt)
    out = {"users": np.asarray(users, dtype=object), "revenue": revenue}
    row = np.asarray([index[u] for u in top["user_id"]], dtype=np.int64)
    bought = top["bought"].to_numpy()
    gain = np.where(bought, 1.0 / np.log2(top["rank"].to_numpy() + 1.0), 0.0)
    dcg = np.bincount(row, weights=gain, minlength=n)
    ideal = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])[np.minimum(k, n_targets).astype(int)]
    out["ndcg_all"] = np.divide(dcg, ideal, out=np.zeros(n), where=ideal > 0)
    strategies = ["all"] + sorted(set(top["strategy"].to_list()))
    for s in strategies:
        mask = np.ones(len(top), bool) if s == "all" else (top["strategy"] == s).to_numpy()
        out[f"shown_{s}"] = np.bincount(row[mask], minlength=n).astype(float)
        out[f"bought_{s}"] = np.bincount(row[mask], weights=bought[mask].astype(float), minlength=n)
        out[f"hit_{s}"] = (out[f"bought_{s}"] > 0).astype(float)
        out[f"revenue_{s}"] = np.bincount(row[mask], weights=top["item_revenue"].to_numpy()[mask], minlength=n)
    return out


def _metrics(o: dict[str, np.ndarray], s: str, idx: np.ndarray) -> dict[str, np.ndarray]:
    """Return the strategy's metrics over users idx (..., n): the last axis is one sample (users may repeat)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {"hit_rate": o[f"hit_{s}"][idx].mean(axis=-1),
               "precision": o[f"bought_{s}"][idx].sum(axis=-1) / o[f"shown_{s}"][idx].sum(axis=-1),
               "revenue_share": o[f"revenue_{s}"][idx].sum(axis=-1) / o["revenue"][idx].sum(axis=-1)}
    if s == "all":
        out["ndcg"] = o["ndcg_all"][idx].mean(axis=-1)
    return out


def _finite(value) -> float | None:
    return float(value) if np.isfinite(value) else None  # no revenue (review shops): NULL, not NaN


def score_day(lists: pl.DataFrame, events: pl.DataFrame, k: int, n_boot: int, seed: int) -> list[dict]:
    """Return metric rows (variant, strategy, metric, k, value, ci_low, ci_high, n_users) of one list day."""
    rows = []
    variants = ["all"] + sorted(set(lists["variant"].to_list()))
    for variant in variants:
        part = lists if variant == "all" else lists.filter(pl.col("variant") == variant)
        o = user_outcomes(part, events, k)
        n = len(o["users"])
        if n == 0:
            continue
        rng = np.random.default_rng([seed, zlib.crc32(variant.encode())])
        samples = rng.integers(0, n, size=(n_boot, n)) if n_boot > 0 else np.zeros((0, n), dtype=np.int64)
        for s in [k_.split("_", 1)[1] for k_ in o if k_.startswith("shown_")]:
            value = _metrics(o, s, np.arange(n))
            boot = _metrics(o, s, samples)
            for metric, v in value.items():
                draws = boot[metric][np.isfinite(boot[metric])]
                low, high = (np.percentile(draws, [2.5, 97.5]) if len(draws) else (np.nan, np.nan))
                rows.append({"variant": variant, "strategy": s, "metric": metric, "k": k, "value": _finite(v),
                             "ci_low": _finite(low), "ci_high": _finite(high), "n_users": n})
    return rows


def online_feedback(settings: Settings, ds: date, run_id: str) -> dict:
    """Write metrics.online_feedback for ds: every earlier list day within feedback_days, scored up to ds."""
    with work_db(settings) as con:
        lists = fetch_frame(con, sql("policy/feedback_lists"), {"ds": ds, "days": settings.feedback_days})
        rows = []
        if lists.height:
            first = lists["list_ds"].min()
            events = fetch_frame(con, sql("policy/feedback_events"),
                                 {"ds": ds, "first": first, "event_type": target_event_type(con)})
            for (list_ds,), day in lists.group_by("list_ds", maintain_order=True):
                window = events.filter(pl.col("dt") > list_ds)
                seed = ds.toordinal() * 100_000 + list_ds.toordinal() % 100_000
                for k in sorted({settings.eval_k, int(day["rank"].max())}):
                    rows += [{"ds": ds, "list_ds": list_ds, "days_after": (ds - list_ds).days, **r}
                             for r in score_day(day, window, k, settings.feedback_bootstrap, seed)]
        frame = pl.DataFrame(rows, schema=SCHEMA)
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM metrics.online_feedback WHERE ds = ?", [ds])
        with registered(con, "feedback_rows", frame):
            con.execute("INSERT INTO metrics.online_feedback BY NAME SELECT * FROM feedback_rows")
        con.execute("COMMIT")
    log.info("feedback %s: %d rows over %d list days", ds, frame.height,
             lists["list_ds"].n_unique() if lists.height else 0)
    return {"online_feedback": frame.height}
