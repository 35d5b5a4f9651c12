"""The product as its users work it: a real `airflow standalone`, headless Chromium, the REST API, the warehouse.

One scenario on a tiny demo shop whose logs end yesterday (Y); the tests run in file order and share the server:
1. the trigger form runs day Y with top_k changed to 7;
2. the backfill form runs Y-3..Y-2 (oldest first) with top_k 5;
3. the REST API refuses invalid parameters before any task runs;
   then the scheduler exits (as it once did on its own, see scripts/airflow_local.py) and `heal` starts it again;
   then it hangs (SIGSTOP: alive, no heartbeat) and `heal` ends it and starts it again; so does the api-server
   (SIGSTOP: alive, no answer);
4. a REST API backfill re-runs Y with top_k 4 on that scheduler: its lists are replaced, not appended to;
5. the Recommendations page shows the latest run, the charts, validation with its data docs, and one user's list.
Screenshots go to tests/ui/screenshots/.
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from recsys_tasks import demo_logs
from tests.ui import browser
from tests.ui.airflow_server import DAG_ID, Api, airflow_local, control, free_port

pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(browser.missing()), reason=browser.missing() or "")]

SHOTS = Path(__file__).resolve().parent / "screenshots"
DAYS = 9  # demo days, the last one yesterday
RUN_TIMEOUT_S = 420  # a tiny run takes about a minute on two cores
MODELS = ["popularity", "repeat"]  # the fast candidates: these tests are about operating the DAG, not the models
By = browser.By
EC = browser.EC


@dataclass
class Stack:
    base: str
    password: str
    home: Path  # RECSYS_HOME
    airflow_home: Path
    yesterday: date
    api: Api

    def day(self, back: int) -> date:
        return self.yesterday - timedelta(days=back)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Stack:
    root = tmp_path_factory.mktemp("ui")
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    home, airflow_home = root / "home", root / "airflow"
    demo_logs.generate(home / "landing" / "demo", start=yesterday - timedelta(days=DAYS - 1), days=DAYS, seed=5,
                       n_users=120, n_items=60, malformed_share=0.01)
    port = free_port()
    started = control("start", airflow_home, "--port", str(port), "--recsys-home", str(home), "--no-demo",
                      "--timeout", "240")
    try:
        assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
        assert "127.0.0.1" in started.stdout and "admin / " in started.stdout
        password = started.stdout.split("admin / ", 1)[1].split()[0]
        base = f"http://127.0.0.1:{port}"
        yield Stack(base, password, home, airflow_home, yesterday, Api(base, airflow_home).login(password))
    finally:
        stopped = control("stop", airflow_home)
        print(stopped.stdout)


@pytest.fixture(scope="module")
def driver(stack):
    chrome = browser.chrome()
    try:
        yield chrome
    finally:
        chrome.quit()


def lists(home: Path) -> dict[date, dict]:
    """Return per day: rows, users, distinct (user, rank) pairs and the smallest and largest list length."""
    with duckdb.connect(str(home / "warehouse" / "analytics.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT ds, sum(n), count(*), sum(pairs), min(n), max(n) FROM ("
            "  SELECT ds, user_id, count(*) AS n, count(DISTINCT rank) AS pairs FROM recs.user_topk GROUP BY ALL"
            ") GROUP BY ds").fetchall()
    return {ds: {"rows": n, "users": users, "pairs": pairs, "shortest": lo, "longest": hi}
            for ds, n, users, pairs, lo, hi in rows}


def assert_one_set(home: Path, ds: date, top_k: int) -> None:
    """Day ds holds exactly one list of top_k ranks per user: nothing appended by a re-run."""
    day = lists(home).get(ds)
    assert day, f"no lists for {ds}"
    assert day["rows"] == day["pairs"] == day["users"] * top_k, day
    assert day["shortest"] == day["longest"] == top_k, day


def runs_on(runs: list[dict], days: list[date]) -> list[dict]:
    return [r for r in runs if r["logical_date"][:10] in {d.isoformat() for d in days}]


def test_trigger_form_runs_a_day_with_a_changed_parameter(stack, driver):
    assert Api(stack.base).call("POST", "/auth/token", {"username": "admin", "password": "admin"})[0] == 401
    driver.get(f"{stack.base}/")
    browser.wait(driver).until(EC.presence_of_element_located((By.NAME, "username")))
    browser.screenshot(driver, SHOTS, "01_login")
    browser.login(driver, stack.base, stack.password)
    browser.open_trigger_dialog(driver, stack.base, DAG_ID)
    picker = driver.find_element(By.CSS_SELECTOR, browser.DIALOG + " [data-testid=datetime-input]")
    browser.set_datetime(driver, picker, stack.yesterday.strftime("%Y/%m/%d"))
    browser.set_field(driver, "top_k", "7")
    browser.set_field(driver, "models", "\n".join(MODELS))
    unpause = driver.find_elements(By.CSS_SELECTOR, browser.DIALOG + " input[type=checkbox]")
    if unpause and unpause[0].is_selected():  # unpause below, once the run exists: no scheduled run for Y then
        driver.execute_script("arguments[0].click()", unpause[0])
    browser.screenshot(driver, SHOTS, "02_trigger_form")
    browser.click_button(driver, "Trigger")
    browser.wait(driver).until(lambda d: not d.find_elements(By.CSS_SELECTOR, browser.DIALOG))
    run = stack.api.wait_for(lambda runs: runs_on(runs, [stack.yesterday]), 30, "manual run created")[0]
    assert run["run_type"] == "manual" and run["conf"]["top_k"] == 7 and run["conf"]["models"] == MODELS

    driver.get(f"{stack.base}/dags/{DAG_ID}")
    toggle = browser.wait(driver).until(EC.element_to_be_clickable((By.CSS_SELECTOR, "[data-testid=toggle-pause]")))
    toggle.click()
    browser.wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, "[data-testid=toggle-pause] input").is_selected())
    stack.api.wait_for(lambda runs: [r for r in runs_on(runs, [stack.yesterday]) if r["state"] == "success"],
                       RUN_TIMEOUT_S, "manual run of Y")
    driver.get(f"{stack.base}/dags/{DAG_ID}/runs")
    browser.wait(driver).until(EC.presence_of_element_located((By.XPATH, "//*[contains(text(), 'manual__')]")))
    browser.screenshot(driver, SHOTS, "03_manual_run_succeeded")
    assert_one_set(stack.home, stack.yesterday, 7)
    assert len(stack.api.runs()) == 1  # unpausing after the run existed scheduled nothing extra


def test_backfill_form_runs_a_range_oldest_first(stack, driver):
    first, last = stack.day(3), stack.day(2)
    browser.open_trigger_dialog(driver, stack.base, DAG_ID)
    browser.choose(driver, "backfill")
    pickers = browser.wait(driver).until(lambda d: [p for p in d.find_elements(
        By.CSS_SELECTOR, browser.DIALOG + " [data-testid=datetime-input]") if p.is_displayed()][:2] or None)
    browser.set_datetime(driver, pickers[0], first.strftime("%Y/%m/%d"))
    browser.set_datetime(driver, pickers[1], last.strftime("%Y/%m/%d"))
    browser.set_field(driver, "top_k", "5")
    browser.set_field(driver, "models", "\n".join(MODELS))
    # Airflow 3.3's form sends the parameters of a backfill only with this box ticked (else the DAG's defaults run)
    override = driver.find_element(By.XPATH, browser.DIALOG_XPATH + "//label[contains(., 'Override parameters')]//input")
    if not override.is_selected():
        driver.execute_script("arguments[0].click()", override)
    browser.wait(driver).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, browser.DIALOG),
                                                                "2 runs will be triggered"))
    assert not driver.find_element(By.XPATH, browser.DIALOG_XPATH + "//label[contains(., 'Run Backwards')]//input") \
        .is_selected()
    browser.screenshot(driver, SHOTS, "04_backfill_form")
    browser.click_button(driver, "Run Backfill")
    browser.wait(driver).until(lambda d: not d.find_elements(By.CSS_SELECTOR, browser.DIALOG))
    runs = stack.api.wait_for(
        lambda runs: len(done := [r for r in runs_on(runs, [first, last]) if r["state"] == "success"]) == 2 and done,
        2 * RUN_TIMEOUT_S, "backfill from the UI")
    older, newer = sorted(runs, key=lambda r: r["logical_date"])
    assert {older["run_type"], newer["run_type"]} == {"backfill"} and older["conf"]["top_k"] == 5
    assert older["end_date"] <= newer["start_date"], "the older day must finish before the newer one starts"
    driver.get(f"{stack.base}/dags/{DAG_ID}/runs")
    browser.wait(driver).until(EC.presence_of_element_located((By.XPATH, "//*[contains(text(), 'backfill__')]")))
    browser.screenshot(driver, SHOTS, "05_backfill_succeeded")
    assert_one_set(stack.home, first, 5)
    assert_one_set(stack.home, last, 5)
    assert_one_set(stack.home, stack.yesterday, 7)  # untouched
    stack.api.wait_for(lambda runs: stack.api.backfills_finished(), 120, "backfill marked complete")


def test_rest_api_refuses_invalid_parameters_before_any_task_runs(stack):
    before = stack.api.runs()
    status, body = stack.api.call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns",
                                  {"logical_date": f"{stack.day(5)}T00:00:00Z", "conf": {"top_k": 0}})
    assert status == 400 and "top_k" in body["detail"], (status, body)
    status, body = stack.api.call("POST", "/api/v2/backfills", {
        "dag_id": DAG_ID, "from_date": f"{stack.day(6)}T00:00:00Z", "to_date": f"{stack.day(5)}T00:00:00Z",
        "dag_run_conf": {"source": "no-such-source"}, "max_active_runs": 1})
    assert 400 <= status < 500 and "source" in str(body), (status, body)
    assert stack.api.runs() == before


def until(check, timeout: float, what: str):
    """Poll check() every second until it returns something true, and return that; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not (done := check()):
        assert time.monotonic() < deadline, f"{what}: not after {timeout:.0f}s"
        time.sleep(1)
    return done


