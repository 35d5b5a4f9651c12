"""The contract-layout reader: every format reads the same, rows point home, later days stay unopened."""
from __future__ import annotations

import datetime
import gzip
import io
import json
from pathlib import Path

import polars as pl
import pytest

from recsys_tasks.sources import EVENT_COLUMNS, ITEM_COLUMNS, REQUIRED, LandingSource, get_source
from recsys_tasks.sources.amazon_reviews import AmazonReviewsSource
from recsys_tasks.sources.online_retail import OnlineRetailSource

DAY = datetime.date(2024, 3, 1)
FORMATS = ("csv", "csv.gz", "jsonl", "jsonl.gz", "json", "json.gz", "parquet")


def sample_events() -> pl.DataFrame:
    """Return typed events as a shop would export them, with one column the contract does not know."""
    return pl.DataFrame({
        "user_id": ["U1", "U2", None],
        "item_id": ["P1", "P2", "P3"],
        "event_type": ["view", "purchase", "add_to_cart"],
        "event_ts": ["2024-03-01T08:00:00Z", "2024-03-01T09:30:00Z", "2024-03-01T23:59:59Z"],
        "quantity": [None, 2, -1],
        "price": [None, 2.55, 10.0],
        "context": [{"country": "UK", "device": "mobile"}, {"country": "DE", "device": None}, None],
        "campaign": ["spring", None, "spring"],
    })


