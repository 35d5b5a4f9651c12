"""Run log: ops.stage_runs (one row per stage of a run) and ops.pipeline_runs (one row per run)."""
from __future__ import annotations

import json
import logging
import subprocess
import time
from datetime import date, datetime, timezone
from functools import lru_cache

from recsys_tasks.config import REPO_ROOT, Settings
from recsys_tasks.warehouse import work_db

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def code_version() -> str:
    """Return the git commit of the code that runs (with +dirty for local changes), else the package version."""
    try:
        sha = subprocess.run(["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty=+dirty"],
                             capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        return sha or "unknown"
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import PackageNotFoundError, version
        try:
            return version("recsys-nightly")
        except PackageNotFoundError:
            return "unknown"


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
    """Progress of a long step in the task log: done of total, rate and ETA, at most one line every `every_s`."""

    def __init__(self, what: str, total: int, unit: str = "items", every_s: float = 15.0, logger=None,
                 clock=time.monotonic, limit_s: float | None = None):
        """limit_s: a wall-clock cap that stops the step early (a training time budget); the ETA never exceeds it."""
        self.what, self.total, self.unit, self.every_s = what, max(0, int(total)), unit, every_s
        self.limit_s = limit_s or None
        self.log, self.clock = logger or log, clock
        self.done = 0
        self.started = self.last = clock()

    def advance(self, n: int = 1, note: str = "") -> None:
        """Count n more done; log a line (with an optional note, e.g. the loss) when due and when the last is done."""
        self.done += n
        now = self.clock()
        if now - self.last >= self.every_s or self.done >= self.total:
            self.last = now
            self.log.info("%s", self.line(now) + (f"; {note}" if note else ""))

    def line(self, now: float | None = None) -> str:
        """Return 'what: done/total unit (pct) at rate unit/s, ETA m:ss' (or 'done in ...' once finished)."""
        took = max((self.clock() if now is None else now) - self.started, 1e-9)
        rate = self.done / took
        share = self.done / self.total if self.total else 1.0
        if self.done >= self.total:
            tail = f"done in {_duration(took)}"
        else:
            eta = (self.total - self.done) / rate if rate > 0 else None
            if self.limit_s is not None:
                eta = min(eta if eta is not None else self.limit_s, max(self.limit_s - took, 0.0))
            tail = f"ETA {_duration(eta)}" if eta is not None else "ETA unknown"
        speed = f"{rate:,.1f}" if rate >= 1 else f"{rate:.2g}"  # a slow epoch reads 0.017, not 0.0
        return f"{self.what}: {self.done:,}/{self.total:,} {self.unit} ({share:.0%}) at {speed} {self.unit}/s, {tail}"


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def run_stage(name: str, fn, settings: Settings, ds: date, run_id: str) -> dict:
    """Run one stage function, log one line with its row counts and duration, and record it in ops.stage_runs."""
    started, clock = _now(), time.perf_counter()
    status, counts = "failed", {}
    try:
        counts = fn(settings, ds, run_id) or {}
        status = "success"
        return counts
    finally:
        took = time.perf_counter() - clock
        log.info("stage %s ds=%s %s in %.1fs rows=%s", name, ds, status, took, json.dumps(counts, default=str))
        with work_db(settings) as con:
            con.execute("DELETE FROM ops.stage_runs WHERE run_id = ? AND stage = ?", [run_id, name])
            con.execute("INSERT INTO ops.stage_runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [ds, run_id, name, started, took, json.dumps(counts, default=str), status])


def finish_run(con, ds: date, run_id: str, status: str, model: str | None, message: str = "") -> None:
    """Write the run's row in ops.pipeline_runs from its recorded stages."""
    stages = con.execute("SELECT stage, duration_s, row_counts, started_at FROM ops.stage_runs "
                         "WHERE run_id = ? ORDER BY started_at", [run_id]).fetchall()
    counts: dict = {}
    for _, _, rows, _ in stages:
        counts.update(json.loads(rows or "{}"))
    started = stages[0][3] if stages else _now()
    con.execute("DELETE FROM ops.pipeline_runs WHERE run_id = ?", [run_id])
    con.execute(
        "INSERT INTO ops.pipeline_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [ds, run_id, status, started, _now(), json.dumps(counts), model, code_version(),
         json.dumps({s: round(d, 3) for s, d, _, _ in stages}), message],
    )


def record_failure(settings: Settings, ds: date, run_id: str, message: str) -> None:
    """Record a failed run in the working database (the analysts' copy is left as it was)."""
    with work_db(settings) as con:
        finish_run(con, ds, run_id, "failed", None, message[:2000])
