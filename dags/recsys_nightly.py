"""recsys_nightly: a shop's behaviour logs for day D -> published top-K recommendation tables.

This file only orchestrates; every stage is a plain function in recsys_tasks.pipeline (imported inside the tasks,
so parsing this file never loads torch or transformers).
"""
from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, Param, task, task_group

PUBLISHED = [Asset(f"recsys://analytics/{table}") for table in (
    "recs/user_topk", "recs/default_topk", "recs/item_similar", "features/user_profile",
    "features/item_knowledge", "metrics/offline_eval", "quality/validation_runs", "quality/quarantine",
    "ops/pipeline_runs")]
PUBLISHED += [Asset(f"recsys://analytics/{table}") for table in ("metrics/online_feedback", "metrics/list_health")]

MODELS = ["popularity", "segment_popularity", "repeat", "itemknn", "ease", "gbdt", "teacher", "student"]
PARAMS = {
    "source": Param("demo", type="string", enum=["demo", "landing", "online-retail", "amazon-reviews"],
                    description="Layout of the landing directory: the contract layout (demo, landing) or an adapter."),
    # null allowed: the trigger form treats a required empty string as missing and refuses the run
    "landing": Param("", type=["null", "string"], description="Landing directory; empty = $RECSYS_HOME/landing/demo."),
    "top_k": Param(50, type="integer", minimum=1, maximum=1000, description="Items per user in recs.user_topk."),
    "max_bad_row_share": Param(None, type=["null", "number"], minimum=0, maximum=1,
                               description="A file with a larger quarantined share fails the run; empty = source default."),
    "holdout_days": Param(None, type=["null", "integer"], minimum=1, maximum=365,
                          description="Days before D held out to pick the served model; empty = source default."),
    "retention_days": Param(30, type="integer", minimum=1, maximum=3650,
                            description="Days of history kept in the analysts' database."),
    "models": Param(MODELS, type="array", items={"type": "string", "enum": MODELS},
                    description="Candidate models; the best on the holdout is served."),
    "lm_time_budget_s": Param(None, type=["null", "number"], minimum=0,
                              description="Wall-clock cap of each teacher / student fit in seconds (0: epochs decide); "
                                          "empty = recsys_tasks/config.py."),
    # the recommendation policy (README "Recommendation policy"); empty = the defaults in recsys_tasks/config.py
    "variants": Param(None, type=["null", "object"], additionalProperties={
        "type": "object", "required": ["share"], "additionalProperties": False,
        "properties": {"share": {"type": "number", "minimum": 0, "maximum": 1}, "policy": {"type": "boolean"},
                       "model": {"type": "string", "enum": MODELS}, "recall_per_source": {"type": "integer", "minimum": 1},
                       "mmr_lambda": {"type": "number", "minimum": 0, "maximum": 1},
                       "mmr_category_weight": {"type": "number", "minimum": 0, "maximum": 1},
                       "max_per_brand": {"type": "integer", "minimum": 0},
                       "exploration_share": {"type": "number", "minimum": 0, "maximum": 0.5}}},
        description='A/B arms: {"name": {"share": 0.5, knob: value}}, shares adding up to 1; empty = one arm "control".'),
    "mmr_lambda": Param(None, type=["null", "number"], minimum=0, maximum=1,
                        description="MMR weight of relevance against diversity (1 = no diversity re-ranking)."),
    "max_per_brand": Param(None, type=["null", "integer"], minimum=0,
                           description="At most this many items of one brand per list (0 = no cap)."),
    "exploration_share": Param(None, type=["null", "number"], minimum=0, maximum=0.5,
                               description="Share of list slots offered to new items found by text neighbours."),
}



def record_failure(context):
    """Record the failed run in ops.pipeline_runs."""
    from recsys_tasks.pipeline import on_task_failure

    on_task_failure(context)


# a hung task is ended after RECSYS_TASK_TIMEOUT_H hours (then retried); a run still going after RECSYS_RUN_TIMEOUT_H
# fails, so the next night (max_active_runs=1) is not held up behind it
TASK_TIMEOUT = timedelta(hours=float(os.environ.get("RECSYS_TASK_TIMEOUT_H") or 6))
RUN_TIMEOUT = timedelta(hours=float(os.environ.get("RECSYS_RUN_TIMEOUT_H") or 23))

default_args = {
    "owner": "recsys",
    "execution_timeout": TASK_TIMEOUT,
    "retries": 2,  # transient failures (a locked file, a lost worker); bad data raises AirflowFailException: no retry
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=20),
    "on_failure_callback": record_failure,
}


# model tasks: one at a time in the gpu pool; on a Celery cluster (docker-compose.yaml) also on the GPU worker's queue
GPU = {"pool": "gpu", **({"queue": os.environ["RECSYS_GPU_QUEUE"]} if os.environ.get("RECSYS_GPU_QUEUE") else {})}


def stage(name: str, **task_kwargs):
    """Return a task that runs recsys_tasks.pipeline stage `name` for the run's logical date."""

    @task(task_id=name, **task_kwargs)
    def run_stage(params=None, ds=None, run_id=None):
        from recsys_tasks.pipeline import run_stage_task

        return run_stage_task(name, params, ds, run_id)

    return run_stage()


with DAG(
    dag_id="recsys_nightly",
    description="Behaviour logs -> validated warehouse -> features -> models -> published top-K recommendations",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),  # the run for day D starts once D is over
    start_date=pendulum.datetime(2010, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=RUN_TIMEOUT,
    params=PARAMS,
    default_args=default_args,
    tags=["recsys"],
    doc_md=__doc__,
) as dag:
    ingest = stage("ingest")
    validate = stage("validate")
    build = stage("build")

    @task_group(group_id="features")
    def features():
        stage("item_knowledge") >> stage("user_profile")

    @task_group(group_id="models")
    def models():
        stage("train_candidates", **GPU) >> stage("evaluate") >> stage("train_served", **GPU)

    recommend = stage("recommend")
    feedback = stage("feedback")  # earlier days' lists against what their users did since
    list_health = stage("list_health")  # coverage, exposure, diversity, novelty, cold share of the new lists
    publish = stage("publish", outlets=PUBLISHED)
    report = stage("report")  # HTML report and GE data docs under $RECSYS_HOME/reports/<ds>/

    ingest >> validate >> build >> features() >> models() >> recommend >> publish >> report
    build >> feedback >> publish
    recommend >> list_health >> publish
