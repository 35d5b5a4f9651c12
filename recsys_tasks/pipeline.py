"""The nightly stages by name, as the DAG runs them: settings from run parameters, bad data fails without retry."""
from __future__ import annotations

import importlib
import logging
from datetime import date

from recsys_tasks.config import Settings, load_settings
from recsys_tasks.runlog import record_failure, run_stage

log = logging.getLogger(__name__)

# stage name -> "module:function"; each function takes (settings, ds, run_id) and returns row counts.
STAGES = {
    "ingest": "recsys_tasks.ingest:ingest",
    "validate": "recsys_tasks.validate:validate",
    "build": "recsys_tasks.build:build",
    "item_knowledge": "recsys_tasks.features:item_knowledge",
    "user_profile": "recsys_tasks.features:user_profile",
    "train_candidates": "recsys_tasks.training:train_candidates",
    "evaluate": "recsys_tasks.training:evaluate",
    "train_served": "recsys_tasks.training:train_served",
    "recommend": "recsys_tasks.recommend:recommend",
    "feedback": "recsys_tasks.policy.feedback:online_feedback",
    "list_health": "recsys_tasks.policy.health:list_health",
    "publish": "recsys_tasks.publish:publish",
    "report": "recsys_tasks.report:write_report",
}


def stage_function(name: str):
    """Return the function behind a stage name."""
    module, func = STAGES[name].split(":")
    return getattr(importlib.import_module(module), func)


def settings_for(params: dict | None) -> Settings:
    """Return settings for a run: the DAG's params over the environment over the defaults, checked as a whole."""
    from recsys_tasks.policy.variants import parse_variants

    settings = load_settings(dict(params or {}))
    parse_variants(settings.variants, settings)  # shares adding up to 1: a rule the params' JSON schema cannot state
    return settings


def run_stage_task(name: str, params: dict | None, ds: str, run_id: str) -> dict:
    """Run a stage inside an Airflow task; data-quality failures fail the task without retries."""
    from airflow.sdk.exceptions import AirflowFailException

    from recsys_tasks.validation import DataQualityError

    try:
        settings = settings_for(params)
    except ValueError as err:
        raise AirflowFailException(f"invalid run parameters: {err}") from err
    try:
        return run_stage(name, stage_function(name), settings, date.fromisoformat(ds), run_id)
    except (DataQualityError, FileNotFoundError) as err:
        raise AirflowFailException(str(err)) from err


def on_task_failure(context) -> None:
    """Record a failed run in ops.pipeline_runs (the analysts' database is left untouched)."""
    try:
        ti = context["ti"]
        settings = settings_for(context.get("params"))
        message = f"{ti.task_id} failed: {context.get('exception')}"
        record_failure(settings, date.fromisoformat(context["ds"]), context["run_id"], message)
    except Exception:  # a failing callback must not hide the task's own error
        log.exception("could not record the failed run")
