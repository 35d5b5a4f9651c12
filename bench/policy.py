"""The recommendation policy against the bare served model (EVALUATION.md section C: the served list).

    python -m bench.policy [--days 2011-07-31 2011-08-31] [--home DIR] [--no-sweep] [--no-demo]

online-retail, for each day D: run the pipeline's stages up to train_served on the raw UCI files up to D (a fresh
RECSYS_HOME unless --home holds <home>/<D> already), then run the recommend stage twice, once with the policy at its
default knobs and once as the bare served model (a variant with policy off), and score each published top-K against
what each user bought in the 30 days after D with the rules of protocol B (new track: the user's history items
dropped from the published list, order kept, before the cut at 20). Then build, in process on the same inputs, the
lists of the learned ranker alone (no MMR, no exploration, no brand cap) and of each knob value alone, to say what
each knob trades. The shared UCI files end on 2011-09-30, so the default days are those whose next 30 days are
there: the cut-offs of protocol B (T = 2011-08-01 and 2011-09-01).

UCI has neither brands nor categories, so the brand cap and the category part of MMR are measured on the demo shop
(`make run`'s 60 days, seed 7): D = its 45th day, targets = purchases in the 15 days after.

The candidate models are pinned to the baselines so the numbers do not move with the language models' budgets.
Writes bench/results/policy.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl

from bench.reference_baselines import retail_purchases
from recsys_tasks.metrics import ndcg_at_k, recall_at_k
from recsys_tasks.policy.health import category_diversity, coverage, gini, intra_list_diversity

REPO = Path(__file__).resolve().parents[1]
LANDING = REPO.parent / "shared" / "datasets" / "online-retail" / "by-day"
BASELINES = ["popularity", "segment_popularity", "repeat", "itemknn", "ease"]
K = 20  # the cut-off of protocol C
WINDOW_DAYS = 30
DEMO_START, DEMO_DAYS, DEMO_D, DEMO_WINDOW = dt.date(2024, 1, 1), 60, dt.date(2024, 2, 14), 15
PREPARE = ("ingest", "validate", "build", "item_knowledge", "user_profile", "train_candidates", "evaluate",
           "train_served")
PLAIN = {"mmr_lambda": 1.0, "exploration_share": 0.0, "max_per_brand": 0}  # the learned ranker's order alone
SWEEPS = {  # knob -> values tried alone, the others at their defaults
    "mmr_lambda": [1.0, 0.95, 0.9, 0.8, 0.7, 0.5],
    "exploration_share": [0.0, 0.05, 0.1, 0.2],
    "recall_per_source": [50, 100, 200],
}
DEMO_SWEEPS = {
    "max_per_brand": [0, 10, 5, 3],
    "mmr_category_weight": [0.0, 0.5, 1.0],
    "mmr_lambda": [1.0, 0.9, 0.8],
}


def settings_for(home: Path, source: str = "online-retail", landing: Path = LANDING, **params):
    from recsys_tasks.config import load_settings

    return load_settings({"source": source, "landing": str(landing), "recsys_home": str(home), "top_k": 50,
                          "models": BASELINES, **params}, environ={})


def prepare(settings, ds: dt.date) -> float:
    """Run the stages before recommend for ds (skipped when its served model is there); return seconds."""
    from recsys_tasks.pipeline import stage_function

    if (settings.models_dir / ds.isoformat() / "served").exists():
        return 0.0
    started = time.perf_counter()
    for name in PREPARE:
        stage_function(name)(settings, ds, "bench-policy")
    return time.perf_counter() - started


class Protocol:
    """Targets of protocol C for day D: what each user with history bought in the window_days after D."""

    def __init__(self, purchases: pl.DataFrame, ds: dt.date, window_days: int = WINDOW_DAYS):
        start = dt.datetime.combine(ds + dt.timedelta(days=1), dt.time())
        history = purchases.filter(pl.col("ts") < start)
        window = purchases.filter((pl.col("ts") >= start) & (pl.col("ts") < start + dt.timedelta(days=window_days)))
        catalogue = set(history["item_id"].unique().to_list())
        self.history = {u: set(g) for u, g in history.group_by("user_id").agg(pl.col("item_id").unique()).iter_rows()}
        bought = window.filter(pl.col("user_id").is_in(list(self.history)) & pl.col("item_id").is_in(list(catalogue)))
        self.targets = {u: set(g) for u, g in bought.group_by("user_id").agg(pl.col("item_id").unique()).iter_rows()}

    def score(self, lists: dict[str, list[str]]) -> dict:
        """Return all/new Recall@20 and NDCG@20 of users' published lists."""
        out = {}
        for track in ("all", "new"):
            tops, targets = [], []
            vocab: dict[str, int] = {}
            for user, target in sorted(self.targets.items()):
                if track == "new":
                    target = target - self.history[user]
                if not target:
                    continue
                items = list(lists.get(user, []))
                if track == "new":
                    items = [i for i in items if i not in self.history[user]]
                items = items[:K]
                tops.append([vocab.setdefault(i, len(vocab)) for i in items] + [-1] * (K - len(items)))
                targets.append({vocab.setdefault(i, len(vocab)) for i in target})
            top = np.asarray(tops, dtype=np.int64).reshape(len(tops), K)
            out[track] = {"ndcg@20": float(np.mean(ndcg_at_k(top, targets, K))),
                          "recall@20": float(np.mean(recall_at_k(top, targets, K))), "users": len(tops)}
        return out