def heartbeat_since(stack, moment: datetime):
    """Return True when the API reports a healthy scheduler whose latest heartbeat is later than moment."""
    status, health = stack.api.call("GET", "/api/v2/monitor/health")
    beat = (health.get("scheduler") or {}).get("latest_scheduler_heartbeat") if status == 200 else None
    return bool(beat) and datetime.fromisoformat(beat) > moment and health["scheduler"]["status"] == "healthy"


def test_heal_starts_a_scheduler_that_exited_again(stack):
    scheduler = airflow_local.running_components(stack.airflow_home)["scheduler"]
    assert scheduler, control("status", stack.airflow_home).stdout
    os.kill(min(scheduler), signal.SIGTERM)  # its main process: it exits its loop as it did on its own, runs nothing
    status = until(lambda: (s := control("status", stack.airflow_home)).returncode == 4 and s, 60, "scheduler exit")
    assert "scheduler EXITED" in status.stdout and "api-server up" in status.stdout, status.stdout
    healed_at = datetime.now(timezone.utc)
    healed = control("heal", stack.airflow_home)
    assert healed.returncode == 0 and "scheduler had exited: started again" in healed.stdout, healed.stdout
    assert "dag-processor" not in healed.stdout  # only what had exited
    until(lambda: heartbeat_since(stack, healed_at), 120, "the healed scheduler's heartbeat")
    assert control("status", stack.airflow_home).returncode == 0
    assert control("heal", stack.airflow_home).stdout.strip() == "every component is running"


