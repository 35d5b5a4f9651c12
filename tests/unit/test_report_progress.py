"""Progress lines of long steps (runlog.Progress): done of total, rate, ETA, and not more often than asked."""
from __future__ import annotations

import logging

from recsys_tasks.runlog import Progress


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_progress_line_has_counts_rate_and_eta():
    clock = Clock()
    progress = Progress("users scored", 1000, "users", clock=clock)
    clock.now += 20
    progress.done = 250
    assert progress.line() == "users scored: 250/1,000 users (25%) at 12.5 users/s, ETA 1m00s"
    progress.done = 1000
    assert progress.line().endswith("(100%) at 50.0 users/s, done in 0m20s")


def test_progress_logs_when_due_and_at_the_end(caplog):
    clock = Clock()
    progress = Progress("items encoded", 300, "texts", every_s=10, logger=logging.getLogger("t"), clock=clock)
    with caplog.at_level(logging.INFO, logger="t"):
        for _ in range(3):
            clock.now += 4
            progress.advance(90)  # due only once 10 s have passed since the last line
        clock.now += 1
        progress.advance(30)  # the last one always logs
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["items encoded: 270/300 texts (90%) at 22.5 texts/s, ETA 0m01s",
                     "items encoded: 300/300 texts (100%) at 23.1 texts/s, done in 0m13s"]