class ListMetrics:
    """Coverage, exposure, diversity and cold share of the top 20 of every list, from the day's catalogue."""

    def __init__(self, settings, ds: dt.date):
        import duckdb

        con = duckdb.connect(str(settings.work_db), read_only=True)
        try:
            rows = con.execute(
                "SELECT item_id, text_embedding, COALESCE(available, TRUE), "
                "first_seen >= CAST(? AS DATE) - to_days(CAST(? AS INTEGER)), top_category, COALESCE(brand, '') "
                "FROM features.item_knowledge WHERE ds = ? ORDER BY item_id",
                [ds, settings.new_item_days, ds]).fetchall()
        finally:
            con.close()
        self.index = {r[0]: i for i, r in enumerate(rows)}
        self.embeddings = np.asarray([r[1] for r in rows], dtype=np.float32)
        self.available = np.asarray([r[2] for r in rows], bool)
        self.is_new = np.asarray([r[3] for r in rows], bool)
        self.category = np.asarray([r[4] for r in rows], dtype=object)
        self.brand = np.asarray([r[5] for r in rows], dtype=object)

    def __call__(self, lists: dict[str, list[str]]) -> dict:
        rows = [np.asarray([self.index[i] for i in items[:K] if i in self.index], dtype=np.int64)
                for items in lists.values()]
        slots = np.concatenate(rows)
        top_brand = [max(np.unique(b[b != ""], return_counts=True)[1], default=0) / len(b)
                     for b in (self.brand[r] for r in rows) if len(b)]
        return {"coverage@20": coverage(rows, self.available),
                "gini@20": gini(np.bincount(slots, minlength=len(self.available))[self.available]),
                "intra_list_diversity@20": intra_list_diversity(rows, self.embeddings),
                "category_diversity@20": category_diversity(rows, self.category),
                "top_brand_share@20": float(np.mean(top_brand)) if self.brand.any() else None,
                "cold_share@20": float(self.is_new[slots].mean()),
                "cold_items_exposed@20": int(len(np.unique(slots[self.is_new[slots]])))}


def published_lists(settings, ds: dt.date) -> dict[str, list[str]]:
    import duckdb

    con = duckdb.connect(str(settings.work_db), read_only=True)
    try:
        rows = con.execute("SELECT user_id, list(item_id ORDER BY rank) FROM recs.user_topk WHERE ds = ? "
                           "GROUP BY user_id", [ds]).fetchall()
    finally:
        con.close()
    return dict(rows)


def run_recommend(settings, ds: dt.date, variants: dict) -> tuple[dict[str, list[str]], float]:
    """Run the recommend stage with the given variants; return the published lists and the stage's seconds."""
    from recsys_tasks.recommend import recommend

    started = time.perf_counter()
    recommend(replace(settings, variants=json.dumps(variants)), ds, "bench-policy")
    return published_lists(settings, ds), time.perf_counter() - started


def _line(label: str, r: dict) -> str:
    brand = f"  top brand {r['top_brand_share@20']:.3f}" if r.get("top_brand_share@20") is not None else ""
    return (f"  {label:<24} all NDCG@20 {r['all']['ndcg@20']:.4f}  new {r['new']['ndcg@20']:.4f}  coverage "
            f"{r['coverage@20']:.3f}  ILD {r['intra_list_diversity@20']:.3f}  categories "
            f"{r['category_diversity@20']:.3f}{brand}  cold {r['cold_share@20']:.3f}")


def sweep(settings, ds: dt.date, describe, sweeps: dict) -> dict:
    """Build the lists in process with the ranker alone and with each knob value alone; return their scores."""
    from recsys_tasks.build import end_of
    from recsys_tasks.policy.lists import Arm, ListBuilder
    from recsys_tasks.policy.rules import load_rulebook
    from recsys_tasks.policy.signals import load_moment
    from recsys_tasks.policy.variants import Knobs
    from recsys_tasks.recommend import arm_model, learn_ranker
    from recsys_tasks.training import served_choice
    from recsys_tasks.training_data import load_training_data
    from recsys_tasks.warehouse import work_db

    choice = served_choice(settings, ds)
    served, event_type = choice["served_model"], choice.get("target_event_type", "purchase")
    with work_db(settings) as con:
        data = load_training_data(con, settings, "interactions", end_of(ds), ds)
        moment = load_moment(con, settings, data, "interactions", end_of(ds), ds)
        rules, _ = load_rulebook(con, settings, moment, ds)
        ranker = learn_ranker(con, settings, ds, served, event_type)
    model = arm_model(settings, ds, served, served, data)
    base = Knobs.from_settings(settings)
    users = np.arange(data.n_users)

    def scored(**overrides) -> dict:
        started = time.perf_counter()
        builder = ListBuilder(moment, rules, settings.new_item_days, settings.top_k)
        frame = builder.build(users, Arm(model, ranker, replace(base, **overrides)))
        lists = dict(frame.group_by("user_id", maintain_order=True).agg(pl.col("item_id")).iter_rows())
        return {**describe(lists), "seconds": round(time.perf_counter() - started, 1)}

    out = {"served_model": served, "ranker": {"how": ranker.how, **ranker.info}, "ranker_only": scored(**PLAIN),
           "sweeps": []}
    print(_line("ranker alone", out["ranker_only"]), flush=True)
    for knob, values in sweeps.items():
        for value in values:
            record = {"knob": knob, "value": value, **scored(**{knob: value})}
            out["sweeps"].append(record)
            print(_line(f"{knob}={value}", record), flush=True)
    return out


