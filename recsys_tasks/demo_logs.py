"""Write the demo shop's behaviour logs and catalogue into a landing directory, in the input contract layout.

    python -m recsys_tasks.demo_logs --landing DIR --start 2024-01-01 --days 60 --seed 7 [--malformed-share 0.01]

The same arguments always write byte-identical files. Days rotate through every supported file format.
"""
from __future__ import annotations

import argparse
import datetime
import gzip
import io
import json
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl

from recsys_tasks.sources.demo_shop import DemoShop

EVENT_FORMATS = ("csv", "jsonl", "parquet", "csv.gz", "jsonl.gz", "json")  # by day, so every reader path runs
ITEM_FORMATS = ("parquet", "jsonl", "csv")
MALFORMED_KINDS = (
    "null_user_id", "unknown_event_type", "unparseable_timestamp", "timestamp_outside_day",
    "negative_quantity", "unknown_item", "duplicate_event_id",
)
MARKER = "_demo_logs.json"  # marks a landing directory as the demo's, so a rerun may replace it
EVENT_FILE_COLUMNS = ("event_id", "session_id", "user_id", "item_id", "event_type", "event_ts",
                      "quantity", "price", "rating", "context")


def generate(
    landing: Path,
    start: datetime.date,
    days: int,
    seed: int = 7,
    n_users: int = 2000,
    n_items: int = 800,
    malformed_share: float = 0.0,
) -> dict:
    """Write `days` days of demo events and items under `landing` and return a summary with malformed counts."""
    if days < 1 or n_users < 1 or n_items < 1 or not 0 <= malformed_share <= 0.5:
        raise ValueError("need days, users and items >= 1 and 0 <= malformed_share <= 0.5")
    landing = Path(landing)
    _claim(landing)
    shop = DemoShop(seed, days, n_users, n_items)
    spoil_rng = np.random.default_rng([seed, 1])  # separate stream: malformed rows leave the clean ones unchanged
    malformed: Counter = Counter()
    events = item_rows = files = 0
    by_type: Counter = Counter()
    for day in range(days):
        date = start + datetime.timedelta(days=day)
        items = shop.items_on(day)
        if items:
            files += _write(pl.DataFrame(items), landing / "items" / f"dt={date}", ITEM_FORMATS[day % 3], 1)
            item_rows += len(items)
        frame = shop.events_on(day, date)
        by_type.update(dict(frame.group_by("event_type").len().iter_rows()))
        if malformed_share > 0 and frame.height:
            frame, kinds = _spoil(spoil_rng, frame, malformed_share, date, n_items)
            malformed.update(kinds)
        frame = frame.with_columns(context=pl.struct("country", "device", "query")).select(EVENT_FILE_COLUMNS)
        parts = 2 if day % 4 == 3 else 1  # some days arrive as several files
        files += _write(frame, landing / "events" / f"dt={date}", EVENT_FORMATS[day % len(EVENT_FORMATS)], parts)
        events += frame.height
    summary = {
        "landing": str(landing), "start": start.isoformat(), "days": days, "seed": seed,
        "users": n_users, "items": n_items, "events": events, "item_rows": item_rows, "files": files,
        "clean_events_by_type": dict(sorted(by_type.items())),
        "malformed": {k: malformed.get(k, 0) for k in MALFORMED_KINDS} if malformed_share > 0 else {},
    }
    # the marker leaves out the folder's own path so that two runs write the same bytes
    (landing / MARKER).write_text(json.dumps({k: v for k, v in summary.items() if k != "landing"}, indent=1) + "\n")
    return summary


def _claim(landing: Path) -> None:
    """Empty a landing directory the demo wrote before; refuse to write over anything else."""
    ours = (landing / MARKER).exists()
    for kind in ("events", "items"):
        if (landing / kind).exists():
            if not ours:
                raise FileExistsError(f"{landing / kind} exists and was not written by the demo; not overwriting it")
            shutil.rmtree(landing / kind)
    landing.mkdir(parents=True, exist_ok=True)


