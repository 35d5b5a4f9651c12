"""bench.quality's protocols on the Amazon datasets: A (amazon-scientific), its cold-start variant and D
(amazon-all-beauty), leave-one-out; the teacher, student, gbdt and the blend against the reference baselines."""
from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from bench import reference_baselines as rb
from bench.fits import GBDT, blend_records, fit_language_models, item_text_vectors, rank_records, value
from recsys_tasks.models import NextPurchaseGBDT, TrainingData

COLD_SHARE, COLD_SEED = 0.10, 7  # EVALUATION.md: 10% of the items drawn with a fixed seed


# ---------------------------------------------------------------- protocol A (and its cold-start variant)

def scientific_texts(datasets: Path) -> list[str]:
    """Return the item text (title. category path. brand.) of every item index."""
    frame = pl.read_csv(datasets / "amazon-scientific" / "derived_user_sequences.tsv", separator="\t")
    asin = frame.select("item_idx", "item_asin").unique().sort("item_idx")
    raw = pl.read_csv(datasets / "amazon-scientific" / "raw" / "Scientific.text", separator="\t", quote_char=None)
    text = dict(zip(raw["item_id:token"], raw["text:token_seq"]))
    return [str(text.get(a, a)).strip() for a in asin["item_asin"]]


def protocol_a(datasets: Path, text: str, tune_seconds: float, prior: dict) -> list[dict]:
    """Teacher and student on amazon-scientific, leave-one-out, valid (masked) and test (masked, unmasked)."""
    sequences, n_items = rb.scientific_sequences(datasets)
    texts = scientific_texts(datasets)
    records = []
    for split, tracks in (("valid", ("masked",)), ("test", ("masked", "unmasked"))):
        data, targets = rb.scientific_split(sequences, n_items, split)
        data.item_text_embedding = item_text_vectors(text, "amazon-scientific", texts, data, tune_seconds)

        def on_valid(model, data=data, targets=targets):
            return value(rank_records("amazon-scientific", "A", split, "teacher", model, data, targets, ("masked",),
                                      rb.SCIENTIFIC_K), metric="ndcg")

        pick = (np.arange(data.n_users), on_valid) if split == "valid" else None
        teacher, student, fits = fit_language_models("A", data, pick, prior.get("A", (0.0, 0.0)))
        prior["A"] = (teacher.prior_weight, teacher.buy_again_weight)
        for name, model in (("teacher", teacher), ("student", student)):
            rows = rank_records("amazon-scientific", "A", split, name, model, data, targets, tracks, rb.SCIENTIFIC_K)
            records += [{**r, **({"fit": fits} if name == "teacher" else {}),
                         "weights": [teacher.prior_weight, teacher.buy_again_weight]} for r in rows]
        gbdt = NextPurchaseGBDT(**GBDT["A"]).fit(data)
        records += [{**r, "fit": gbdt.fit_report} for r in
                    rank_records("amazon-scientific", "A", split, "gbdt", gbdt, data, targets, tracks, rb.SCIENTIFIC_K)]

        def evaluate(name, model, split=split, data=data, targets=targets, tracks=tracks):
            return rank_records("amazon-scientific", "A", split, name, model, data, targets, tracks, rb.SCIENTIFIC_K)

        records += blend_records("amazon-scientific", split, {"teacher": teacher, "student": student, "gbdt": gbdt},
                                 records, evaluate, prior.setdefault("blend", {}))
    return records


def cold_items(n_items: int) -> np.ndarray:
    """Return the cold-start items: 10% of the items drawn with a fixed seed."""
    rng = np.random.default_rng(COLD_SEED)
    return np.sort(rng.choice(n_items, size=int(round(COLD_SHARE * n_items)), replace=False))


def protocol_a_cold(datasets: Path, text: str, tune_seconds: float, prior: dict) -> list[dict]:
    """Cold-start items: their interactions deleted from training; the users whose target is one of them.

    Test as EVALUATION.md says (target = last item); valid the same one step earlier (target = second-to-last
    item, history before it), where the gbdt's new-item replay share was picked."""
    sequences, n_items = rb.scientific_sequences(datasets)
    cold = cold_items(n_items)
    is_cold = np.zeros(n_items, dtype=bool)
    is_cold[cold] = True
    texts = scientific_texts(datasets)
    records = []
    for split, back in (("valid", 2), ("test", 1)):
        # the model may train on the histories before the target without any cold item
        histories = [s[:-back][~is_cold[s[:-back]]] for s in sequences]
        targets = np.asarray([s[-back] for s in sequences])
        users = np.flatnonzero(is_cold[targets])
        trimmed = [np.r_[h, 0] for h in histories]  # scientific_split cuts the last element off as the target
        data, _ = rb.scientific_split(trimmed, n_items, "test")
        cache_name = "amazon-scientific-cold" + ("-valid" if split == "valid" else "")
        data.item_text_embedding = item_text_vectors(text, cache_name, texts, data, tune_seconds)
        models = {name: factory().fit(data) for name, factory in rb.MODELS_A.items()}
        teacher, student, _ = fit_language_models("A", data, weights=prior.get("A", (0.0, 0.0)))
        models.update(teacher=teacher, student=student, gbdt=NextPurchaseGBDT(**GBDT["A"]).fit(data))

        def evaluate(name, model, split=split, data=data, targets=targets, users=users):
            return rank_records("amazon-scientific", "A", split, name, model, data, targets[users], ("masked",),
                                rb.SCIENTIFIC_K, users=users)

        rows = [r for name, model in models.items() for r in evaluate(name, model)]
        if "amazon-scientific" in prior.get("blend", {}):  # the blend protocol A chose on (warm) validation
            rows += blend_records("amazon-scientific", "test", models, [], evaluate, prior["blend"])
        records += [{**r, "track": "cold", "n_cold_items": int(len(cold))} for r in rows]
        # chance: the target anywhere in a random order of the items left after masking the history
        left = n_items - np.asarray((data.interactions[users] > 0).sum(axis=1)).ravel()
        discount = (1.0 / np.log2(np.arange(rb.SCIENTIFIC_K) + 2)).sum()
        for metric, per_user in (("hr", rb.SCIENTIFIC_K / left), ("ndcg", discount / left)):
            records.append({"dataset": "amazon-scientific", "protocol": "A", "split": split, "track": "cold",
                            "model": "chance", "metric": metric, "k": rb.SCIENTIFIC_K,
                            "value": float(np.mean(per_user)), "n_users": int(len(users))})
    return records


