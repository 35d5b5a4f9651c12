"""The nightly DAG end to end through Airflow's dag.test() on a small generated shop, with real DuckDB, GE and MiniLM."""
from __future__ import annotations

import os
import shutil
from datetime import date, timedelta

import numpy as np
import pytest

from recsys_tasks import demo_logs
from tests.integration.pipeline_runner import analytics, run_day, snapshot, work

START = date(2024, 3, 1)
DAYS = 12
D = START + timedelta(days=DAYS - 2)  # the run date; the generator's last day lies after it
TOP_K = 10

# run-specific columns: everything else must be identical when a day is run twice
RUN_COLUMNS = ("run_id", "validated_at", "started_at", "finished_at", "stage_durations", "code_version")


@pytest.fixture(scope="module")
def shop(airflow_db, tmp_path_factory) -> dict:
    """Generate a small demo shop and run the DAG for day D once."""
    root = tmp_path_factory.mktemp("shop")
    landing = root / "landing"
    report = demo_logs.generate(landing, start=START, days=DAYS, seed=3, n_users=150, n_items=90,
                                malformed_share=0.01)
    home = root / "home"
    # the language models on a small budget: a few epochs and two text-tuning steps (deterministic, so a re-run of
    # the day must reproduce every table)
    conf = {"source": "landing", "landing": str(landing), "top_k": TOP_K, "holdout_days": 3, "lm_epochs": 3,
            "student_epochs": 3, "lm_time_budget_s": 60, "text_tuning_max_steps": 2, "text_tuning_min_pairs": 0}
    state = run_day(home, D, **conf)
    return {"home": home, "landing": landing, "report": report, "conf": conf, "state": state}


def test_run_succeeds_and_publishes_every_table(shop):
    assert shop["state"] == "success"
    with analytics(shop["home"]) as con:
        for table in ("recs.user_topk", "recs.default_topk", "recs.item_similar", "features.user_profile",
                      "features.item_knowledge", "metrics.offline_eval", "quality.validation_runs",
                      "quality.quarantine", "ops.pipeline_runs"):
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0, table
        assert con.execute("SELECT count(*) FROM recs.latest_user_topk").fetchone()[0] > 0
        status = con.execute("SELECT status, model FROM ops.pipeline_runs WHERE ds = ?", [D]).fetchall()
        assert status and status[0][0] == "success" and status[0][1]


def test_every_known_user_gets_top_k_distinct_items_with_reasons(shop):
    with analytics(shop["home"]) as con:
        users = con.execute("SELECT count(*) FROM features.user_profile WHERE ds = ?", [D]).fetchone()[0]
        per_user = con.execute(
            "SELECT user_id, count(*), count(DISTINCT item_id), min(rank), max(rank), count(reason) "
            "FROM recs.user_topk WHERE ds = ? GROUP BY user_id", [D]).fetchall()
        assert len(per_user) == users
        for _, n, distinct, lo, hi, reasons in per_user:
            assert (n, distinct, lo, hi, reasons) == (TOP_K, TOP_K, 1, TOP_K, TOP_K)
        # never an item nobody has seen by D, and every recommended item is in the catalogue of D
        unknown = con.execute("SELECT count(*) FROM recs.user_topk AS r ANTI JOIN features.item_knowledge AS k "
                              "ON k.item_id = r.item_id AND k.ds = r.ds WHERE r.ds = ?", [D]).fetchone()[0]
        assert unknown == 0
        cols = {r[0]: r[1] for r in con.execute("DESCRIBE recs.user_topk").fetchall()}
        assert cols == {"ds": "DATE", "user_id": "VARCHAR", "rank": "INTEGER", "item_id": "VARCHAR",
                        "score": "DOUBLE", "strategy": "VARCHAR", "reason": "VARCHAR", "model": "VARCHAR",
                        "variant": "VARCHAR"}


def test_because_reasons_cite_an_item_from_the_users_history(shop):
    with analytics(shop["home"]) as con, work(shop["home"]) as w:
        titles: dict[str, set] = {}
        for title, item in con.execute("SELECT title, item_id FROM features.item_knowledge WHERE ds = ?", [D]).fetchall():
            titles.setdefault(title, set()).add(item)
        rows = con.execute("SELECT user_id, reason FROM recs.user_topk WHERE ds = ? AND reason LIKE 'Because you%'",
                           [D]).fetchall()
        history = {}
        for user, item in w.execute("SELECT user_id, item_id FROM clean.events WHERE dt <= ?", [D]).fetchall():
            history.setdefault(user, set()).add(item)
    checked = 0
    for user, reason in rows:
        title = reason.split(" ", 3)[3]  # "Because you bought <title>" / "Because you looked at <title>"
        title = title[3:] if title.startswith("at ") else title
        assert titles.get(title, set()) & history[user], (user, reason)
        checked += 1
    assert checked > 0