def bench_day(settings, ds: dt.date, protocol: Protocol, sweeps: dict | None) -> dict:
    """Return the bare model's, the policy's and (sweeps) each knob's scores on day ds."""
    prep = prepare(settings, ds)
    metrics = ListMetrics(settings, ds)

    def describe(lists):
        return {**protocol.score(lists), **metrics(lists)}

    bare, bare_s = run_recommend(settings, ds, {"bare": {"share": 1.0, "policy": False}})
    policy, policy_s = run_recommend(settings, ds, {"control": {"share": 1.0}})  # last: the home keeps the default
    result = {"source": settings.source, "ds": ds.isoformat(), "prepare_seconds": round(prep, 1),
              "bare": {**describe(bare), "recommend_seconds": round(bare_s, 1)},
              "policy": {**describe(policy), "recommend_seconds": round(policy_s, 1)}}
    result["policy_vs_bare_all_ndcg"] = round(result["policy"]["all"]["ndcg@20"] / result["bare"]["all"]["ndcg@20"]
                                              - 1.0, 4)
    print(f"{settings.source} {ds}", flush=True)
    print(_line("bare served model", result["bare"]), flush=True)
    print(_line("policy (defaults)", result["policy"]), flush=True)
    if sweeps:
        result.update(sweep(settings, ds, describe, sweeps))
        plain = result["ranker_only"]["all"]["ndcg@20"]
        result["cost_of_diversity_and_exploration"] = round(1.0 - result["policy"]["all"]["ndcg@20"] / plain, 4)
        print(f"  diversity and exploration at the defaults cost "
              f"{100 * result['cost_of_diversity_and_exploration']:.2f}% of the ranker's all-track NDCG@20", flush=True)
    return result


def demo_purchases(landing: Path) -> pl.DataFrame:
    """Return every purchase of the demo landing (all days, also after D) as user_id, item_id, ts."""
    from recsys_tasks.sources import get_source

    source = get_source("landing", landing)
    frames = [source.read(p).frame for p in source.partitions(until=dt.date(9999, 12, 31)) if p.kind == "events"]
    events = pl.concat([f.select("user_id", "item_id", "event_type", "event_ts") for f in frames])
    return events.filter(pl.col("event_type") == "purchase").select(
        "user_id", "item_id", pl.col("event_ts").str.to_datetime(time_zone="UTC").dt.replace_time_zone(None)
        .alias("ts"))


def bench_demo(root: Path, sweeps: bool) -> dict:
    from recsys_tasks import demo_logs

    landing = root / "demo-landing"
    if not (landing / "events").exists():
        demo_logs.generate(landing, start=DEMO_START, days=DEMO_DAYS, seed=7, malformed_share=0.0)
    settings = settings_for(root / "demo", source="landing", landing=landing)
    protocol = Protocol(demo_purchases(landing), DEMO_D, DEMO_WINDOW)
    return bench_day(settings, DEMO_D, protocol, DEMO_SWEEPS if sweeps else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", nargs="+", default=["2011-07-31", "2011-08-31"])
    parser.add_argument("--home", type=Path, help="a folder of RECSYS_HOMEs to reuse (<home>/<ds>, <home>/demo)")
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument("--no-demo", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    purchases = retail_purchases()
    root = args.home or Path(tempfile.mkdtemp(prefix="bench-policy-"))
    days = []
    for day in args.days:
        ds = dt.date.fromisoformat(day)
        days.append(bench_day(settings_for(root / day), ds, Protocol(purchases, ds), None if args.no_sweep else SWEEPS))
    demo = None if args.no_demo else bench_demo(root, not args.no_sweep)
    out = REPO / "bench" / "results" / "policy.json"
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
               "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    defaults = {k: getattr(settings_for(root), k) for k in ("mmr_lambda", "mmr_category_weight", "max_per_brand",
                                                           "exploration_share", "recall_per_source", "new_item_days")}
    command = "python -m bench.policy " + " ".join(sys.argv[1:] if argv is None else argv)
    out.write_text(json.dumps({"command": command.strip(), "machine": machine, "defaults": defaults,
                               "online_retail": days, "demo": demo,
                               "seconds": round(time.perf_counter() - started, 1)}, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
