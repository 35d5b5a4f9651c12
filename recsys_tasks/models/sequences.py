"""Users' histories as fixed-length windows for the sequence models (teacher, student): padding and targets.

Token t = item index + 1; token 0 pads. Windows are left-padded so the last column is always the newest event,
which lets a learned position embedding read "how long ago" directly from the column.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys_tasks.models.base import TrainingData

PAD = 0


def histories(data: TrainingData) -> list[np.ndarray]:
    """Return each user's item indices oldest first: the data's sequences, else interacted items by weight."""
    if data.user_sequences is not None:
        return [np.asarray(s, dtype=np.int64) for s in data.user_sequences]
    # Without an order the strongest interaction goes last, where the models look hardest.
    out = []
    m = data.interactions
    for u in range(data.n_users):
        cols, vals = m.indices[m.indptr[u]:m.indptr[u + 1]], m.data[m.indptr[u]:m.indptr[u + 1]]
        out.append(cols[np.lexsort((cols, vals))].astype(np.int64))
    return out


def repeat_share(sequences: list[np.ndarray]) -> float:
    """Return the share of events that repeat an earlier item of the same user."""
    events = sum(len(s) for s in sequences)
    repeats = sum(len(s) - len(np.unique(s)) for s in sequences)
    return repeats / max(events, 1)


def running_counts(sequence: np.ndarray) -> np.ndarray:
    """Return, per event, how often its item occurs up to and including it (1 for a first time)."""
    if len(sequence) == 0:
        return np.zeros(0, dtype=np.float32)
    _, inverse = np.unique(sequence, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    grouped = inverse[order]
    starts = np.r_[0, np.flatnonzero(np.diff(grouped)) + 1]
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    counts = np.empty(len(sequence), dtype=np.float32)
    counts[order] = rank + 1
    return counts


@dataclass
class TimedTrainingData(TrainingData):
    """TrainingData whose sequences also carry each event's age: days between the event and the cut-off (as_of)."""

    user_sequence_ages: list[np.ndarray] | None = None  # n_users float32 arrays aligned with user_sequences


def sequence_ages(data: TrainingData) -> list[np.ndarray] | None:
    """Return the events' ages in days when the data has them, else None (the models then count in events)."""
    ages = getattr(data, "user_sequence_ages", None)
    return None if ages is None else [np.asarray(a, dtype=np.float32) for a in ages]


@dataclass
class Windows:
    """Training windows: inputs, running counts, ages and the targets of every input position.

    tokens (n, L) int64 item index + 1, 0 = pad; counts (n, L) float32 occurrences of the token's item so far;
    ages (n, L) float32 days before the cut-off (0 without time stamps); targets (n, L, W) int64 item indices
    (distinct), -1 = none; users (n,) owning row.
    """

    tokens: np.ndarray
    counts: np.ndarray
    ages: np.ndarray
    targets: np.ndarray
    users: np.ndarray

    def __len__(self) -> int:
        return len(self.tokens)


def _next_events(seq: np.ndarray, width: int) -> np.ndarray:
    """Return (n, width): the distinct items of the next `width` events after each position, -1 past the end."""
    n = len(seq)
    ahead = np.full((n, width), -1, dtype=np.int64)
    for j in range(width):
        ahead[: max(n - 1 - j, 0), j] = seq[1 + j:]
    for j in range(1, width):  # an item repeated inside the window is one target
        dup = (ahead[:, j:j + 1] == ahead[:, :j]).any(axis=1)
        ahead[dup, j] = -1
    return ahead


def _next_days(seq: np.ndarray, ages: np.ndarray, width: int, horizon_days: float) -> np.ndarray:
    """Return (n, width): after the last event of each day, the distinct items bought in the next horizon_days.

    Only a day's last event gets targets (a basket is one moment); the others get -1. Mirrors the offline
    protocol: history up to a cut-off, targets = what the user buys in the days after it.
    """
    n = len(seq)
    out = np.full((n, width), -1, dtype=np.int64)
    day_end = np.flatnonzero(ages[:-1] > ages[1:]) if n > 1 else np.zeros(0, dtype=np.int64)
    for p in day_end:
        # ages fall along the sequence: the window holds the events younger than ages[p] by at most horizon_days
        stop = p + 1 + int(np.searchsorted(-ages[p + 1:], -(ages[p] - horizon_days), side="right"))
        items = list(dict.fromkeys(seq[p + 1:stop].tolist()))[:width]
        out[p, :len(items)] = items
    return out


