"""bench.quality's protocol B (online-retail): history before each cut-off, the 30 days after as targets, the all
and new tracks; the teacher, student, gbdt and the blend against the reference baselines."""
from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import numpy as np
import polars as pl

from bench import reference_baselines as rb
from bench.fits import GBDT, blend_records, carried_prior_boost, fit_language_models, item_text_vectors, value
from recsys_tasks.metrics import ndcg_at_k, recall_at_k
from recsys_tasks.models import NextPurchaseGBDT, TrainingData, top_k


def retail_descriptions(datasets: Path) -> dict[str, str]:
    """Return each StockCode's most frequent description."""
    files = sorted((datasets / "online-retail" / "by-day").glob("*.csv"))
    raw = pl.concat([pl.read_csv(f, infer_schema=False, columns=["StockCode", "Description"]) for f in files])
    desc = (raw.filter(pl.col("Description").is_not_null()).group_by("StockCode", "Description").len()
            .sort(["StockCode", "len", "Description"], descending=[False, True, False])
            .unique("StockCode", keep="first", maintain_order=True))
    return {k: v.strip().capitalize() for k, v in zip(desc["StockCode"], desc["Description"])}


def retail_sequences(purchases: pl.DataFrame, data: TrainingData, cutoff: dt.date) -> None:
    """Give data each user's purchase lines before T in time order (runs of one item collapsed) and their ages."""
    start = dt.datetime.combine(cutoff, dt.time())
    hist = (purchases.filter(pl.col("ts") < start).with_row_index("line")
            .sort(["user_id", "ts", "invoice", "line"]))
    users = {u: i for i, u in enumerate(data.users)}
    items = {i: j for j, i in enumerate(data.items)}
    rows = np.fromiter((users[u] for u in hist["user_id"]), np.int64, hist.height)
    cols = np.fromiter((items[i] for i in hist["item_id"]), np.int64, hist.height)
    ages = ((start - hist["ts"]).dt.total_seconds() / 86400.0).to_numpy().astype(np.float32)
    bounds = np.searchsorted(rows, np.arange(data.n_users + 1))
    seqs, olds = [], []
    for u in range(data.n_users):
        c, a = cols[bounds[u]:bounds[u + 1]], ages[bounds[u]:bounds[u + 1]]
        keep = np.r_[True, c[1:] != c[:-1]] if len(c) else np.zeros(0, dtype=bool)
        seqs.append(c[keep])
        olds.append(a[keep])
    data.user_sequences = seqs
    data.user_sequence_ages = olds
    price = hist.group_by("item_id").agg(pl.col("unit_price").median())
    by_item = dict(zip(price["item_id"], price["unit_price"]))
    data.item_attributes = {"price": np.asarray([by_item.get(i, np.nan) for i in data.items], dtype=np.float64)}


def retail_split_with_text(purchases: pl.DataFrame, descriptions: dict[str, str], split: str, text: str = "base",
                           tune_seconds: float = 0.0, cutoff: dt.date | None = None):
    """Return protocol B's split (valid | test; or any other name at `cutoff`) with the users' timed sequences and
    the items' text vectors (cached under the split's name)."""
    cutoff = rb.RETAIL_CUTOFFS[split] if cutoff is None else cutoff
    s = rb.retail_split(purchases, cutoff)
    retail_sequences(purchases, s.data, cutoff)
    texts = [descriptions.get(i, i) for i in s.data.items]
    s.data.item_text_embedding = item_text_vectors(text, f"online-retail-{split}", texts, s.data, tune_seconds)
    return s


def retail_records(split_data, name: str, model, split: str) -> list[dict]:
    """Return Recall@20 / NDCG@20 of one model on the all and new tracks (ties: NumPy order, as the reference)."""
    out = []
    for track in ("all", "new"):
        users, targets = split_data.eval_users[track], split_data.targets[track]
        started = time.perf_counter()
        top, _ = top_k(model, users, rb.RETAIL_K, exclude=split_data.history if track == "new" else None,
                       ties="numpy")
        seconds = time.perf_counter() - started
        for metric, fn in (("recall", recall_at_k), ("ndcg", ndcg_at_k)):
            out.append({"dataset": "online-retail", "protocol": "B", "split": split, "track": track, "model": name,
                        "metric": metric, "k": rb.RETAIL_K, "value": float(np.mean(fn(top, targets, rb.RETAIL_K))),
                        "n_users": int(len(users)), "score_seconds": round(seconds, 3)})
    return out


def protocol_b(datasets: Path, text: str, tune_seconds: float, prior: dict) -> list[dict]:
    """Teacher and student on online-retail at the validation and test cut-offs."""
    purchases = rb.retail_purchases(datasets)
    descriptions = retail_descriptions(datasets)
    records = []
    for split in rb.RETAIL_CUTOFFS:
        s = retail_split_with_text(purchases, descriptions, split, text, tune_seconds)

        def on_valid(model, s=s):
            return value(retail_records(s, "teacher", model, "valid"), track="all", metric="ndcg")

        users = np.union1d(s.eval_users["all"], s.eval_users["new"])
        pick = (users, on_valid) if split == "valid" else None
        teacher, student, fits = fit_language_models("B", s.data, pick, prior.get("B", (0.0, 0.0)))
        prior["B"] = (teacher.prior_weight, teacher.buy_again_weight)
        weights = {"weights": [teacher.prior_weight, teacher.buy_again_weight]}
        teacher_rows = retail_records(s, "teacher", teacher, split)
        carried = carried_prior_boost("B", student, teacher_rows,
                                      lambda m, s=s, split=split: retail_records(s, "student", m, split), prior)
        records += [{**r, **weights, "fit": fits} for r in teacher_rows]
        records += [{**r, **weights, **({"carried_prior": carried} if carried else {})}
                    for r in retail_records(s, "student", student, split)]
        gbdt = NextPurchaseGBDT(**GBDT["B"]).fit(s.data)
        records += [{**r, "fit": gbdt.fit_report} for r in retail_records(s, "gbdt", gbdt, split)]
        records += blend_records("online-retail", split, {"teacher": teacher, "student": student, "gbdt": gbdt},
                                 records, lambda name, model, s=s, split=split: retail_records(s, name, model, split),
                                 prior.setdefault("blend", {}))
    return records
