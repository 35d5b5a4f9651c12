"""The DAG on real UCI Online Retail daily files, as they are (cancellations, guests, non-products, float ids)."""
from __future__ import annotations

import csv
from datetime import date

import pytest

from tests.conftest import SHARED_DATASETS
from tests.integration.pipeline_runner import analytics, run_day, work

BY_DAY = SHARED_DATASETS / "online-retail" / "by-day"
DAYS = ["2011-09-19", "2011-09-20", "2011-09-21", "2011-09-22", "2011-09-23", "2011-09-25", "2011-09-26",
        "2011-09-27", "2011-09-28", "2011-09-29", "2011-09-30"]

pytestmark = pytest.mark.skipif(not BY_DAY.exists(), reason=f"{BY_DAY} is not here (../shared/datasets)")


@pytest.fixture(scope="module")
def retail(airflow_db, tmp_path_factory) -> dict:
    landing = tmp_path_factory.mktemp("uci")
    for day in DAYS + ["2011-10-01"]:  # 2011-10-01 does not exist upstream; a later file must never be read
        if (BY_DAY / f"{day}.csv").exists():
            (landing / f"{day}.csv").symlink_to(BY_DAY / f"{day}.csv")
    (landing / "2011-10-02.csv").write_text("this is not a CSV the adapter could read\x00\x01")
    home = tmp_path_factory.mktemp("uci-home")
    state = run_day(home, date(2011, 9, 30), source="online-retail", landing=str(landing), top_k=20)
    return {"home": home, "state": state}


def _raw_lines() -> int:
    total = 0
    for day in DAYS:
        with open(BY_DAY / f"{day}.csv", newline="") as handle:
            total += sum(1 for _ in csv.reader(handle)) - 1
    return total


def test_real_days_run_through_and_lose_no_row(retail):
    assert retail["state"] == "success"
    with work(retail["home"]) as w:
        clean = w.execute("SELECT count(*) FROM clean.events").fetchall()[0][0]
        bad = w.execute("SELECT count(*) FROM quality.quarantine WHERE kind = 'events'").fetchall()[0][0]
        rules = dict(w.execute("SELECT rule, count(*) FROM quality.quarantine WHERE kind = 'events' GROUP BY rule")
                     .fetchall())
        ids = w.execute("SELECT count(*) FROM clean.events WHERE user_id LIKE '%.%'").fetchall()[0][0]
        codes = w.execute("SELECT count(*) FROM clean.events WHERE item_id IN ('POST', 'M', 'DOT', 'C2')").fetchall()[0][0]
    assert clean + bad == _raw_lines()
    assert {"user_id_not_null", "quantity_in_range", "item_known"} <= set(rules)  # guests, cancellations, POST/M
    assert ids == 0 and codes == 0


def test_real_days_publish_lists_for_customers(retail):
    with analytics(retail["home"]) as con:
        users, rows = con.execute("SELECT count(DISTINCT user_id), count(*) FROM recs.user_topk").fetchall()[0]
        assert rows == 20 * users and users > 500
        sample = con.execute("SELECT user_id FROM recs.user_topk LIMIT 1").fetchall()[0][0]
        assert sample.isdigit()  # CustomerID as integer text, e.g. 17850
        reasons = {r[0].split(":")[0] for r in con.execute("SELECT DISTINCT reason FROM recs.user_topk").fetchall()}
        assert any(r.startswith("Buy it again") or r.startswith("Because you") for r in reasons)
