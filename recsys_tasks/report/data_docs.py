"""Great Expectations data docs of a day's validation, rendered by GE from the rule outcomes the validate stage recorded.

The validate stage runs GE in an in-memory context and keeps one row per rule in quality.validation_runs; here the
same suites are rebuilt and each rule's recorded counts become GE validation results that GE renders as its HTML
data docs (suite pages and one validation page per suite).
"""
from __future__ import annotations

import logging
import shutil
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from recsys_tasks.config import Settings

log = logging.getLogger(__name__)


def _suites(settings: Settings) -> dict:
    from recsys_tasks.validation.suites import build_suite, event_rules, file_rules, item_rules

    return {
        "events": build_suite("events", event_rules(settings)),
        "items": build_suite("items", item_rules(settings)),
        "events_files": build_suite("events_files", file_rules("events")),
        "items_files": build_suite("items_files", file_rules("items")),
    }


def _context(target: Path):
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    site = {"class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(target)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}}
    config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
                               analytics_enabled=False, progress_bars=ProgressBarsConfig(globally=False),
                               data_docs_sites={"recsys": site})
    return gx.get_context(project_config=config, mode="ephemeral")


def _result(suite, rows: pl.DataFrame, run_id):
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.core.expectation_validation_result import ExpectationValidationResult

    by_rule = {r["rule"]: r for r in rows.iter_rows(named=True)}
    results = []
    for expectation in suite.expectations:
        row = by_rule.get(expectation.meta.get("rule"))
        if row is None:
            continue
        checked, failed = int(row["checked"] or 0), int(row["failed"] or 0)
        results.append(ExpectationValidationResult(
            success=bool(row["success"]), expectation_config=expectation.configuration,
            result={"element_count": checked, "unexpected_count": failed, "missing_count": 0,
                    "unexpected_percent": 100.0 * failed / checked if checked else 0.0,
                    "partial_unexpected_list": list(row["examples"] or [])}))
    passed = sum(r.success for r in results)
    statistics = {"evaluated_expectations": len(results), "successful_expectations": passed,
                  "unsuccessful_expectations": len(results) - passed,
                  "success_percent": 100.0 * passed / len(results) if results else 100.0}
    return ExpectationSuiteValidationResult(success=passed == len(results), results=results, suite_name=suite.name,
                                            statistics=statistics, meta={"run_id": run_id})


def build(settings: Settings, rules: pl.DataFrame, target: Path) -> dict[str, str]:
    """Render GE data docs for the recorded rule outcomes into target; return {suite: page path relative to target}."""
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    logging.getLogger("great_expectations").setLevel(logging.ERROR)  # GE chats at INFO about every page it writes
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    context = _context(target)
    pages: dict[str, str] = {}
    if rules.is_empty():
        context.build_data_docs(site_names=["recsys"])
        return pages
    run_name = rules["run_id"][0]
    validated = rules["validated_at"][0] or datetime.now(timezone.utc).replace(tzinfo=None)
    run_id = RunIdentifier(run_name=run_name, run_time=validated.replace(tzinfo=timezone.utc))
    for name, suite in _suites(settings).items():
        rows = rules.filter(pl.col("suite") == name)
        if rows.is_empty():
            continue
        suite = context.suites.add(suite)
        batch = f"{name}_{rules['ds'][0]}"
        key = ValidationResultIdentifier(ExpectationSuiteIdentifier(name), run_id, batch)
        context.validation_results_store.set(key, _result(suite, rows, run_id))
        pages[name] = "/".join(["validations", *key.to_tuple()]) + ".html"
    context.build_data_docs(site_names=["recsys"])
    return {name: page for name, page in pages.items() if (target / page).exists()}
