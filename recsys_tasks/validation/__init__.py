"""The validate stage's engine: Great Expectations suites per input, valid rows and quarantine."""
import logging

# GE announces every closure it skips while importing: hundreds of lines per task log
logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)

from recsys_tasks.validation.runner import (
    DataQualityError,
    RuleResult,
    SchemaError,
    ValidationOutcome,
    validate_events,
    validate_items,
)
from recsys_tasks.validation.suites import suite_definitions

__all__ = [
    "DataQualityError",
    "RuleResult",
    "SchemaError",
    "ValidationOutcome",
    "suite_definitions",
    "validate_events",
    "validate_items",
]
