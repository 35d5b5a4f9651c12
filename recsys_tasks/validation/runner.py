"""Run the suites through Great Expectations and split a batch into valid rows and quarantine."""
from __future__ import annotations

from dataclasses import dataclass, field

import great_expectations as gx
import numpy as np
import polars as pl
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

from recsys_tasks.config import Settings
from recsys_tasks.validation import casting
from recsys_tasks.validation.suites import (
    EVENT_COLUMNS,
    ITEM_COLUMNS,
    REQUIRED_COLUMNS,
    Rule,
    build_suite,
    check_frame_events,
    check_frame_files,
    check_frame_items,
    event_rules,
    file_rules,
    item_rules,
)

# Failing rows come back as positions in GE's unexpected_index_list. Naming _file/_row as
# unexpected_index_column_names gives the same rows, but GE then builds a dict per failing row (~10 s per 100k
# failures in 1.24); the check frame keeps a plain RangeIndex, so a position is a row of the check frame.
RESULT_FORMAT = {"result_format": "COMPLETE", "return_unexpected_index_query": False, "partial_unexpected_count": 5}
EXAMPLES = 5  # int: example rows kept per rule
SHOWN_CHARS = 60  # int: an offending value is cut to this many characters in messages
QUARANTINE_SCHEMA = {
    "kind": pl.Utf8, "dt": pl.Date, "file": pl.Utf8, "row": pl.Int64,
    "rule": pl.Utf8, "rules": pl.Utf8, "detail": pl.Utf8, "record": pl.Utf8,
}


class DataQualityError(ValueError):
    """The batch breaks a schema rule or has too many quarantined rows."""


@dataclass(frozen=True)
class RuleResult:
    """How one expectation fared on the batch."""

    suite: str
    rule: str
    column: str
    checked: int  # rows the expectation looked at (nulls it skips are not counted)
    failed: int
    success: bool
    examples: list[str] = field(default_factory=list)  # up to 5 'file:row (value)'


@dataclass(frozen=True)
class SchemaError:
    """A file whose header lacks required columns."""

    file: str
    missing_columns: list[str]
    message: str


@dataclass
class ValidationOutcome:
    """Valid typed rows, quarantined rows and the rule summaries of one batch.

    valid and quarantine partition the rows of every file without a schema error; rows of a file with one are in
    neither, since the run fails on the schema error anyway.
    """

    valid: pl.DataFrame
    quarantine: pl.DataFrame
    rules: list[RuleResult]
    schema_errors: list[SchemaError]
    bad_share_errors: list[str]

    def raise_if_failed(self) -> None:
        """Raise DataQualityError naming file, rule and examples when a schema or share check failed."""
        messages = [e.message for e in self.schema_errors] + self.bad_share_errors
        if messages:
            raise DataQualityError("\n".join(messages))


def validate_events(
    frame: pl.DataFrame, columns_by_file: dict[str, list[str]], known_items: pl.DataFrame, settings: Settings
) -> ValidationOutcome:
    """Validate a batch of raw event rows."""
    return _validate(
        "events", frame, columns_by_file, settings, event_rules(settings),
        lambda rows: check_frame_events(rows, known_items), _typed_events,
    )


def validate_items(frame: pl.DataFrame, columns_by_file: dict[str, list[str]], settings: Settings) -> ValidationOutcome:
    """Validate a batch of raw item rows."""
    return _validate("items", frame, columns_by_file, settings, item_rules(settings), check_frame_items, _typed_items)


def _validate(kind, frame, columns_by_file, settings, rules, make_check, make_typed) -> ValidationOutcome:
    contract = EVENT_COLUMNS if kind == "events" else ITEM_COLUMNS
    schema_errors, file_results = _check_files(kind, columns_by_file)
    rows = _with_columns(frame, contract).filter(~pl.col("_file").is_in([e.file for e in schema_errors]))
    check = make_check(rows)
    if check.height != rows.height:
        raise AssertionError(f"{kind} check frame has {check.height} rows for {rows.height} input rows")
    failed, summaries = run_suite(kind, rules, check)
    bad = failed.any(axis=1)
    quarantine = _quarantine(kind, rows, check, failed, rules)
    results = file_results + [
        RuleResult(kind, rule.name, rule.column, checked, int(failed[:, j].sum()), success,
                   _examples(check, failed[:, j], rule))
        for j, (rule, (checked, success)) in enumerate(zip(rules, summaries))
    ]
    return ValidationOutcome(
        valid=make_typed(check.filter(pl.Series(~bad))),
        quarantine=quarantine,
        rules=results,
        schema_errors=schema_errors,
        bad_share_errors=_bad_shares(kind, check, failed, rules, settings),
    )