def test_model_choice_is_recorded_and_unknown_users_get_default_lists(shop):
    with analytics(shop["home"]) as con:
        models = {r[0] for r in con.execute("SELECT DISTINCT model FROM metrics.offline_eval WHERE ds = ?", [D]).fetchall()}
        assert models == {"popularity", "segment_popularity", "repeat", "itemknn", "ease", "gbdt", "teacher", "student",
                          "blend"}
        served = con.execute("SELECT DISTINCT model FROM metrics.offline_eval WHERE ds = ? AND served", [D]).fetchall()
        assert len(served) == 1
        best = con.execute("SELECT model FROM metrics.offline_eval WHERE ds = ? AND track = 'all' AND metric = 'ndcg' "
                           "ORDER BY value DESC LIMIT 1", [D]).fetchone()[0]
        best_value, served_value = con.execute(
            "SELECT max(value), max(value) FILTER (WHERE served) FROM metrics.offline_eval "
            "WHERE ds = ? AND track = 'all' AND metric = 'ndcg'", [D]).fetchone()
        assert served_value == best_value, best
        assert con.execute("SELECT model FROM ops.pipeline_runs WHERE ds = ?", [D]).fetchone()[0] == served[0][0]
        overall = con.execute("SELECT count(*), count(DISTINCT item_id) FROM recs.default_topk "
                              "WHERE ds = ? AND segment = 'all'", [D]).fetchone()
        assert overall[0] == overall[1] == TOP_K


def test_the_two_best_candidates_are_blended_on_the_holdout(shop):
    import json

    from recsys_tasks.models import Blend, load_model

    night = shop["home"] / "models" / D.isoformat()
    choice = json.loads((night / "choice.json").read_text())
    with analytics(shop["home"]) as con:
        ranked = con.execute("SELECT model, value FROM metrics.offline_eval WHERE ds = ? AND track = 'all' "
                             "AND metric = 'ndcg' AND model != 'blend' ORDER BY value DESC, model", [D]).fetchall()
        blend_value = con.execute("SELECT value FROM metrics.offline_eval WHERE ds = ? AND track = 'all' "
                                  "AND metric = 'ndcg' AND model = 'blend'", [D]).fetchone()[0]
    recipe = choice["blend"]
    assert {recipe["parts"][0], recipe["parts"][1]} <= {m for m, _ in ranked}
    assert dict(ranked)[recipe["parts"][0]] == ranked[0][1] and dict(ranked)[recipe["parts"][1]] == ranked[1][1]
    assert np.isclose(sum(recipe["weights"]), 1.0) and len(recipe["tried"]) == 5
    assert np.isclose(blend_value, max(recipe["tried"].values()), atol=1e-4)
    saved = load_model(night / "candidates" / "blend")
    assert isinstance(saved, Blend) and [n for n, _ in saved.parts] == recipe["parts"]
    if choice["served_model"] == "blend":  # refit on all the data, both parts beside it
        assert blend_value > ranked[0][1]
        served = load_model(night / "served" / "blend")
        assert served.weights == recipe["weights"] and len(served.models) == 2
    else:
        assert blend_value <= ranked[0][1]


def test_language_models_leave_versioned_artefacts(shop):
    import json

    from recsys_tasks.models import load_model

    night = shop["home"] / "models" / D.isoformat()
    tuning = json.loads((night / "text_encoder" / "tuning.json").read_text())
    assert tuning["steps"] == 2 and tuning["pairs"] > 0  # MiniLM tuned on the training window's pairs
    processes = int(os.environ.get("RECSYS_LM_PROCESSES", "1"))  # `RECSYS_LM_PROCESSES=2 pytest ...`: torchrun
    assert tuning.get("processes", 1) == processes
    gate = tuning["gate"]  # judged on each shopper's last step, which the tuning never saw
    assert gate["exam_users"] > 0 and 0.0 <= gate["base_ndcg"] <= 1.0 and 0.0 <= gate["tuned_ndcg"] <= 1.0
    loaded = {}
    for name in ("teacher", "student"):
        manifest = json.loads((night / "candidates" / name / "manifest.json").read_text())
        assert manifest["train_until"] and manifest["code_version"] and manifest["params"]["epochs"] == 3
        assert manifest["fit_report"]["epochs_run"] == 3
        # the tuned text only where the gate adopted it; the verdict travels with the artefact
        assert manifest["text_encoder"]["tuned"] == gate["adopted"] and manifest["text_encoder"]["gate"] == gate
        model = load_model(night / "candidates" / name)
        scores = model.score(np.arange(3))
        assert scores.dtype == np.float32 and np.isfinite(scores).all()  # every item, new ones through their text
        loaded[name] = (model, manifest)
    student, manifest = loaded["student"]
    carried = manifest["fit_report"]
    assert carried["prior_rank"] > 0 and np.isfinite(carried["prior_weight"])  # the teacher's prior, at low rank
    assert student.item_vectors.shape[1] == student.dim + carried["prior_rank"]