def test_heal_ends_and_restarts_a_scheduler_that_hangs(stack):
    hung_after = ("--hung-after", "20")  # seconds; the default (300) would make this test slow
    scheduler = airflow_local.running_components(stack.airflow_home)["scheduler"]
    assert scheduler and control("status", stack.airflow_home, *hung_after).returncode == 0
    os.kill(min(scheduler), signal.SIGSTOP)  # alive, runs nothing, beats no more: what a deadlock looks like
    try:
        status = until(lambda: (s := control("status", stack.airflow_home, *hung_after)).returncode == 4 and s, 90,
                       "scheduler reported hung")
        assert "scheduler HUNG (no heartbeat for" in status.stdout and "dag-processor up" in status.stdout, status.stdout
        healed_at = datetime.now(timezone.utc)
        healed = control("heal", stack.airflow_home, *hung_after)
    finally:
        for pid in scheduler:  # a failed assertion must not leave later tests a stopped scheduler
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert "scheduler hung (no heartbeat for" in healed.stdout and "scheduler had hung: started again" in healed.stdout
    assert all(airflow_local.process_gone(pid) for pid in scheduler), healed.stdout  # ended, not left beside the new one
    until(lambda: heartbeat_since(stack, healed_at), 120, "the new scheduler's heartbeat")
    assert control("status", stack.airflow_home, *hung_after).returncode == 0


