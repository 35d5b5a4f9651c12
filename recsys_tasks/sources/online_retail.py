"""Read the UCI Online Retail daily drops (one raw invoice-line CSV per trading day) as contract partitions."""
from __future__ import annotations

import datetime
import io
import json
from pathlib import Path

import polars as pl

from recsys_tasks.sources.base import COLUMNS, Partition, RawBatch, bytes_checksum, read_bytes

VERSION = "online-retail-adapter/1"
RAW_COLUMNS = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country")
# Postage, discounts, manual adjustments, fees: invoice lines that are not products the shop sells
NON_PRODUCT_CODES = frozenset(
    {"POST", "D", "M", "m", "C2", "DOT", "BANK CHARGES", "CRUK", "AMAZONFEE", "PADS", "S", "B"}
)
SHOP_TIME_ZONE = "Europe/London"
# the by-day files write "2010-12-01 08:26:00"; the original UCI export wrote "12/1/2010 8:26"
DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%m/%d/%Y %H:%M")
# which raw columns each contract column is made from; a column is only "found" when all of them are
EVENT_SOURCES = {
    "user_id": ("CustomerID",), "item_id": ("StockCode",), "event_type": (), "event_ts": ("InvoiceDate",),
    "session_id": ("InvoiceNo",), "quantity": ("Quantity",), "price": ("UnitPrice",),
    "context": ("Country", "InvoiceNo"),
}
ITEM_SOURCES = {"item_id": ("StockCode",), "title": ("StockCode", "Description"), "price": ("StockCode", "UnitPrice")}


class OnlineRetailSource:
    """A folder of raw UCI files named YYYY-MM-DD.csv; each gives that day's events and items."""

    name = "online-retail"

    def __init__(self, landing: Path):
        self.landing = Path(landing)

    def partitions(self, until: datetime.date) -> list[Partition]:
        """Return the events and items partition of every raw day on or before `until`."""
        if not self.landing.is_dir():
            raise FileNotFoundError(f"online-retail folder {self.landing} does not exist")
        found = []
        for path in sorted(self.landing.glob("*.csv")):
            try:
                day = datetime.date.fromisoformat(path.stem)
            except ValueError as error:
                raise ValueError(f"{path}: online-retail files must be named YYYY-MM-DD.csv") from error
            if day > until:
                continue
            blob = read_bytes(path)
            for kind in ("events", "items"):
                found.append(Partition(kind, day, (path,), bytes_checksum(f"{VERSION}:{kind}", [(path.name, blob)])))
        return sorted(found, key=lambda p: (p.kind, p.dt))

    def read(self, partition: Partition) -> RawBatch:
        """Return the day's invoice lines as purchase events, or the products sold that day as items."""
        (path,) = partition.files
        blob = read_bytes(path)
        if bytes_checksum(f"{VERSION}:{partition.kind}", [(path.name, blob)]) != partition.checksum:
            raise ValueError(f"{path}: changed since the partition was listed")
        raw, header = read_raw_day(path, blob)
        if partition.kind == "events":
            frame, sources = invoice_lines_as_events(raw, path), EVENT_SOURCES
        else:
            frame, sources = products_of_the_day(raw, path), ITEM_SOURCES
        found = [c for c, needs in sources.items() if all(n in header for n in needs)]
        return RawBatch(frame, {str(path): found})


def read_raw_day(path: Path, blob: bytes) -> tuple[pl.DataFrame, list[str]]:
    """Return a raw day as text with its 1-based _row, every raw column present, and its header."""
    try:
        raw = pl.read_csv(io.BytesIO(blob), infer_schema=False, raise_if_empty=False)
    except pl.exceptions.PolarsError as error:
        raise ValueError(f"{path}: cannot parse as csv: {error}") from error
    header = raw.columns
    raw = raw.with_columns(pl.lit(None, pl.Utf8).alias(c) for c in RAW_COLUMNS if c not in header)
    raw = raw.with_columns(pl.col(c).replace("", None) for c in RAW_COLUMNS)
    return raw.with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("_row")), header