def training_windows(sequences: list[np.ndarray], max_len: int, target_window: int = 1,
                     ages: list[np.ndarray] | None = None, horizon_days: float | None = None) -> Windows:
    """Cut each history into windows of max_len inputs with the targets of every input position.

    Targets: the distinct items of the next target_window events; or, with ages and horizon_days, the distinct
    items (at most target_window) of the horizon_days after each day's last event.
    A history of n events gives windows ending at n - 1, n - 1 - max_len, ...: every event is an input once.
    """
    toks, cnts, agez, tgts, owners = [], [], [], [], []
    timed = ages is not None and horizon_days is not None
    for user, seq in enumerate(sequences):
        n = len(seq)
        if n < 2:
            continue
        counts = running_counts(seq)
        age = ages[user] if ages is not None else np.zeros(n, dtype=np.float32)
        ahead = _next_days(seq, age, target_window, horizon_days) if timed else _next_events(seq, target_window)
        end = n - 1
        while end > 0:
            start = max(0, end - max_len)
            width = end - start
            tok = np.zeros(max_len, dtype=np.int64)
            cnt = np.zeros(max_len, dtype=np.float32)
            old = np.zeros(max_len, dtype=np.float32)
            tgt = np.full((max_len, target_window), -1, dtype=np.int64)
            tok[max_len - width:] = seq[start:end] + 1
            cnt[max_len - width:] = counts[start:end]
            old[max_len - width:] = age[start:end]
            tgt[max_len - width:] = ahead[start:end]
            if (tgt >= 0).any():
                toks.append(tok)
                cnts.append(cnt)
                agez.append(old)
                tgts.append(tgt)
                owners.append(user)
            end = start
    if not toks:
        return Windows(np.zeros((0, max_len), np.int64), np.zeros((0, max_len), np.float32),
                       np.zeros((0, max_len), np.float32), np.zeros((0, max_len, target_window), np.int64),
                       np.zeros(0, np.int64))
    return Windows(np.stack(toks), np.stack(cnts), np.stack(agez), np.stack(tgts), np.asarray(owners, np.int64))


def last_windows(sequences: list[np.ndarray], users: np.ndarray, max_len: int,
                 ages: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return each user's newest max_len events as tokens, running counts and ages, each (n, L), left-padded."""
    tokens = np.zeros((len(users), max_len), dtype=np.int64)
    counts = np.zeros((len(users), max_len), dtype=np.float32)
    old = np.zeros((len(users), max_len), dtype=np.float32)
    for row, u in enumerate(users):
        seq = sequences[int(u)]
        if len(seq) == 0:
            continue
        tail = seq[-max_len:]
        tokens[row, max_len - len(tail):] = tail + 1
        counts[row, max_len - len(tail):] = running_counts(seq)[-len(tail):]
        if ages is not None:
            old[row, max_len - len(tail):] = ages[int(u)][-len(tail):]
    return tokens, counts, old


def consecutive_pairs(sequences: list[np.ndarray], max_gap: int = 1) -> np.ndarray:
    """Return distinct (earlier, later) item pairs that follow each other within max_gap events, shape (n, 2)."""
    pairs = []
    for seq in sequences:
        for gap in range(1, max_gap + 1):
            if len(seq) > gap:
                pairs.append(np.stack([seq[:-gap], seq[gap:]], axis=1))
    if not pairs:
        return np.zeros((0, 2), dtype=np.int64)
    both = np.concatenate(pairs).astype(np.int64)
    both = both[both[:, 0] != both[:, 1]]
    return np.unique(np.sort(both, axis=1), axis=0)
