"""Read Amazon Reviews 2023 split files and item metadata as day partitions of rating events and items."""
from __future__ import annotations

import ast
import datetime
import io
import json
from pathlib import Path

import polars as pl

from recsys_tasks.sources.base import COLUMNS, Partition, RawBatch, empty_frame, read_bytes, rows_checksum

VERSION = "amazon-reviews-adapter/1"
SPLITS = ("train", "valid", "test")
# the raw column each contract column is made from (None: made by the adapter)
EVENT_SOURCES = {
    "user_id": "user_id", "item_id": "parent_asin", "event_type": None, "event_ts": "timestamp", "rating": "rating",
}
ITEM_SOURCES = {
    "item_id": "parent_asin", "title": "title", "description": "description",
    "brand": "details", "price": "price", "attributes": "details",
}


class AmazonReviewsSource:
    """A folder with <Category>.{train,valid,test}.csv reviews and a *meta*.csv of items."""

    name = "amazon-reviews"

    def __init__(self, landing: Path):
        self.landing = Path(landing)
        self._loaded: tuple[tuple, dict] | None = None

    def partitions(self, until: datetime.date) -> list[Partition]:
        """Return every day with reviews (and the items first reviewed that day) on or before `until`."""
        found = [
            Partition(kind, day, tuple(Path(f) for f in batch.columns_by_file), _checksum(kind, day, batch))
            for (kind, day), batch in self._batches().items()
            if day <= until
        ]
        return sorted(found, key=lambda p: (p.kind, p.dt))

    def read(self, partition: Partition) -> RawBatch:
        """Return the partition's rows, refusing files changed since it was listed."""
        batch = self._batches().get((partition.kind, partition.dt), RawBatch(empty_frame(partition.kind), {}))
        if _checksum(partition.kind, partition.dt, batch) != partition.checksum:
            raise ValueError(f"{partition.kind} dt={partition.dt}: files changed since the partition was listed")
        return batch

    def _batches(self) -> dict[tuple[str, datetime.date], RawBatch]:
        """Return every partition's batch, re-reading the files only when one of them changed."""
        files = self._files()
        stamp = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
        if self._loaded is None or self._loaded[0] != stamp:
            self._loaded = (stamp, load_partitions(files[:-1], files[-1]))
        return self._loaded[1]

    def _files(self) -> list[Path]:
        """Return the split files in order, then the metadata file."""
        if not self.landing.is_dir():
            raise FileNotFoundError(f"amazon-reviews folder {self.landing} does not exist")
        files = [f for split in SPLITS for f in sorted(self.landing.glob(f"*.{split}.csv"))]
        meta = sorted(self.landing.glob("*meta*.csv"))
        if not files or len(meta) != 1:
            raise FileNotFoundError(f"{self.landing}: expected *.train/valid/test.csv files and one *meta*.csv file")
        return files + meta


def _checksum(kind: str, day: datetime.date, batch: RawBatch) -> str:
    return rows_checksum(f"{VERSION}:{kind}:{day}", batch.frame)


def load_partitions(review_files: list[Path], meta_file: Path) -> dict[tuple[str, datetime.date], RawBatch]:
    """Return events by review day and items by the day of their first review."""
    reviews = [_reviews_as_events(f) for f in review_files]
    events = pl.concat([frame for frame, _ in reviews], how="vertical")
    if events.height and events["_day"].is_null().all():
        raise ValueError(f"{', '.join(map(str, review_files))}: no review has a millisecond time stamp")
    # a review whose time stamp does not parse is filed under the first day, so validation still sees it
    events = events.with_columns(pl.col("_day").fill_null(pl.col("_day").min()))
    first_day = events.group_by("item_id").agg(_day=pl.col("_day").min())
    items, item_columns = _meta_as_items(meta_file)
    items = items.join(first_day, on="item_id", how="inner", maintain_order="left")
    found = {"events": dict(found for _, found in reviews), "items": dict([item_columns])}
    batches = {}
    for kind, frame in (("events", events), ("items", items)):
        for (day,), part in frame.partition_by("_day", as_dict=True, maintain_order=True).items():
            rows = part.select(*COLUMNS[kind], "_file", "_row")
            batches[(kind, day)] = RawBatch(rows, {f: found[kind][f] for f in sorted(set(rows["_file"]))})
    return batches


def _read_raw(path: Path) -> pl.DataFrame:
    """Return a raw CSV as text with _file and its 1-based _row."""
    try:
        raw = pl.read_csv(io.BytesIO(read_bytes(path)), infer_schema=False, raise_if_empty=False)
    except pl.exceptions.PolarsError as error:
        raise ValueError(f"{path}: cannot parse as csv: {error}") from error
    raw = raw.with_columns(pl.col(c).replace("", None) for c in raw.columns)
    return raw.with_columns(_row=pl.int_range(1, pl.len() + 1, dtype=pl.Int64), _file=pl.lit(str(path)))


def _column(raw: pl.DataFrame, name: str) -> pl.Expr:
    return pl.col(name) if name in raw.columns else pl.lit(None, pl.Utf8)


def _found(raw: pl.DataFrame, path: Path, sources: dict[str, str | None]) -> tuple[str, list[str]]:
    """Return (file, the contract columns its header could fill)."""
    return str(path), [c for c, name in sources.items() if name is None or name in raw.columns]


def _reviews_as_events(path: Path) -> tuple[pl.DataFrame, tuple[str, list[str]]]:
    """Return one rating event per review line, with the UTC day it belongs to in _day."""
    raw = _read_raw(path)
    millis = _column(raw, "timestamp").str.strip_chars().cast(pl.Int64, strict=False)
    when = pl.from_epoch(millis, time_unit="ms")
    columns = {c: pl.lit(None, pl.Utf8) for c in COLUMNS["events"]} | {
        "user_id": _column(raw, "user_id"),
        "item_id": _column(raw, "parent_asin"),
        "event_type": pl.lit("rating"),
        "event_ts": pl.coalesce(when.dt.to_string("%Y-%m-%dT%H:%M:%S%.3fZ"), _column(raw, "timestamp")),
        "rating": _column(raw, "rating"),
    }
    events = raw.select(**columns, _file="_file", _row="_row", _day=when.dt.date())
    return events, _found(raw, path, EVENT_SOURCES)


def _meta_as_items(path: Path) -> tuple[pl.DataFrame, tuple[str, list[str]]]:
    """Return one item per metadata line; brand and attributes come from the details dict."""
    raw = _read_raw(path)
    details = raw["details"].to_list() if "details" in raw.columns else [None] * raw.height
    parsed = [_details(d) for d in details]
    columns = {c: pl.lit(None, pl.Utf8) for c in COLUMNS["items"]} | {
        "item_id": _column(raw, "parent_asin"),
        "title": _column(raw, "title"),
        "description": _column(raw, "description"),
        "price": _column(raw, "price"),
        "brand": pl.Series([b for b, _ in parsed], dtype=pl.Utf8),
        "attributes": pl.Series([a for _, a in parsed], dtype=pl.Utf8),
    }
    return raw.select(**columns, _file="_file", _row="_row"), _found(raw, path, ITEM_SOURCES)


def _details(text: str | None) -> tuple[str | None, str | None]:
    """Return (brand, details as JSON) from a Python-dict string; unparseable text is kept for validation."""
    if text is None:
        return None, None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None, text
    if not isinstance(value, dict):
        return None, text
    brand = value.get("Brand")
    return (None if brand is None else str(brand)), json.dumps(value, ensure_ascii=False, default=str)
