"""The UCI Online Retail adapter on real daily drops (../shared/datasets/online-retail/by-day)."""
from __future__ import annotations

import csv
import datetime
import json
import shutil
import statistics
from collections import Counter
from pathlib import Path

import pytest

from recsys_tasks.sources import REQUIRED, get_source
from recsys_tasks.sources.online_retail import NON_PRODUCT_CODES

BY_DAY = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "online-retail" / "by-day"
WINTER, SUMMER = datetime.date(2010, 12, 1), datetime.date(2011, 9, 30)  # GMT and BST days

pytestmark = pytest.mark.skipif(not BY_DAY.is_dir(), reason=f"real data set not found at {BY_DAY}")


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    """Return a folder holding two real raw days (copied to a temporary folder, never into the repo)."""
    folder = tmp_path_factory.mktemp("online-retail")
    for day in (WINTER, SUMMER):
        shutil.copy(BY_DAY / f"{day}.csv", folder / f"{day}.csv")
    return folder


def raw_lines(day: datetime.date) -> list[dict]:
    with open(BY_DAY / f"{day}.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def read(landing: Path, kind: str, day: datetime.date):
    source = get_source("online-retail", landing)
    (partition,) = [p for p in source.partitions(day) if (p.kind, p.dt) == (kind, day)]
    return source.read(partition)


@pytest.mark.parametrize("day", [WINTER, SUMMER])
def test_every_raw_line_becomes_one_event_in_order(landing, day):
    lines = raw_lines(day)
    frame = read(landing, "events", day).frame

    assert frame.height == len(lines)
    assert frame["_row"].to_list() == list(range(1, len(lines) + 1))
    assert set(frame["_file"]) == {str(landing / f"{day}.csv")}
    assert set(frame["event_type"]) == {"purchase"}
    assert frame["session_id"].to_list() == [line["InvoiceNo"] for line in lines]
    assert frame["quantity"].to_list() == [line["Quantity"] for line in lines]
    assert frame["price"].to_list() == [line["UnitPrice"] for line in lines]


def test_customer_id_written_as_float_becomes_an_integer_id(landing):
    row = read(landing, "events", WINTER).frame.row(0, named=True)
    assert raw_lines(WINTER)[0]["CustomerID"] == "17850.0"
    assert row["user_id"] == "17850"
    assert json.loads(row["context"]) == {"country": "United Kingdom", "invoice": "536365"}


@pytest.mark.parametrize("day", [WINTER, SUMMER])
def test_missing_customer_is_a_null_user(landing, day):
    missing = [n for n, line in enumerate(raw_lines(day), start=1) if not line["CustomerID"]]
    frame = read(landing, "events", day).frame
    assert missing, "the day should have lines without a customer"
    assert frame.filter(frame["user_id"].is_null())["_row"].to_list() == missing


@pytest.mark.parametrize("day", [WINTER, SUMMER])
def test_cancellations_stay_purchases_with_negative_quantity(landing, day):
    cancelled = [line for line in raw_lines(day) if line["InvoiceNo"].startswith("C")]
    frame = read(landing, "events", day).frame
    events = frame.filter(frame["session_id"].str.starts_with("C"))
    assert cancelled and events.height == len(cancelled)
    assert all(q.startswith("-") for q in events["quantity"])
    assert set(events["event_type"]) == {"purchase"}


@pytest.mark.parametrize(
    "day, raw_time, utc",
    [(WINTER, "2010-12-01 08:26:00", "2010-12-01T08:26:00Z"), (SUMMER, "2011-09-30 07:36:00", "2011-09-30T06:36:00Z")],
)
def test_shop_local_time_becomes_utc(landing, day, raw_time, utc):
    """December is GMT (unchanged); late September is BST (one hour earlier in UTC)."""
    assert raw_lines(day)[0]["InvoiceDate"] == raw_time
    assert read(landing, "events", day).frame["event_ts"][0] == utc


@pytest.mark.parametrize("day", [WINTER, SUMMER])
def test_items_are_the_products_sold_that_day(landing, day):
    """One item per product code: commonest stripped description, median positive price, first line."""
    lines = raw_lines(day)
    expected = {}
    for n, line in enumerate(lines, start=1):
        code = line["StockCode"].strip()
        if code in NON_PRODUCT_CODES:
            continue
        entry = expected.setdefault(code, {"row": n, "titles": Counter(), "prices": []})
        if line["Description"].strip():
            entry["titles"][line["Description"].strip()] += 1
        if float(line["UnitPrice"]) > 0:
            entry["prices"].append(float(line["UnitPrice"]))
    expected = {
        code: (min(e["titles"].items(), key=lambda kv: (-kv[1], kv[0]))[0],
               round(statistics.median(e["prices"]), 4) if e["prices"] else None, e["row"])
        for code, e in expected.items() if e["titles"]
    }

    batch = read(landing, "items", day)
    got = {
        r["item_id"]: (r["title"], None if r["price"] is None else float(r["price"]), r["_row"])
        for r in batch.frame.iter_rows(named=True)
    }

    assert got == expected
    assert batch.frame.height == len(expected)  # one row per code
    assert [c for c in REQUIRED["items"] if c not in batch.columns_by_file[str(landing / f"{day}.csv")]] == []


def test_non_product_codes_are_events_but_not_items(landing):
    events = read(landing, "events", WINTER).frame
    items = read(landing, "items", WINTER).frame
    sold = set(events["item_id"]) & NON_PRODUCT_CODES
    assert "POST" in sold
    assert not set(items["item_id"]) & NON_PRODUCT_CODES


def test_titles_lose_trailing_spaces(landing):
    padded = {line["StockCode"] for line in raw_lines(WINTER) if line["Description"] != line["Description"].strip()}
    titles = read(landing, "items", WINTER).frame
    assert padded, "the raw day should have padded descriptions"
    assert all(t == t.strip() for t in titles["title"])
    assert titles.filter(titles["item_id"] == "21506")["title"].to_list() == ["FANCY FONT BIRTHDAY CARD,"]


def test_partitions_one_events_and_one_items_per_raw_day(landing):
    source = get_source("online-retail", landing)
    partitions = source.partitions(SUMMER)

    assert [(p.kind, p.dt) for p in partitions] == [
        ("events", WINTER), ("events", SUMMER), ("items", WINTER), ("items", SUMMER)
    ]
    assert [(p.kind, p.dt) for p in source.partitions(WINTER)] == [("events", WINTER), ("items", WINTER)]
    assert [p.checksum for p in partitions] == [p.checksum for p in source.partitions(SUMMER)]
    assert len({p.checksum for p in partitions}) == 4


def test_checksum_follows_the_raw_file(tmp_path):
    shutil.copy(BY_DAY / f"{WINTER}.csv", tmp_path / f"{WINTER}.csv")
    source = get_source("online-retail", tmp_path)
    before = [p.checksum for p in source.partitions(WINTER)]
    path = tmp_path / f"{WINTER}.csv"
    path.write_text(path.read_text().replace("17850.0", "17851.0", 1))
    assert all(a != b for a, b in zip(before, [p.checksum for p in source.partitions(WINTER)]))


def test_later_days_are_not_opened(tmp_path):
    shutil.copy(BY_DAY / f"{WINTER}.csv", tmp_path / f"{WINTER}.csv")
    (tmp_path / "2010-12-02.csv").symlink_to(tmp_path / "not-yet-delivered.csv")
    source = get_source("online-retail", tmp_path)
    assert [p.dt for p in source.partitions(WINTER)] == [WINTER, WINTER]
    with pytest.raises(ValueError, match="2010-12-02.csv"):
        source.partitions(datetime.date(2010, 12, 2))