def test_heal_ends_and_restarts_an_api_server_that_hangs(stack):
    hung_after = ("--hung-after", "20")  # its health endpoint silent for 20 s: hung
    api_server = airflow_local.running_components(stack.airflow_home)["api-server"]
    assert api_server and control("status", stack.airflow_home, *hung_after).returncode == 0
    os.kill(min(api_server), signal.SIGSTOP)  # alive, its port open, answers nothing
    try:
        status = control("status", stack.airflow_home, *hung_after)
        assert status.returncode == 4, status.stdout + status.stderr
        assert "api-server HUNG (no answer from /api/v2/monitor/health for" in status.stdout, status.stdout
        assert "scheduler up" in status.stdout  # not judged while its heartbeat cannot be read
        healed = control("heal", stack.airflow_home, *hung_after)
    finally:
        for pid in api_server:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert "api-server had hung: started again" in healed.stdout and "scheduler" not in healed.stdout, healed.stdout
    assert all(airflow_local.process_gone(pid) for pid in api_server), healed.stdout
    port = int(stack.base.rsplit(":", 1)[1])
    until(lambda: airflow_local.healthy(port), 120, "the new api-server's answer")
    assert stack.api.call("GET", f"/api/v2/dags/{DAG_ID}")[0] == 200  # the token it issued before still holds
    assert control("status", stack.airflow_home, *hung_after).returncode == 0


def test_rest_api_backfill_re_runs_a_day_and_replaces_its_lists(stack):
    status, body = stack.api.call("POST", "/api/v2/backfills", {
        "dag_id": DAG_ID, "from_date": f"{stack.yesterday}T00:00:00Z", "to_date": f"{stack.yesterday}T00:00:00Z",
        "reprocess_behavior": "completed", "max_active_runs": 1, "dag_run_conf": {"top_k": 4, "models": MODELS}})
    assert status == 200 and body["max_active_runs"] == 1, body
    stack.api.wait_for(  # the re-run keeps its run id and takes the backfill's type and parameters
        lambda runs: [r for r in runs_on(runs, [stack.yesterday])
                      if r["state"] == "success" and r["run_type"] == "backfill" and r["conf"].get("top_k") == 4],
        RUN_TIMEOUT_S, "backfill through the API")
    assert_one_set(stack.home, stack.yesterday, 4)  # replaced, not appended to the top_k=7 lists
    assert_one_set(stack.home, stack.day(2), 5)
    days = sorted(lists(stack.home))
    assert days == [stack.day(3), stack.day(2), stack.yesterday]
    assert len(stack.api.runs()) == 3  # a re-run, not a new run
    with duckdb.connect(str(stack.home / "warehouse" / "analytics.duckdb"), read_only=True) as con:
        statuses = con.execute("SELECT ds, count(*), min(status) FROM ops.pipeline_runs GROUP BY ds").fetchall()
    assert {ds: (n, s) for ds, n, s in statuses} == {d: (1, "success") for d in days}
    for day in days:
        assert (stack.home / "reports" / day.isoformat() / "index.html").exists(), day