# ---------------------------------------------------------------- protocol D: amazon-all-beauty

def beauty_split(datasets: Path, split: str) -> tuple[TrainingData, np.ndarray, list[str]]:
    """Return histories (train; + valid for test), the target per user and the item texts."""
    raw = datasets / "amazon-all-beauty" / "raw"
    frames = {s: pl.read_csv(raw / f"All_Beauty.{s}.csv", infer_schema=False) for s in ("train", "valid", "test")}
    meta = pl.read_csv(raw / "filterd_meta_items.csv", infer_schema=False)
    items = sorted(meta["parent_asin"].to_list())
    history = frames["train"] if split == "valid" else pl.concat([frames["train"], frames["valid"]])
    history = history.with_columns(pl.col("timestamp").cast(pl.Int64)).sort("user_id", "timestamp")
    target = frames[split].sort("user_id")
    users = target["user_id"].to_list()
    long = history.with_columns(pl.int_range(pl.len()).over("user_id").alias("position"))
    interactions = long.select("user_id", pl.col("parent_asin").alias("item_id"), pl.lit(1.0).alias("weight"))
    popularity = interactions.group_by("item_id").agg(pl.len().cast(pl.Float64).alias("recent_popularity"))
    data = TrainingData.from_frames(interactions, dt.date(2023, 1, 1), popularity, user_ids=users, item_ids=items,
                                    sequences=long.select("user_id", pl.col("parent_asin").alias("item_id"),
                                                          "position"))
    index = {i: j for j, i in enumerate(items)}
    targets = np.asarray([index[i] for i in target["parent_asin"]], dtype=np.int64)
    texts, brands = [], []
    by_item = {r["parent_asin"]: r for r in meta.iter_rows(named=True)}
    for item in items:
        row = by_item[item]
        try:
            details = ast.literal_eval(row["details"]) if row["details"] else {}
        except (ValueError, SyntaxError):
            details = {}
        brands.append(str(details.get("Brand", "")))
        texts.append(". ".join(t for t in (row["title"], details.get("Brand"), details.get("Item Form"),
                                           row["description"]) if t))
    data.item_attributes = {"brand": np.asarray(brands, dtype=object)}
    return data, targets, texts


def protocol_d(datasets: Path, text: str, tune_seconds: float, prior: dict) -> list[dict]:
    """Baselines, teacher and student on All_Beauty's official leave-last-out split (smoke test: 253 users)."""
    records = []
    for split, tracks in (("valid", ("masked",)), ("test", ("masked", "unmasked"))):
        data, targets, texts = beauty_split(datasets, split)
        data.item_text_embedding = item_text_vectors(text, f"amazon-all-beauty-{split}", texts, data, tune_seconds)

        def on_valid(model, data=data, targets=targets):
            return value(rank_records("amazon-all-beauty", "D", split, "teacher", model, data, targets, ("masked",),
                                      10), metric="ndcg")

        pick = (np.arange(data.n_users), on_valid) if split == "valid" else None

        def evaluate(name, model, split=split, data=data, targets=targets, tracks=tracks):
            return rank_records("amazon-all-beauty", "D", split, name, model, data, targets, tracks, 10)

        fitted = {name: factory().fit(data) for name, factory in rb.MODELS_A.items()}
        for name, model in fitted.items():
            records += evaluate(name, model)
        teacher, student, _ = fit_language_models("D", data, pick, prior.get("D", (0.0, 0.0)))
        prior["D"] = (teacher.prior_weight, teacher.buy_again_weight)
        for name, model in (("teacher", teacher), ("student", student)):
            records += [{**r, "weights": [teacher.prior_weight, teacher.buy_again_weight]}
                        for r in rank_records("amazon-all-beauty", "D", split, name, model, data, targets, tracks, 10)]
        gbdt = NextPurchaseGBDT(**GBDT["D"]).fit(data)
        records += [{**r, "fit": gbdt.fit_report} for r in evaluate("gbdt", gbdt)]
        fitted.update(teacher=teacher, student=student, gbdt=gbdt)
        records += blend_records("amazon-all-beauty", split, fitted, records, evaluate, prior.setdefault("blend", {}))
    return records