def _spoil(rng, frame: pl.DataFrame, share: float, date: datetime.date, n_items: int):
    """Return the day's events with bad copies of some rows mixed in, and how many of each kind.

    Bad rows get ids of their own ("e000000123-0"), so the clean rows are the same with or without them.
    """
    n_bad = int(rng.binomial(frame.height, share))
    if n_bad == 0:
        return frame, Counter()
    kinds = rng.choice(MALFORMED_KINDS, n_bad)
    buys = np.flatnonzero(frame["event_type"].to_numpy() == "purchase")
    pool = buys if len(buys) else np.arange(frame.height)
    base = np.where(kinds == "negative_quantity", rng.choice(pool, n_bad), rng.integers(0, frame.height, n_bad))
    midnight = datetime.datetime.combine(date, datetime.time())
    bad = frame[base].with_columns(
        kind=pl.Series(kinds),
        fresh=pl.Series([f"{row}-{n}" for n, row in enumerate(frame["event_id"].gather(base))]),
        unknown=pl.Series([f"P{n_items + 1 + int(k):05d}" for k in rng.integers(0, 1000, n_bad)]),
        yesterday=pl.Series([
            f"{midnight - datetime.timedelta(seconds=int(s)):%Y-%m-%dT%H:%M:%S}Z" for s in rng.integers(1, 21600, n_bad)
        ]),
    )
    is_ = lambda name: pl.col("kind") == name  # noqa: E731
    bad = bad.with_columns(
        event_id=pl.when(is_("duplicate_event_id")).then("event_id").otherwise("fresh"),
        user_id=pl.when(~is_("null_user_id")).then("user_id"),
        event_type=pl.when(is_("unknown_event_type")).then(pl.lit("wishlist")).otherwise("event_type"),
        # a day-first clock with hour 24 parses nowhere
        event_ts=pl.when(is_("unparseable_timestamp")).then(pl.lit(f"{date:%d/%m/%Y} 24:{date.day:02d}:99"))
        .when(is_("timestamp_outside_day")).then("yesterday")
        .otherwise("event_ts"),
        quantity=pl.when(is_("negative_quantity")).then(-pl.col("quantity").fill_null(1)).otherwise("quantity"),
        item_id=pl.when(is_("unknown_item")).then("unknown").otherwise("item_id"),
    ).select(frame.columns)
    # scatter the bad rows through the file, as real corruption would be
    place = np.concatenate([np.arange(frame.height, dtype=float), rng.uniform(0, frame.height, n_bad)])
    mixed = pl.concat([frame, bad]).with_columns(_place=pl.Series(place)).sort("_place").drop("_place")
    return mixed, Counter(kinds.tolist())


def _write(frame: pl.DataFrame, folder: Path, fmt: str, parts: int) -> int:
    """Write `frame` into `folder` as `parts` files of format `fmt`; return how many files."""
    folder.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, frame.height, parts + 1).astype(int)
    for n in range(parts):
        part = frame[bounds[n]:bounds[n + 1]]
        if fmt.startswith("csv"):
            data = _as_text(part).write_csv().encode()
        elif fmt.startswith("json"):
            data = part.write_ndjson().encode()
        else:
            buffer = io.BytesIO()
            part.write_parquet(buffer)
            data = buffer.getvalue()
        if fmt.endswith(".gz"):
            data = gzip.compress(data, mtime=0)  # mtime 0 keeps the bytes the same from run to run
        (folder / f"part-{n:05d}.{fmt}").write_bytes(data)
    return parts


def _as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Return `frame` with nested columns as JSON text, which is how CSV carries them."""
    nested = [c for c, t in frame.schema.items() if isinstance(t, (pl.Struct, pl.List))]
    return frame.with_columns(
        pl.Series(c, [None if v is None else json.dumps(v, ensure_ascii=False) for v in frame[c].to_list()],
                  dtype=pl.Utf8)
        for c in nested
    )


def main(argv: list[str] | None = None) -> dict:
    """Generate demo logs from the command line and print a one-line summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", type=Path, required=True, help="landing directory to write")
    parser.add_argument("--start", type=datetime.date.fromisoformat, default=datetime.date(2024, 1, 1))
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=800)
    parser.add_argument("--malformed-share", type=float, default=0.0, help="share of extra bad event rows")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    summary = generate(args.landing, args.start, args.days, args.seed, args.users, args.items, args.malformed_share)
    bad = sum(summary["malformed"].values())
    print(
        f"demo logs: {summary['days']} days from {summary['start']} in {summary['landing']}: "
        f"{summary['events']:,} events ({bad:,} malformed), {summary['item_rows']:,} item rows, "
        f"{summary['users']:,} shoppers, {summary['files']} files in {time.perf_counter() - began:.1f} s"
    )
    return summary


if __name__ == "__main__":
    main()
