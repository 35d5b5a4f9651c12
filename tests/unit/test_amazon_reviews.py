"""The Amazon Reviews adapter on the real All_Beauty files (../shared/datasets/amazon-all-beauty/raw)."""
from __future__ import annotations

import csv
import datetime
import json
import shutil
from pathlib import Path

import pytest

from recsys_tasks.sources import get_source

RAW = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "amazon-all-beauty" / "raw"
SPLITS = ("train", "valid", "test")
FOREVER = datetime.date(2100, 1, 1)

pytestmark = pytest.mark.skipif(not RAW.is_dir(), reason=f"real data set not found at {RAW}")


def raw_rows(name: str) -> list[dict]:
    with open(RAW / name, newline="") as handle:
        return list(csv.DictReader(handle))


def utc_day(millis: str) -> datetime.date:
    return datetime.datetime.fromtimestamp(int(millis) / 1000, datetime.timezone.utc).date()


@pytest.fixture(scope="module")
def batches():
    """Return every partition of the real folder with its batch."""
    source = get_source("amazon-reviews", RAW)
    return [(p, source.read(p)) for p in source.partitions(FOREVER)]


def test_every_review_is_one_rating_event_on_its_utc_day(batches):
    expected = sum(len(raw_rows(f"All_Beauty.{s}.csv")) for s in SPLITS)
    events = [(p, b) for p, b in batches if p.kind == "events"]

    assert sum(b.frame.height for _, b in events) == expected
    for partition, batch in events:
        assert set(batch.frame["event_type"]) == {"rating"}
        assert all(ts.startswith(partition.dt.isoformat()) and ts.endswith("Z") for ts in batch.frame["event_ts"])


def test_rows_point_at_the_review_line(batches):
    lines = {s: raw_rows(f"All_Beauty.{s}.csv") for s in SPLITS}
    for _, batch in [pb for pb in batches if pb[0].kind == "events"][:50]:
        for row in batch.frame.iter_rows(named=True):
            line = lines[Path(row["_file"]).name.split(".")[1]][row["_row"] - 1]
            assert row["user_id"] == line["user_id"] and row["item_id"] == line["parent_asin"]
            assert row["rating"] == line["rating"]
            stamp = datetime.datetime.fromisoformat(row["event_ts"].replace("Z", "+00:00"))
            assert round(stamp.timestamp() * 1000) == int(line["timestamp"])


def test_items_are_dated_at_their_first_review(batches):
    first = {}
    for split in SPLITS:
        for line in raw_rows(f"All_Beauty.{split}.csv"):
            day = utc_day(line["timestamp"])
            first[line["parent_asin"]] = min(day, first.get(line["parent_asin"], day))
    dated = {r["item_id"]: p.dt for p, b in batches if p.kind == "items" for r in b.frame.iter_rows(named=True)}
    assert dated == first


def test_brand_and_attributes_come_from_details(batches):
    items = {r["item_id"]: r for p, b in batches if p.kind == "items" for r in b.frame.iter_rows(named=True)}
    shiny = items["B08LYT4Q2X"]
    assert shiny["brand"] == "Shiny Leaf"
    assert json.loads(shiny["attributes"])["Item Form"] == "Oil"
    assert shiny["title"].startswith("Organic Sweet Almond Oil")
    meta = raw_rows("filterd_meta_items.csv")
    assert sum(r["brand"] is not None for r in items.values()) == sum("'Brand'" in m["details"] for m in meta)
    priced = [m for m in meta if m["price"]]
    assert {items[m["parent_asin"]]["price"] for m in priced} == {m["price"] for m in priced}


def test_unseen_items_and_bad_details_in_a_copy(tmp_path):
    """An item never reviewed gets no row; details that are not a dict are kept as text for validation."""
    for path in RAW.glob("*.csv"):
        shutil.copy(path, tmp_path / path.name)
    meta = tmp_path / "filterd_meta_items.csv"
    first_asin = raw_rows("All_Beauty.train.csv")[0]["parent_asin"]
    with open(meta, "a", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([900, 900, "Never reviewed", "", "", "{'Brand': 'Ghost'}", "B000000000"])
        writer.writerow([901, 901, "Broken details", "", "", "{'Brand': 'Half", first_asin])
    source = get_source("amazon-reviews", tmp_path)

    items = [r for p in source.partitions(FOREVER) if p.kind == "items" for r in source.read(p).frame.rows(named=True)]

    assert "B000000000" not in {r["item_id"] for r in items}
    broken = [r for r in items if r["title"] == "Broken details"]
    assert [(r["brand"], r["attributes"], r["_row"]) for r in broken] == [(None, "{'Brand': 'Half", 358)]


def test_checksums_are_stable_and_follow_each_day(tmp_path):
    for path in RAW.glob("*.csv"):
        shutil.copy(path, tmp_path / path.name)
    before = {(p.kind, p.dt): p for p in get_source("amazon-reviews", tmp_path).partitions(FOREVER)}
    again = {(p.kind, p.dt): p.checksum for p in get_source("amazon-reviews", tmp_path).partitions(FOREVER)}
    assert again == {k: p.checksum for k, p in before.items()}

    train = tmp_path / "All_Beauty.train.csv"
    line = raw_rows("All_Beauty.train.csv")[0]
    assert line["rating"] != "1.0"
    old, new = f"{line['parent_asin']},{line['rating']},", f"{line['parent_asin']},1.0,"
    train.write_text(train.read_text().replace(old, new, 1))
    source = get_source("amazon-reviews", tmp_path)
    after = {(p.kind, p.dt): p.checksum for p in source.partitions(FOREVER)}
    changed = {k for k in after if after[k] != before[k].checksum}

    assert changed == {("events", utc_day(line["timestamp"]))}
    with pytest.raises(ValueError, match="changed since"):
        source.read(before[("events", utc_day(line["timestamp"]))])


def test_partitions_until_leaves_later_days_out(batches):
    source = get_source("amazon-reviews", RAW)
    until = datetime.date(2020, 1, 1)
    partitions = source.partitions(until)
    assert partitions and all(p.dt <= until for p in partitions)
    assert partitions == sorted(partitions, key=lambda p: (p.kind, p.dt))
    assert len(partitions) < len(batches)
