"""The input contract every source meets: dated partitions of events and items, read as text."""
from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Protocol

import polars as pl

EVENT_COLUMNS = (
    "user_id", "item_id", "event_type", "event_ts", "event_id",
    "session_id", "quantity", "price", "rating", "context",
)
ITEM_COLUMNS = (
    "item_id", "title", "description", "brand", "category",
    "price", "available", "attributes", "image_embedding",
)
REQUIRED = {"events": ("user_id", "item_id", "event_type", "event_ts"), "items": ("item_id", "title")}
COLUMNS = {"events": EVENT_COLUMNS, "items": ITEM_COLUMNS}
KINDS = ("events", "items")


@dataclass(frozen=True)
class Partition:
    """One day of one kind of data, and a checksum that changes iff its content does."""

    kind: str  # "events" | "items"
    dt: datetime.date  # the day the partition belongs to
    files: tuple[Path, ...]  # the files its rows come from
    checksum: str  # sha256 hex over the partition's bytes and the reader's version


@dataclass
class RawBatch:
    """A partition's rows as text, with the file and record each row came from."""

    frame: pl.DataFrame  # every contract column as Utf8, plus _file (Utf8) and _row (Int64, 1-based)
    columns_by_file: dict[str, list[str]]  # columns each file really had, before the missing ones were filled


class Source(Protocol):
    """Anything the ingest stage can list and read partitions from."""

    name: str

    def partitions(self, until: datetime.date) -> list[Partition]:
        """Return every partition dated on or before `until`, sorted by (kind, dt)."""
        ...

    def read(self, partition: Partition) -> RawBatch:
        """Return the partition's rows as text."""
        ...


def empty_frame(kind: str) -> pl.DataFrame:
    """Return a batch frame of `kind` with no rows."""
    schema = {c: pl.Utf8 for c in COLUMNS[kind]} | {"_file": pl.Utf8, "_row": pl.Int64}
    return pl.DataFrame(schema=schema)


def to_contract(kind: str, table: pl.DataFrame, n_rows: int, file: Path | str) -> pl.DataFrame:
    """Return `table` as a batch frame: contract columns (nulls where absent), _file and 1-based _row."""
    if n_rows == 0:
        return empty_frame(kind)
    data = {}
    for column in COLUMNS[kind]:
        if column in table.columns:
            data[column] = table.get_column(column).cast(pl.Utf8)
        else:
            data[column] = pl.repeat(None, n_rows, dtype=pl.Utf8, eager=True)
    data["_file"] = pl.repeat(str(file), n_rows, dtype=pl.Utf8, eager=True)
    data["_row"] = pl.int_range(1, n_rows + 1, dtype=pl.Int64, eager=True)
    return pl.DataFrame(data)


def concat_batches(kind: str, frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Stack batch frames of one kind, or return an empty one."""
    frames = [f for f in frames if f.height]
    return pl.concat(frames, how="vertical") if frames else empty_frame(kind)


def bytes_checksum(version: str, named_blobs: Iterable[tuple[str, bytes]]) -> str:
    """Return sha256 hex over a reader version and (name, bytes) pairs."""
    digest = hashlib.sha256(version.encode())
    for name, blob in named_blobs:
        # lengths keep ("ab", "c") and ("a", "bc") apart
        digest.update(f"\0{len(name)}:{name}\0{len(blob)}:".encode())
        digest.update(blob)
    return digest.hexdigest()


def rows_checksum(version: str, frame: pl.DataFrame) -> str:
    """Return sha256 hex over a reader version and a frame's rows, files named without their folder."""
    digest = hashlib.sha256(version.encode())
    file_at = frame.columns.index("_file")
    for row in frame.iter_rows():
        row = row[:file_at] + (Path(row[file_at]).name,) + row[file_at + 1:]
        digest.update(repr(row).encode())
    return digest.hexdigest()


def read_bytes(path: Path) -> bytes:
    """Return a file's bytes, or raise ValueError naming it when it cannot be opened."""
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ValueError(f"{path}: cannot read: {error}") from error
