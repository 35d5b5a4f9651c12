"""Wall time and peak memory of the documented pipeline runs, each on a fresh RECSYS_HOME.

    python -m bench.pipeline_runs [--only demo|online-retail]

Writes bench/results/pipeline_runs.json (--only: that run's record replaced, the others kept). Peak memory is the
largest resident set of any process of the run (getrusage of the waited-for children), which is the in-process
`airflow dags test` doing all the work.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from recsys_tasks.runlog import code_version

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
RUNS = {
    "demo": [],
    "online-retail": ["--source", "online-retail", "--landing", str(SHARED / "online-retail" / "by-day"),
                      "--ds", "2011-09-30"],
}


def measure(name: str, args: list[str]) -> dict:
    """Run one documented run in a child process on a fresh RECSYS_HOME; return its wall time and peak RSS."""
    home = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    env = {**os.environ, "RECSYS_HOME": str(home)}
    started = time.perf_counter()
    # a fresh interpreter per run reports only its own descendants' peak
    probe = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
             "print('PEAK_KIB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
             "sys.exit(r.returncode)")
    result = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "recsys_tasks.cli", "run", *args],
                            env=env, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    peak_kib = int(result.stderr.rsplit("PEAK_KIB", 1)[1].split()[0])
    if result.returncode != 0:
        raise SystemExit(f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return {"run": name, "command": "python -m recsys_tasks.cli run " + " ".join(args), "wall_s": round(wall, 1),
            "peak_rss_mib": round(peak_kib / 1024, 1), "recsys_home": str(home),
            "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": code_version(),
            "summary_tail": result.stdout.strip().splitlines()[-1]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=sorted(RUNS))
    args = parser.parse_args()
    records = []
    for name, run_args in RUNS.items():
        if args.only and name != args.only:
            continue
        record = measure(name, run_args)
        records.append(record)
        print(f"{name:<14} wall {record['wall_s']:>7.1f} s   peak RSS {record['peak_rss_mib']:>8.1f} MiB")
    out = REPO / "bench" / "results" / "pipeline_runs.json"
    if args.only and out.exists():  # one run re-measured: the other runs' records stay, with when they were taken
        before = json.loads(out.read_text())
        kept = [{**r, "measured_at": r.get("measured_at", before["machine"].get("measured_at"))}
                for r in before["runs"] if r["run"] != args.only]
        records = [*kept, *records]
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
               "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    out.write_text(json.dumps({"machine": machine, "runs": records}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
