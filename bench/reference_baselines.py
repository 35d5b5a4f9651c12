"""Reproduce the reference baseline rows of EVALUATION.md with our own models, through the Recommender interface.

    python -m bench.reference_baselines [--protocol A|B|all] [--ties numpy|index]

Protocol A: amazon-scientific leave-one-out, full ranking, expected rank with ties, HR@10 / NDCG@10.
Protocol B: online-retail next-30-days purchases from the raw daily CSVs, Recall@20 / NDCG@20, all and new tracks.
Variants that reproduce the reference (found by experiment, see the report in the module's PR):
  popularity = purchase lines in the 30 days before T; repeat = own items by purchase lines, then that popularity;
  ItemKNN = cosine on the binary matrix, every neighbour kept, zero diagonal; EASE = binary matrix, all items;
  protocol A masking drops a target that repeats a history item (a miss).
Protocol B ties: the reference ranked with a plain `np.argsort(-scores)`, whose order among equal scores is NumPy's
(and the CPU's) business; `--ties numpy` mirrors it, `--ties index` uses our deterministic serving order. Each B row
also carries the range the metric spans over every tie order of our scores (tie_low .. tie_high).
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_tasks.metrics import expected_rank, hit_rate_at_k, ndcg_at_k, ndcg_from_rank, recall_at_k
from recsys_tasks.models import Recommender, TrainingData, build_model, top_k

DATASETS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
TOLERANCE = 0.0005  # largest |ours - reference| that still counts as reproduced (third decimal)

# (dataset, protocol, split, track, model, metric, k, value), transcribed from EVALUATION.md
_REFERENCE_ROWS = [
    *[("amazon-scientific", "A", s, t, m, metric, 10, v) for m, rows in {
        "popularity": [("valid", "masked", 0.0389, 0.0214), ("test", "masked", 0.0315, 0.0180),
                       ("test", "unmasked", 0.0309, 0.0172)],
        "itemknn": [("valid", "masked", 0.1108, 0.0781), ("test", "masked", 0.1169, 0.0859),
                    ("test", "unmasked", 0.1038, 0.0690)],
        "ease": [("valid", "masked", 0.1314, 0.0907), ("test", "masked", 0.1341, 0.0932),
                 ("test", "unmasked", 0.1113, 0.0721)],
    }.items() for s, t, hr, nd in rows for metric, v in (("hr", hr), ("ndcg", nd))],
    *[("online-retail", "B", s, t, m, metric, 20, v) for m, rows in {
        "popularity": [("valid", "all", 0.1503, 0.1424), ("valid", "new", 0.0971, 0.0770),
                       ("test", "all", 0.1127, 0.1146), ("test", "new", 0.0590, 0.0520)],
        "repeat": [("valid", "all", 0.3896, 0.3792), ("valid", "new", 0.0971, 0.0770),
                   ("test", "all", 0.3347, 0.3415), ("test", "new", 0.0590, 0.0520)],
        "itemknn": [("valid", "all", 0.2566, 0.2416), ("valid", "new", 0.1439, 0.1236),
                    ("test", "all", 0.2162, 0.2088), ("test", "new", 0.0992, 0.0899)],
        "ease": [("valid", "all", 0.3142, 0.2926), ("valid", "new", 0.1666, 0.1343),
                 ("test", "all", 0.2758, 0.2666), ("test", "new", 0.1198, 0.1082)],
    }.items() for s, t, r, nd in rows for metric, v in (("recall", r), ("ndcg", nd))],
]
REFERENCE = [
    dict(zip(("dataset", "protocol", "split", "track", "model", "metric", "k", "value"), row))
    for row in _REFERENCE_ROWS
]

# The reference models, built through the registry like the pipeline builds them.
ModelFactory = Callable[[], Recommender]
MODELS_A: dict[str, ModelFactory] = {
    "popularity": lambda: build_model("popularity"),
    "itemknn": lambda: build_model("itemknn", neighbours=None, binary=True),
    "ease": lambda: build_model("ease", lam=50.0, max_items=None, binary=True),
}
MODELS_B: dict[str, ModelFactory] = {
    "popularity": lambda: build_model("popularity"),
    "repeat": lambda: build_model("repeat", use_recency=False),
    "itemknn": lambda: build_model("itemknn", neighbours=None, binary=True),
    "ease": lambda: build_model("ease", lam=500.0, max_items=None, binary=True),
}

# ---------------------------------------------------------------- protocol B: online-retail

RETAIL_NOT_PRODUCTS = ("POST", "D", "M", "m", "C2", "DOT", "BANK CHARGES", "CRUK", "AMAZONFEE", "PADS", "S", "B")
RETAIL_CUTOFFS = {"valid": dt.date(2011, 8, 1), "test": dt.date(2011, 9, 1)}
RETAIL_WINDOW_DAYS = 30  # days after T whose purchases are the targets
RETAIL_POPULARITY_DAYS = 30  # days before T counted by "popularity, last 30 days"
RETAIL_K = 20


def retail_purchases(datasets_dir: Path = DATASETS_DIR) -> pl.DataFrame:
    """Return every purchase line of the raw daily CSVs under the EVALUATION.md purchase definition."""
    files = sorted((Path(datasets_dir) / "online-retail" / "by-day").glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no online-retail CSVs under {datasets_dir}")
    raw = pl.concat([pl.read_csv(f, infer_schema=False) for f in files])
    return (
        raw.filter(pl.col("CustomerID").is_not_null() & ~pl.col("InvoiceNo").str.starts_with("C"))
        .select(
            pl.col("CustomerID").cast(pl.Float64).cast(pl.Int64).cast(pl.Utf8).alias("user_id"),
            pl.col("StockCode").alias("item_id"),
            pl.col("InvoiceNo").alias("invoice"),
            pl.col("InvoiceDate").str.to_datetime("%Y-%m-%d %H:%M:%S").alias("ts"),
            pl.col("Quantity").cast(pl.Float64).alias("quantity"),
            pl.col("UnitPrice").cast(pl.Float64).alias("unit_price"),
            pl.col("Country").alias("country"),
        )
        .filter((pl.col("quantity") > 0) & (pl.col("unit_price") > 0) & ~pl.col("item_id").is_in(RETAIL_NOT_PRODUCTS))
    )


@dataclass
class RetailSplit:
    """Training data before T and the targets of the 30 days after, per track."""

    data: TrainingData
    history: sp.csr_matrix  # (n_users, n_items) items bought before T
    eval_users: dict[str, np.ndarray]  # track -> user rows with at least one target
    targets: dict[str, sp.csr_matrix]  # track -> (len(eval_users), n_items) target items


def retail_split(purchases: pl.DataFrame, cutoff: dt.date) -> RetailSplit:
    """Cut the purchases at T (00:00): history before, targets in [T, T + 30 days)."""
    start = dt.datetime.combine(cutoff, dt.time())
    history = purchases.filter(pl.col("ts") < start)
    window = purchases.filter((pl.col("ts") >= start) & (pl.col("ts") < start + dt.timedelta(days=RETAIL_WINDOW_DAYS)))
    interactions = history.group_by("user_id", "item_id").agg(
        pl.len().cast(pl.Float64).alias("weight"),
        pl.len().cast(pl.Float64).alias("purchases"),
        pl.col("ts").max().alias("last_purchase_ts"),
    )
    popularity = (
        history.filter(pl.col("ts") >= start - dt.timedelta(days=RETAIL_POPULARITY_DAYS))
        .group_by("item_id")
        .agg(pl.len().cast(pl.Float64).alias("recent_popularity"))
    )
    users = history.sort("ts").group_by("user_id").agg(pl.col("country").last().alias("segment"))
    data = TrainingData.from_frames(interactions, cutoff, popularity, users)
    bought = (data.purchases > 0).astype(np.float32).tocsr()

    user_map = pl.DataFrame({"user_id": data.users, "u": np.arange(data.n_users)})
    item_map = pl.DataFrame({"item_id": data.items, "i": np.arange(data.n_items)})
    pairs = window.select("user_id", "item_id").unique().join(user_map, on="user_id").join(item_map, on="item_id")
    target_all = sp.csr_matrix(
        (np.ones(pairs.height, dtype=np.float32), (pairs["u"].to_numpy(), pairs["i"].to_numpy())),
        shape=(data.n_users, data.n_items),
    )
    target_new = target_all - target_all.multiply(bought)
    target_new.eliminate_zeros()
    eval_users, targets = {}, {}
    for track, matrix in (("all", target_all), ("new", target_new)):
        rows = np.flatnonzero(np.diff(matrix.indptr))
        eval_users[track], targets[track] = rows, matrix[rows]
    return RetailSplit(data, bought, eval_users, targets)


def _tie_extremes(model, users, targets, exclude, k, chunk=1024) -> tuple[np.ndarray, np.ndarray]:
    """Return the top-k lists with ties broken against, then in favour of, each user's targets."""
    against, favour = [], []
    for start in range(0, len(users), chunk):
        rows = users[start : start + chunk]
        scores = np.array(model.score(rows), dtype=np.float64)
        scores[np.isnan(scores)] = -np.inf
        if exclude is not None:
            r, c = exclude[rows].nonzero()
            scores[r, c] = -np.inf
        is_target = targets[start : start + chunk].toarray() > 0
        for out, secondary in ((against, is_target), (favour, ~is_target)):
            cols = np.lexsort((secondary, -scores), axis=1)[:, :k]
            out.append(np.where(np.isneginf(np.take_along_axis(scores, cols, axis=1)), -1, cols))
    return np.vstack(against), np.vstack(favour)


