"""The validate stage's engine: Great Expectations suites per input, valid rows and quarantine."""
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