def invoice_lines_as_events(raw: pl.DataFrame, path: Path) -> pl.DataFrame:
    """Return one purchase event per invoice line; cancellations keep their negative quantity."""
    customer = pl.col("CustomerID").str.strip_chars()
    events = raw.select(
        # CustomerID is written as a float ("17850.0"); anything else stays as written for validation
        user_id=pl.when(customer.str.contains(r"^\d+\.0*$"))
        .then(customer.str.replace(r"\.0*$", ""))
        .otherwise(pl.when(customer != "").then(customer)),
        item_id=_stripped("StockCode"),
        event_type=pl.lit("purchase"),
        event_ts=pl.coalesce(_local_to_utc(pl.col("InvoiceDate")), pl.col("InvoiceDate")),
        event_id=pl.lit(None, pl.Utf8),
        session_id=pl.col("InvoiceNo"),
        quantity=pl.col("Quantity"),
        price=pl.col("UnitPrice"),
        rating=pl.lit(None, pl.Utf8),
        context=_context(raw),
        _file=pl.lit(str(path)),
        _row=pl.col("_row"),
    )
    return events.select(*COLUMNS["events"], "_file", "_row")


def products_of_the_day(raw: pl.DataFrame, path: Path) -> pl.DataFrame:
    """Return one item per product code sold that day: its commonest description and median price."""
    lines = raw.select(
        item_id=_stripped("StockCode"),
        description=_stripped("Description"),
        unit_price=pl.col("UnitPrice").str.strip_chars().cast(pl.Float64, strict=False),
        _row=pl.col("_row"),
    ).filter(pl.col("item_id").is_not_null() & ~pl.col("item_id").is_in(list(NON_PRODUCT_CODES)))
    first_row = lines.group_by("item_id").agg(pl.col("_row").min())
    title = (
        lines.filter(pl.col("description").is_not_null())
        .group_by("item_id", "description")
        .len()
        .sort("item_id", "len", "description", descending=[False, True, False])
        .group_by("item_id", maintain_order=True)
        .first()
        .select("item_id", title="description")
    )
    price = lines.filter(pl.col("unit_price") > 0).group_by("item_id").agg(price=pl.col("unit_price").median())
    items = title.join(first_row, on="item_id").join(price, on="item_id", how="left").sort("_row")
    columns = {c: pl.lit(None, pl.Utf8) for c in COLUMNS["items"]} | {
        "item_id": pl.col("item_id"),
        "title": pl.col("title"),
        # a median of two pence prices carries float noise (2.9699999999999998)
        "price": pl.col("price").round(4).cast(pl.Utf8),
    }
    return items.select(**columns, _file=pl.lit(str(path)), _row=pl.col("_row"))


def _stripped(column: str) -> pl.Expr:
    value = pl.col(column).str.strip_chars()
    return pl.when(value != "").then(value)


def _local_to_utc(text: pl.Expr) -> pl.Expr:
    """Return the shop's local invoice time as UTC ISO 8601 text, null where it does not parse."""
    local = pl.coalesce(*(text.str.strptime(pl.Datetime("us"), f, strict=False) for f in DATE_FORMATS))
    utc = local.dt.replace_time_zone(SHOP_TIME_ZONE, ambiguous="earliest", non_existent="null").dt.convert_time_zone(
        "UTC"
    )
    return utc.dt.to_string("%Y-%m-%dT%H:%M:%SZ")


def _context(raw: pl.DataFrame) -> pl.Series:
    """Return {"country", "invoice"} JSON per line, encoding each distinct pair once."""
    pairs = raw.select("Country", "InvoiceNo")
    distinct = pairs.unique()
    encoded = distinct.with_columns(
        context=pl.Series(
            [json.dumps({"country": c, "invoice": i}) for c, i in distinct.iter_rows()], dtype=pl.Utf8
        )
    )
    return pairs.join(encoded, on=["Country", "InvoiceNo"], how="left", nulls_equal=True, maintain_order="left")[
        "context"
    ]
