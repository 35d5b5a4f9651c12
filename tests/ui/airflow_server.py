"""A real `airflow standalone` for the UI tests, started and stopped by scripts/airflow_local.py (as `make airflow`)."""
from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "airflow_local.py"
DAG_ID = "recsys_nightly"
_spec = importlib.util.spec_from_file_location("airflow_local", SCRIPT)
airflow_local = importlib.util.module_from_spec(_spec)  # the script's status helpers, for the tests' own checks
_spec.loader.exec_module(airflow_local)
HEAL_EVERY_S = 10  # how often a wait checks that no Airflow component has exited or hung
HUNG_AFTER_S = 180  # a component silent this long in a tiny run has hung; RUN_TIMEOUT_S (420) leaves time to recover


def free_port() -> int:
    """Return a free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env() -> dict:
    """Return this environment without the test session's Airflow and recsys settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "RECSYS_"))}


def control(command: str, home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run scripts/airflow_local.py start|stop|status for an Airflow home."""
    return subprocess.run([sys.executable, str(SCRIPT), command, "--home", str(home), *args], env=clean_env(),
                          capture_output=True, text=True, timeout=timeout)


def _json(raw: bytes) -> dict:
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        return {"text": raw.decode(errors="replace")}


@dataclass
class Api:
    """Airflow's REST API (v2) with a JWT from /auth/token; its waits start again a server component that exited."""

    base: str
    airflow_home: Path | None = None  # where `airflow_local.py heal` finds the server
    token: str = ""

    def login(self, password: str) -> "Api":
        self.token = self.call("POST", "/auth/token", {"username": "admin", "password": password})[1]["access_token"]
        return self

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """Return (status, JSON body) of one request; HTTP errors are returned, not raised."""
        request = urllib.request.Request(self.base + path, method=method,
                                         data=None if body is None else json.dumps(body).encode())
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, _json(response.read())
        except urllib.error.HTTPError as err:
            return err.code, _json(err.read())

    def runs(self) -> list[dict]:
        """Return every run of the DAG, oldest logical date first."""
        status, body = self.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?order_by=logical_date&limit=100")
        assert status == 200, body
        return body["dag_runs"]

    def backfills_finished(self) -> bool:
        """Return True when the scheduler has marked every backfill of the DAG complete (a new one is refused before)."""
        status, body = self.call("GET", f"/api/v2/backfills?dag_id={DAG_ID}")
        assert status == 200, body
        return all(b["completed_at"] for b in body["backfills"])

    def task_states(self, run_id: str) -> dict[str, str]:
        from urllib.parse import quote

        status, body = self.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances")
        return {t["task_id"]: t["state"] for t in body.get("task_instances", [])} if status == 200 else {}

    def heal(self) -> None:
        """Start again a server component that has exited (Airflow's scheduler can, on SQLite) or hung, with a
        warning."""
        if self.airflow_home is None:
            return
        done = control("heal", self.airflow_home, "--hung-after", str(HUNG_AFTER_S), timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        for line in done.stdout.splitlines():
            if "started again" in line:
                warnings.warn(f"Airflow component exited or hung during the UI tests: {line}")

    def wait_for(self, wanted, timeout: float, what: str):
        """Poll the runs until wanted(runs) returns something true, and return that; fail at once when a run fails.

        Every HEAL_EVERY_S it starts again a component that has exited or hung: a dead scheduler runs nothing, and
        `airflow standalone` does not restart it."""
        deadline = time.monotonic() + timeout
        next_heal = time.monotonic() + HEAL_EVERY_S
        while True:
            if time.monotonic() >= next_heal:
                self.heal()
                next_heal = time.monotonic() + HEAL_EVERY_S
            runs = self.runs()
            done = wanted(runs)
            if done:
                return done
            failed = [r for r in runs if r["state"] == "failed"]
            assert not failed, f"{what}: run failed: {[(r['dag_run_id'], self.task_states(r['dag_run_id'])) for r in failed]}"
            assert time.monotonic() < deadline, f"{what}: not done after {timeout:.0f}s: " + str(
                [(r["dag_run_id"], r["state"]) for r in runs])
            time.sleep(2)
