"""Turn one landing file (Parquet, CSV, JSON Lines, gzipped or not) into text columns."""
from __future__ import annotations

import csv
import datetime
import gzip
import io
import json
import zlib
from decimal import Decimal
from pathlib import Path

import polars as pl

FORMATS = {
    ".parquet": "parquet",
    ".csv": "csv",
    ".csv.gz": "csv",
    ".jsonl": "jsonl",
    ".jsonl.gz": "jsonl",
    ".json": "jsonl",
    ".json.gz": "jsonl",
}
_NESTED = (pl.Struct, pl.List, pl.Array, pl.Object)


def file_format(path: Path) -> str | None:
    """Return "parquet", "csv" or "jsonl" from the file's name, or None when unsupported."""
    name = Path(path).name.lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return FORMATS[suffix]
    return None


def read_text_table(path: Path, data: bytes) -> tuple[pl.DataFrame, list[str], int]:
    """Return (all-Utf8 frame, columns the file names, record count) of a file's bytes.

    Raises ValueError naming the file when the bytes cannot be parsed at all.
    """
    kind = file_format(path)
    if kind is None:
        raise ValueError(f"{path}: unsupported file type (expected one of {', '.join(FORMATS)})")
    try:
        if Path(path).name.lower().endswith(".gz"):
            data = gzip.decompress(data)
        if kind == "csv":
            return _read_csv(data)
        if kind == "jsonl":
            return _read_jsonl(data)
        return _read_parquet(data)
    except ValueError as error:
        raise ValueError(f"{path}: cannot parse as {kind}: {error}") from error
    except (pl.exceptions.PolarsError, OSError, EOFError, zlib.error, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot parse as {kind}: {error}") from error


def _read_csv(data: bytes) -> tuple[pl.DataFrame, list[str], int]:
    frame = pl.read_csv(io.BytesIO(data), infer_schema=False, raise_if_empty=False)
    # polars renames repeated header names; the validator must see the header as written
    head = data[: 1 << 20].decode("utf-8", errors="replace").lstrip("\ufeff")
    header = next(csv.reader(io.StringIO(head)), [])
    if len(header) != frame.width:
        header = frame.columns
    # a quoted "" is as empty as a bare empty cell
    frame = frame.with_columns(pl.col(c).replace("", None) for c in frame.columns)
    return frame, header, frame.height


def _read_jsonl(data: bytes) -> tuple[pl.DataFrame, list[str], int]:
    text = data.decode("utf-8").lstrip("\ufeff")
    records = _json_array(text)
    if records is None:
        lines = [line for line in text.splitlines() if line.strip()]
        records = [_json_object(line) for line in lines]
    if records and all(r is None for r in records):
        raise ValueError("no line is a JSON object")
    header: dict[str, None] = {}
    for record in records:
        if record is not None:
            header.update(dict.fromkeys(record))
    # a line that is not a JSON object stays as an all-null row, so its record number is quarantined
    columns = {c: [_json_text((r or {}).get(c)) for r in records] for c in header}
    frame = pl.DataFrame(columns, schema={c: pl.Utf8 for c in header})
    return frame, list(header), len(records)


def _json_array(text: str) -> list | None:
    """Return the records of a file holding one JSON array, else None (it is JSON Lines)."""
    if not text.lstrip().startswith("["):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, list):
        return None
    return [v if isinstance(v, dict) else None for v in value]


def _json_object(line: str) -> dict | None:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _json_text(value) -> str | None:
    """Return a JSON value as text: strings as they are, numbers as digits, the rest as JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def _read_parquet(data: bytes) -> tuple[pl.DataFrame, list[str], int]:
    frame = pl.read_parquet(io.BytesIO(data))
    text = pl.DataFrame([_series_text(frame.get_column(c)) for c in frame.columns])
    return text, list(frame.columns), frame.height


def _series_text(series: pl.Series) -> pl.Series:
    """Return a typed Parquet column as text, nested values as JSON."""
    dtype = series.dtype
    if dtype == pl.Utf8:
        return series
    if isinstance(dtype, _NESTED):
        values = [None if v is None else json.dumps(_plain(v), ensure_ascii=False) for v in series.to_list()]
        return pl.Series(series.name, values, dtype=pl.Utf8)
    if isinstance(dtype, pl.Datetime):
        utc = series.dt.convert_time_zone("UTC") if dtype.time_zone else series
        whole = utc.dt.truncate("1s") == utc
        formatted = pl.select(
            pl.when(pl.lit(whole))
            .then(pl.lit(utc).dt.to_string("%Y-%m-%dT%H:%M:%SZ"))
            .otherwise(pl.lit(utc).dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ"))
        ).to_series()
        return formatted.alias(series.name)
    if dtype == pl.Date:
        return series.dt.to_string("%Y-%m-%d")
    if dtype == pl.Binary:
        values = [None if v is None else v.decode("utf-8", errors="backslashreplace") for v in series.to_list()]
        return pl.Series(series.name, values, dtype=pl.Utf8)
    return series.cast(pl.Utf8)


def _plain(value):
    """Return a nested Parquet value with Decimals and dates made JSON-friendly."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return value
