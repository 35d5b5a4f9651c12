"""The policy through the real DAG on two nights of a small shop: A/B arms, rules filled as data, feedback, health."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from recsys_tasks import demo_logs
from recsys_tasks.config import load_settings
from recsys_tasks.policy.rules import load_table
from tests.integration.pipeline_runner import analytics, run_day, snapshot

START = date(2024, 4, 1)
D1 = START + timedelta(days=9)
D2 = D1 + timedelta(days=1)
TOP_K = 10
VARIANTS = {"control": {"share": 0.5}, "bare": {"share": 0.5, "policy": False}}
RUN_COLUMNS = ("run_id", "validated_at", "started_at", "finished_at", "stage_durations", "code_version")


@pytest.fixture(scope="module")
def shop(airflow_db, tmp_path_factory) -> dict:
    """Run D1, then fill the rule tables (a blocked best-seller, two opt-outs) and run D2."""
    root = tmp_path_factory.mktemp("policy-shop")
    landing = root / "landing"
    demo_logs.generate(landing, start=START, days=12, seed=5, n_users=150, n_items=90)
    home = root / "home"
    conf = {"source": "landing", "landing": str(landing), "top_k": TOP_K, "holdout_days": 3, "variants": VARIANTS,
            "models": ["popularity", "segment_popularity", "repeat", "itemknn", "ease"]}  # the policy, not the models
    first = run_day(home, D1, **conf)
    with analytics(home) as con:
        best = con.execute("SELECT item_id FROM recs.default_topk WHERE ds = ? AND segment = 'all' AND rank = 1",
                           [D1]).fetchall()[0][0]
        users = [r[0] for r in con.execute("SELECT DISTINCT user_id FROM recs.user_topk WHERE ds = ? ORDER BY 1",
                                           [D1]).fetchall()]
    settings = load_settings({"recsys_home": str(home)}, environ={})
    (root / "block.csv").write_text(f"item_id,reason,blocked_from\n{best},product recall,{D2}\n")
    (root / "opt.csv").write_text(f"user_id,scope,value\n{users[0]},all,\n{users[1]},personalisation,\n")
    load_table(settings, "block_list", str(root / "block.csv"))
    load_table(settings, "user_opt_outs", str(root / "opt.csv"))
    second = run_day(home, D2, **conf)
    return {"home": home, "conf": conf, "states": (first, second), "blocked": best, "opted": users[:2]}


def test_both_nights_succeed_and_publish_the_policy_tables(shop):
    assert shop["states"] == ("success", "success")
    with analytics(shop["home"]) as con:
        for table in ("metrics.online_feedback", "metrics.list_health", "policy.block_list", "policy.user_opt_outs"):
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0, table


def test_users_keep_their_arm_across_nights_and_both_arms_are_served(shop):
    with analytics(shop["home"]) as con:
        arms = con.execute("SELECT user_id, list(DISTINCT variant), list(DISTINCT ds) FROM recs.user_topk "
                           "GROUP BY user_id").fetchall()
        strategies = dict(con.execute("SELECT variant, list(DISTINCT strategy) FROM recs.user_topk WHERE ds = ? "
                                      "GROUP BY variant", [D2]).fetchall())
    assert all(len(variants) == 1 for _, variants, _ in arms)
    counts = {v: sum(1 for _, vs, _ in arms if vs == [v]) for v in VARIANTS}
    assert min(counts.values()) > 0.25 * len(arms), counts
    assert "explore_new" not in strategies["bare"] and set(strategies) == set(VARIANTS)


def test_rules_filled_as_data_apply_from_the_next_night(shop):
    with analytics(shop["home"]) as con:
        listed = {d: con.execute("SELECT count(*) FROM recs.user_topk WHERE ds = ? AND item_id = ?",
                                 [d, shop["blocked"]]).fetchone()[0] for d in (D1, D2)}
        default = con.execute("SELECT count(*) FROM recs.default_topk WHERE ds = ? AND item_id = ?",
                              [D2, shop["blocked"]]).fetchone()[0]
        gone, plain = shop["opted"]
        rows = con.execute("SELECT count(*) FROM recs.user_topk WHERE ds = ? AND user_id = ?", [D2, gone]).fetchone()
        plain_strategies = {r[0] for r in con.execute("SELECT DISTINCT strategy FROM recs.user_topk "
                                                      "WHERE ds = ? AND user_id = ?", [D2, plain]).fetchall()}
    assert listed[D1] > 0 and listed[D2] == 0 and default == 0
    assert rows[0] == 0
    assert plain_strategies <= {"segment_popularity", "popularity_fill"}


def test_feedback_scores_the_first_nights_lists_per_arm(shop):
    with analytics(shop["home"]) as con:
        rows = con.execute("SELECT DISTINCT list_ds, days_after, variant FROM metrics.online_feedback "
                           "WHERE ds = ?", [D2]).fetchall()
        first_night = con.execute("SELECT count(*) FROM metrics.online_feedback WHERE ds = ?", [D1]).fetchone()[0]
        ndcg = con.execute("SELECT value, ci_low, ci_high FROM metrics.online_feedback WHERE ds = ? AND "
                           "variant = 'all' AND strategy = 'all' AND metric = 'ndcg' AND k = ?", [D2, TOP_K]).fetchall()
    assert {(r[0], r[1]) for r in rows} == {(D1, 1)} and {r[2] for r in rows} >= {"all"}
    assert first_night == 0  # nothing was published before D1
    value, low, high = ndcg[0]
    assert 0 <= low <= value <= high <= 1


def test_list_health_per_arm_and_segment(shop):
    with analytics(shop["home"]) as con:
        rows = con.execute("SELECT variant, segment, metric, value FROM metrics.list_health WHERE ds = ?",
                           [D2]).fetchall()
    metrics = {(v, s, m): x for v, s, m, x in rows}
    assert {v for v, _, _ in metrics} == {"all", *VARIANTS}
    for variant in ("all", *VARIANTS):
        assert 0 < metrics[(variant, "all", "coverage")] <= 1
        assert 0 <= metrics[(variant, "all", "gini")] < 1
        assert 0 <= metrics[(variant, "all", "cold_share")] <= 1


def test_a_second_run_of_the_night_changes_nothing(shop):
    tables = ("recs.user_topk", "metrics.online_feedback", "metrics.list_health", "recs.default_topk")
    with analytics(shop["home"]) as con:
        before = {t: snapshot(con, t, RUN_COLUMNS) for t in tables}
    assert run_day(shop["home"], D2, **shop["conf"]) == "success"
    with analytics(shop["home"]) as con:
        assert {t: snapshot(con, t, RUN_COLUMNS) for t in tables} == before