def protocol_b_records(
    datasets_dir: Path = DATASETS_DIR,
    models: Mapping[str, ModelFactory] | None = None,
    ties: str = "numpy",
    tie_bounds: bool = True,
) -> list[dict]:
    """Fit each model at each cut-off and return Recall@20 / NDCG@20 records for the all and new tracks."""
    models = MODELS_B if models is None else models
    purchases = retail_purchases(datasets_dir)
    records = []
    for split, cutoff in RETAIL_CUTOFFS.items():
        data_split = retail_split(purchases, cutoff)
        for name, factory in models.items():
            model = factory().fit(data_split.data)
            for track in ("all", "new"):
                users, targets = data_split.eval_users[track], data_split.targets[track]
                exclude = data_split.history if track == "new" else None
                top, _ = top_k(model, users, RETAIL_K, exclude=exclude, ties=ties)
                extremes = _tie_extremes(model, users, targets, exclude, RETAIL_K) if tie_bounds else None
                for metric, fn in (("recall", recall_at_k), ("ndcg", ndcg_at_k)):
                    record = {"dataset": "online-retail", "protocol": "B", "split": split, "track": track,
                              "model": name, "metric": metric, "k": RETAIL_K,
                              "value": float(np.mean(fn(top, targets, RETAIL_K))), "n_users": len(users)}
                    if extremes is not None:
                        low, high = (float(np.mean(fn(e, targets, RETAIL_K))) for e in extremes)
                        record.update(tie_low=low, tie_high=high)
                    records.append(record)
    return records


