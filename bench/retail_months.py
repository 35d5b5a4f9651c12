"""Protocol B's rules at every monthly cut-off of the UCI data: is the test month like the others?

    python -m bench.retail_months [--months 2011-03-01,...] [--out bench/results/retail_months.json]

EVALUATION.md fixes two cut-offs for online-retail (valid 2011-08-01, test 2011-09-01). This command applies the
same rules (history before T, targets in the 30 days after, all and new tracks, NDCG@20) at each first of the month
whose 30 days lie inside the data, and fits repeat, EASE (lambda 500) and the gbdt next-purchase model with the
settings bench.quality uses on B. Per cut-off it reports the three models, gbdt's gain over repeat on the all track,
the share of the users' targets that are items new to them, and the share naming Christmas in their description.
None of this picks a hyper-parameter; it says how far the test month's target lies from what the models do elsewhere.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from bench import reference_baselines as rb
from bench.fits import GBDT, RESULTS, value
from bench.retail_protocol import retail_descriptions, retail_records, retail_split_with_text
from recsys_tasks.models import NextPurchaseGBDT, build_model

MONTHS = tuple(dt.date(2011, m, 1) for m in range(3, 10))  # 2011-09-01 + 30 days is the data's last day
CHRISTMAS = re.compile(r"christmas|xmas|advent|santa|reindeer|nativity|bauble", re.I)


def month_row(purchases, descriptions: dict[str, str], cutoff: dt.date) -> dict:
    """Fit the three models at one cut-off and describe its targets."""
    s = retail_split_with_text(purchases, descriptions, str(cutoff), cutoff=cutoff)
    targets = s.targets["all"]
    new_to_user = targets - targets.multiply(s.history[s.eval_users["all"]])
    christmas = np.array([bool(CHRISTMAS.search(descriptions.get(i, ""))) for i in s.data.items])
    row = {"cutoff": cutoff.isoformat(), "users_all": int(len(s.eval_users["all"])),
           "users_new": int(len(s.eval_users["new"])),
           "target_share_new_to_user": round(float(new_to_user.sum() / targets.sum()), 3),
           "target_share_christmas": round(float(targets[:, christmas].sum() / targets.sum()), 3)}
    models = {"repeat": build_model("repeat"), "ease": build_model("ease", lam=500.0),
              "gbdt": NextPurchaseGBDT(**GBDT["B"])}
    for name, model in models.items():
        started = time.perf_counter()
        records = retail_records(s, name, model.fit(s.data), cutoff.isoformat())
        row[name] = {track: round(value(records, track=track, metric="ndcg"), 4) for track in ("all", "new")}
        row[name]["seconds"] = round(time.perf_counter() - started, 1)
    row["gbdt_gain_over_repeat_all"] = round(row["gbdt"]["all"] / row["repeat"]["all"] - 1, 3)
    return row


def format_rows(rows: list[dict]) -> str:
    lines = ["| cut-off | users (all / new) | repeat all | EASE all / new | gbdt all / new | gbdt over repeat, all "
             "| targets new to the user | targets naming Christmas |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['cutoff']} | {r['users_all']} / {r['users_new']} | {r['repeat']['all']:.4f} | "
                     f"{r['ease']['all']:.4f} / {r['ease']['new']:.4f} | {r['gbdt']['all']:.4f} / {r['gbdt']['new']:.4f}"
                     f" | {r['gbdt_gain_over_repeat_all']:+.1%} | {r['target_share_new_to_user']:.1%} | "
                     f"{r['target_share_christmas']:.1%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", default=",".join(d.isoformat() for d in MONTHS),
                        help="comma-separated cut-off days (YYYY-MM-DD); each needs 30 days of data after it")
    parser.add_argument("--datasets", type=Path, default=rb.DATASETS_DIR)
    parser.add_argument("--out", type=Path, default=RESULTS / "retail_months.json")
    args = parser.parse_args(argv)
    purchases = rb.retail_purchases(args.datasets)
    descriptions = retail_descriptions(args.datasets)
    last_day = purchases["ts"].max().date()
    rows = []
    for day in args.months.split(","):
        cutoff = dt.date.fromisoformat(day.strip())
        if cutoff + dt.timedelta(days=rb.RETAIL_WINDOW_DAYS - 1) > last_day:
            raise SystemExit(f"cut-off {cutoff}: its {rb.RETAIL_WINDOW_DAYS} days run past the data's last day "
                             f"{last_day}")
        rows.append(month_row(purchases, descriptions, cutoff))
        print(json.dumps(rows[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    print(format_rows(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
