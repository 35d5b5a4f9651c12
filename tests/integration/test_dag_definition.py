"""The DAG file parses cleanly, fast, without heavy imports, and declares the promised structure."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

from tests.integration.pipeline_runner import REPO, load_dag

PARSE = """
import json, sys, time
started = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers", "great_expectations", "duckdb")
               if m in sys.modules)
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": sorted(bag.dag_ids),
                  "heavy": heavy}))
"""


def test_dag_file_imports_without_errors_or_heavy_modules(airflow_db):
    out = subprocess.run([sys.executable, "-c", PARSE, str(REPO / "dags")], capture_output=True, text=True,
                         check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["errors"] == {}
    assert result["dags"] == ["recsys_nightly"]
    assert result["heavy"] == []  # parsing the DAG must not load torch, transformers, GE or DuckDB


def test_dag_structure_params_pool_and_assets(airflow_db):
    dag = load_dag()
    order = ["ingest", "validate", "build", "features.item_knowledge", "features.user_profile",
             "models.train_candidates", "models.evaluate", "models.train_served", "recommend", "publish", "report"]
    policy = {"feedback": ("build", "publish"), "list_health": ("recommend", "publish")}  # beside the main line
    assert sorted(dag.task_ids) == sorted(order + list(policy))
    for upstream, downstream in zip(order, order[1:]):
        assert downstream in dag.get_task(upstream).downstream_task_ids, (upstream, downstream)
    for task_id, (upstream, downstream) in policy.items():
        assert task_id in dag.get_task(upstream).downstream_task_ids and \
            downstream in dag.get_task(task_id).downstream_task_ids, task_id
    assert dag.max_active_runs == 1 and not dag.catchup
    assert {dag.get_task(t).pool for t in ("models.train_candidates", "models.train_served")} == {"gpu"}
    assert dag.params["top_k"] == 50 and dag.params["source"] == "demo"
    outlets = {a.uri for a in dag.get_task("publish").outlets}
    assert "recsys://analytics/recs/user_topk" in outlets
    assert all(dag.get_task(t).retries == 2 for t in order)
    assert dag.dagrun_timeout == timedelta(hours=23)  # a stuck night fails instead of holding up the next ones
    assert all(dag.get_task(t).execution_timeout == timedelta(hours=6) for t in dag.task_ids)


def test_task_and_run_timeouts_come_from_the_environment(airflow_db, monkeypatch):
    monkeypatch.setenv("RECSYS_TASK_TIMEOUT_H", "0.5")
    monkeypatch.setenv("RECSYS_RUN_TIMEOUT_H", "2")
    dag = load_dag()
    assert dag.dagrun_timeout == timedelta(hours=2)
    assert {dag.get_task(t).execution_timeout for t in dag.task_ids} == {timedelta(minutes=30)}


def test_invalid_params_are_refused_before_any_task_runs(airflow_db):
    import pytest
    from airflow.sdk.definitions.param import ParamsDict

    dag = load_dag()
    params = ParamsDict(dict(dag.params.items()))
    with pytest.raises(Exception, match="top_k|minimum|0"):
        params.update({"top_k": 0})
        params.validate()
    bad_source = ParamsDict(dict(load_dag().params.items()))
    with pytest.raises(Exception):
        bad_source.update({"source": "ftp"})
        bad_source.validate()
    bad_arm = ParamsDict(dict(load_dag().params.items()))
    with pytest.raises(Exception):
        bad_arm.update({"variants": {"control": {"share": 1.0, "model": "no-such-model"}}})
        bad_arm.validate()


def test_params_the_schema_cannot_check_fail_the_first_task_without_retry(tmp_path, monkeypatch):
    import pytest
    from airflow.sdk.exceptions import AirflowFailException

    from recsys_tasks import pipeline

    monkeypatch.setenv("RECSYS_HOME", str(tmp_path))
    with pytest.raises(AirflowFailException, match="add up to"):
        pipeline.run_stage_task("ingest", {"variants": {"a": {"share": 0.5}, "b": {"share": 0.4}}}, "2024-01-01",
                                "manual__test")
    assert list(tmp_path.iterdir()) == []  # nothing was written: not even the working database