# ---------------------------------------------------------------- protocol A: amazon-scientific

SCIENTIFIC_K = 10


def scientific_sequences(datasets_dir: Path = DATASETS_DIR) -> tuple[list[np.ndarray], int]:
    """Return each user's item indices in review order, and the number of items."""
    path = Path(datasets_dir) / "amazon-scientific" / "derived_user_sequences.tsv"
    frame = pl.read_csv(path, separator="\t").sort("user_id", "position")
    n_users = frame["user_id"].max() + 1
    if frame["user_id"].n_unique() != n_users:
        raise ValueError("user ids are not 0..n_users-1")
    lengths = frame.group_by("user_id").len().sort("user_id")["len"].to_numpy()
    sequences = np.split(frame["item_idx"].to_numpy().astype(np.int64), np.cumsum(lengths)[:-1])
    return sequences, int(frame["item_idx"].max()) + 1


def scientific_split(sequences: list[np.ndarray], n_items: int, split: str) -> tuple[TrainingData, np.ndarray]:
    """Return training data of the histories and the target per user (valid: second-to-last item, test: last)."""
    cut = {"valid": 2, "test": 1}[split]
    histories = [s[:-cut] for s in sequences]
    targets = np.array([s[-cut] for s in sequences], dtype=np.int64)
    user = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
    item = np.concatenate(histories)
    long = pl.DataFrame({"user_id": user.astype(str), "item_id": item.astype(str),
                         "position": np.concatenate([np.arange(len(h)) for h in histories])})
    interactions = long.with_columns(pl.lit(1.0).alias("weight"))
    popularity = long.group_by("item_id").agg(pl.len().cast(pl.Float64).alias("recent_popularity"))
    data = TrainingData.from_frames(
        interactions, dt.date(1970, 1, 1), popularity,
        user_ids=[str(u) for u in range(len(histories))], item_ids=[str(i) for i in range(n_items)],
        sequences=long,
    )
    return data, targets