def test_item_knowledge_counts_new_items_as_the_lists_do(shop):
    from recsys_tasks.config import Settings

    days = Settings().new_item_days  # the lists' exploration, list health and gbdt's new items use the same rule
    with analytics(shop["home"]) as con:
        rows = con.execute("SELECT first_seen, is_new FROM features.item_knowledge WHERE ds = ?", [D]).fetchall()
    ages = [(D - first_seen).days for first_seen, _ in rows]
    assert any(7 < a <= days for a in ages)  # items a one-week rule would call old
    assert [bool(new) for _, new in rows] == [a <= days for a in ages]


def test_malformed_rows_are_quarantined_and_valid_rows_kept(shop):
    with work(shop["home"]) as w:
        quarantined = w.execute("SELECT count(*) FROM quality.quarantine WHERE kind = 'events'").fetchone()[0]
        landed = w.execute("SELECT sum(n_rows) FROM raw.partitions WHERE kind = 'events'").fetchone()[0]
        clean = w.execute("SELECT count(*) FROM clean.events").fetchone()[0]
        newest = w.execute("SELECT max(dt) FROM raw.partitions").fetchone()[0]
    assert quarantined > 0
    assert clean + quarantined == landed  # no valid row lost, no row counted twice
    assert newest == D  # the generator's last day lies after D and was never read


def test_same_day_twice_and_a_later_partition_change_nothing(shop):
    home, conf = shop["home"], shop["conf"]
    tables = ("recs.user_topk", "recs.default_topk", "recs.item_similar", "features.user_profile",
              "features.item_knowledge", "metrics.offline_eval", "quality.quarantine")
    with analytics(home) as con:
        before = {t: snapshot(con, t, RUN_COLUMNS) for t in tables}
    assert run_day(home, D, **conf) == "success"
    with analytics(home) as con:
        assert {t: snapshot(con, t, RUN_COLUMNS) for t in tables} == before
        assert con.execute("SELECT count(*) FROM ops.pipeline_runs WHERE ds = ?", [D]).fetchone()[0] == 2
    with work(home) as w:  # the second night found every item text in the embedding cache
        encoded = w.execute("SELECT CAST(row_counts->>'texts_encoded' AS INTEGER) FROM ops.stage_runs "
                            "WHERE ds = ? AND stage = 'item_knowledge' ORDER BY started_at", [D]).fetchall()
    assert [e[0] for e in encoded][0] > 0 and [e[0] for e in encoded][1] == 0
    # a partition dated after D appears (tomorrow's drop): the run for D must not see it
    later = shop["landing"] / "events" / f"dt={D + timedelta(days=3)}"
    later.mkdir(parents=True)
    src = sorted((shop["landing"] / "events" / f"dt={D}").iterdir())[0]
    shutil.copy(src, later / src.name)
    assert run_day(home, D, **conf) == "success"
    with analytics(home) as con:
        assert {t: snapshot(con, t, RUN_COLUMNS) for t in tables} == before
    shutil.rmtree(later)


def test_gbdt_scores_catalogue_items_nobody_bought_yet_through_their_text(shop):
    import json

    from recsys_tasks.models import load_model

    night = shop["home"] / "models" / D.isoformat() / "candidates" / "gbdt"
    report = json.loads((night / "manifest.json").read_text())["fit_report"]
    # the demo launches items every day: some are in the catalogue before anyone bought them
    assert report["new_item_candidates"] > 0 and report["new_item_fitted"] and report["new_item_positives"] > 0
    model = load_model(night)
    never_sold = np.flatnonzero(model.new_items)
    scores = model.score(np.arange(len(model.users)))
    assert len(never_sold) and (scores[:, never_sold] >= 1.0).any()  # candidates with the trees' own probability