def run_suite(name: str, rules: list[Rule], check: pl.DataFrame) -> tuple[np.ndarray, list[tuple[int, bool]]]:
    """Validate the check frame with GE; return a rows x rules failure matrix and (checked, success) per rule."""
    data = check.select(_columns_read(rules)).to_pandas()
    batch = (
        _context().data_sources.add_pandas(name).add_dataframe_asset(name)
        .add_batch_definition_whole_dataframe(name).get_batch(batch_parameters={"dataframe": data})
    )
    report = batch.validate(build_suite(name, rules), result_format=RESULT_FORMAT)
    by_rule = {r.expectation_config.meta["rule"]: r for r in report.results}
    failed = np.zeros((check.height, len(rules)), dtype=bool)
    summaries = []
    for j, rule in enumerate(rules):
        outcome = by_rule[rule.name]
        _raise_on_exception(name, rule, outcome.exception_info)
        result = outcome.result
        failed[np.asarray(result["unexpected_index_list"], dtype=np.int64), j] = True
        summaries.append((int(result["element_count"]) - int(result.get("missing_count") or 0), bool(outcome.success)))
    return failed, summaries


def _context():
    # A fresh in-memory context per run: nothing shared between tasks, nothing written to disk.
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),  # tqdm bars would flood the task log
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def _raise_on_exception(suite: str, rule: Rule, info: dict) -> None:
    # A rule GE could not evaluate would otherwise look like "no failing rows".
    infos = [info] if "raised_exception" in info else list(info.values())
    for item in infos:
        if item.get("raised_exception"):
            raise RuntimeError(f"{suite} rule {rule.name} could not be evaluated: {item.get('exception_message')}")


def _columns_read(rules: list[Rule]) -> list[str]:
    names: list[str] = []
    for rule in rules:
        e = rule.expectation
        condition = getattr(e, "row_condition", None)
        for name in (getattr(e, "column", None), getattr(e, "column_A", None), getattr(e, "column_B", None),
                     getattr(getattr(condition, "column", None), "name", None)):
            if name and name not in names:
                names.append(name)
    return names


def _with_columns(frame: pl.DataFrame, contract: tuple[str, ...]) -> pl.DataFrame:
    # A file without an optional column still yields the column, empty; an all-null column may arrive untyped.
    return frame.with_columns(
        pl.col(c).cast(pl.Utf8) if c in frame.columns else pl.lit(None, dtype=pl.Utf8).alias(c) for c in contract
    )


def _check_files(kind: str, columns_by_file: dict[str, list[str]]) -> tuple[list[SchemaError], list[RuleResult]]:
    rules = file_rules(kind)
    check = check_frame_files(columns_by_file)
    failed, summaries = run_suite(f"{kind}_files", rules, check)
    errors = []
    for i in np.flatnonzero(failed[:, 0]):
        file = check["file"][int(i)]
        missing = [c for c in REQUIRED_COLUMNS[kind] if c not in columns_by_file[file]]
        message = (f"{kind} file {file}: missing required column(s) {', '.join(missing)} "
                   f"(rule: {rules[0].name})")
        errors.append(SchemaError(file, missing, message))
    examples = [f"{e.file} (missing {', '.join(e.missing_columns)})" for e in errors[:EXAMPLES]]
    checked, success = summaries[0]
    result = RuleResult(f"{kind}_files", rules[0].name, "header", checked, len(errors), success, examples)
    return errors, [result]


def _shown(value: pl.Expr) -> pl.Expr:
    """Return the value quoted and cut short for messages; null reads as null."""
    text = value.cast(pl.Utf8)
    cut = pl.when(text.str.len_chars() > SHOWN_CHARS).then(text.str.slice(0, SHOWN_CHARS) + "…").otherwise(text)
    return ("'" + cut + "'").fill_null("null")


def _examples(check: pl.DataFrame, failed: np.ndarray, rule: Rule) -> list[str]:
    rows = check.filter(pl.Series(failed)).head(EXAMPLES)
    return rows.select(
        pl.format("{}:{} ({})", "_file", "_row", pl.col(rule.shows).cast(pl.Utf8).fill_null("null"))
    ).to_series().to_list()


