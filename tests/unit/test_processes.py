"""The /proc readers that find, judge and end processes (scripts/airflow_local.py, the torchrun tests)."""
import os
import subprocess
import time

from recsys_tasks.processes import (command_words, descendants, process_age, process_gone, process_stat,
                                    session_members)


def test_a_child_in_a_session_of_its_own_is_found_aged_and_seen_gone():
    started = time.time()
    child = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        time.sleep(0.3)
        assert session_members(child.pid) == [child.pid]  # its own session, nothing else in it
        assert child.pid in descendants(os.getpid()) and child.pid not in session_members(os.getsid(0))
        assert 0.0 <= process_age(child.pid) <= time.time() - started + 1.0
        assert command_words(child.pid) == ["sleep", "30"] and process_stat(child.pid)[1] == str(os.getpid())
        assert not process_gone(child.pid)
        child.kill()
        deadline = time.monotonic() + 10
        while not process_gone(child.pid):  # a zombie until waited for: already gone
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert child.pid not in descendants(os.getpid()) and session_members(child.pid) == []
    finally:
        child.kill()
        child.wait()
    assert process_gone(child.pid) and process_stat(child.pid) is None and command_words(child.pid) == []
    assert process_age(child.pid) == 0.0
