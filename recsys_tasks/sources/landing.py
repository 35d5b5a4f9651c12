"""Read the contract layout: events/dt=YYYY-MM-DD/ and items/dt=YYYY-MM-DD/ folders of files."""
from __future__ import annotations

import datetime
from pathlib import Path

from recsys_tasks.sources.base import (
    KINDS,
    Partition,
    RawBatch,
    bytes_checksum,
    concat_batches,
    read_bytes,
    to_contract,
)
from recsys_tasks.sources.formats import read_text_table

VERSION = "landing-reader/1"


class LandingSource:
    """A landing directory already in the contract layout (a shop's export, or the demo logs)."""

    def __init__(self, landing: Path, name: str = "landing"):
        self.landing = Path(landing)
        self.name = name

    def partitions(self, until: datetime.date) -> list[Partition]:
        """Return every partition dated on or before `until`, sorted by (kind, dt)."""
        if not self.landing.is_dir():
            raise FileNotFoundError(f"landing directory {self.landing} does not exist")
        found = []
        for kind in KINDS:
            for day, folder in _day_folders(self.landing / kind):
                # later days are only listed, never opened: they may still be being written
                if day > until:
                    continue
                files = _data_files(folder)
                if files:
                    checksum = bytes_checksum(VERSION, ((f.name, read_bytes(f)) for f in files))
                    found.append(Partition(kind, day, files, checksum))
        return sorted(found, key=lambda p: (p.kind, p.dt))

    def read(self, partition: Partition) -> RawBatch:
        """Return the partition's rows as text, refusing files changed since they were listed."""
        blobs = [(f, read_bytes(f)) for f in partition.files]
        if bytes_checksum(VERSION, ((f.name, b) for f, b in blobs)) != partition.checksum:
            raise ValueError(f"{partition.kind} dt={partition.dt}: files changed since the partition was listed")
        frames, columns_by_file = [], {}
        for path, blob in blobs:
            table, header, n_rows = read_text_table(path, blob)
            columns_by_file[str(path)] = header
            frames.append(to_contract(partition.kind, table, n_rows, path))
        return RawBatch(concat_batches(partition.kind, frames), columns_by_file)


def _day_folders(root: Path) -> list[tuple[datetime.date, Path]]:
    """Return (day, folder) for each dt=YYYY-MM-DD folder under root, raising on a malformed date."""
    if not root.is_dir():
        return []
    days = []
    for folder in root.iterdir():
        if not folder.name.startswith("dt=") or not folder.is_dir():
            continue
        try:
            day = datetime.date.fromisoformat(folder.name[3:])
        except ValueError as error:
            raise ValueError(f"{folder}: partition folder is not dt=YYYY-MM-DD") from error
        days.append((day, folder))
    return sorted(days)


def _data_files(folder: Path) -> tuple[Path, ...]:
    """Return the partition's files by name, skipping markers such as _SUCCESS and hidden files."""
    return tuple(sorted((p for p in folder.iterdir() if not p.name.startswith((".", "_"))), key=lambda p: p.name))
