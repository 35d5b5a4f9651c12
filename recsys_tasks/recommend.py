"""Recommend: the policy around the served model writes every known user's list, the lists for unknown users, and
item-to-item neighbours.

Per night: learn the scoring function on the holdout, bucket users into the run's A/B arms, build each arm's lists
(recall -> rules -> rank -> re-rank -> explain, or the bare model for an arm with policy off).
"""
from __future__ import annotations

import logging
from datetime import date

import numpy as np
import polars as pl

from recsys_tasks.build import end_of
from recsys_tasks.config import Settings
from recsys_tasks.models import build_model, load_model
from recsys_tasks.policy.cold_start import default_lists
from recsys_tasks.policy.lists import Arm, ListBuilder
from recsys_tasks.policy.neighbours import ranked_rows
from recsys_tasks.policy.ranker import Ranker, learn, training_rows
from recsys_tasks.policy.rules import load_rulebook
from recsys_tasks.policy.signals import Moment, load_moment
from recsys_tasks.policy.variants import assign, parse_variants
from recsys_tasks.training import Holdout, holdout_targets, model_dir, model_params, served_choice, served_model_path
from recsys_tasks.training_data import load_training_data, seen_mask
from recsys_tasks.warehouse import publish_day, registered, work_db

log = logging.getLogger(__name__)


def similar_items(moment: Moment, k: int, ds: date) -> pl.DataFrame:
    """Return recs.item_similar rows: each item's k nearest by behaviour and by text."""
    frames = []
    for kind, matrix in (("behaviour", moment.behaviour), ("text", moment.text)):
        item, rank, other, score = ranked_rows(matrix, k)
        items = np.asarray(moment.data.items, dtype=object)
        frames.append(pl.DataFrame({"item_id": items[item].tolist(), "kind": kind, "rank": rank.astype(np.int32),
                                    "similar_item_id": items[other].tolist(), "score": score.astype(np.float64)},
                                   schema={"item_id": pl.Utf8, "kind": pl.Utf8, "rank": pl.Int32,
                                           "similar_item_id": pl.Utf8, "score": pl.Float64}))
    return pl.concat(frames).with_columns(pl.lit(ds).alias("ds")).select(
        "ds", "item_id", "kind", "rank", "similar_item_id", "score")


def arm_model(settings: Settings, ds: date, name: str, served: str, data):
    """Return the model an arm serves: the day's served artefact, or the named model fit on the same data."""
    if name == served:
        return load_model(served_model_path(settings, ds))
    model = build_model(name, **model_params(settings, name)).fit(data)  # refit: a re-run may see corrected data
    model.save(model_dir(settings, ds, "variants", name))
    return model


def learn_ranker(con, settings: Settings, ds: date, name: str, event_type: str) -> Ranker:
    """Learn the scoring function for model `name` on the holdout (candidates from the data before it)."""
    holdout = Holdout.for_day(con, ds, settings.holdout_days)
    data = load_training_data(con, settings, "interactions_holdout", holdout.start, ds)
    path = model_dir(settings, ds, "candidates", name)
    model = load_model(path) if (path / "model.json").exists() else \
        build_model(name, **model_params(settings, name)).fit(data)
    users, targets = holdout_targets(con, data, holdout, event_type)
    if len(users) > settings.ranker_max_users:
        keep = np.sort(np.random.default_rng(ds.toordinal()).choice(len(users), settings.ranker_max_users,
                                                                       replace=False))
        users, targets = users[keep], [targets[i] for i in keep]
    moment = load_moment(con, settings, data, "interactions_holdout", holdout.start, ds)
    exclude = None if event_type == "purchase" else seen_mask(con, "interactions_holdout", data, event_type)
    x, y, info = training_rows(moment, model, users, targets, settings.recall_per_source, settings.new_item_days,
                               exclude)
    ranker = learn(x, y, {**info, "holdout_start": holdout.start.date().isoformat(), "model": name})
    ranker.save(settings.models_dir / ds.isoformat() / "policy" / f"ranker_{name}.json")
    log.info("ranker for %s: %s %s", name, ranker.how, ranker.info)
    return ranker


def recommend(settings: Settings, ds: date, run_id: str) -> dict:
    """Write recs.user_topk, recs.default_topk and recs.item_similar for ds."""
    choice = served_choice(settings, ds)
    served = choice["served_model"]
    event_type = choice.get("target_event_type", "purchase")
    variants = parse_variants(settings.variants, settings)
    with work_db(settings) as con:
        data = load_training_data(con, settings, "interactions", end_of(ds), ds)
        moment = load_moment(con, settings, data, "interactions", end_of(ds), ds)
        # shops whose customers re-order keep past purchases in the lists; review-style data never repeats
        history = None if event_type == "purchase" else seen_mask(con, "interactions", data, event_type)
        rules, counts = load_rulebook(con, settings, moment, ds, history)
        builder = ListBuilder(moment, rules, settings.new_item_days, settings.top_k)
        bucket = assign(data.users, variants, settings.variant_salt)
        models, rankers, frames = {}, {}, []
        for variant in variants:
            name = variant.knobs.model or served
            if name not in models:
                models[name] = arm_model(settings, ds, name, served, data)
            if variant.knobs.policy and name not in rankers:
                rankers[name] = learn_ranker(con, settings, ds, name, event_type)
            arm = Arm(models[name], rankers.get(name), variant.knobs, variant.name)
            users = np.flatnonzero(bucket == variant.name)
            frames.append(builder.build(users, arm).with_columns(
                pl.lit(ds).alias("ds"), pl.lit(f"{name}@{ds.isoformat()}").alias("model"),
                pl.lit(variant.name).alias("variant")))
            counts[f"users_{variant.name}"] = len(users)
        user_topk = pl.concat(frames).select("ds", "user_id", "rank", "item_id", "score", "strategy", "reason",
                                             "model", "variant")
        default_topk = default_lists(con, settings, moment, rules, ds, end_of(ds))
        similar = similar_items(moment, settings.similar_k, ds)
        counts.update(builder.stats.counts)
        counts["ranker_learned"] = int(all(r.how == "learned" for r in rankers.values()))
        for table, frame in (("user_topk", user_topk), ("default_topk", default_topk), ("item_similar", similar)):
            with registered(con, "new_rows", frame):
                con.execute(f"CREATE OR REPLACE TABLE staging.{table} AS SELECT * FROM new_rows")
            counts[table] = publish_day(con, f"recs.{table}", f"staging.{table}", ds)
    log.info("recommend %s (text neighbours: %s): %s", ds, moment.text_search, counts)
    return counts
