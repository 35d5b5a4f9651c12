"""The demo log generator: deterministic, realistic funnels, a growing catalogue, counted bad rows."""
from __future__ import annotations

import datetime
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from recsys_tasks import demo_logs
from recsys_tasks.sources import LandingSource

START = datetime.date(2024, 1, 1)
SMALL = {"days": 10, "n_users": 200, "n_items": 100}
VALID_TYPES = {"view", "click", "add_to_cart", "purchase", "rating"}


def files_of(landing: Path) -> dict[str, bytes]:
    return {str(p.relative_to(landing)): p.read_bytes() for p in sorted(landing.rglob("*")) if p.is_file()}


def read_all(landing: Path) -> dict[str, pl.DataFrame]:
    """Return every events and items row of a landing directory, with the partition day in dt."""
    source = LandingSource(landing, name="demo")
    frames: dict[str, list] = {"events": [], "items": []}
    for partition in source.partitions(datetime.date(2100, 1, 1)):
        frames[partition.kind].append(source.read(partition).frame.with_columns(dt=pl.lit(partition.dt)))
    return {kind: pl.concat(parts) for kind, parts in frames.items()}


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    landing = tmp_path_factory.mktemp("demo")
    summary = demo_logs.generate(landing, START, seed=7, **SMALL)
    return landing, summary, read_all(landing)


def test_same_seed_writes_the_same_bytes(clean, tmp_path):
    landing, _, _ = clean
    demo_logs.generate(tmp_path / "again", START, seed=7, **SMALL)
    demo_logs.generate(tmp_path / "other", START, seed=8, **SMALL)
    assert files_of(tmp_path / "again") == files_of(landing)
    assert files_of(tmp_path / "other") != files_of(landing)
    # gzip stamps the time into its header: two runs a second apart must still match
    stamps = {name: data[4:8] for name, data in files_of(landing).items() if name.endswith(".gz")}
    assert stamps and set(stamps.values()) == {bytes(4)}


def test_every_format_is_written_and_reads_back(clean):
    landing, summary, frames = clean
    names = [p.name for p in (landing / "events").rglob("part-*")]
    for suffix in (".csv", ".csv.gz", ".jsonl", ".jsonl.gz", ".json", ".parquet"):
        assert any(n.endswith(suffix) for n in names), suffix
    assert frames["events"].height == summary["events"] and frames["items"].height == summary["item_rows"]
    assert 2_000 < summary["events"] < 20_000  # a shop of 200, over 10 days


def test_clean_events_are_valid_and_inside_their_day(clean):
    _, summary, frames = clean
    events = frames["events"]
    stamp = pl.col("event_ts").str.strptime(pl.Datetime, "%Y-%m-%dT%H:%M:%SZ", strict=False)
    assert events.filter(stamp.is_null() | (stamp.dt.date() != pl.col("dt"))).height == 0
    assert set(events["event_type"]) == VALID_TYPES
    assert events["user_id"].null_count() == 0 and events["event_id"].n_unique() == events.height
    assert summary["malformed"] == {}
    bought = events.filter(pl.col("event_type").is_in(["add_to_cart", "purchase"]))
    assert bought["quantity"].cast(pl.Int64).min() >= 1 and bought["price"].cast(pl.Float64).min() > 0


def test_funnel_steps_follow_each_other_within_a_session(clean):
    _, _, frames = clean
    steps = ["view", "click", "add_to_cart", "purchase"]
    first = (
        frames["events"].filter(pl.col("session_id").is_not_null())
        .group_by("session_id", "item_id")
        .agg(pl.col("event_ts").filter(pl.col("event_type") == s).min().alias(s) for s in steps)
    )
    for earlier, later in zip(steps, steps[1:]):
        # every later step has the earlier one before it, strictly
        out_of_order = pl.col(earlier).is_null() | (pl.col(earlier) >= pl.col(later))
        assert first.filter(pl.col(later).is_not_null() & out_of_order).height == 0
    counts = Counter(frames["events"]["event_type"])
    assert counts["view"] > counts["click"] > counts["add_to_cart"] > counts["purchase"] > 0
    assert 0.005 < counts["purchase"] / counts["view"] < 0.1  # a shop's usual view-to-purchase rate


