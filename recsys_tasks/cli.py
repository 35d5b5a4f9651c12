"""`python -m recsys_tasks.cli run`: prepare the embedded Airflow, the demo logs, run the DAG for one day, summarise."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from recsys_tasks.config import MODEL_ENV, REPO_ROOT, load_settings

DAG_ID = "recsys_nightly"
DEMO_START = date(2024, 1, 1)  # the demo shop opens on this day
DEMO_DAYS = 60  # and `make run` generates this many days of logs


def airflow_env(recsys_home: Path) -> dict:
    """Return the environment of the embedded Airflow: SQLite metadata in the repo, this repo's DAGs, no examples."""
    env = dict(os.environ)
    env.setdefault("AIRFLOW_HOME", str(REPO_ROOT / ".airflow"))
    env.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO_ROOT / "dags"))
    env.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO_ROOT / "plugins"))
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
    for name, value in MODEL_ENV.items():
        env.setdefault(name, value)
    env["RECSYS_HOME"] = str(recsys_home)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    return env


def airflow_bin() -> str:
    """Return the airflow executable of this interpreter's environment."""
    return str(Path(sys.executable).with_name("airflow"))


def prepare_airflow(env: dict) -> None:
    """Create the metadata database once (airflow db migrate is a no-op when up to date)."""
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "airflow.db").exists():
        print(f"Preparing Airflow metadata in {home} ...", flush=True)
        subprocess.run([airflow_bin(), "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)


def prepare_demo(landing: Path) -> date:
    """Generate the demo shop's logs once; return the latest demo day."""
    from recsys_tasks import demo_logs

    if not (landing / "events").exists():
        print(f"Generating demo logs in {landing} ...", flush=True)
        demo_logs.generate(landing, start=DEMO_START, days=DEMO_DAYS, seed=7, malformed_share=0.002)
    days = sorted(p.name.split("=", 1)[1] for p in (landing / "events").glob("dt=*"))
    return date.fromisoformat(days[-1])


def latest_day(source: str, landing: Path) -> date:
    """Return the newest partition day a source offers."""
    from recsys_tasks.sources import get_source

    parts = get_source(source, landing).partitions(until=date(9999, 12, 31))
    return max(p.dt for p in parts)


def run(args: argparse.Namespace) -> int:
    settings = load_settings({"source": args.source, "landing": args.landing or None})
    env = airflow_env(settings.recsys_home)
    started = time.perf_counter()
    prepare_airflow(env)
    if args.source == "demo" and not args.landing:
        last = prepare_demo(settings.landing_path)
    else:
        last = latest_day(args.source, settings.landing_path)
    ds = date.fromisoformat(args.ds) if args.ds else last
    conf = {"source": args.source, "landing": str(settings.landing_path)}
    if args.top_k:
        conf["top_k"] = args.top_k
    print(f"Running {DAG_ID} for {ds} on {settings.landing_path} through Airflow ...", flush=True)
    log_path = settings.recsys_home / "logs" / f"dags_test_{ds}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        result = subprocess.run([airflow_bin(), "dags", "test", DAG_ID, ds.isoformat(), "-c", json.dumps(conf)],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    took = time.perf_counter() - started
    if result.returncode != 0 or "state=success" not in log_path.read_text():
        print(log_path.read_text()[-4000:])
        print(f"\nThe run failed; full log: {log_path}")
        return 1
    from recsys_tasks.summary import summary

    print(summary(settings.analytics_db, ds))
    print(f"\nDone in {took:.0f}s. Airflow log: {log_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recsys_tasks.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run the nightly DAG for one day through Airflow and print a summary")
    p.add_argument("--source", default=os.environ.get("SOURCE") or "demo")
    p.add_argument("--landing", default=os.environ.get("LANDING") or "")
    p.add_argument("--ds", default=os.environ.get("DS") or "")
    p.add_argument("--top-k", type=int, default=None)
    p.set_defaults(func=run)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