def write(frame: pl.DataFrame, path: Path) -> Path:
    """Write `frame` to `path` in the format its name says (nested values as JSON text in CSV)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name
    if ".csv" in name:
        nested = [c for c, t in frame.schema.items() if isinstance(t, (pl.Struct, pl.List))]
        text = frame.with_columns(
            pl.Series(c, [None if v is None else json.dumps(v) for v in frame[c].to_list()], dtype=pl.Utf8)
            for c in nested
        )
        data = text.write_csv().encode()
    elif ".json" in name:
        data = frame.write_ndjson().encode()
    else:
        buffer = io.BytesIO()
        frame.write_parquet(buffer)
        data = buffer.getvalue()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


def only(source: LandingSource, kind: str, day: datetime.date):
    (partition,) = [p for p in source.partitions(day) if p.kind == kind and p.dt == day]
    return partition


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_reads_to_the_same_text(tmp_path, fmt):
    """CSV, JSON Lines and Parquet, gzipped or not, give the same text frame."""
    reference = LandingSource(tmp_path / "ref")
    write(sample_events(), tmp_path / "ref" / "events" / f"dt={DAY}" / "part-0.csv")
    source = LandingSource(tmp_path / fmt)
    write(sample_events(), tmp_path / fmt / "events" / f"dt={DAY}" / f"part-0.{fmt}")

    expected = reference.read(only(reference, "events", DAY)).frame.drop("_file")
    batch = source.read(only(source, "events", DAY))

    assert batch.frame.drop("_file").equals(expected)
    assert batch.frame.columns == [*EVENT_COLUMNS, "_file", "_row"]
    assert all(dtype == pl.Utf8 for c, dtype in batch.frame.schema.items() if c != "_row")
    rows = batch.frame.rows(named=True)
    assert rows[1]["quantity"] == "2" and rows[1]["price"] == "2.55"
    assert rows[2]["quantity"] == "-1"  # bad values are kept, not fixed
    assert json.loads(rows[0]["context"]) == {"country": "UK", "device": "mobile"}
    assert rows[0]["context"] == '{"country": "UK", "device": "mobile"}'
    assert rows[2]["user_id"] is None and rows[2]["context"] is None
    assert batch.frame["event_id"].null_count() == 3  # a contract column the file lacks is all null


def test_rows_point_at_their_file_and_record(tmp_path):
    """_file names the source file and _row counts records from 1, not lines."""
    folder = tmp_path / "events" / f"dt={DAY}"
    folder.mkdir(parents=True)
    first = folder / "part-0.csv"
    first.write_text(
        "user_id,item_id,event_type,event_ts,context\n"
        'U1,P1,view,2024-03-01T08:00:00Z,"{""query"": ""red\nwool""}"\n'
        "U2,P2,view,2024-03-01T08:01:00Z,\n"
    )
    second = write(sample_events(), folder / "part-1.jsonl")
    source = LandingSource(tmp_path)

    frame = source.read(only(source, "events", DAY)).frame

    assert frame.select("_file", "_row").rows() == [
        (str(first), 1), (str(first), 2), (str(second), 1), (str(second), 2), (str(second), 3)
    ]
    assert frame["user_id"].to_list() == ["U1", "U2", "U1", "U2", None]
    assert frame["context"][0] == '{"query": "red\nwool"}'  # the quoted line break stays inside record 1


def test_partitions_after_until_are_never_opened(tmp_path):
    """A day after `until` is listed past, even when its file cannot be opened; once due it fails loudly."""
    later = DAY + datetime.timedelta(days=1)
    write(sample_events(), tmp_path / "events" / f"dt={DAY}" / "part-0.csv")
    broken = tmp_path / "events" / f"dt={later}" / "part-0.csv"
    broken.parent.mkdir(parents=True)
    broken.symlink_to(tmp_path / "still-being-written.csv")  # opening it raises
    source = LandingSource(tmp_path)

    partitions = source.partitions(DAY)

    assert [(p.kind, p.dt) for p in partitions] == [("events", DAY)]
    assert source.read(partitions[0]).frame.height == 3
    with pytest.raises(ValueError, match="still-being-written|part-0.csv"):
        source.partitions(later)


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv.gz", "json.gz", "csv"])
def test_garbage_file_raises_naming_the_file(tmp_path, fmt):
    path = tmp_path / "events" / f"dt={DAY}" / f"part-0.{fmt}"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe\x00 not a table \xc3\x28")
    source = LandingSource(tmp_path)

    with pytest.raises(ValueError, match=str(path)):
        source.read(only(source, "events", DAY))


def test_partitions_are_sorted_by_kind_and_day_and_skip_markers(tmp_path):
    days = [DAY + datetime.timedelta(days=n) for n in (2, 0, 1)]
    for day in days:
        write(sample_events(), tmp_path / "events" / f"dt={day}" / "part-0.parquet")
        write(pl.DataFrame({"item_id": ["P1"], "title": ["Wool scarf"]}), tmp_path / "items" / f"dt={day}" / "a.jsonl")
    (tmp_path / "events" / f"dt={DAY}" / "_SUCCESS").write_text("")
    (tmp_path / "events" / f"dt={DAY}" / ".part-0.parquet.crc").write_text("x")
    (tmp_path / "events" / "tmp-upload").mkdir()

    partitions = LandingSource(tmp_path).partitions(DAY + datetime.timedelta(days=1))

    assert [(p.kind, p.dt) for p in partitions] == [
        ("events", DAY), ("events", DAY + datetime.timedelta(days=1)),
        ("items", DAY), ("items", DAY + datetime.timedelta(days=1)),
    ]
    assert [f.name for f in partitions[0].files] == ["part-0.parquet"]


def test_malformed_partition_folder_name_is_an_error(tmp_path):
    (tmp_path / "events" / "dt=2024-13-01").mkdir(parents=True)
    with pytest.raises(ValueError, match="dt=2024-13-01"):
        LandingSource(tmp_path).partitions(DAY)


def test_checksum_changes_exactly_when_a_byte_changes(tmp_path):
    yesterday = DAY - datetime.timedelta(days=1)
    path = write(sample_events(), tmp_path / "events" / f"dt={DAY}" / "part-0.csv")
    write(sample_events(), tmp_path / "events" / f"dt={yesterday}" / "part-0.csv")
    source = LandingSource(tmp_path)
    before = {p.dt: p for p in source.partitions(DAY)}

    path.write_bytes(path.read_bytes())  # same bytes, new modification time
    assert {p.dt: p.checksum for p in source.partitions(DAY)} == {d: p.checksum for d, p in before.items()}

    data = bytearray(path.read_bytes())
    data[-3] = ord("8") if data[-3] != ord("8") else ord("7")
    path.write_bytes(bytes(data))
    after = {p.dt: p.checksum for p in source.partitions(DAY)}

    assert after[DAY] != before[DAY].checksum
    assert after[yesterday] == before[yesterday].checksum
    with pytest.raises(ValueError, match="changed since"):
        source.read(before[DAY])  # listed before the change: its checksum no longer describes the file


def test_missing_required_column_is_reported_not_hidden(tmp_path):
    folder = tmp_path / "events" / f"dt={DAY}"
    write(sample_events().drop("user_id"), folder / "part-0.csv")
    write(sample_events(), folder / "part-1.parquet")
    source = LandingSource(tmp_path)

    batch = source.read(only(source, "events", DAY))

    header = batch.columns_by_file[str(folder / "part-0.csv")]
    assert "user_id" not in header and "campaign" in header  # extra columns are listed ...
    assert "campaign" not in batch.frame.columns  # ... but not carried
    assert [c for c in REQUIRED["events"] if c not in header] == ["user_id"]
    assert "user_id" in batch.columns_by_file[str(folder / "part-1.parquet")]
    assert batch.frame.filter(pl.col("_file").str.ends_with("part-0.csv"))["user_id"].null_count() == 3
    assert batch.frame.height == 6


def test_empty_cells_are_null_and_text_is_kept_as_written(tmp_path):
    path = tmp_path / "events" / f"dt={DAY}" / "part-0.csv"
    path.parent.mkdir(parents=True)
    path.write_text(
        "user_id,item_id,event_type,event_ts,quantity,price\n"
        ',P1,VIEW,yesterday,"",abc\n'
        " U1 ,P2,purchase,2024-03-01T10:00:00Z,1e3,0\n"
    )
    source = LandingSource(tmp_path)

    rows = source.read(only(source, "events", DAY)).frame.rows(named=True)

    assert rows[0]["user_id"] is None and rows[0]["quantity"] is None
    assert (rows[0]["event_type"], rows[0]["event_ts"], rows[0]["price"]) == ("VIEW", "yesterday", "abc")
    assert (rows[1]["user_id"], rows[1]["quantity"], rows[1]["price"]) == (" U1 ", "1e3", "0")


def test_json_line_that_is_not_an_object_stays_a_numbered_row(tmp_path):
    path = tmp_path / "events" / f"dt={DAY}" / "part-0.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text('{"user_id": "U1", "item_id": "P1", "rating": 4.5, "quantity": true}\n{"user_id": \n\n[1, 2]\n')
    source = LandingSource(tmp_path)

    frame = source.read(only(source, "events", DAY)).frame

    assert frame.select("user_id", "rating", "quantity", "_row").rows() == [
        ("U1", "4.5", "true", 1), (None, None, None, 2), (None, None, None, 3)
    ]


def test_items_nested_values_become_json_text(tmp_path):
    items = pl.DataFrame({
        "item_id": ["P1"], "title": ["Merino jumper"], "price": [59.99], "available": [True],
        "attributes": [{"colour": "navy", "age_restricted": False}], "image_embedding": [[0.1, -0.25]],
    })
    write(items, tmp_path / "items" / f"dt={DAY}" / "part-0.parquet")
    source = LandingSource(tmp_path)

    row = source.read(only(source, "items", DAY)).frame.row(0, named=True)

    assert row["attributes"] == '{"colour": "navy", "age_restricted": false}'
    assert row["image_embedding"] == "[0.1, -0.25]"
    assert (row["price"], row["available"], row["brand"]) == ("59.99", "true", None)
    assert list(row)[:-2] == list(ITEM_COLUMNS)


def test_empty_landing_file_reads_as_no_rows_and_no_columns(tmp_path):
    path = tmp_path / "events" / f"dt={DAY}" / "part-0.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    source = LandingSource(tmp_path)

    batch = source.read(only(source, "events", DAY))

    assert batch.frame.height == 0 and batch.columns_by_file == {str(path): []}


@pytest.mark.parametrize(
    "name, kind",
    [("landing", LandingSource), ("demo", LandingSource), ("online-retail", OnlineRetailSource),
     ("amazon-reviews", AmazonReviewsSource)],
)
def test_get_source_by_name(tmp_path, name, kind):
    source = get_source(name, tmp_path)
    assert isinstance(source, kind) and source.name == name


def test_get_source_rejects_unknown_names(tmp_path):
    with pytest.raises(ValueError, match="unknown source"):
        get_source("kafka", tmp_path)


def test_missing_landing_directory_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        LandingSource(tmp_path / "nowhere").partitions(DAY)