def _quarantine(
    kind: str, rows: pl.DataFrame, check: pl.DataFrame, failed: np.ndarray, rules: list[Rule]
) -> pl.DataFrame:
    """Return one row per bad input row: where it is, the first and all broken rules, a detail and the raw row."""
    bad_at = np.flatnonzero(failed.any(axis=1))
    if bad_at.size == 0:
        return pl.DataFrame(schema=QUARANTINE_SCHEMA)
    broken = failed[bad_at]
    names = [r.name for r in rules]
    # prefixed so a rule name never collides with a check-frame column
    flags = pl.DataFrame({f"__{n}": broken[:, j] for j, n in enumerate(names)})
    first = pl.Series("rule", np.asarray(names, dtype=object)[broken.argmax(axis=1)], dtype=pl.Utf8)
    detail = pl.when(pl.lit(False)).then(pl.lit(None, dtype=pl.Utf8))
    for r in rules:
        detail = detail.when(pl.col("rule") == r.name).then(
            pl.concat_str(pl.lit(f"{r.column} "), _shown(pl.col(r.shows)), pl.lit(f" {r.problem}"))
        )
    contract = [c for c in rows.columns if not c.startswith("_")]
    record = rows[bad_at].select(pl.struct(contract).struct.json_encode().alias("record"))
    culprits = check[bad_at].select("_file", "_row", "partition_day", *{r.shows for r in rules})
    return pl.concat([culprits, flags, record], how="horizontal").with_columns(first).select(
        kind=pl.lit(kind),
        dt=pl.col("partition_day"),
        file=pl.col("_file"),
        row=pl.col("_row").cast(pl.Int64),
        rule=pl.col("rule"),
        rules=pl.concat_str(
            [pl.when(pl.col(f"__{n}")).then(pl.lit(n)) for n in names], separator=",", ignore_nulls=True
        ),
        detail=detail,
        record=pl.col("record"),
    )


def _pct(share: float) -> str:
    percent = share * 100
    return f"{percent:.0f}%" if abs(percent - round(percent)) < 0.05 else f"{percent:.1f}%"


def _bad_shares(kind: str, check: pl.DataFrame, failed: np.ndarray, rules: list[Rule], settings: Settings) -> list[str]:
    """Return one message per file whose quarantined share is above the limit."""
    bad = failed.any(axis=1)
    first = np.where(bad, failed.argmax(axis=1), -1)
    per_row = check.select("_file", "_row").with_columns(first_rule=pl.Series(first), bad=pl.Series(bad))
    totals = per_row.group_by("_file").agg(rows=pl.len(), bad=pl.col("bad").sum()).with_columns(
        share=pl.col("bad") / pl.col("rows")
    )
    over = totals.filter(
        (pl.col("rows") >= settings.min_rows_for_share) & (pl.col("share") > settings.max_bad_row_share)
    ).sort("_file")
    messages = []
    for file, share in over.select("_file", "share").iter_rows():
        in_file = per_row.with_row_index("_at").filter((pl.col("_file") == file) & pl.col("bad"))
        counts = in_file.group_by("first_rule").agg(n=pl.len(), at=pl.col("_at").first()).sort(
            ["n", "first_rule"], descending=[True, False]
        )
        parts = []
        for j, n, at in counts.iter_rows():
            rule = rules[j]
            example = check[int(at)].select("_row", _shown(pl.col(rule.shows)).alias("v")).row(0)
            parts.append(f"{rule.name} x{n} (e.g. row {example[0]} {example[1]})")
        messages.append(
            f"{kind} file {file}: {_pct(share)} of rows quarantined (> {_pct(settings.max_bad_row_share)}): "
            + ", ".join(parts)
        )
    return messages


def _typed_events(check: pl.DataFrame) -> pl.DataFrame:
    return check.select(
        "user_id", "item_id", "event_type",
        event_ts=pl.col("event_ts_utc"),
        event_id="event_id", session_id="session_id",
        quantity=pl.col("quantity_value"), price=pl.col("price_value"), rating=pl.col("rating_value"),
        context="context", dt=pl.col("partition_day"), _file="_file", _row=pl.col("_row").cast(pl.Int64),
    )


def _typed_items(check: pl.DataFrame) -> pl.DataFrame:
    return check.select(
        "item_id", "title", "description", "brand", "category",
        price=pl.col("price_value"),
        # an item is on sale unless the feed says otherwise
        available=casting.boolean("available").fill_null(True),
        attributes="attributes",
        image_embedding=casting.embedding("image_embedding"),
        dt=pl.col("partition_day"), _file="_file", _row=pl.col("_row").cast(pl.Int64),
    )