def test_catalogue_grows_and_events_only_use_launched_items(clean):
    _, _, frames = clean
    items, events = frames["items"], frames["events"]
    launch = items.group_by("item_id").agg(pl.col("dt").min().alias("launch"))
    assert launch.filter(pl.col("launch") > START).height > 0  # new items arrive after the first day
    seen = events.join(launch, on="item_id", how="left")
    assert seen.filter(pl.col("launch").is_null() | (pl.col("launch") > pl.col("dt"))).height == 0
    # later item partitions hold only new or changed items, never the whole catalogue again
    later = items.filter(pl.col("dt") > START)
    assert later.height < launch.height
    changed = later.join(launch, on="item_id").filter(pl.col("launch") < pl.col("dt"))
    assert changed.height > 0 and set(changed["available"]) | set(items["available"]) <= {"true", "false"}


def test_catalogue_is_realistic(clean):
    _, _, frames = clean
    items = frames["items"]
    paths = set(items["category"])
    assert 6 <= len(paths) <= 10 and all(2 <= len(p.split(" > ")) <= 3 for p in paths)
    assert items.filter(pl.col("attributes").str.json_path_match("$.age_restricted").is_null()).height == 0
    assert items["title"].n_unique() > 0.8 * items["item_id"].n_unique()
    assert all(len(v) > 5 for v in items["image_embedding"].str.json_decode(pl.List(pl.Float64)).to_list())


def test_consumables_are_bought_again_on_later_days(tmp_path):
    demo_logs.generate(tmp_path, START, days=30, n_users=200, n_items=100, seed=3)
    buys = read_all(tmp_path)["events"].filter(pl.col("event_type") == "purchase")
    again = buys.group_by("user_id", "item_id").agg(pl.col("dt").n_unique().alias("days"))
    assert again.filter(pl.col("days") > 1).height > 0


def test_new_shoppers_arrive_over_the_days(clean):
    _, _, frames = clean
    first = frames["events"].group_by("user_id").agg(pl.col("dt").min())
    assert first.filter(pl.col("dt") > START + datetime.timedelta(days=2)).height > 0


def test_malformed_rows_are_counted_by_kind(tmp_path):
    summary = demo_logs.generate(tmp_path, START, seed=11, malformed_share=0.02, **SMALL)
    frames = read_all(tmp_path)
    events, known = frames["events"], set(frames["items"]["item_id"])
    stamp = pl.col("event_ts").str.strptime(pl.Datetime, "%Y-%m-%dT%H:%M:%SZ", strict=False)
    found = {
        "null_user_id": events["user_id"].null_count(),
        "unknown_event_type": events.filter(~pl.col("event_type").is_in(list(VALID_TYPES))).height,
        "unparseable_timestamp": events.filter(stamp.is_null()).height,
        "timestamp_outside_day": events.filter(stamp.dt.date() != pl.col("dt")).height,
        "negative_quantity": events.filter(pl.col("quantity").cast(pl.Int64) < 0).height,
        "unknown_item": events.filter(~pl.col("item_id").is_in(list(known))).height,
        "duplicate_event_id": events.height - events["event_id"].n_unique(),
    }
    assert summary["malformed"] == found
    assert all(n > 0 for n in found.values())
    assert summary["events"] == events.height
    # bad rows are added, never made from the clean ones: without them the clean run remains
    demo_logs.generate(tmp_path / "clean", START, seed=11, **SMALL)
    columns = ["event_id", "user_id", "item_id", "event_type", "event_ts", "quantity", "dt"]
    clean = read_all(tmp_path / "clean")["events"].select(columns)
    kept = events.filter(~pl.col("event_id").str.contains("-")).select(columns).unique()
    assert kept.sort("event_id").equals(clean.sort("event_id"))


def test_cli_prints_one_line(tmp_path, capsys):
    summary = demo_logs.main(["--landing", str(tmp_path), "--start", "2024-02-01", "--days", "3",
                              "--users", "50", "--items", "40", "--malformed-share", "0.01"])
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and f"{summary['events']:,} events" in out
    days = sorted(p.name for p in (tmp_path / "events").iterdir())
    assert days == ["dt=2024-02-01", "dt=2024-02-02", "dt=2024-02-03"]


def test_rerun_replaces_its_own_output_but_never_a_foreign_landing(tmp_path):
    demo_logs.generate(tmp_path / "demo", START, days=3, n_users=50, n_items=40)
    demo_logs.generate(tmp_path / "demo", START, days=2, n_users=50, n_items=40)
    assert len(list((tmp_path / "demo" / "events").iterdir())) == 2
    (tmp_path / "shop" / "events").mkdir(parents=True)
    with pytest.raises(FileExistsError):
        demo_logs.generate(tmp_path / "shop", START, days=2, n_users=50, n_items=40)
