"""Polars expressions that read the raw text columns: clean, parse and cast."""
from __future__ import annotations

import polars as pl

# A plain decimal number, optionally signed and with an exponent; no "inf", "nan" or thousands separators.
NUMBER_PATTERN = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
# One strict JSON number, as it may appear inside an embedding list.
_JSON_NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
# A non-empty JSON list of numbers; checking the shape by pattern avoids parsing every list in Python.
NUMBER_LIST_PATTERN = rf"^\[\s*{_JSON_NUMBER}(?:\s*,\s*{_JSON_NUMBER})*\s*\]$"
# Text that starts and ends like a JSON object; together with "is JSON" it means "is a JSON object".
OBJECT_PATTERN = r"^\{[\s\S]*\}$"
# ISO 8601 date and time, 'T' or space between, optional seconds and fraction, optional 'Z' or offset;
# groups: 1 date, 2 time, 3 zone (only polars reads this one, so its groups may capture).
TIMESTAMP_PATTERN = (
    r"^([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?)"
    r"([Zz]|[+-][0-9]{2}:?[0-9]{2})?$"
)
BOOLEAN_WORDS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def clean_text(columns: list[str]) -> list[pl.Expr]:
    """Return expressions that strip each column and turn blank cells into nulls."""
    out = []
    for name in columns:
        stripped = pl.col(name).str.strip_chars()
        out.append(pl.when(stripped.str.len_chars() > 0).then(stripped).alias(name))
    return out


def number(name: str) -> pl.Expr:
    """Return the column as f64 where it is a plain number, else null."""
    col = pl.col(name)
    return pl.when(col.str.contains(NUMBER_PATTERN)).then(col.cast(pl.Float64, strict=False))


def timestamp_utc(name: str) -> pl.Expr:
    """Return the ISO 8601 text column as Datetime(us, UTC): offsets are applied, naive times are UTC."""
    col = pl.col(name)
    local = col.str.extract(TIMESTAMP_PATTERN, 1) + "T" + col.str.extract(TIMESTAMP_PATTERN, 2)
    naive = pl.coalesce(
        local.str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S%.f", strict=False),
        local.str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M", strict=False),
    )
    zone = col.str.extract(TIMESTAMP_PATTERN, 3).str.replace(":", "", literal=True)
    # 'Z' and a missing zone both mean UTC
    zone = pl.when(zone.is_null() | zone.str.to_lowercase().eq("z")).then(pl.lit("+0000")).otherwise(zone)
    hours = zone.str.slice(1, 2).cast(pl.Int64)
    minutes = zone.str.slice(3, 2).cast(pl.Int64)
    sign = pl.when(zone.str.starts_with("-")).then(-1).otherwise(1)
    offset = pl.duration(minutes=sign * (hours * 60 + minutes))
    sane_zone = (hours <= 23) & (minutes <= 59)
    return pl.when(sane_zone).then(naive - offset).dt.replace_time_zone("UTC")


def boolean(name: str) -> pl.Expr:
    """Return the column as bool for true/false/1/0/yes/no (any case), else null."""
    return pl.col(name).str.to_lowercase().replace_strict(BOOLEAN_WORDS, default=None, return_dtype=pl.Boolean)


def partition_day(name: str = "_dt") -> pl.Expr:
    """Return the partition's 'YYYY-MM-DD' text as a Date; a malformed one is an ingest bug and raises."""
    return pl.col(name).str.strptime(pl.Date, "%Y-%m-%d", strict=True)


def embedding(name: str) -> pl.Expr:
    """Return a JSON list of numbers as list[f32] (null stays null)."""
    return pl.col(name).str.json_decode(pl.List(pl.Float32))
