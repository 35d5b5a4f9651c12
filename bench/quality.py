"""Quality of the language models against the strongest baselines, on real data, by the protocols of EVALUATION.md.

    python -m bench.quality [--only A,cold,B,D] [--text base|tuned] [--skip-reference] [--merge]

First reproduces the reference baseline rows (bench/reference_baselines.py), then fits the teacher, the student and
the gbdt next-purchase model through the Recommender interface on each protocol's splits and writes bench/results/quality.json: a list of
{dataset, protocol, split, track, model, metric, k, value} (+ n_users and details). "served" is what the nightly
pipeline would publish: the candidate with the best validation score (A, D: masked NDCG@10; B: all-track NDCG@20),
reported on the test split. Hyper-parameters (bench/fits.py) were chosen on the validation splits only (bench/README.md);
the teacher's prior weight is chosen here, in the run, on validation.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from bench import reference_baselines as rb
from bench.amazon_protocols import protocol_a, protocol_a_cold, protocol_d
from bench.fits import RESULTS, SELECTION
from bench.retail_protocol import protocol_b

log = logging.getLogger("bench.quality")


# ---------------------------------------------------------------- served and the report

def served_records(records: list[dict]) -> list[dict]:
    """Return, per dataset, the test records of the candidate the pipeline would serve (best on validation)."""
    out = []
    for dataset, (track, metric) in SELECTION.items():
        valid = {r["model"]: r["value"] for r in records if r["dataset"] == dataset and r["split"] == "valid"
                 and r["track"] == track and r["metric"] == metric and r["model"] not in ("served", "chance")}
        if not valid:
            continue
        best = max(valid, key=lambda m: valid[m])
        for r in records:
            if r["dataset"] == dataset and r["model"] == best:
                out.append({**{k: r[k] for k in ("dataset", "protocol", "split", "track", "metric", "k", "value",
                                                 "n_users")}, "model": "served", "served_model": best})
    return out


def _part(record: dict) -> tuple:
    return record["dataset"], record["protocol"], record["track"] == "cold", "reference" in record


def merge_records(earlier: list[dict], fresh: list[dict]) -> list[dict]:
    """Return fresh plus the earlier records of the parts (dataset, protocol, cold or not, reference or not) that
    fresh does not redo; earlier "served" rows are dropped, to be derived again from the merged candidates."""
    redone = {_part(r) for r in fresh}
    return [r for r in earlier if r["model"] != "served" and _part(r) not in redone] + fresh


def format_records(records: list[dict]) -> str:
    """Return the records as a table: one line per dataset, split, track and model."""
    keyed: dict[tuple, dict] = {}
    for r in records:
        keyed.setdefault((r["dataset"], r["split"], r["track"], r["model"]), {})[f"{r['metric']}@{r['k']}"] = r["value"]
    head = f"{'dataset':<18}{'split':<6}{'track':<9}{'model':<11}metrics"
    lines = [head, "-" * 80]
    for (ds, split, track, model), metrics in sorted(keyed.items()):
        shown = "  ".join(f"{m} {v:.4f}" for m, v in sorted(metrics.items()))
        lines.append(f"{ds:<18}{split:<6}{track:<9}{model:<11}{shown}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="A,cold,B,D", help="comma-separated: A, cold, B, D")
    parser.add_argument("--text", choices=("base", "tuned"), default="base",
                        help="item text vectors: the bundled MiniLM, or MiniLM tuned on each split's pairs")
    parser.add_argument("--tune-seconds", type=float, default=120.0, help="CPU seconds of text tuning per split")
    parser.add_argument("--skip-reference", action="store_true", help="do not re-run the reference baselines")
    parser.add_argument("--datasets", type=Path, default=rb.DATASETS_DIR)
    parser.add_argument("--out", type=Path, default=RESULTS / "quality.json")
    parser.add_argument("--merge", action="store_true",
                        help="keep the records of --out that this run does not redo (each keeps its own run stamp)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    started = time.perf_counter()
    only = {p.strip() for p in args.only.split(",")}
    records: list[dict] = []
    reproduced = True
    if not args.skip_reference:
        rows = rb.compare(rb.reference_records("all", args.datasets))
        print(rb.format_table(rows))
        reproduced = all(r["status"] != "MISMATCH" for r in rows)
        records += [{k: r[k] for k in ("dataset", "protocol", "split", "track", "model", "metric", "k", "value",
                                       "n_users")} | {"reference": r["reference"], "status": r["status"]} for r in rows]
    prior: dict = {}  # protocol -> the (prior, buy-again) weights validation chose; "blend" -> dataset -> recipe
    for key, fn in (("A", protocol_a), ("cold", protocol_a_cold), ("B", protocol_b), ("D", protocol_d)):
        if key in only:
            part = time.perf_counter()
            records += fn(args.datasets, args.text, args.tune_seconds, prior)
            log.info("protocol %s done in %.0fs", key, time.perf_counter() - part)
    meta = {"text": args.text, "seconds": round(time.perf_counter() - started, 1), "reference_reproduced": reproduced}
    for r in records:
        r.setdefault("run", meta)
    if args.merge and args.out.exists():
        records = merge_records(json.loads(args.out.read_text()), records)
    records += [{**r, "run": meta} for r in served_records(records)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1, default=str) + "\n")
    print(format_records(records))
    print(f"\n{len(records)} records -> {args.out} ({meta['seconds']:.0f}s, text={args.text})")
    return 0 if reproduced else 1


if __name__ == "__main__":
    sys.exit(main())