"""What Linux's /proc says about processes: state, age, session, children and command line.

`scripts/airflow_local.py` finds, judges and ends the local Airflow's components with these; the tests check with
them that no process outlives what started it (the torchrun workers of a fit).
"""
from __future__ import annotations

import os
import time
from pathlib import Path


def process_stat(pid: int | str) -> list[str] | None:
    """Return the fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, session, ...); None: gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_gone(pid: int) -> bool:
    """Return True when a process has exited (gone, or a zombie its parent has not collected)."""
    fields = process_stat(pid)
    return fields is None or fields[0] == "Z"


def process_age(pid: int) -> float:
    """Return seconds since a process started (0.0 when it is gone)."""
    fields = process_stat(pid)
    try:
        ticks = int(fields[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (TypeError, OSError, ValueError, IndexError, StopIteration):
        return 0.0
    return max(0.0, time.time() - boot - ticks / os.sysconf("SC_CLK_TCK"))


def _live() -> dict[int, list[str]]:
    """Return the stat fields of every live (not zombie) process."""
    found = {}
    for entry in Path("/proc").glob("[0-9]*"):
        fields = process_stat(entry.name)
        if fields and fields[0] != "Z":
            found[int(entry.name)] = fields
    return found


def session_members(sid: int) -> list[int]:
    """Return the live processes of a session (the task processes Airflow starts get process groups of their own)."""
    return sorted(pid for pid, fields in _live().items() if int(fields[3]) == sid)


def descendants(pid: int) -> set[int]:
    """Return the live processes started by pid, directly or not (across sessions: torchrun's workers)."""
    parents = {child: int(fields[1]) for child, fields in _live().items()}
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def command_words(pid: int) -> list[str]:
    """Return a process's command line (or the title it set) as words; [] when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.replace(b"\0", b" ").decode(errors="replace").split()
