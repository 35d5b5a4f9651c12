"""The Great Expectations suites for events, items and their files, and the helper columns they read.

Each rule is one GE expectation with a stable snake_case name in its meta. Where GE has no expectation for a rule
(a parsed timestamp, the partition day, "is this the second copy"), a helper column is derived in polars first and
a plain expectation checks it; `check_frame_*` builds those columns.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import great_expectations as gx
import great_expectations.expectations as gxe
import polars as pl
from great_expectations.expectations.row_conditions import Column

from recsys_tasks.config import EVENT_TYPES, Settings
from recsys_tasks.validation import casting

EVENT_COLUMNS = (
    "user_id", "item_id", "event_type", "event_ts", "event_id", "session_id", "quantity", "price", "rating", "context",
)
ITEM_COLUMNS = (
    "item_id", "title", "description", "brand", "category", "price", "available", "attributes", "image_embedding",
)
REQUIRED_COLUMNS = {"events": ("user_id", "item_id", "event_type", "event_ts"), "items": ("item_id", "title")}
META_COLUMNS = ("_file", "_row", "_dt")
BOOLEAN_PATTERN = "(?i)^(?:" + "|".join(casting.BOOLEAN_WORDS) + ")$"


@dataclass(frozen=True)
class Rule:
    """One expectation and how its failures read in the quarantine."""

    name: str  # stable rule name, e.g. event_type_allowed
    shows: str  # check-frame column whose value a failure reports
    problem: str  # what is wrong, e.g. "is not a number"
    expectation: gxe.Expectation
    label: str = ""  # how the value is introduced in the detail; defaults to `shows`

    @property
    def column(self) -> str:
        return self.label or self.shows


def _rule(name: str, shows: str, problem: str, expectation: type[gxe.Expectation], label: str = "", **kwargs) -> Rule:
    meta = {"rule": name}
    description = f"Quarantine a row whose {label or shows} {problem}."
    return Rule(name, shows, problem, expectation(meta=meta, description=description, **kwargs), label)


def _present(column: str):
    return Column(column).is_not_null()


def _number_rules(column: str, low: float, high: float, strict_low: bool) -> list[Rule]:
    bounds = f"{'(' if strict_low else '['}{low:g}, {high:g}]"
    return [
        _rule(f"{column}_is_number", column, "is not a number", gxe.ExpectColumnValuesToMatchRegex,
              column=column, regex=casting.NUMBER_PATTERN),
        _rule(f"{column}_in_range", column, f"is outside {bounds}", gxe.ExpectColumnValuesToBeBetween,
              column=f"{column}_value", min_value=low, max_value=high, strict_min=strict_low),
    ]


def _json_object_rules(column: str) -> list[Rule]:
    # GE's json-schema expectation raises on text that is not JSON at all, so parseability and shape are two rules.
    return [
        _rule(f"{column}_is_json", column, "is not valid JSON", gxe.ExpectColumnValuesToBeJsonParseable, column=column),
        _rule(f"{column}_is_object", column, "is not a JSON object", gxe.ExpectColumnValuesToMatchRegex,
              column=column, regex=casting.OBJECT_PATTERN),
    ]


def _not_null(column: str) -> Rule:
    return _rule(f"{column}_not_null", column, "is missing or blank", gxe.ExpectColumnValuesToNotBeNull, column=column)


def event_rules(settings: Settings) -> list[Rule]:
    """Return the events rules in suite order (the order that decides a row's first broken rule)."""
    return [
        _not_null("user_id"),
        _not_null("item_id"),
        _not_null("event_type"),
        _rule("event_type_allowed", "event_type", f"is not one of {', '.join(EVENT_TYPES)}",
              gxe.ExpectColumnValuesToBeInSet, column="event_type", value_set=list(EVENT_TYPES)),
        _not_null("event_ts"),
        _rule("event_ts_parseable", "event_ts", "is not an ISO 8601 timestamp", gxe.ExpectColumnValuesToNotBeNull,
              column="event_ts_utc", row_condition=_present("event_ts")),
        _rule("event_ts_in_partition_day", "event_ts", "is not inside its partition's UTC day",
              gxe.ExpectColumnPairValuesToBeEqual, column_A="event_day", column_B="partition_day",
              ignore_row_if="either_value_is_missing"),
        *_number_rules("quantity", 0, settings.max_quantity, strict_low=True),
        *_number_rules("price", 0, settings.max_price, strict_low=True),
        *_number_rules("rating", 0, 5, strict_low=False),
        *_json_object_rules("context"),
        _rule("item_known", "item_id", "has no items row on or before the event's day", gxe.ExpectColumnValuesToBeInSet,
              column="item_known", value_set=[True]),
        _rule("duplicate_event", "event_key", "repeats an earlier row of this batch", gxe.ExpectColumnValuesToBeInSet,
              label="event", column="copy_number", value_set=[1]),
    ]


def item_rules(settings: Settings) -> list[Rule]:
    """Return the items rules in suite order."""
    return [
        _not_null("item_id"),
        _not_null("title"),
        *_number_rules("price", 0, settings.max_price, strict_low=True),
        _rule("available_is_boolean", "available", "is not true/false/1/0/yes/no", gxe.ExpectColumnValuesToMatchRegex,
              column="available", regex=BOOLEAN_PATTERN),
        *_json_object_rules("attributes"),
        _rule("image_embedding_is_vector", "image_embedding", "is not a non-empty JSON list of numbers",
              gxe.ExpectColumnValuesToMatchRegex, column="image_embedding", regex=casting.NUMBER_LIST_PATTERN),
        _rule("duplicate_item", "item_id", "has a later row for the same day (the last one is kept)",
              gxe.ExpectColumnValuesToBeInSet, column="later_copies", value_set=[0]),
    ]


def file_rules(kind: str) -> list[Rule]:
    """Return the per-file rules: the header must hold every required column."""
    required = REQUIRED_COLUMNS[kind]
    schema = {"type": "array", "allOf": [{"contains": {"const": c}} for c in required]}
    return [
        _rule("schema_required_columns", "header", f"lacks one of {', '.join(required)}",
              gxe.ExpectColumnValuesToMatchJsonSchema, column="header", json_schema=schema),
    ]


def build_suite(name: str, rules: list[Rule]) -> gx.ExpectationSuite:
    """Return a GE suite holding the rules' expectations, in order."""
    return gx.ExpectationSuite(name=name, expectations=[r.expectation for r in rules])


def suite_definitions(settings: Settings | None = None) -> list[dict]:
    """Return every suite as a JSON-able dict, to store beside validation results."""
    settings = settings or Settings()
    suites = [
        build_suite("events", event_rules(settings)),
        build_suite("items", item_rules(settings)),
        build_suite("events_files", file_rules("events")),
        build_suite("items_files", file_rules("items")),
    ]
    return [json.loads(json.dumps(s.to_json_dict(), default=str)) for s in suites]


def check_frame_files(columns_by_file: dict[str, list[str]]) -> pl.DataFrame:
    """Return one row per file: its path and its header as JSON text."""
    files = sorted(columns_by_file)
    return pl.DataFrame(
        {"file": files, "header": [json.dumps(list(columns_by_file[f])) for f in files]},
        schema={"file": pl.Utf8, "header": pl.Utf8},
    )


def check_frame_events(frame: pl.DataFrame, known_items: pl.DataFrame) -> pl.DataFrame:
    """Return the cleaned event columns plus the helper columns the events suite reads."""
    first_seen = known_items.group_by(pl.col("item_id").cast(pl.Utf8).str.strip_chars()).agg(
        item_first_day=pl.col("dt").cast(pl.Date).min()
    )
    out = frame.with_columns(*casting.clean_text(list(EVENT_COLUMNS)), partition_day=casting.partition_day())
    out = out.with_columns(
        event_ts_utc=casting.timestamp_utc("event_ts"),
        quantity_value=casting.number("quantity"),
        price_value=casting.number("price"),
        rating_value=casting.number("rating"),
    ).with_columns(event_day=pl.col("event_ts_utc").dt.date())
    out = out.join(first_seen, on="item_id", how="left", maintain_order="left")
    # null when item_id is missing, so only item_id_not_null reports that row
    out = out.with_columns(
        item_known=pl.when(pl.col("item_id").is_not_null()).then(
            pl.col("item_first_day").is_not_null() & (pl.col("item_first_day") <= pl.col("partition_day"))
        )
    )
    return out.with_columns(event_key=_event_key()).with_columns(
        # 1 for the first copy in input order, 2 for the second, ...
        copy_number=pl.int_range(pl.len(), dtype=pl.Int64).over(pl.col("event_id").is_null(), "event_key") + 1
    )


def _event_key() -> pl.Expr:
    # An event_id identifies an event; without one, identical behaviour at the same instant is the same event.
    ts = pl.coalesce(pl.col("event_ts_utc").dt.to_string("%Y-%m-%dT%H:%M:%S%.f"), pl.col("event_ts"))
    parts = [pl.col(c).fill_null("") for c in ("user_id", "item_id", "event_type")]
    numbers = [pl.coalesce(pl.col(f"{c}_value").cast(pl.Utf8), pl.col(c)).fill_null("") for c in ("quantity", "price")]
    tuple_key = pl.concat_str([*parts, ts.fill_null(""), *numbers], separator="|")
    return pl.when(pl.col("event_id").is_not_null()).then(pl.col("event_id")).otherwise(tuple_key)


def check_frame_items(frame: pl.DataFrame) -> pl.DataFrame:
    """Return the cleaned item columns plus the helper columns the items suite reads."""
    out = frame.with_columns(*casting.clean_text(list(ITEM_COLUMNS)), partition_day=casting.partition_day())
    later = pl.len().over("item_id", "partition_day") - 1 - pl.int_range(pl.len()).over("item_id", "partition_day")
    return out.with_columns(
        price_value=casting.number("price"),
        # null when item_id is missing, so only item_id_not_null reports that row
        later_copies=pl.when(pl.col("item_id").is_not_null()).then(later.cast(pl.Int64)),
    )