def test_analyst_cookbook_on_the_demo_warehouse(stack):
    cookbook = Path(__file__).resolve().parents[2] / "sql" / "analyst"

    def cook(con, name, **params):
        return con.execute((cookbook / f"{name}.sql").read_text(), params).fetchall()

    with duckdb.connect(str(stack.home / "warehouse" / "analytics.duckdb"), read_only=True) as con:
        user, segment = con.execute("SELECT r.user_id, p.segment FROM recs.latest_user_topk AS r JOIN "
                                    "features.user_profile AS p USING (user_id) ORDER BY ALL LIMIT 1").fetchone()
        listed = cook(con, "user_list", user_id=user)
        assert [r[1] for r in listed] == [1, 2, 3, 4] and all(r[3] and r[8] for r in listed)  # titles and reasons
        assert cook(con, "segment_shown", segment=segment)
        served = con.execute("SELECT model FROM ops.pipeline_runs ORDER BY ds DESC LIMIT 1").fetchone()[0]
        moved = cook(con, "model_metrics_week", model=served)
        assert moved and {r[1] for r in moved} >= {"ndcg", "recall"}
        assert cook(con, "quarantine_rules", since=stack.day(DAYS))  # the demo spoils 1% of its rows


def test_recommendations_page_in_the_airflow_ui(stack, driver):
    driver.get(f"{stack.base}/")
    link = browser.wait(driver).until(EC.element_to_be_clickable((By.CSS_SELECTOR, "a[href$='plugin/recommendations']")))
    link.click()
    frame = browser.wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, "iframe")))
    driver.switch_to.frame(frame)
    status = browser.wait(driver).until(EC.presence_of_element_located((By.ID, "latest-status")))
    assert status.text == "success"
    page = driver.find_element(By.TAG_NAME, "body").text
    assert f"Published lists of {stack.yesterday}" in page
    assert len(driver.find_elements(By.CSS_SELECTOR, "#quality svg")) == 3
    assert driver.find_elements(By.CSS_SELECTOR, "#health svg") and driver.find_elements(By.CSS_SELECTOR, "#feedback")
    user = driver.find_element(By.ID, "user-id").get_attribute("placeholder")
    assert user
    driver.find_element(By.ID, "user-id").send_keys(user)
    driver.find_element(By.CSS_SELECTOR, "#user-lookup button").click()
    table = browser.wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#user-list table")))
    ranks = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(ranks) == 4  # the replaced day's top_k
    assert all(r.find_elements(By.TAG_NAME, "td")[-1].text for r in ranks)  # every item has a reason
    docs = driver.find_element(By.ID, "data-docs-link").get_attribute("href")
    report = driver.find_element(By.ID, "report-link").get_attribute("href")
    driver.switch_to.default_content()
    browser.screenshot(driver, SHOTS, "06_recommendations_page")

    driver.get(docs)
    browser.wait(driver).until(EC.text_to_be_present_in_element((By.TAG_NAME, "body"), "Expectation Validation Result"))
    browser.screenshot(driver, SHOTS, "07_data_docs")
    driver.get(report)
    browser.wait(driver).until(EC.text_to_be_present_in_element((By.TAG_NAME, "body"), "Popularity vs coverage"))
    assert len(driver.find_elements(By.CSS_SELECTOR, "svg")) >= 6
    driver.set_window_size(1400, 3600)
    browser.screenshot(driver, SHOTS, "08_nightly_report")
    driver.set_window_size(1400, 1000)


def test_plugin_refuses_anonymous_readers(stack):
    anonymous = Api(stack.base)
    for path in ("/recsys/", f"/recsys/reports/{stack.yesterday}/index.html"):
        status, _ = anonymous.call("GET", path)
        assert status in (401, 403), (path, status)
