"""Progress lines of long steps (runlog.Progress): done of total, rate, ETA, and not more often than asked."""
from __future__ import annotations

import logging

import numpy as np

from recsys_tasks import text_encoder
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


def test_a_note_rides_on_the_progress_line(caplog):
    clock = Clock()
    progress = Progress("teacher epochs", 2, "epochs", every_s=0, logger=logging.getLogger("t"), clock=clock)
    with caplog.at_level(logging.INFO, logger="t"):
        clock.now += 10
        progress.advance(1, "loss 2.5000")
    assert caplog.records[0].getMessage() == "teacher epochs: 1/2 epochs (50%) at 0.1 epochs/s, ETA 0m10s; loss 2.5000"


class FakeEncoder:
    device = "cpu"

    def encode(self, texts, **kwargs):
        return np.ones((len(texts), text_encoder.DIM), dtype=np.float64)


def test_encoding_logs_items_encoded_for_the_base_and_the_tuned_encoder(caplog):
    with caplog.at_level(logging.INFO, logger="recsys_tasks.text_encoder"):
        out = text_encoder.encode_with_progress(FakeEncoder(), ["a"] * 5, batch_size=2, what="items encoded (tuned)")
    assert out.shape == (5, text_encoder.DIM) and out.dtype == np.float32
    assert caplog.records[0].getMessage().startswith("items encoded (tuned): 5/5 texts (100%) at ")


def test_a_slow_rate_keeps_its_digits():
    clock = Clock()
    progress = Progress("student epochs", 10, "epochs", clock=clock)
    clock.now += 60
    progress.done = 1
    assert progress.line() == "student epochs: 1/10 epochs (10%) at 0.017 epochs/s, ETA 9m00s"


def test_a_time_cap_bounds_the_eta():
    clock = Clock()
    progress = Progress("teacher epochs", 1000, "epochs", clock=clock, limit_s=20)
    clock.now += 4
    progress.done = 1
    assert progress.line().endswith("ETA 0m16s")  # the cap stops training long before epoch 1,000
    clock.now += 40
    assert progress.line().endswith("ETA 0m00s")