def protocol_a_records(
    datasets_dir: Path = DATASETS_DIR, models: Mapping[str, ModelFactory] | None = None, chunk: int = 2048
) -> list[dict]:
    """Fit each model per split and return HR@10 / NDCG@10 records (valid: masked; test: masked and unmasked)."""
    models = MODELS_A if models is None else models
    sequences, n_items = scientific_sequences(datasets_dir)
    records = []
    for split, tracks in (("valid", ("masked",)), ("test", ("masked", "unmasked"))):
        data, targets = scientific_split(sequences, n_items, split)
        history = data.interactions
        for name, factory in models.items():
            model = factory().fit(data)
            ranks = {track: [] for track in tracks}
            for start in range(0, data.n_users, chunk):
                rows = np.arange(start, min(start + chunk, data.n_users))
                scores = model.score(rows)
                for track in tracks:
                    exclude = history[rows] if track == "masked" else None
                    ranks[track].append(expected_rank(scores, targets[rows], exclude))
            for track in tracks:
                rank = np.concatenate(ranks[track])
                for metric, fn in (("hr", hit_rate_at_k), ("ndcg", ndcg_from_rank)):
                    records.append({"dataset": "amazon-scientific", "protocol": "A", "split": split, "track": track,
                                    "model": name, "metric": metric, "k": SCIENTIFIC_K,
                                    "value": float(np.mean(fn(rank, SCIENTIFIC_K))), "n_users": data.n_users})
    return records


# ---------------------------------------------------------------- comparison and command line

def reference_records(protocol: str = "all", datasets_dir: Path = DATASETS_DIR, ties: str = "numpy") -> list[dict]:
    """Return our records for the reference baselines of protocol A, B or all."""
    records = []
    if protocol in ("A", "all"):
        records += protocol_a_records(datasets_dir)
    if protocol in ("B", "all"):
        records += protocol_b_records(datasets_dir, ties=ties)
    return records


def _key(record: dict) -> tuple:
    return tuple(record[f] for f in ("dataset", "protocol", "split", "track", "model", "metric", "k"))


def compare(records: list[dict], tolerance: float = TOLERANCE) -> list[dict]:
    """Pair each reference row with our record and mark it MATCH, TIE-MATCH or MISMATCH.

    TIE-MATCH: off by more than the tolerance, but some order of our tied scores reaches the reference.
    """
    ours = {_key(r): r for r in records}
    rows = []
    for ref in REFERENCE:
        mine = ours.get(_key(ref))
        if mine is None:
            continue
        diff = abs(mine["value"] - ref["value"])
        status = "MATCH" if diff <= tolerance else "MISMATCH"
        if status == "MISMATCH" and "tie_low" in mine:
            if mine["tie_low"] - tolerance <= ref["value"] <= mine["tie_high"] + tolerance:
                status = "TIE-MATCH"
        rows.append({**mine, "reference": ref["value"], "diff": diff, "status": status})
    return rows


def format_table(rows: list[dict]) -> str:
    """Return the comparison as a fixed-width text table."""
    head = f"{'dataset':<18}{'model':<11}{'split':<6}{'track':<9}{'metric':<11}{'ours':>8}{'ref':>8}{'|diff|':>8}" \
           f"{'tie range':>17}  status"
    lines = [head, "-" * len(head)]
    for r in rows:
        tie = f"{r['tie_low']:.4f}-{r['tie_high']:.4f}" if "tie_low" in r else ""
        metric = f"{r['metric']}@{r['k']}"
        lines.append(f"{r['dataset']:<18}{r['model']:<11}{r['split']:<6}{r['track']:<9}{metric:<11}"
                     f"{r['value']:>8.4f}{r['reference']:>8.4f}{r['diff']:>8.4f}{tie:>17}  {r['status']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=("A", "B", "all"), default="all")
    parser.add_argument("--ties", choices=("numpy", "index"), default="numpy",
                        help="protocol B order among equal scores (numpy: as the reference ranked)")
    parser.add_argument("--strict", action="store_true", help="count TIE-MATCH rows as mismatches")
    parser.add_argument("--datasets", type=Path, default=DATASETS_DIR)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = compare(reference_records(args.protocol, args.datasets, args.ties))
    print(format_table(rows))
    bad = [r for r in rows if r["status"] == "MISMATCH" or (args.strict and r["status"] != "MATCH")]
    counts = {s: sum(r["status"] == s for r in rows) for s in ("MATCH", "TIE-MATCH", "MISMATCH")}
    print(f"\n{len(rows)} rows: " + ", ".join(f"{n} {s}" for s, n in counts.items())
          + f"; tolerance {TOLERANCE}; ties={args.ties}; {time.perf_counter() - started:.1f}s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
